import type { Engine } from '../engine/engine.ts';
import { grown, RequestStatus, type RequestTable } from '../engine/request-table.ts';
import type { Collector } from '../metrics/collector.ts';
import type { RequestRecords } from '../metrics/records.ts';
import type { Pool, PoolSpec } from '../pool.ts';
import { KvRouter } from '../router/kv-router.ts';
import { TransferLink } from './transfer-link.ts';

/** Disaggregated serving: prompts run on prefill workers, their KV moves to decode workers, which generate. */
export interface DisaggregationSpec {
  prefill: PoolSpec;
  decode: PoolSpec;
  /** KV cache bytes per token of the model (all layers). */
  kvBytesPerToken: number;
  /** Bandwidth of each prefill worker's link, GB/s. */
  kvTransferGbps: number;
  /**
   * Concurrent transfers from one prefill worker share its link (processor sharing; the default), or each
   * moves at the full bandwidth as if alone (false: the reference simulator's fixed per-transfer delay).
   */
  kvLinkShared?: boolean;
  /** Tokens charged per transfer: the whole prompt, or only the prompt blocks the destination lacks. */
  transferMode: 'full-prompt' | 'destination-missing';
  /**
   * Conditional disaggregation (needs the KV router): prefill on the chosen decode worker when the prompt's
   * uncached part there is under `maxUncachedTokens` tokens and under `maxUncachedRatio` of the prompt.
   */
  conditional?: { maxUncachedTokens: number; maxUncachedRatio: number };
}

/** KV handoffs between prefill and decode workers (per request: see RequestRecords). */
export interface TransferRecords {
  /** Transfers completed. */
  count: number;
  /**
   * Wall of each transfer (link time, ms) and the wait for the destination's KV (ms): before the transfer,
   * or for SGLang's handoff order (destination first) between arrival and the reservation.
   */
  transferMs: Float64Array;
  waitMs: Float64Array;
  bytes: number;
  /** Requests prefilled on their decode worker (conditional disaggregation). */
  localPrefills: number;
}

/**
 * Who reserves first in a hand-off: vLLM's engines (and TRT-LLM's) prefill, then find a destination
 * (source first); SGLang's decode worker reserves the KV before the prefill is submitted (destination first).
 */
export function handoffOrder(decode: PoolSpec): 'source-first' | 'destination-first' {
  return decode.engine.kind === 'sglang' ? 'destination-first' : 'source-first';
}

/** What the coordinator needs from the simulation that owns the engines and the clock. */
export interface DisaggHost {
  /** Engine by global index. */
  engine(e: number): Engine;
  /** Slot of engine e in its pool. */
  slotOf(e: number): number;
  /** Applies engine e's planned passes that started before t. */
  bringUpToDate(e: number, t: number): void;
  /** True while engine e has a pass in flight at t that ends after t. */
  busyAt(e: number, t: number): boolean;
  /** Engine e may start a pass at the end of this time step. */
  markDirty(e: number): void;
  /** Request r left the cluster at t (done or rejected): its follow-ups may arrive. */
  requestDone(r: number, t: number): void;
  /** Routes r to a prefill worker and queues it there. */
  submitPrefill(r: number, t: number): void;
  /** Request r was queued on engine e at t (for observers). */
  noteRouted(r: number, e: number, t: number): void;
}

/**
 * The disaggregated hand-off, created only for disaggregated runs: prefill done -> decode worker reserves
 * KV -> transfer over the prefill worker's link -> decode (or, destination first, reserve -> prefill ->
 * transfer -> decode), and conditional disaggregation's local prefills.
 */
export class DisaggCoordinator {
  readonly records: TransferRecords;
  private readonly spec: DisaggregationSpec;
  private readonly host: DisaggHost;
  private readonly decode: Pool;
  /** The decode pool's KV router when conditional disaggregation reads its cache view. */
  private readonly conditionalRouter: KvRouter | null;
  private readonly req: RequestTable;
  private readonly collector: Collector;
  private readonly destinationFirst: boolean;
  /** Per prefill slot: its link. Per decode slot: requests waiting for KV there, transfers that woke it. */
  private readonly links: TransferLink[] = [];
  private readonly pending: number[][] = [];
  private readonly wakes: number[] = [];
  /** Per request: prefill engine holding its KV during the hand-off, decode engine, times (NaN: none yet). */
  private source = new Int32Array(0);
  private destination = new Int32Array(0);
  private handoffStart = new Float64Array(0);
  private transferStart = new Float64Array(0);
  private transferEnd = new Float64Array(0);
  /** Per request: the decode engine that took it (handed off or prefilled locally), or -1. */
  private decodeEngine = new Int32Array(0);
  /** Destination first, per request: tokens its reservation found cached, and when it was made. */
  private reservedHitTokens = new Int32Array(0);
  private reservedAt = new Float64Array(0);
  /** Transfer and wait times, in completion order (grown as needed). */
  private transferMs = new Float64Array(64);
  private waitMs = new Float64Array(64);
  private readonly completed: number[] = [];

  constructor(
    spec: DisaggregationSpec,
    decode: Pool,
    host: DisaggHost,
    req: RequestTable,
    collector: Collector,
  ) {
    this.spec = spec;
    this.decode = decode;
    this.host = host;
    this.req = req;
    this.collector = collector;
    if (spec.conditional) {
      if (!(decode.router instanceof KvRouter))
        throw new RangeError('conditional disaggregation needs the KV router');
      this.conditionalRouter = decode.router;
    } else this.conditionalRouter = null;
    this.destinationFirst = handoffOrder(spec.decode) === 'destination-first';
    req.onGrow((n) => {
      this.source = grown(this.source, n);
      this.destination = grown(this.destination, n);
      this.handoffStart = grown(this.handoffStart, n);
      this.transferStart = grown(this.transferStart, n);
      this.transferEnd = grown(this.transferEnd, n);
      this.decodeEngine = grown(this.decodeEngine, n);
      if (this.destinationFirst) {
        this.reservedHitTokens = grown(this.reservedHitTokens, n);
        this.reservedAt = grown(this.reservedAt, n);
      }
    });
    for (let i = 0; i < spec.prefill.workers; i++) this.addPrefillSlot();
    for (let i = 0; i < spec.decode.workers; i++) this.addDecodeSlot();
    this.records = {
      count: 0,
      transferMs: this.transferMs,
      waitMs: this.waitMs,
      bytes: 0,
      localPrefills: 0,
    };
  }

  /** Request r arrived: nothing of a hand-off yet. */
  onArrival(r: number): void {
    this.handoffStart[r] = Number.NaN;
    this.transferStart[r] = Number.NaN;
    this.transferEnd[r] = Number.NaN;
    this.decodeEngine[r] = -1;
  }

  /** Decode engine e left (killed): the requests waiting for a reservation there go to another one. */
  engineGone(e: number, t: number): void {
    const slot = this.host.slotOf(e);
    if (slot >= this.pending.length || this.decode.engines[slot]?.index !== e) return;
    const queue = this.pending[slot];
    this.pending[slot] = [];
    this.wakes[slot] = 0;
    for (const r of queue) this.routeToDecode(r, t);
  }

  /** r's decode engine (handed off or prefilled there), or -1. */
  decodeEngineOf(r: number): number {
    return this.decodeEngine[r];
  }

  /** When r's prefill finished (NaN before). */
  prefillDoneAt(r: number): number {
    return this.handoffStart[r];
  }

  /** Writes r's hand-off times into its row of the records. */
  writeRecord(records: RequestRecords, row: number, r: number): void {
    if (records.prefillDoneMs === null) return;
    // Times of completed transfers only (a transfer in flight when the run stopped has none).
    const done = !Number.isNaN(this.transferEnd[r]);
    records.prefillDoneMs[row] = done ? this.handoffStart[r] : Number.NaN;
    (records.transferStartMs as Float64Array)[row] = done ? this.transferStart[r] : Number.NaN;
    (records.transferEndMs as Float64Array)[row] = this.transferEnd[r];
    (records.decodeEngine as Int32Array)[row] = this.decodeEngine[r];
  }

  /** A prefill pool slot was added (the planner grew the pool). */
  addPrefillSlot(): void {
    this.links.push(new TransferLink(this.spec.kvTransferGbps, this.spec.kvLinkShared ?? true));
  }

  addDecodeSlot(): void {
    this.pending.push([]);
    this.wakes.push(0);
  }

  /** True while requests wait for a KV reservation on the decode worker in `slot`. */
  hasPendingReservations(slot: number): boolean {
    return this.pending[slot].length > 0;
  }

  /** An arrival: prefilled locally (conditional), reserved first (SGLang) or sent to a prefill worker. */
  route(r: number, t: number): void {
    // The decode pool's router (read afresh: a driven simulation may replace it).
    const router = this.decode.router;
    if (this.conditionalRouter !== null && router instanceof KvRouter && this.prefillLocally(router, r, t))
      return;
    if (this.destinationFirst) this.reserveFirst(r, t);
    else this.host.submitPrefill(r, t);
  }

  /** Request r's prefill finished on prefill engine e at t; its KV is held there. */
  onPrefillDone(r: number, e: number, t: number): void {
    const engine = this.host.engine(e);
    if (this.neverFits(r)) {
      engine.releaseHeld?.(r);
      this.rejectTooLarge(r, t);
      return;
    }
    if (this.req.outputLen[r] === 0) {
      // Nothing to generate: the request ends with its prefill.
      engine.releaseHeld?.(r);
      this.req.status[r] = RequestStatus.Done;
      this.collector.onComplete(r, t);
      this.host.requestDone(r, t);
      return;
    }
    this.source[r] = e;
    this.handoffStart[r] = t;
    if (this.destinationFirst) {
      // The destination was reserved before the prefill: the transfer starts now.
      this.startTransfer(r, this.reservedHitTokens[r], t);
      return;
    }
    this.routeToDecode(r, t);
  }

  /**
   * Decode engine e finished a pass: reserve KV for the requests waiting on it, in order. A busy engine takes
   * one per scheduler step, and each transfer that arrived during the pass (and joins at its end) adds a
   * step; an engine left idle steps until nothing changes. (Found against the reference: several handoffs
   * landing in one pass of a busy decode worker are reserved 1, 2, 3... per pass end.)
   */
  afterDecodePass(e: number, t: number): void {
    const slot = this.host.slotOf(e);
    const queue = this.pending[slot];
    const steps = this.host.engine(e).hasWork() ? 1 + this.wakes[slot] : Number.POSITIVE_INFINITY;
    this.wakes[slot] = 0;
    let k = 0;
    while (k < queue.length && k < steps && this.tryReserve(queue[k], e, t)) k++;
    if (k > 0) queue.splice(0, k);
  }

  /** Time the next transfer completes (Infinity when none is in flight). */
  nextTransfer(): number {
    let min = Number.POSITIVE_INFINITY;
    for (const link of this.links) {
      if (link.active === 0) continue;
      const c = link.nextCompletion();
      if (c < min) min = c;
    }
    return min;
  }

  /** Transfers done by t: the source releases its hold, the destination activates the request. */
  finishTransfers(t: number): void {
    const host = this.host;
    const records = this.records;
    for (const link of this.links) {
      if (link.active === 0 || link.nextCompletion() > t) continue;
      link.completeUpTo(t, this.completed);
      for (const r of this.completed) {
        const p = this.source[r];
        const d = this.destination[r];
        host.bringUpToDate(p, t);
        host.engine(p).releaseHeld?.(r);
        host.markDirty(p);
        host.bringUpToDate(d, t);
        if (host.engine(d).activate === undefined) {
          // The destination left (killed) while the KV was on its way: find another one.
          this.routeToDecode(r, t);
          continue;
        }
        if (host.busyAt(d, t)) this.wakes[host.slotOf(d)]++;
        host.engine(d).activate?.(r, t);
        host.markDirty(d);
        if (records.count === this.transferMs.length) {
          this.transferMs = grown(this.transferMs, records.count * 2);
          this.waitMs = grown(this.waitMs, records.count * 2);
          records.transferMs = this.transferMs;
          records.waitMs = this.waitMs;
        }
        this.transferMs[records.count] = t - this.transferStart[r];
        this.waitMs[records.count] = this.destinationFirst
          ? this.reservedAt[r] - this.collector.arrivalMs[r]
          : this.transferStart[r] - this.handoffStart[r];
        records.count++;
        this.transferEnd[r] = t;
        this.decodeEngine[r] = d;
      }
    }
  }

  private neverFits(r: number): boolean {
    const decode = this.spec.decode.engine;
    return (
      Math.ceil((this.req.promptLen[r] + this.req.outputLen[r]) / decode.blockSize) > decode.numGpuBlocks
    );
  }

  private rejectTooLarge(r: number, t: number): void {
    this.req.status[r] = RequestStatus.Rejected;
    this.collector.onReject(r, 'prompt plus output larger than a decode worker KV cache');
    this.collector.terminalMs[r] = t;
    this.host.requestDone(r, t);
  }

  /**
   * Picks r's decode worker and reserves KV there. The decode worker's scheduler takes the request at its
   * next scheduling point, as vLLM allocates the KV for a remote prefill in its scheduler step: now if it is
   * idle, else when its pass in flight ends (`afterDecodePass` then retries the queue).
   */
  private routeToDecode(r: number, t: number): void {
    const decode = this.decode;
    const slot = decode.router.route(r, decode.engines, t, decode.eligible);
    decode.router.onRouted?.(r, slot);
    const d = decode.engines[slot].index;
    this.destination[r] = d;
    const queue = this.pending[slot];
    this.host.bringUpToDate(d, t);
    if (queue.length > 0 || this.host.busyAt(d, t) || !this.tryReserve(r, d, t)) queue.push(r);
  }

  private tryReserve(r: number, d: number, t: number): boolean {
    this.host.bringUpToDate(d, t);
    const engine = this.host.engine(d);
    if (!engine.reserveDestination?.(r, t)) return false;
    if (this.destinationFirst) {
      // Reserved ahead of the prefill, which is submitted now.
      this.reservedHitTokens[r] = engine.lastReservedHitTokens ?? 0;
      this.reservedAt[r] = t;
      this.host.submitPrefill(r, t);
      return true;
    }
    this.startTransfer(r, engine.lastReservedHitTokens ?? 0, t);
    return true;
  }

  /** r's KV starts moving from its prefill worker to its reserved destination. */
  private startTransfer(r: number, destinationHitTokens: number, t: number): void {
    const spec = this.spec;
    const tokens =
      spec.transferMode === 'full-prompt'
        ? this.req.promptLen[r]
        : this.req.promptLen[r] - destinationHitTokens;
    const bytes = tokens * spec.kvBytesPerToken;
    this.records.bytes += bytes;
    this.transferStart[r] = t;
    this.links[this.host.slotOf(this.source[r])].add(r, bytes, t);
  }

  /**
   * Destination first (SGLang): an arrival is routed to a decode worker, which reserves its KV at its next
   * scheduling point (now if idle, else when its pass in flight ends); the prefill is submitted then.
   * Requests that can never fit a decode worker are rejected, and those with nothing to generate go
   * straight to prefill.
   */
  private reserveFirst(r: number, t: number): void {
    if (this.req.outputLen[r] === 0) {
      this.host.submitPrefill(r, t);
      return;
    }
    if (this.neverFits(r)) {
      this.rejectTooLarge(r, t);
      return;
    }
    this.routeToDecode(r, t);
  }

  /** Conditional disaggregation: prefill on the chosen decode worker when little of the prompt is uncached. */
  private prefillLocally(router: KvRouter, r: number, t: number): boolean {
    const cond = this.spec.conditional;
    if (cond === undefined) return false;
    const decode = this.decode;
    const slot = router.route(r, decode.engines, t, decode.eligible);
    const isl = this.req.promptLen[r];
    const uncached = isl - router.overlap(r, slot) * this.req.blockSize;
    if (!(uncached < cond.maxUncachedTokens && uncached / isl < cond.maxUncachedRatio)) return false;
    const e = decode.engines[slot].index;
    this.decodeEngine[r] = e;
    this.host.bringUpToDate(e, t);
    this.host.engine(e).enqueue(r);
    router.onRouted(r, slot);
    this.host.noteRouted(r, e, t);
    this.records.localPrefills++;
    this.host.markDirty(e);
    return true;
  }
}
