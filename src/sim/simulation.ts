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
import { grown, RequestStatus, RequestTable } from './engine/request-table.ts';
import { RetiredEngine } from './engine/retired-engine.ts';
import { type Cluster, FleetManager } from './fleet-manager.ts';
import { type KeyHolder, KeySpace } from './kv/key-space.ts';
import { Collector } from './metrics/collector.ts';
import { QueueDepth } from './metrics/queue-depth.ts';
import { RequestRecords } from './metrics/records.ts';
import type { Fleet } from './planner/fleet.ts';
import type { Planner } from './planner/planner.ts';
import { PlannerRuntime, type PlannerSpec } from './planner/runtime.ts';
import type { EngineSpec, Pool, PoolSpec } from './pool.ts';
import { Rng } from './random.ts';
import { KvRouter } from './router/kv-router.ts';
import { makeRouter, poolRouterSpec, type RouterSpec } from './router/pool-router.ts';
import type { Router } from './router/router.ts';
import { type ArrivalSpec, type RequestSource, WorkloadSource } from './source.ts';
import { FaultTiming } from './timing/fault.ts';
import type { TimingModel } from './timing/timing-model.ts';
import type { Workload } from './workload/workload.ts';

export type { DisaggregationSpec, TransferRecords } from './disagg/coordinator.ts';
export type { EngineSpec, PoolSpec } from './pool.ts';
export type { RouterSpec } from './router/pool-router.ts';
export type { ArrivalSpec } from './source.ts';

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
  /**
   * Warm-up: requests arriving before this simulated time (ms) are simulated (they load the workers and fill
   * their caches) but left out of every per-request statistic of the report, the pooled token gaps included;
   * throughput is over [measureFromMs, end]. Absent: everything is measured (the same run, bit for bit).
   */
  measureFromMs?: number;
  /** Dynamo's Planner adding and removing workers during the run (see planner/runtime.ts). */
  planner?: PlannerSpec;
  /** Called for every engine created (initial workers and the planner's), e.g. to attach a pass log. */
  onEngineCreated?: (engine: Engine) => void;
  /** Prefix-key compaction threshold (see KeySpace; tests lower it to compact often). */
  compactKeysAbove?: number;
  /**
   * Driven from outside (live.ts): workers may be added, replaced and removed at any time, each engine's pass
   * time can be scaled or stalled, and worker start-ups are events even when no request is in flight.
   */
  driven?: boolean;
}

export interface SimulationResult {
  /** The workload replayed, when it was held in memory (null for a streamed replay). */
  readonly workload: Workload | null;
  readonly options: SimulationOptions;
  /** What each request came to (see RequestRecords). */
  readonly records: RequestRecords;
  /** Pooled statistics (token gaps, counts); its per-request columns describe no request after the run. */
  readonly collector: Collector;
  readonly engines: readonly Engine[];
  /** Simulated time when the loop stopped (ms). */
  readonly endTimeMs: number;
  /** Loop iterations (distinct event timestamps) and routed arrivals. */
  readonly loopSteps: number;
  readonly arrivals: number;
  /** Requests waiting and running, summed over engines, over time. */
  readonly queueDepth: QueueDepth;
  readonly transfers: TransferRecords | null;
  /** With a planner: its decisions, and the workers' lifecycle and GPU timeline. */
  readonly planner: { planner: Planner; fleet: Fleet } | null;
  /** Prefix keys in use at the end, and how often they were compacted. */
  readonly keys: { size: number; compactions: number };
}

/**
 * Replays a workload through a cluster of engines behind routers: a discrete-event simulation on a virtual
 * clock. At each event time, finished passes and KV transfers are applied first, then arrivals are routed,
 * then idle engines with work start their next pass. Equal times are ordered by insertion and engine index,
 * so a run depends only on its inputs and seed.
 */
/** What a live simulation hears of as it happens (see live.ts); batch runs have none. */
export interface SimulationHooks {
  /** Request r was queued on engine e (its prefill or aggregated worker) at t. */
  routed(r: number, e: number, t: number): void;
  /** Request r ended at t: 'finished', 'cancelled' or why it was rejected (its slot is freed next). */
  ended(r: number, t: number, reason: string): void;
}

/** Keys a streamed or live simulation lets accumulate before compacting them (see KeySpace). */
const STREAM_COMPACT_ABOVE = 1 << 21;

/** Clusters of at most this many engines index prefix keys directly (see KeySpace.indexDirectly). */
const DIRECT_INDEX_ENGINES = 32;

/** Told of every token as it is stamped: the workload row, the row's token count so far, the time (ms). */
export type TokenTap = (row: number, index: number, tMs: number) => void;

/**
 * Runs `workload` to the end. `onToken` sees every token (live calibration measures a replay by event time,
 * as a deployment's exporter does); it does not change the run.
 */
export function simulate(
  workload: Workload,
  options: SimulationOptions,
  onToken?: TokenTap,
): SimulationResult {
  const records = new RequestRecords(workload.size, true, options.disaggregation !== undefined);
  const source = new WorkloadSource(workload, options.arrivals);
  const sim = new Simulation(source, workload.traceBlockSize, options, records, workload);
  if (onToken) {
    const req = sim.requests;
    sim.collectorOf.tokenObserver = (r, index, t) => onToken(req.source[r], index, t);
  }
  return sim.run();
}

export class Simulation implements Cluster, DisaggHost {
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
  private runtime: PlannerRuntime | null = null;
  /** The workers' lifecycle, when the fleet can change (a planner, or a driven simulation). */
  private readonly manager: FleetManager | null = null;
  private readonly driven: boolean;
  private readonly rng: Rng;
  /** Driven simulations: per engine, its pass-time scale and the time before which it starts no pass. */
  private readonly timings: FaultTiming[] = [];
  /** Per pool: the pass-time factor the workers it creates from now on get (1 when unset). */
  private readonly newWorkerFactor = new Map<Pool, number>();
  private stallUntil = new Float64Array(0);
  private readonly stalled: number[] = [];
  private readonly dirtyList: number[] = [];
  private readonly batch: number[] = [];
  private readonly source: RequestSource;
  private readonly records: RequestRecords | null;
  /** Live simulations' observers of routing and request ends. */
  hooks: SimulationHooks | null = null;
  /** A time the loop must visit even without an event (cancellations to apply), or Infinity. */
  private wakeAt = Number.POSITIVE_INFINITY;
  private loopSteps = 0;
  private routed = 0;
  private readonly queueDepth = new QueueDepth();
  private readonly workload: Workload | null;
  private readonly options: SimulationOptions;
  private readonly keys: KeySpace;

  /** The disaggregated hand-off (null for aggregated serving). */
  private readonly disagg: DisaggCoordinator | null = null;
  private readonly done: number[] = [];

  /**
   * `traceBlockSize`: tokens per content id of the source's prompts. `records`: where each request's outcome
   * goes when it ends (null: nowhere). `workload`: the workload behind the source, if it is one (reported).
   */
  constructor(
    source: RequestSource,
    traceBlockSize: number,
    options: SimulationOptions,
    records: RequestRecords | null,
    workload: Workload | null = null,
  ) {
    this.source = source;
    this.records = records;
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
    this.keys = new KeySpace(blockSize, traceBlockSize, {
      // Unbounded sources compact early: a key range that stays small keeps the key tables in cache.
      compactAbove:
        options.compactKeysAbove ?? (source.bounded ? Number.POSITIVE_INFINITY : STREAM_COMPACT_ABOVE),
      contentSpace: source.contentSpace,
      expectedContents: source.contents,
    });
    // Direct key tables cost 4 bytes per key per engine: only for clusters of a few engines.
    this.keys.indexDirectly = poolSpecs.reduce((n, [, p]) => n + p.workers, 0) <= DIRECT_INDEX_ENGINES;
    this.req = new RequestTable(this.keys);
    this.keys.onCapacity = (n) => {
      for (const e of this.live) e.ensureKeyCapacity?.(n);
    };
    this.collector = new Collector(this.req);
    if (options.measureFromMs !== undefined) this.collector.measureFromMs = options.measureFromMs;
    const rng = new Rng(options.seed);
    this.rng = rng;
    this.driven = options.driven === true;
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
        eligible: options.planner || options.driven ? new Uint8Array(Math.max(4, spec.workers * 2)) : null,
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
    this.live = options.planner || this.driven ? this.engines.slice() : this.engines;
    if (disagg) this.disagg = new DisaggCoordinator(disagg, this.pools[1], this, this.req, this.collector);
    if (options.planner || this.driven) {
      this.manager = new FleetManager(
        this,
        this.pools.map((p) => p.role),
      );
    }
    if (options.planner)
      this.runtime = new PlannerRuntime(
        this,
        options.planner,
        this.req,
        this.collector,
        this.manager ?? undefined,
      );
  }

  /**
   * The timing the next engine of `pool` prices its passes with: a driven simulation can slow any engine
   * down, so each gets its own scale of the pool's model.
   */
  private engineTiming(pool: Pool): TimingModel {
    if (!this.driven) return pool.spec.timing;
    const scaled = new FaultTiming(pool.spec.timing);
    scaled.factor = this.newWorkerFactor.get(pool) ?? 1;
    this.timings[this.engines.length] = scaled;
    if (this.engines.length >= this.stallUntil.length)
      this.stallUntil = grown(this.stallUntil, Math.max(16, this.stallUntil.length * 2));
    return scaled;
  }

  private createEngine(pool: Pool): Engine {
    const ctx = {
      req: this.req,
      collector: this.collector,
      timing: this.engineTiming(pool),
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
    this.start();
    this.advance(this.options.maxSimTimeMs ?? Number.POSITIVE_INFINITY);
    return this.finish();
  }

  private started = false;
  private time = 0;

  /** The simulated time reached (ms): every event up to it is processed. */
  get now(): number {
    return this.time;
  }

  /** Requests in the cluster (arrived, not ended). */
  get liveRequests(): number {
    return this.req.live;
  }

  /** Requests that ended (completed, rejected). */
  get endedRequests(): number {
    return this.ended;
  }
  private ended = 0;

  /** Schedules the source's first arrivals (once). */
  start(): void {
    if (this.started) return;
    this.started = true;
    this.source.start(this.arrivals);
  }

  /**
   * Processes every event up to `stopAt` (inclusive), stopping early, before a time the source is not ready
   * for (its driver must feed it, then call again). Returns true when the run has nothing left to do (or
   * reached `stopAt`), false when it stopped for the source.
   */
  advance(stopAt: number): boolean {
    const rt = this.runtime;
    const fm = this.manager;
    for (;;) {
      let t = Math.min(
        this.arrivals.peekTime(),
        this.heap.minTime(),
        this.disagg?.nextTransfer() ?? Number.POSITIVE_INFINITY,
        this.wakeAt,
      );
      // Planner ticks and worker starts are events too, but never keep a finished run alive (a driven one
      // has no end: they are).
      if (t === Number.POSITIVE_INFINITY && !this.driven) return this.source.ready(t);
      if (rt !== null) t = Math.min(t, rt.nextEventMs());
      else if (fm !== null) t = Math.min(t, fm.nextEventMs());
      if (t === Number.POSITIVE_INFINITY) return this.source.ready(t);
      // Arrivals not read yet could still come before the limit.
      if (t > stopAt) return this.source.ready(stopAt);
      if (!this.source.ready(t)) return false;
      this.time = t;
      this.loopSteps++;
      if (this.wakeAt <= t) this.wake(t);
      if (rt !== null) {
        this.settle(t, rt.tickDue(t));
        rt.activateDue(t);
      } else {
        this.settle(t, false);
        fm?.activateDue(t);
      }
      this.routeBatch(t);
      this.startIdle(t);
      if (rt !== null) rt.endStep(t);
      else fm?.afterStep(t);
      this.sampleQueues(t);
      if (this.keys.wantsCompaction) this.compactKeys();
    }
  }

  /** The loop visits t for stalled engines and cancellations: stalls that ended let their engines start. */
  private wake(t: number): void {
    this.wakeAt = Number.POSITIVE_INFINITY;
    for (let i = 0; i < this.stalled.length; ) {
      const e = this.stalled[i];
      const until = this.stallUntil[e];
      if (until <= t) {
        this.markDirty(e);
        this.stalled.splice(i, 1);
      } else {
        if (until < this.wakeAt) this.wakeAt = until;
        i++;
      }
    }
  }

  /** Forgets prefix keys nothing holds any more and renames the rest (see KeySpace). */
  compactKeys(): void {
    const holders: KeyHolder[] = [this.req];
    for (const e of this.live) if (e.markKeys && e.remapKeys) holders.push(e as Engine & KeyHolder);
    for (const pool of this.pools) {
      const r = pool.router;
      if (r.markKeys && r.remapKeys) holders.push(r as Router & KeyHolder);
    }
    this.keys.compact(holders);
  }

  /** Ends the run: requests still in flight are recorded as they stand. */
  finish(): SimulationResult {
    const records = this.records;
    if (records === null) throw new Error('Simulation.finish: this simulation keeps no records');
    const req = this.req;
    for (let r = 0; r < req.capacity; r++) {
      if (req.region[r] < 0) continue;
      this.writeRecord(records.rowOf(req, r), r);
    }
    return {
      workload: this.workload,
      options: this.options,
      records,
      collector: this.collector,
      engines: this.engines,
      endTimeMs: this.time,
      loopSteps: this.loopSteps,
      arrivals: this.routed,
      queueDepth: this.queueDepth,
      transfers: this.disagg?.records ?? null,
      planner: this.runtime !== null ? { planner: this.runtime.planner, fleet: this.runtime.fleet } : null,
      keys: { size: this.keys.size, compactions: this.keys.compactions },
    };
  }

  private writeRecord(row: number, r: number): void {
    const records = this.records as RequestRecords;
    records.write(row, this.req, this.collector, r);
    if (this.source.labelOf) records.source[row] = this.source.labelOf(this.req.source[r]);
    this.disagg?.writeRecord(records, row, r);
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

  /** Request r left the cluster at t (done or rejected): recorded, its slot freed, its follow-ups scheduled. */
  requestDone(r: number, t: number): void {
    this.runtime?.onDone(r);
    const req = this.req;
    if (this.hooks !== null) {
      const s = req.status[r];
      this.hooks.ended(
        r,
        t,
        s === RequestStatus.Done
          ? 'finished'
          : s === RequestStatus.Cancelled
            ? 'cancelled'
            : (this.collector.rejectReasons.get(r) ?? 'rejected'),
      );
    }
    if (this.records !== null) this.writeRecord(this.records.rowOf(req, r), r);
    this.source.ended(req.source[r], t, this.arrivals, req.status[r] === RequestStatus.Done);
    this.collector.rejectReasons.delete(r);
    req.release(r);
    this.ended++;
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
      this.runtime.onRouted(first.router.overlap(r, slot), this.req.promptBlocks[r]);
    const workers = first.spec.workers;
    const dpWorker = first.dpWorkers !== null ? first.dpWorkers[slot % workers] : null;
    const e = dpWorker !== null ? dpWorker.index : first.engines[slot].index;
    // The target must not run ahead of t: its next pass has to see this request.
    this.bringUpToDate(e, t);
    if (dpWorker !== null) dpWorker.enqueueOnRank(Math.floor(slot / workers), r);
    else this.engines[e].enqueue(r);
    first.router.onRouted?.(r, slot);
    this.markDirty(e);
    this.hooks?.routed(r, e, t);
  }

  noteRouted(r: number, e: number, t: number): void {
    this.hooks?.routed(r, e, t);
  }

  // ---------------------------------------------------------------------------------------------------------
  // Driven from outside (live simulations).

  /**
   * Time of the next event that moves a request (an arrival, a pass end, a transfer, a wake-up): Infinity
   * when a batch run is over (planner ticks and worker start-ups alone do not keep it going).
   */
  nextRequestEventTime(): number {
    return Math.min(
      this.arrivals.peekTime(),
      this.heap.minTime(),
      this.disagg?.nextTransfer() ?? Number.POSITIVE_INFINITY,
      this.wakeAt,
    );
  }

  /** Time of the next event (Infinity when nothing is scheduled). */
  nextEventTime(): number {
    const t = Math.min(
      this.arrivals.peekTime(),
      this.heap.minTime(),
      this.disagg?.nextTransfer() ?? Number.POSITIVE_INFINITY,
      this.wakeAt,
    );
    if (this.runtime !== null) return Math.min(t, this.runtime.nextEventMs());
    return this.manager !== null ? Math.min(t, this.manager.nextEventMs()) : t;
  }

  /** Brings every engine up to date to t (planned decode runs applied up to the pass in flight at t). */
  materializeAll(t: number): void {
    for (const e of this.live) if (e.hasPendingRun) this.bringUpToDate(e.index, t);
  }

  /**
   * Request r's client left at t: it leaves its engine at that engine's next scheduling point (now if idle,
   * else when the pass in flight ends); a request in a disaggregated hand-off leaves where the hand-off lands.
   */
  cancelRequest(r: number, t: number): void {
    const req = this.req;
    const s = req.status[r];
    if (s === RequestStatus.Done || s === RequestStatus.Rejected || s === RequestStatus.Cancelled) return;
    req.cancel(r);
    const e = req.engine[r];
    if (e >= 0 && this.engines[e].hasWork()) {
      this.bringUpToDate(e, t);
      this.markDirty(e);
      if (t < this.wakeAt) this.wakeAt = t;
    }
  }

  /** The workers' lifecycle (driven simulations and planners), or null. */
  get fleetManager(): FleetManager | null {
    return this.manager;
  }

  /** The planner in the loop, or null. */
  get planner(): PlannerRuntime | null {
    return this.runtime;
  }

  /** Passes of engine e starting from t take `factor` times as long (driven simulations). */
  setPassTimeFactor(e: number, factor: number, t: number): void {
    const scaled = this.timings[e];
    if (scaled === undefined) throw new Error('pass-time factors need a driven simulation');
    this.bringUpToDate(e, t); // a planned run stops at the pass in flight
    scaled.factor = factor;
  }

  /** Engine e starts no pass before `until` (its pass in flight ends as planned). */
  stallEngine(e: number, until: number, t: number): void {
    if (!this.driven) throw new Error('stalls need a driven simulation');
    if (e >= this.stallUntil.length)
      this.stallUntil = grown(this.stallUntil, Math.max(e + 1, this.stallUntil.length * 2));
    this.bringUpToDate(e, t);
    this.stallUntil[e] = until;
    if (!this.stalled.includes(e)) this.stalled.push(e);
    const at = Math.max(t, Math.min(until, this.wakeAt));
    if (at < this.wakeAt) this.wakeAt = at;
  }

  /** Pool p to `replicas` workers from t (see FleetManager.scaleTo). */
  setReplicas(p: number, replicas: number, startupMs: number, t: number, passTimeFactor?: number): void {
    const fm = this.requireManager();
    this.requireFixedRanks(p);
    if (passTimeFactor !== undefined) this.newWorkerFactor.set(this.pools[p], passTimeFactor);
    fm.scaleTo(p, replicas, t, startupMs);
    fm.afterStep(t);
    fm.startPending(t);
  }

  /** Pool p's workers replaced, rolling, by workers of `spec` (same block size). */
  replacePool(
    p: number,
    spec: PoolSpec,
    startupMs: number,
    maxSurge: number,
    t: number,
    passTimeFactor?: number,
  ): void {
    const fm = this.requireManager();
    this.requireFixedRanks(p);
    const pool = this.pools[p];
    if (passTimeFactor !== undefined) this.newWorkerFactor.set(pool, passTimeFactor);
    if (spec.engine.blockSize !== pool.spec.engine.blockSize)
      throw new RangeError('the KV block size cannot change during a run');
    pool.spec = { ...spec, workers: pool.spec.workers };
    fm.replace(p, t, startupMs, maxSurge);
    fm.afterStep(t);
    fm.startPending(t);
  }

  /** Later arrivals are routed by `spec`; requests in flight keep their worker. */
  setRouter(spec: RouterSpec, t: number): void {
    for (const pool of this.pools) {
      // Routers choose among the pool's targets: its workers, or their data-parallel ranks.
      const router = makeRouter(poolRouterSpec(pool.role, spec), this.req, pool.targets.length, this.rng);
      const logs = router.reads === 'kv-events';
      for (const engine of pool.engines) this.bringUpToDate(engine.index, t);
      for (let slot = 0; slot < pool.targets.length; slot++) {
        const target = pool.targets[slot];
        // A fresh log (no events from before the switch) and a view of the cache as it is now.
        target.setKvEvents?.(logs);
        if (router instanceof KvRouter) router.seedView(slot, target);
      }
      pool.router = router;
    }
  }

  /** Dynamo's Planner from t on (or none). */
  setPlanner(spec: PlannerSpec | null, t: number): void {
    const fm = this.requireManager();
    if (spec === null) {
      this.runtime = null;
      fm.budget = -1;
      return;
    }
    this.runtime = new PlannerRuntime(this, spec, this.req, this.collector, fm, t);
    for (const e of this.live) if (e.history) e.history.trackQueue = true;
  }

  /**
   * Engine e dies at t: it leaves at once (its pass in flight is lost) and the requests it held are
   * returned, still alive, for the caller to re-route or fail (see live.ts). Requests waiting for a KV
   * reservation on it go to another decode worker.
   */
  killEngine(e: number, t: number): number[] {
    const fm = this.requireManager();
    const engine = this.engines[e];
    this.bringUpToDate(e, t);
    const held = engine.residents?.() ?? [];
    // Requests its pass in flight completed or rejected (applied when the pass started) never got there.
    if (engine.busyUntil > t)
      for (let i = 0; i < engine.finished.length; i++) held.push(engine.finished.get(i));
    const pool = this.poolOf[e];
    const dp = pool.dpWorkers !== null ? (engine as DpWorker) : null;
    for (const r of held)
      pool.router.onFinished?.(r, dp !== null ? this.rankSlot(pool, dp, r) : this.localIndex[e]);
    this.ends[e] = Number.POSITIVE_INFINITY;
    if (this.heap.has(e)) this.heap.update(e);
    fm.kill(engine, t);
    this.disagg?.engineGone(e, t);
    return held;
  }

  /** Request r ends at t, rejected for `reason` (a killed worker's request out of migrations). */
  failRequest(r: number, t: number, reason: string): void {
    this.req.status[r] = RequestStatus.Rejected;
    this.collector.onReject(r, reason);
    this.collector.terminalMs[r] = t;
    this.requestDone(r, t);
  }

  /** Request r leaves without a trace (it is being re-submitted elsewhere): its slot is freed. */
  abandon(r: number): void {
    this.collector.rejectReasons.delete(r);
    this.req.release(r);
  }

  /** Pools whose workers have data-parallel ranks keep their workers (the ranks' router slots are fixed). */
  private requireFixedRanks(p: number): void {
    if (this.pools[p].dpWorkers !== null)
      throw new RangeError('the workers of a pool with data-parallel ranks cannot change during a run');
  }

  private requireManager(): FleetManager {
    if (this.manager === null) throw new Error('fleet changes need a driven simulation');
    return this.manager;
  }

  /** Its collector (live simulations read per-request times from it while requests live). */
  get collectorOf(): Collector {
    return this.collector;
  }

  /** The request table (live simulations read their requests' state from it). */
  get requests(): RequestTable {
    return this.req;
  }

  /** Engines by index (retired ones are stand-ins). */
  get allEngines(): readonly Engine[] {
    return this.engines;
  }

  /** The disaggregated hand-off, if any. */
  get handoff(): DisaggCoordinator | null {
    return this.disagg;
  }

  /** The pools: [aggregated] or [prefill, decode]. */
  get poolList(): readonly Pool[] {
    return this.pools;
  }

  // ---------------------------------------------------------------------------------------------------------
  // Routing and pass starts.

  private routeBatch(t: number): void {
    const batch = this.batch;
    if (batch.length === 0) return;
    const req = this.req;
    for (const id of batch) {
      const r = this.source.admit(id, req);
      if (r < 0) continue; // withdrawn before it arrived
      this.collector.onArrival(r, t);
      if (this.source.arrived !== undefined) this.source.arrived(id, t, this.arrivals);
      const refused = this.source.refuse?.(id) ?? null;
      if (refused !== null) {
        this.failRequest(r, t, refused);
        continue;
      }
      this.disagg?.onArrival(r);
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
    const next = Math.min(this.arrivals.peekTime(), this.source.nextUnscheduled());
    for (const e of list) {
      this.dirty[e] = 0;
      const engine = this.engines[e];
      if (!engine.isIdle || !engine.hasWork()) continue;
      if (this.driven && this.stallUntil[e] > t) {
        // Stalled: it starts nothing before its stall ends (the loop wakes then).
        if (!this.stalled.includes(e)) this.stalled.push(e);
        if (this.stallUntil[e] < this.wakeAt) this.wakeAt = this.stallUntil[e];
        continue;
      }
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
    this.queueDepth.sample(t, waiting, running);
  }
}
