import type { IntDeque } from './int-deque.ts';
import type { RequestTable } from './request-table.ts';

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
  /** KV already present before each prefill chunk (prefix-cache hits and earlier chunks), summed. */
  sumPrefillKvTokens: number;
  numDecodeRequests: number;
  sumDecodeKvTokens: number;
  /** Wall time of that pass in seconds (0 = no pass yet, which the regressions skip as idle). */
  wallTimeS: number;
  /** When that pass ended (ms; NaN = no pass yet). */
  passEndMs: number;
  /**
   * Queued part, as the scheduler saw it when it scheduled that pass (the requests left waiting once the pass
   * was formed), as vLLM's forward-pass metrics report it: arrivals during the pass show in the next one.
   * Requests waiting for their prompt, and requests waiting to decode (preempted, or transferred prompts).
   */
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
    sumPrefillKvTokens: 0,
    numDecodeRequests: 0,
    sumDecodeKvTokens: 0,
    wallTimeS: 0,
    passEndMs: Number.NaN,
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
  prefillKvTokens = 0;
  decodeRequests = 0;
  decodeKvTokens = 0;
  /** The waiting queue once the pass was scheduled (zeros unless the engine tracks it for a planner). */
  queuedPrefill = 0;
  queuedPrefillTokens = 0;
  queuedDecode = 0;
  queuedDecodeKvTokens = 0;

  set(
    startMs: number,
    endMs: number,
    prefillRequests: number,
    prefillTokens: number,
    decodeRequests: number,
    decodeKvTokens: number,
    prefillKvTokens = 0,
  ): void {
    this.startMs = startMs;
    this.endMs = endMs;
    this.prefillRequests = prefillRequests;
    this.prefillTokens = prefillTokens;
    this.prefillKvTokens = prefillKvTokens;
    this.decodeRequests = decodeRequests;
    this.decodeKvTokens = decodeKvTokens;
  }

  setQueue(prefill: number, prefillTokens: number, decode: number, decodeKvTokens: number): void {
    this.queuedPrefill = prefill;
    this.queuedPrefillTokens = prefillTokens;
    this.queuedDecode = decode;
    this.queuedDecodeKvTokens = decodeKvTokens;
  }

  copyFrom(o: PassRecord): void {
    this.set(
      o.startMs,
      o.endMs,
      o.prefillRequests,
      o.prefillTokens,
      o.decodeRequests,
      o.decodeKvTokens,
      o.prefillKvTokens,
    );
    this.setQueue(o.queuedPrefill, o.queuedPrefillTokens, o.queuedDecode, o.queuedDecodeKvTokens);
  }

  /** Writes the pass into a snapshot (zeros when no pass was recorded). */
  writeTo(out: ForwardPassSnapshot): void {
    const seen = !Number.isNaN(this.endMs);
    out.numPrefillRequests = seen ? this.prefillRequests : 0;
    out.sumPrefillTokens = seen ? this.prefillTokens : 0;
    out.sumPrefillKvTokens = seen ? this.prefillKvTokens : 0;
    out.numDecodeRequests = seen ? this.decodeRequests : 0;
    out.sumDecodeKvTokens = seen ? this.decodeKvTokens : 0;
    out.wallTimeS = seen ? (this.endMs - this.startMs) / 1000 : 0;
    out.passEndMs = this.endMs;
    out.numQueuedPrefill = seen ? this.queuedPrefill : 0;
    out.sumQueuedPrefillTokens = seen ? this.queuedPrefillTokens : 0;
    out.numQueuedDecode = seen ? this.queuedDecode : 0;
    out.sumQueuedDecodeKvTokens = seen ? this.queuedDecodeKvTokens : 0;
  }

  /** Records the waiting queue `waiting` of requests (see `writeTo`) as this pass's queued part. */
  captureQueue(waiting: IntDeque, req: RequestTable): void {
    let nP = 0;
    let sumP = 0;
    let nD = 0;
    let sumD = 0;
    for (let i = 0; i < waiting.length; i++) {
      const r = waiting.get(i);
      if (req.generated[r] > 0 || req.remote[r] === 1) {
        nD++;
        sumD += req.seqLen(r);
      } else {
        nP++;
        sumP += req.promptLen[r];
      }
    }
    this.setQueue(nP, sumP, nD, sumD);
  }
}

/**
 * An engine's latest pass and the one before it (forward-pass metrics for a planner: a snapshot at t reads
 * the last pass that ended by t), with the waiting queue each left when `trackQueue` is set. Two records
 * swapped in turn, so recording allocates nothing unless `log` is set.
 */
export class PassHistory {
  private last = new PassRecord();
  private prev = new PassRecord();
  /** Record each pass's waiting queue (the planner reads it; off otherwise, to save the scan). */
  trackQueue = false;
  /** When set (profiling), a copy of every recorded pass is appended here. */
  log: PassRecord[] | null = null;
  private readonly waiting: IntDeque;
  private readonly req: RequestTable;

  constructor(waiting: IntDeque, req: RequestTable) {
    this.waiting = waiting;
    this.req = req;
  }

  /** Makes [start, end) the latest pass; the previous latest becomes the one before it. */
  record(
    start: number,
    end: number,
    prefillRequests: number,
    prefillTokens: number,
    decodeRequests: number,
    decodeKv: number,
    prefillKv = 0,
  ): void {
    const older = this.prev;
    this.prev = this.last;
    this.last = older;
    older.set(start, end, prefillRequests, prefillTokens, decodeRequests, decodeKv, prefillKv);
    if (this.trackQueue) older.captureQueue(this.waiting, this.req);
    if (this.log !== null) {
      const copy = new PassRecord();
      copy.copyFrom(older);
      this.log.push(copy);
    }
  }

  /**
   * Rewrites the latest pass in place, without logging it: a coalesced run's next-to-last step, recorded
   * just before its last one, as stepping would have left them.
   */
  overwriteLatest(start: number, end: number, decodeRequests: number, decodeKv: number): void {
    this.last.set(start, end, 0, 0, decodeRequests, decodeKv);
    if (this.trackQueue) this.last.captureQueue(this.waiting, this.req);
  }

  /** Writes the last pass that ended by t (with its queue) into `out`. */
  writeAt(t: number, out: ForwardPassSnapshot): void {
    (this.last.endMs <= t ? this.last : this.prev).writeTo(out);
  }
}
