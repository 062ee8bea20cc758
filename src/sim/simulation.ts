import { ArrivalQueue, EngineHeap } from './arrival-queue.ts';
import {
  DisaggCoordinator,
  type DisaggHost,
  type DisaggregationSpec,
  type TransferRecords,
} from './disagg/coordinator.ts';
import type { DpWorker } from './engine/dp-worker.ts';
import type { Engine, EngineRole } from './engine/engine.ts';
import { createDpWorker, createEngine } from './engine/factory.ts';
import { RequestStatus, RequestTable } from './engine/request-table.ts';
import { RetiredEngine } from './engine/retired-engine.ts';
import { Collector } from './metrics/collector.ts';
import type { Fleet } from './planner/fleet.ts';
import type { Planner } from './planner/planner.ts';
import { type Cluster, PlannerRuntime, type PlannerSpec } from './planner/runtime.ts';
import type { EngineSpec, Pool, PoolSpec } from './pool.ts';
import { Rng } from './random.ts';
import { KvRouter } from './router/kv-router.ts';
import { makeRouter, poolRouterSpec, type RouterSpec } from './router/pool-router.ts';
import type { TimingModel } from './timing/timing-model.ts';
import { layoutBlocks } from './workload/blocks.ts';
import type { Workload } from './workload/workload.ts';

export type { DisaggregationSpec, TransferRecords } from './disagg/coordinator.ts';
export type { EngineSpec, PoolSpec } from './pool.ts';
export type { RouterSpec } from './router/pool-router.ts';

export type ArrivalSpec =
  /** Replay first-turn timestamps, compressed by `speedup` (arrival gaps and inter-turn delays divided). */
  | { kind: 'trace'; speedup: number }
  /** Keep at most `concurrency` requests (or sessions) in flight; arrivals are stamped at dispatch. */
  | { kind: 'closed-loop'; concurrency: number };

export interface SimulationOptions {
  /** Aggregated serving: `workers` engines with `engine`, `timing`, `gpusPerWorker`. Ignored if disaggregated. */
  workers: number;
  engine: EngineSpec;
  timing: TimingModel;
  gpusPerWorker: number;
  /** Attention-data-parallel ranks per aggregated worker (default 1). */
  dataParallelSize?: number;
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

class Simulation implements Cluster, DisaggHost {
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

  /** The disaggregated hand-off (null for aggregated serving). */
  private readonly disagg: DisaggCoordinator | null = null;
  private readonly done: number[] = [];

  constructor(workload: Workload, options: SimulationOptions) {
    this.workload = workload;
    this.options = options;
    const disagg = options.disaggregation;
    if ((options.dataParallelSize ?? 1) > 1 && (disagg || options.planner))
      throw new RangeError(
        'data-parallel ranks are simulated for aggregated workers without a planner (as the reference)',
      );
    if (disagg?.conditional && options.router.kind !== 'kv')
      throw new RangeError(
        'conditional disaggregation needs the KV router (Dynamo decides it in its KV router)',
      );
    const poolSpecs: [EngineRole, PoolSpec][] = disagg
      ? [
          ['prefill', disagg.prefill],
          ['decode', disagg.decode],
        ]
      : [
          [
            'aggregated',
            {
              workers: options.workers,
              engine: options.engine,
              timing: options.timing,
              gpusPerWorker: options.gpusPerWorker,
              dataParallelSize: options.dataParallelSize,
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
      const dp = spec.dataParallelSize ?? 1;
      const targets = spec.workers * dp;
      const router = makeRouter(poolRouterSpec(role, options.router), this.req, targets, rng);
      const engines: Engine[] = [];
      const pool: Pool = {
        role,
        spec,
        engines,
        router,
        eligible: options.planner ? new Uint8Array(Math.max(4, spec.workers * 2)) : null,
        freeSlots: [],
        targets: dp > 1 ? [] : engines,
        dpWorkers: dp > 1 ? [] : null,
      };
      for (let i = 0; i < spec.workers; i++) {
        const e = this.createEngine(pool);
        pool.engines.push(e);
        this.localIndex.push(i);
      }
      if (pool.dpWorkers !== null)
        for (let k = 0; k < dp; k++) for (const w of pool.dpWorkers) pool.targets.push(w.ranks[k]);
      this.pools.push(pool);
    }
    const n = this.engines.length;
    this.ends = new Float64Array(Math.max(1, n)).fill(Number.POSITIVE_INFINITY);
    this.heap = new EngineHeap(Math.max(1, n), this.ends);
    this.dirty = new Uint8Array(Math.max(1, n));
    this.live = options.planner ? this.engines.slice() : this.engines;
    this.speedup = options.arrivals.kind === 'trace' ? options.arrivals.speedup : 1;
    if (disagg)
      this.disagg = new DisaggCoordinator(disagg, this.pools[1], this, this.req, workload, this.collector);
    if (options.planner) this.runtime = new PlannerRuntime(this, options.planner, this.req, this.collector);
  }

  private createEngine(pool: Pool): Engine {
    const ctx = {
      req: this.req,
      collector: this.collector,
      timing: pool.spec.timing,
      logKvEvents: pool.router.reads === 'kv-events',
      role: pool.role,
      gpusPerWorker: pool.spec.gpusPerWorker,
    };
    const index = this.engines.length;
    let e: Engine;
    if (pool.dpWorkers !== null) {
      const w = createDpWorker(
        index,
        pool.spec.engine,
        ctx,
        pool.spec.dataParallelSize ?? 1,
        pool.dpWorkers.length,
      );
      pool.dpWorkers.push(w);
      e = w;
    } else e = createEngine(index, pool.spec.engine, ctx);
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
      if (pool.role === 'prefill') this.disagg?.addPrefillSlot();
      if (pool.role === 'decode') this.disagg?.addDecodeSlot();
      const el = pool.eligible;
      if (el !== null && slot >= el.length) {
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
    const el = this.poolOf[e.index].eligible;
    if (el !== null) el[this.localIndex[e.index]] = eligible ? 1 : 0;
  }

  isEmpty(e: Engine): boolean {
    if (!e.isIdle || e.hasPendingRun || e.hasWork() || e.activeBlocks > 0) return false;
    return !this.pendingReservations(e.index);
  }

  retire(e: Engine): void {
    const pool = this.poolOf[e.index];
    const slot = this.localIndex[e.index];
    const stub = new RetiredEngine(e);
    this.engines[e.index] = stub;
    pool.engines[slot] = stub;
    if (pool.eligible !== null) pool.eligible[slot] = 0;
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
      let t = Math.min(
        this.arrivals.peekTime(),
        this.heap.minTime(),
        this.disagg?.nextTransfer() ?? Number.POSITIVE_INFINITY,
      );
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
      transfers: this.disagg?.records ?? null,
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
      if (this.disagg !== null && this.disagg.nextTransfer() <= t) {
        this.disagg.finishTransfers(t);
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
  bringUpToDate(e: number, t: number): boolean {
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
    // The router's slot of each request: the worker's, or with data-parallel ranks its rank's.
    const dpWorker = pool.dpWorkers !== null ? pool.dpWorkers[local] : null;
    if (router.onFirstToken) {
      const ft = engine.firstTokens;
      for (let i = 0; i < ft.length; i++) {
        const r = ft.get(i);
        router.onFirstToken(r, dpWorker === null ? local : this.rankSlot(pool, dpWorker, r));
      }
    }
    // Copy: handling a request may start passes elsewhere, which reuse their own lists only.
    const done = this.done;
    done.length = 0;
    const fin = engine.finished;
    for (let i = 0; i < fin.length; i++) done.push(fin.get(i));
    const disagg = this.disagg;
    for (const r of done) {
      if (router.onFinished)
        router.onFinished(r, dpWorker === null ? local : this.rankSlot(pool, dpWorker, r));
      if (disagg !== null && pool.role === 'prefill' && this.req.status[r] === RequestStatus.Transferring)
        disagg.onPrefillDone(r, e, t);
      else this.requestDone(r, t);
    }
    engine.endPass();
    this.markDirty(e);
    if (disagg !== null && pool.role === 'decode') disagg.afterDecodePass(e, t);
  }

  /** Router slot of the rank of `worker` (in `pool`) that holds r. */
  private rankSlot(pool: Pool, worker: DpWorker, r: number): number {
    return worker.rankOf(r) * pool.spec.workers + this.localIndex[worker.index];
  }

  /** Follow-up turn of a session, or the next closed-loop dispatch. */
  requestDone(r: number, t: number): void {
    this.runtime?.onDone(r);
    const next = this.workload.nextTurn[r];
    if (next >= 0) {
      this.arrivals.push(t + this.workload.delayMs[next] / this.speedup, next);
    } else if (this.options.arrivals.kind === 'closed-loop' && this.nextUnit < this.unitOrder.length) {
      this.arrivals.push(t, this.unitOrder[this.nextUnit++]);
    }
  }

  // ---------------------------------------------------------------------------------------------------------
  // DisaggHost: what the hand-off reads and drives.

  engine(e: number): Engine {
    return this.engines[e];
  }

  slotOf(e: number): number {
    return this.localIndex[e];
  }

  busyAt(e: number, t: number): boolean {
    return this.ends[e] > t && this.ends[e] !== Number.POSITIVE_INFINITY;
  }

  /** True when engine e is a decode worker with requests waiting for a KV reservation. */
  private pendingReservations(e: number): boolean {
    return (
      this.disagg !== null &&
      this.poolOf[e].role === 'decode' &&
      this.disagg.hasPendingReservations(this.localIndex[e])
    );
  }

  /** Routes r to a prefill worker (or the aggregated pool) and queues it there. */
  submitPrefill(r: number, t: number): void {
    const first = this.pools[0];
    const slot = first.router.route(r, first.targets, t, first.eligible);
    // The planner's hit-rate signal is the KV router's overlap estimate for the worker it chose.
    if (this.runtime !== null && first.router instanceof KvRouter)
      this.runtime.onRouted(first.router.overlap(r, slot), this.req.layout.promptBlocks[r]);
    const workers = first.spec.workers;
    const dpWorker = first.dpWorkers !== null ? first.dpWorkers[slot % workers] : null;
    const e = dpWorker !== null ? dpWorker.index : first.engines[slot].index;
    // The target must not run ahead of t: its next pass has to see this request.
    this.bringUpToDate(e, t);
    if (dpWorker !== null) dpWorker.enqueueOnRank(Math.floor(slot / workers), r);
    else this.engines[e].enqueue(r);
    first.router.onRouted?.(r, slot);
    this.markDirty(e);
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
      if (this.disagg !== null) this.disagg.route(r, t);
      else this.submitPrefill(r, t);
    }
    batch.length = 0;
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
      const reserving = this.pendingReservations(e);
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

  markDirty(e: number): void {
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
