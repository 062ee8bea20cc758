import { ArrivalQueue, EngineHeap } from './arrival-queue.ts';
import { TransferLink } from './disagg/transfer-link.ts';
import type { Engine, EngineRole } from './engine/engine.ts';
import { RequestStatus, RequestTable } from './engine/request-table.ts';
import { RetiredEngine } from './engine/retired-engine.ts';
import { SglangEngine, type SglangEngineConfig } from './engine/sglang-engine.ts';
import { VllmEngine, type VllmEngineConfig } from './engine/vllm-engine.ts';
import { Collector } from './metrics/collector.ts';
import type { Fleet } from './planner/fleet.ts';
import type { Planner } from './planner/planner.ts';
import { type Cluster, PlannerRuntime, type PlannerSpec } from './planner/runtime.ts';
import { Rng } from './random.ts';
import { KvRouter } from './router/kv-router.ts';
import type { Router } from './router/router.ts';
import { LeastLoadedRouter, RandomRouter, RoundRobinRouter } from './router/simple-routers.ts';
import type { TimingModel } from './timing/timing-model.ts';
import { layoutBlocks } from './workload/blocks.ts';
import type { Workload } from './workload/workload.ts';

export type RouterSpec =
  | { kind: 'round-robin' }
  | { kind: 'random' }
  | { kind: 'least-loaded' }
  | {
      kind: 'kv';
      overlapWeight: number;
      overlapCredit: number;
      temperature: number;
      trackActiveBlocks?: boolean;
      assumeKvReuse?: boolean;
    };

export type ArrivalSpec =
  /** Replay first-turn timestamps, compressed by `speedup` (arrival gaps and inter-turn delays divided). */
  | { kind: 'trace'; speedup: number }
  /** Keep at most `concurrency` requests (or sessions) in flight; arrivals are stamped at dispatch. */
  | { kind: 'closed-loop'; concurrency: number };

/** Engine settings: a vLLM engine (no `kind`, or 'vllm') or an SGLang one. */
export type EngineSpec = VllmEngineConfig | SglangEngineConfig;

/** One pool of identical engines. */
export interface PoolSpec {
  workers: number;
  engine: EngineSpec;
  timing: TimingModel;
  /** GPUs one worker occupies (tensor-parallel size x data-parallel size). */
  gpusPerWorker: number;
}

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
   * Conditional disaggregation: prefill on the chosen decode worker when the prompt's uncached part there is
   * under `maxUncachedTokens` tokens and under `maxUncachedRatio` of the prompt.
   */
  conditional?: { maxUncachedTokens: number; maxUncachedRatio: number };
}

export interface SimulationOptions {
  /** Aggregated serving: `workers` engines with `engine`, `timing`, `gpusPerWorker`. Ignored if disaggregated. */
  workers: number;
  engine: EngineSpec;
  timing: TimingModel;
  gpusPerWorker: number;
  disaggregation?: DisaggregationSpec;
  router: RouterSpec;
  arrivals: ArrivalSpec;
  seed: number;
  /** Stop at this simulated time (ms); requests in flight then count as incomplete. */
  maxSimTimeMs?: number;
  /** Dynamo's Planner adding and removing workers during the run (see planner/runtime.ts). */
  planner?: PlannerSpec;
  /** Called for every engine created (initial workers and the planner's), e.g. to attach a pass log. */
  onEngineCreated?: (engine: Engine) => void;
}

/** Per-request records of KV handoffs between prefill and decode workers. */
export interface TransferRecords {
  /** Request ids handed off, in completion order. */
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
  /** Per request (NaN if none): when its prefill finished, its transfer started and its KV arrived. */
  prefillDoneMs: Float64Array;
  transferStartMs: Float64Array;
  transferEndMs: Float64Array;
  /** Per request: decode engine index, or -1. */
  decodeEngine: Int32Array;
}

export interface SimulationResult {
  readonly workload: Workload;
  readonly options: SimulationOptions;
  readonly collector: Collector;
  readonly requests: RequestTable;
  readonly engines: readonly Engine[];
  /** Simulated time when the loop stopped (ms). */
  readonly endTimeMs: number;
  /** Loop iterations (distinct event timestamps) and routed arrivals. */
  readonly loopSteps: number;
  readonly arrivals: number;
  /** Samples of (time ms, waiting, running) summed over engines, at every change. */
  readonly queueSamples: { t: Float64Array; waiting: Int32Array; running: Int32Array; length: number };
  readonly transfers: TransferRecords | null;
  /** With a planner: its decisions, and the workers' lifecycle and GPU timeline. */
  readonly planner: { planner: Planner; fleet: Fleet } | null;
}

/**
 * Replays a workload through a cluster of engines behind routers: a discrete-event simulation on a virtual
 * clock. At each event time, finished passes and KV transfers are applied first, then arrivals are routed,
 * then idle engines with work start their next pass. Equal times are ordered by insertion and engine index,
 * so a run depends only on its inputs and seed.
 */
export function simulate(workload: Workload, options: SimulationOptions): SimulationResult {
  return new Simulation(workload, options).run();
}

/**
 * A set of engines behind one router, by slot. With a planner the set changes: `eligible` marks the slots
 * that take new requests (ready, not draining), and the slot of a departed worker is reused by the next new
 * one, so per-slot router state stays as large as the pool at its largest.
 */
interface Pool {
  role: EngineRole;
  spec: PoolSpec;
  engines: Engine[];
  router: Router;
  eligible: Uint8Array | null;
  freeSlots: number[];
}

class Simulation implements Cluster {
  private readonly req: RequestTable;
  private readonly collector: Collector;
  private readonly engines: Engine[] = [];
  /** Pools: [aggregated] or [prefill, decode]. */
  private readonly pools: Pool[] = [];
  private readonly poolOf: Pool[] = [];
  private readonly localIndex: number[] = [];
  private readonly arrivals = new ArrivalQueue();
  private ends: Float64Array;
  private readonly heap: EngineHeap;
  private dirty: Uint8Array;
  /** Engines not retired (all of them without a planner). */
  private live: Engine[];
  private readonly runtime: PlannerRuntime | null = null;
  private readonly dirtyList: number[] = [];
  private readonly batch: number[] = [];
  private readonly speedup: number;
  private nextUnit = 0; // closed loop: next first turn to dispatch
  private unitOrder: number[] = [];
  private loopSteps = 0;
  private routed = 0;
  private qT = new Float64Array(1024);
  private qW = new Int32Array(1024);
  private qR = new Int32Array(1024);
  private qLen = 0;
  private readonly workload: Workload;
  private readonly options: SimulationOptions;

  // Disaggregation state.
  private readonly disagg: DisaggregationSpec | null;
  private readonly links: TransferLink[] = [];
  private readonly pending: number[][] = []; // per decode engine (local index): requests waiting for KV
  private readonly source: Int32Array; // prefill engine holding r's KV during its handoff
  private readonly destination: Int32Array;
  private readonly handoffStart: Float64Array;
  /**
   * SGLang's handoff order: the decode worker reserves KV for a request when it arrives, before its prefill
   * is submitted (vLLM's: after the prefill). Per request: 1 once its destination is reserved.
   */
  private readonly destinationFirst: boolean;
  private readonly reserved: Uint8Array;
  private readonly reservedHitTokens: Int32Array;
  private readonly reservedAt: Float64Array;
  /** Per decode engine (local index): transfers that arrived during its pass in flight. */
  private readonly wakes: number[] = [];
  private readonly transferStart: Float64Array;
  private transfers: TransferRecords | null = null;
  private readonly done: number[] = [];

  constructor(workload: Workload, options: SimulationOptions) {
    this.workload = workload;
    this.options = options;
    this.disagg = options.disaggregation ?? null;
    const poolSpecs: [EngineRole, PoolSpec][] = this.disagg
      ? [
          ['prefill', this.disagg.prefill],
          ['decode', this.disagg.decode],
        ]
      : [
          [
            'aggregated',
            {
              workers: options.workers,
              engine: options.engine,
              timing: options.timing,
              gpusPerWorker: options.gpusPerWorker,
            },
          ],
        ];
    const blockSize = poolSpecs[0][1].engine.blockSize;
    if (poolSpecs.some(([, p]) => p.engine.blockSize !== blockSize)) {
      throw new RangeError('prefill and decode workers must use the same KV block size');
    }
    const layout = layoutBlocks(workload, blockSize);
    this.req = new RequestTable(workload, layout);
    this.collector = new Collector(workload.size);
    const rng = new Rng(options.seed);
    for (const [role, spec] of poolSpecs) {
      // Disaggregated pools score as Dynamo's router configures them: the prefill pool's KV router has no
      // decode term (prefill workers hold no decode KV); the decode pool is balanced by the blocks in flight
      // (no prefill term, no credit for cached or shared blocks), also for conditional disaggregation, which
      // needs its cache view.
      const routerSpec: RouterSpec =
        role === 'prefill'
          ? options.router.kind === 'kv'
            ? { ...options.router, trackActiveBlocks: false }
            : options.router
          : role !== 'decode'
            ? options.router
            : options.router.kind === 'kv' || this.disagg?.conditional
              ? { kind: 'kv', overlapWeight: 0, overlapCredit: 0, temperature: 0, assumeKvReuse: false }
              : options.router;
      const router = makeRouter(routerSpec, this.req, spec.workers, rng);
      const pool: Pool = {
        role,
        spec,
        engines: [],
        router,
        eligible: options.planner ? new Uint8Array(Math.max(4, spec.workers * 2)) : null,
        freeSlots: [],
      };
      for (let i = 0; i < spec.workers; i++) {
        const e = this.createEngine(pool);
        pool.engines.push(e);
        this.localIndex.push(i);
      }
      this.pools.push(pool);
    }
    const n = this.engines.length;
    this.ends = new Float64Array(Math.max(1, n)).fill(Number.POSITIVE_INFINITY);
    this.heap = new EngineHeap(Math.max(1, n), this.ends);
    this.dirty = new Uint8Array(Math.max(1, n));
    this.live = options.planner ? this.engines.slice() : this.engines;
    this.speedup = options.arrivals.kind === 'trace' ? options.arrivals.speedup : 1;
    const size = workload.size;
    this.source = new Int32Array(this.disagg ? size : 0);
    this.destination = new Int32Array(this.disagg ? size : 0);
    this.handoffStart = new Float64Array(this.disagg ? size : 0);
    this.transferStart = new Float64Array(this.disagg ? size : 0);
    this.destinationFirst = this.disagg?.decode.engine.kind === 'sglang';
    this.reserved = new Uint8Array(this.destinationFirst ? size : 0);
    this.reservedHitTokens = new Int32Array(this.destinationFirst ? size : 0);
    this.reservedAt = new Float64Array(this.destinationFirst ? size : 0);
    if (this.disagg) {
      for (let i = 0; i < this.disagg.prefill.workers; i++)
        this.links.push(new TransferLink(this.disagg.kvTransferGbps, this.disagg.kvLinkShared ?? true));
      for (let i = 0; i < this.disagg.decode.workers; i++) {
        this.pending.push([]);
        this.wakes.push(0);
      }
      this.transfers = {
        count: 0,
        transferMs: new Float64Array(size),
        waitMs: new Float64Array(size),
        bytes: 0,
        localPrefills: 0,
        prefillDoneMs: new Float64Array(size).fill(Number.NaN),
        transferStartMs: new Float64Array(size).fill(Number.NaN),
        transferEndMs: new Float64Array(size).fill(Number.NaN),
        decodeEngine: new Int32Array(size).fill(-1),
      };
    }
    if (options.planner) this.runtime = new PlannerRuntime(this, options.planner, this.req, this.collector);
  }

  private createEngine(pool: Pool): Engine {
    const args = [
      this.req,
      this.collector,
      pool.router.reads === 'kv-events',
      pool.role,
      pool.spec.gpusPerWorker,
    ] as const;
    const spec = pool.spec.engine;
    const e: Engine =
      spec.kind === 'sglang'
        ? new SglangEngine(this.engines.length, spec, pool.spec.timing, ...args)
        : new VllmEngine(this.engines.length, spec, pool.spec.timing, ...args);
    if (this.options.planner && e.history) e.history.trackQueue = true;
    this.engines.push(e);
    this.poolOf.push(pool);
    this.options.onEngineCreated?.(e);
    return e;
  }

  // ---------------------------------------------------------------------------------------------------------
  // Cluster: the planner runtime adds and removes workers through these.

  poolEngines(p: number): readonly Engine[] {
    return this.pools[p].engines;
  }

  addEngine(p: number): Engine {
    const pool = this.pools[p];
    const e = this.createEngine(pool);
    let slot = pool.freeSlots.pop();
    if (slot === undefined) {
      slot = pool.engines.length;
      pool.engines.push(e);
      pool.router.addSlot?.();
      if (pool.role === 'prefill')
        this.links.push(
          new TransferLink(
            (this.disagg as DisaggregationSpec).kvTransferGbps,
            (this.disagg as DisaggregationSpec).kvLinkShared ?? true,
          ),
        );
      if (pool.role === 'decode') {
        this.pending.push([]);
        this.wakes.push(0);
      }
      const el = pool.eligible as Uint8Array;
      if (slot >= el.length) {
        const grown = new Uint8Array(el.length * 2);
        grown.set(el);
        pool.eligible = grown;
      }
    } else {
      pool.engines[slot] = e;
      pool.router.resetSlot?.(slot);
    }
    this.localIndex.push(slot);
    const n = this.engines.length;
    if (n > this.ends.length) {
      const ends = new Float64Array(this.ends.length * 2).fill(Number.POSITIVE_INFINITY);
      ends.set(this.ends);
      this.ends = ends;
      const dirty = new Uint8Array(ends.length);
      dirty.set(this.dirty);
      this.dirty = dirty;
      this.heap.grow(ends.length, ends);
    }
    this.live.push(e);
    return e;
  }

  setEligible(e: Engine, eligible: boolean): void {
    (this.poolOf[e.index].eligible as Uint8Array)[this.localIndex[e.index]] = eligible ? 1 : 0;
  }

  isEmpty(e: Engine): boolean {
    if (!e.isIdle || e.hasPendingRun || e.hasWork() || e.activeBlocks > 0) return false;
    return this.poolOf[e.index].role !== 'decode' || this.pending[this.localIndex[e.index]].length === 0;
  }

  retire(e: Engine): void {
    const pool = this.poolOf[e.index];
    const slot = this.localIndex[e.index];
    const stub = new RetiredEngine(e);
    this.engines[e.index] = stub;
    pool.engines[slot] = stub;
    (pool.eligible as Uint8Array)[slot] = 0;
    pool.freeSlots.push(slot);
    const i = this.live.indexOf(e);
    if (i >= 0) this.live.splice(i, 1);
  }

  run(): SimulationResult {
    this.seedArrivals();
    const stopAt = this.options.maxSimTimeMs ?? Number.POSITIVE_INFINITY;
    let now = 0;
    const rt = this.runtime;
    for (;;) {
      let t = Math.min(this.arrivals.peekTime(), this.heap.minTime(), this.nextTransfer());
      // Planner ticks and worker starts are events too, but never keep a finished run alive.
      if (t === Number.POSITIVE_INFINITY) break;
      if (rt !== null) t = Math.min(t, rt.nextEventMs());
      if (t > stopAt) break;
      now = t;
      this.loopSteps++;
      if (rt !== null) {
        this.settle(t, rt.tickDue(t));
        rt.activateDue(t);
      } else this.settle(t, false);
      this.routeBatch(t);
      this.startIdle(t);
      if (rt !== null) rt.endStep(t);
      this.sampleQueues(t);
    }
    return {
      workload: this.workload,
      options: this.options,
      collector: this.collector,
      requests: this.req,
      engines: this.engines,
      endTimeMs: now,
      loopSteps: this.loopSteps,
      arrivals: this.routed,
      queueSamples: { t: this.qT, waiting: this.qW, running: this.qR, length: this.qLen },
      transfers: this.transfers,
      planner: rt !== null ? { planner: rt.planner, fleet: rt.fleet } : null,
    };
  }

  private seedArrivals(): void {
    const w = this.workload;
    const firsts: number[] = [];
    for (let i = 0; i < w.size; i++) if (!Number.isNaN(w.arrivalMs[i])) firsts.push(i);
    if (this.options.arrivals.kind === 'trace') {
      const times = new Float64Array(firsts.length);
      const ids = new Int32Array(firsts.length);
      for (let k = 0; k < firsts.length; k++) {
        ids[k] = firsts[k];
        times[k] = w.arrivalMs[firsts[k]] / this.speedup;
      }
      this.arrivals.setStatic(times, ids); // the workload keeps first turns sorted by arrival
    } else {
      // Closed loop ignores timestamps and dispatches sessions in file order.
      const line = w.sourceLine;
      this.unitOrder = line ? firsts.slice().sort((a, b) => line[a] - line[b] || a - b) : firsts;
      const c = Math.max(1, this.options.arrivals.concurrency);
      for (let k = 0; k < c && k < this.unitOrder.length; k++)
        this.arrivals.push(0, this.unitOrder[this.nextUnit++]);
    }
  }

  /**
   * Applies every pass and transfer that ends at t and collects the arrivals due at t. Engines the routers will
   * read are brought up to date first (a router reading prefix caches only needs engines whose pending run
   * evicts blocks), and every engine when the planner reads them (`all`); cutting a run can end a pass at
   * exactly t and ending a pass can create arrivals at t, so this repeats until nothing changes.
   */
  private settle(t: number, all: boolean): void {
    const batch = this.batch;
    batch.length = 0;
    for (;;) {
      while (this.heap.minTime() <= t) this.finishPass(this.heap.pop(), t);
      if (this.disagg && this.nextTransfer() <= t) {
        this.finishTransfers(t);
        continue;
      }
      while (this.arrivals.peekTime() <= t) batch.push(this.arrivals.pop());
      if (batch.length === 0 && !all) return;
      let cut = false;
      for (const pool of this.pools) {
        const reads = all ? 'engines' : pool.router.reads;
        if (reads === 'none') continue;
        for (const engine of pool.engines) {
          if (reads === 'engines' || engine.pendingRunEvicts)
            cut = this.bringUpToDate(engine.index, t) || cut;
        }
      }
      if (!cut) return;
    }
  }

  /** Applies engine e's planned passes that started before t; true if its busy period now ends at t. */
  private bringUpToDate(e: number, t: number): boolean {
    const engine = this.engines[e];
    if (!engine.hasPendingRun) return false;
    const end = engine.materialize(t);
    if (end !== this.ends[e]) {
      this.ends[e] = end;
      this.heap.update(e);
    }
    return end <= t;
  }

  private finishPass(e: number, t: number): void {
    const engine = this.engines[e];
    engine.materialize(t);
    this.ends[e] = Number.POSITIVE_INFINITY;
    const pool = this.poolOf[e];
    const router = pool.router;
    const local = this.localIndex[e];
    if (router.onFirstToken) {
      const ft = engine.firstTokens;
      for (let i = 0; i < ft.length; i++) router.onFirstToken(ft.get(i), local);
    }
    // Copy: handling a request may start passes elsewhere, which reuse their own lists only.
    const done = this.done;
    done.length = 0;
    const fin = engine.finished;
    for (let i = 0; i < fin.length; i++) done.push(fin.get(i));
    for (const r of done) {
      if (router.onFinished) router.onFinished(r, local);
      if (pool.role === 'prefill' && this.req.status[r] === RequestStatus.Transferring) this.handOff(r, e, t);
      else this.onRequestDone(r, t);
    }
    engine.endPass();
    this.markDirty(e);
    if (pool.role === 'decode') this.retryPending(e, t);
  }

  /** Follow-up turn of a session, or the next closed-loop dispatch. */
  private onRequestDone(r: number, t: number): void {
    this.runtime?.onDone(r);
    const next = this.workload.nextTurn[r];
    if (next >= 0) {
      this.arrivals.push(t + this.workload.delayMs[next] / this.speedup, next);
    } else if (this.options.arrivals.kind === 'closed-loop' && this.nextUnit < this.unitOrder.length) {
      this.arrivals.push(t, this.unitOrder[this.nextUnit++]);
    }
  }

  // ---------------------------------------------------------------------------------------------------------
  // Disaggregation: prefill done -> decode worker reserves KV -> transfer -> decode.

  private handOff(r: number, prefillEngine: number, t: number): void {
    const engine = this.engines[prefillEngine];
    const decodeSpec = (this.disagg as DisaggregationSpec).decode.engine;
    if (
      Math.ceil((this.req.promptLen[r] + this.workload.outputLength[r]) / decodeSpec.blockSize) >
      decodeSpec.numGpuBlocks
    ) {
      // Can never fit on a decode worker.
      engine.releaseHeld?.(r);
      this.req.status[r] = RequestStatus.Rejected;
      this.collector.onReject(r, 'prompt plus output larger than a decode worker KV cache');
      this.collector.terminalMs[r] = t;
      this.onRequestDone(r, t);
      return;
    }
    if (this.workload.outputLength[r] === 0) {
      // Nothing to generate: the request ends with its prefill.
      engine.releaseHeld?.(r);
      this.req.status[r] = RequestStatus.Done;
      this.collector.onComplete(r, t);
      this.onRequestDone(r, t);
      return;
    }
    this.source[r] = prefillEngine;
    this.handoffStart[r] = t;
    if (this.destinationFirst) {
      // The destination was reserved before the prefill: the transfer starts now.
      this.startTransfer(r, this.reservedHitTokens[r], t);
      return;
    }
    this.routeToDecode(r, t);
  }

  /**
   * Picks r's decode worker and reserves KV there. The decode worker's scheduler takes the request at its
   * next scheduling point, as vLLM allocates the KV for a remote prefill in its scheduler step: now if it is
   * idle, else when its pass in flight ends (finishPass then retries the queue).
   */
  private routeToDecode(r: number, t: number): void {
    const decode = this.pools[1];
    const local = decode.router.route(r, decode.engines, t, decode.eligible);
    decode.router.onRouted?.(r, local);
    const d = decode.engines[local].index;
    this.destination[r] = d;
    const queue = this.pending[local];
    this.bringUpToDate(d, t);
    const busy = this.ends[d] > t && this.ends[d] !== Number.POSITIVE_INFINITY;
    if (queue.length > 0 || busy || !this.tryReserve(r, d, t)) queue.push(r);
  }

  private tryReserve(r: number, d: number, t: number): boolean {
    this.bringUpToDate(d, t);
    const engine = this.engines[d];
    if (!engine.reserveDestination?.(r, t)) return false;
    if (this.destinationFirst) {
      // Reserved ahead of the prefill, which is submitted now.
      this.reserved[r] = 1;
      this.reservedHitTokens[r] = engine.lastReservedHitTokens ?? 0;
      this.reservedAt[r] = t;
      this.submitPrefill(r, t);
      return true;
    }
    this.startTransfer(r, engine.lastReservedHitTokens ?? 0, t);
    return true;
  }

  /** r's KV starts moving from its prefill worker to its reserved destination. */
  private startTransfer(r: number, destinationHitTokens: number, t: number): void {
    const spec = this.disagg as DisaggregationSpec;
    const tokens =
      spec.transferMode === 'full-prompt'
        ? this.req.promptLen[r]
        : this.req.promptLen[r] - destinationHitTokens;
    const bytes = tokens * spec.kvBytesPerToken;
    const records = this.transfers as TransferRecords;
    records.bytes += bytes;
    this.transferStart[r] = t;
    const p = this.localIndex[this.source[r]];
    this.links[p].add(r, bytes, t);
  }

  /**
   * Decode engine e finished a pass: reserve KV for the requests waiting on it, in order. A busy engine takes
   * one per scheduler step, and each transfer that arrived during the pass (and joins at its end) adds a
   * step; an engine left idle steps until nothing changes. (Found against the reference: several handoffs
   * landing in one pass of a busy decode worker are reserved 1, 2, 3... per pass end.)
   */
  private retryPending(e: number, t: number): void {
    const local = this.localIndex[e];
    const queue = this.pending[local];
    const steps = this.engines[e].hasWork() ? 1 + this.wakes[local] : Number.POSITIVE_INFINITY;
    this.wakes[local] = 0;
    let k = 0;
    while (k < queue.length && k < steps && this.tryReserve(queue[k], e, t)) k++;
    if (k > 0) queue.splice(0, k);
  }

  /**
   * Destination first (SGLang): an arrival is routed to a decode worker, which reserves its KV at its next
   * scheduling point (now if idle, else when its pass in flight ends); the prefill is submitted then.
   * Requests that can never fit a decode worker are rejected, and those with nothing to generate go
   * straight to prefill.
   */
  private reserveFirst(r: number, t: number): void {
    const decodeSpec = (this.disagg as DisaggregationSpec).decode.engine;
    if (this.workload.outputLength[r] === 0) {
      this.submitPrefill(r, t);
      return;
    }
    if (
      Math.ceil((this.req.promptLen[r] + this.workload.outputLength[r]) / decodeSpec.blockSize) >
      decodeSpec.numGpuBlocks
    ) {
      this.req.status[r] = RequestStatus.Rejected;
      this.collector.onReject(r, 'prompt plus output larger than a decode worker KV cache');
      this.collector.terminalMs[r] = t;
      this.onRequestDone(r, t);
      return;
    }
    this.routeToDecode(r, t);
  }

  /** Routes r to a prefill worker (or the aggregated pool) and queues it there. */
  private submitPrefill(r: number, t: number): void {
    const first = this.pools[0];
    const local = first.router.route(r, first.engines, t, first.eligible);
    // The planner's hit-rate signal is the KV router's overlap estimate for the worker it chose.
    if (this.runtime !== null && first.router instanceof KvRouter)
      this.runtime.onRouted(first.router.overlap(r, local), this.req.layout.promptBlocks[r]);
    const e = first.engines[local].index;
    // The target must not run ahead of t: its next pass has to see this request.
    this.bringUpToDate(e, t);
    this.engines[e].enqueue(r);
    first.router.onRouted?.(r, local);
    this.markDirty(e);
  }

  private nextTransfer(): number {
    let min = Number.POSITIVE_INFINITY;
    for (const link of this.links) {
      if (link.active === 0) continue;
      const c = link.nextCompletion();
      if (c < min) min = c;
    }
    return min;
  }

  private readonly completedTransfers: number[] = [];

  private finishTransfers(t: number): void {
    const records = this.transfers as TransferRecords;
    for (const link of this.links) {
      if (link.active === 0 || link.nextCompletion() > t) continue;
      link.completeUpTo(t, this.completedTransfers);
      for (const r of this.completedTransfers) {
        const p = this.source[r];
        const d = this.destination[r];
        this.bringUpToDate(p, t);
        this.engines[p].releaseHeld?.(r);
        this.markDirty(p);
        this.bringUpToDate(d, t);
        if (this.ends[d] > t && this.ends[d] !== Number.POSITIVE_INFINITY) this.wakes[this.localIndex[d]]++;
        this.engines[d].activate?.(r, t);
        this.markDirty(d);
        records.transferMs[records.count] = t - this.transferStart[r];
        records.waitMs[records.count] = this.destinationFirst
          ? this.reservedAt[r] - this.collector.arrivalMs[r]
          : this.transferStart[r] - this.handoffStart[r];
        records.count++;
        records.prefillDoneMs[r] = this.handoffStart[r];
        records.transferStartMs[r] = this.transferStart[r];
        records.transferEndMs[r] = t;
        records.decodeEngine[r] = d;
      }
    }
  }

  // ---------------------------------------------------------------------------------------------------------
  // Routing and pass starts.

  private routeBatch(t: number): void {
    const batch = this.batch;
    if (batch.length === 0) return;
    for (const r of batch) {
      this.collector.onArrival(r, t);
      this.routed++;
      this.runtime?.onArrival();
      if (this.disagg?.conditional && this.prefillLocally(r, t)) continue;
      if (this.destinationFirst) this.reserveFirst(r, t);
      else this.submitPrefill(r, t);
    }
    batch.length = 0;
  }

  /** Conditional disaggregation: prefill on the chosen decode worker when little of the prompt is uncached. */
  private prefillLocally(r: number, t: number): boolean {
    const cond = (this.disagg as DisaggregationSpec).conditional as {
      maxUncachedTokens: number;
      maxUncachedRatio: number;
    };
    const decode = this.pools[1];
    const router = decode.router as KvRouter;
    const local = router.route(r, decode.engines, t, decode.eligible);
    const isl = this.req.promptLen[r];
    const uncached = isl - router.overlap(r, local) * this.req.layout.blockSize;
    if (!(uncached < cond.maxUncachedTokens && uncached / isl < cond.maxUncachedRatio)) return false;
    const e = decode.engines[local].index;
    (this.transfers as TransferRecords).decodeEngine[r] = e;
    this.bringUpToDate(e, t);
    this.engines[e].enqueue(r);
    router.onRouted(r, local);
    (this.transfers as TransferRecords).localPrefills++;
    this.markDirty(e);
    return true;
  }

  private startIdle(t: number): void {
    const list = this.dirtyList;
    if (list.length > 1) list.sort((a, b) => a - b);
    const next = this.arrivals.peekTime();
    for (const e of list) {
      this.dirty[e] = 0;
      const engine = this.engines[e];
      if (!engine.isIdle || !engine.hasWork()) continue;
      const pool = this.poolOf[e];
      const reads = pool.router.reads;
      // A decode engine with reservations waiting takes one at each pass end: no multi-pass runs then.
      const reserving = pool.role === 'decode' && this.pending[this.localIndex[e]].length > 0;
      const end = engine.startPass(
        t,
        reserving ? t : reads === 'none' ? Number.POSITIVE_INFINITY : next,
        reserving || reads === 'engines',
      );
      if (!engine.progressed) {
        // Nothing could run (e.g. waiting for KV): stay idle until something changes.
        engine.endPass();
        continue;
      }
      this.ends[e] = end;
      this.heap.update(e);
    }
    list.length = 0;
  }

  private markDirty(e: number): void {
    if (this.dirty[e] === 0) {
      this.dirty[e] = 1;
      this.dirtyList.push(e);
    }
  }

  private sampleQueues(t: number): void {
    let waiting = 0;
    let running = 0;
    for (const e of this.live) {
      waiting += e.waitingCount;
      running += e.runningCount;
    }
    const n = this.qLen;
    if (n > 0 && this.qW[n - 1] === waiting && this.qR[n - 1] === running) return;
    if (n === this.qT.length) {
      const t2 = new Float64Array(n * 2);
      t2.set(this.qT);
      this.qT = t2;
      const w2 = new Int32Array(n * 2);
      w2.set(this.qW);
      this.qW = w2;
      const r2 = new Int32Array(n * 2);
      r2.set(this.qR);
      this.qR = r2;
    }
    this.qT[n] = t;
    this.qW[n] = waiting;
    this.qR[n] = running;
    this.qLen++;
  }
}

function makeRouter(spec: RouterSpec, req: RequestTable, workers: number, rng: Rng): Router {
  switch (spec.kind) {
    case 'round-robin':
      return new RoundRobinRouter();
    case 'random':
      return new RandomRouter(rng);
    case 'least-loaded':
      return new LeastLoadedRouter();
    case 'kv':
      return new KvRouter(
        {
          overlapWeight: spec.overlapWeight,
          overlapCredit: spec.overlapCredit,
          temperature: spec.temperature,
          trackActiveBlocks: spec.trackActiveBlocks,
          assumeKvReuse: spec.assumeKvReuse,
        },
        req,
        workers,
        rng,
      );
  }
}
