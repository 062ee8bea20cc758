/**
 * What one engine reports about its latest forward pass and its queue, shaped like Dynamo's
 * ForwardPassMetrics (FPM): the load planner's only per-engine signal. Token counts are sums over requests.
 */
export interface ForwardPassSnapshot {
  /** Engine (global index) the snapshot describes. */
  engine: number;
  /** Scheduled part: the last pass that ended at or before the snapshot time (zeros before the first pass). */
  numPrefillRequests: number;
  sumPrefillTokens: number;
  numDecodeRequests: number;
  sumDecodeKvTokens: number;
  /** Wall time of that pass in seconds (0 = no pass yet, which the regressions skip as idle). */
  wallTimeS: number;
  /** Queued part at the snapshot time: requests waiting for their prompt, and requests waiting to decode. */
  numQueuedPrefill: number;
  sumQueuedPrefillTokens: number;
  numQueuedDecode: number;
  sumQueuedDecodeKvTokens: number;
}

export function emptySnapshot(engine = -1): ForwardPassSnapshot {
  return {
    engine,
    numPrefillRequests: 0,
    sumPrefillTokens: 0,
    numDecodeRequests: 0,
    sumDecodeKvTokens: 0,
    wallTimeS: 0,
    numQueuedPrefill: 0,
    sumQueuedPrefillTokens: 0,
    numQueuedDecode: 0,
    sumQueuedDecodeKvTokens: 0,
  };
}

/** The scheduled side of one pass, kept by engines as plain numbers (no allocation per pass). */
export class PassRecord {
  startMs = Number.NaN;
  endMs = Number.NaN;
  prefillRequests = 0;
  prefillTokens = 0;
  decodeRequests = 0;
  decodeKvTokens = 0;

  set(
    startMs: number,
    endMs: number,
    prefillRequests: number,
    prefillTokens: number,
    decodeRequests: number,
    decodeKvTokens: number,
  ): void {
    this.startMs = startMs;
    this.endMs = endMs;
    this.prefillRequests = prefillRequests;
    this.prefillTokens = prefillTokens;
    this.decodeRequests = decodeRequests;
    this.decodeKvTokens = decodeKvTokens;
  }

  copyFrom(o: PassRecord): void {
    this.set(o.startMs, o.endMs, o.prefillRequests, o.prefillTokens, o.decodeRequests, o.decodeKvTokens);
  }

  /** Writes the scheduled side into a snapshot (zeros when no pass was recorded). */
  writeTo(out: ForwardPassSnapshot): void {
    const seen = !Number.isNaN(this.endMs);
    out.numPrefillRequests = seen ? this.prefillRequests : 0;
    out.sumPrefillTokens = seen ? this.prefillTokens : 0;
    out.numDecodeRequests = seen ? this.decodeRequests : 0;
    out.sumDecodeKvTokens = seen ? this.decodeKvTokens : 0;
    out.wallTimeS = seen ? (this.endMs - this.startMs) / 1000 : 0;
  }
}
