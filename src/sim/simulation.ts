import { ArrivalQueue, EngineHeap } from './arrival-queue.ts';
import { RequestTable } from './engine/request-table.ts';
import { VllmEngine, type VllmEngineConfig } from './engine/vllm-engine.ts';
import { Collector } from './metrics/collector.ts';
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
  | { kind: 'kv'; overlapWeight: number; overlapCredit: number; temperature: number };

export type ArrivalSpec =
  /** Replay first-turn timestamps, compressed by `speedup` (arrival gaps and inter-turn delays divided). */
  | { kind: 'trace'; speedup: number }
  /** Keep at most `concurrency` requests (or sessions) in flight; arrivals are stamped at dispatch. */
  | { kind: 'closed-loop'; concurrency: number };

export interface SimulationOptions {
  workers: number;
  engine: VllmEngineConfig;
  timing: TimingModel;
  router: RouterSpec;
  arrivals: ArrivalSpec;
  /** GPUs one worker occupies (tensor-parallel size x data-parallel size), for GPU-hours. */
  gpusPerWorker: number;
  seed: number;
  /** Stop at this simulated time (ms); requests in flight then count as incomplete. */
  maxSimTimeMs?: number;
}

export interface SimulationResult {
  readonly workload: Workload;
  readonly options: SimulationOptions;
  readonly collector: Collector;
  readonly requests: RequestTable;
  readonly engines: readonly VllmEngine[];
  /** Simulated time when the loop stopped (ms). */
  readonly endTimeMs: number;
  /** Loop iterations (distinct event timestamps) and routed arrivals. */
  readonly loopSteps: number;
  readonly arrivals: number;
  /** Samples of (time ms, waiting, running) summed over engines, at every change. */
  readonly queueSamples: { t: Float64Array; waiting: Int32Array; running: Int32Array; length: number };
}

/**
 * Replays a workload through a cluster of engines behind a router: a discrete-event simulation on a virtual
 * clock. At each event time, finished passes are applied first, then arrivals are routed, then idle engines
 * with work start their next pass. Equal times are ordered by request id and engine index, so a run depends
 * only on its inputs and seed.
 */
export function simulate(workload: Workload, options: SimulationOptions): SimulationResult {
  return new Simulation(workload, options).run();
}

class Simulation {
  private readonly req: RequestTable;
  private readonly collector: Collector;
  private readonly engines: VllmEngine[];
  private readonly router: Router;
  private readonly arrivals = new ArrivalQueue();
  private readonly ends: Float64Array;
  private readonly heap: EngineHeap;
  private readonly dirty: Uint8Array;
  private readonly dirtyList: number[] = [];
  private readonly batch: number[] = [];
  private readonly speedup: number;
  private nextUnit = 0; // closed loop: next first turn to dispatch
  private loopSteps = 0;
  private routed = 0;
  private qT = new Float64Array(1024);
  private qW = new Int32Array(1024);
  private qR = new Int32Array(1024);
  private qLen = 0;

  private readonly workload: Workload;
  private readonly options: SimulationOptions;
  constructor(workload: Workload, options: SimulationOptions) {
    this.workload = workload;
    this.options = options;
    const layout = layoutBlocks(workload, options.engine.blockSize);
    this.req = new RequestTable(workload, layout);
    this.collector = new Collector(workload.size);
    const rng = new Rng(options.seed);
    this.router = makeRouter(options.router, this.req, options.workers, rng);
    this.engines = [];
    for (let e = 0; e < options.workers; e++) {
      this.engines.push(
        new VllmEngine(
          e,
          options.engine,
          options.timing,
          this.req,
          this.collector,
          this.router.reads === 'kv-events',
        ),
      );
    }
    this.ends = new Float64Array(options.workers).fill(Number.POSITIVE_INFINITY);
    this.heap = new EngineHeap(options.workers, this.ends);
    this.dirty = new Uint8Array(options.workers);
    this.speedup = options.arrivals.kind === 'trace' ? options.arrivals.speedup : 1;
  }

  run(): SimulationResult {
    this.seedArrivals();
    const stopAt = this.options.maxSimTimeMs ?? Number.POSITIVE_INFINITY;
    let now = 0;
    for (;;) {
      const t = Math.min(this.arrivals.peekTime(), this.heap.minTime());
      if (t === Number.POSITIVE_INFINITY || t > stopAt) break;
      now = t;
      this.loopSteps++;
      this.settle(t);
      this.routeBatch(t);
      this.startIdle(t);
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
      for (let k = 0; k < c && k < firsts.length; k++) this.arrivals.push(0, firsts[this.nextUnit++]);
    }
  }
  private unitOrder: number[] = [];

  /**
   * Applies every pass that ends at t and collects the arrivals due at t. Engines the router will read are
   * brought up to date first (a router reading prefix caches only needs engines whose pending run evicts
   * blocks); cutting a run can end a pass at exactly t and ending a pass can create arrivals at t, so this
   * repeats until nothing changes.
   */
  private settle(t: number): void {
    const batch = this.batch;
    batch.length = 0;
    for (;;) {
      while (this.heap.minTime() <= t) this.finishPass(this.heap.pop(), t);
      while (this.arrivals.peekTime() <= t) batch.push(this.arrivals.pop());
      const reads = this.router.reads;
      if (batch.length === 0 || reads === 'none') return;
      let cut = false;
      for (let e = 0; e < this.engines.length; e++) {
        if (reads === 'engines' || this.engines[e].pendingRunEvicts) cut = this.bringUpToDate(e, t) || cut;
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
    const router = this.router;
    if (router.onFirstToken) {
      const ft = engine.firstTokens;
      for (let i = 0; i < ft.length; i++) router.onFirstToken(ft.get(i), e);
    }
    const fin = engine.finished;
    for (let i = 0; i < fin.length; i++) {
      const r = fin.get(i);
      if (router.onFinished) router.onFinished(r, e);
      this.onRequestDone(r, t);
    }
    engine.endPass();
    this.markDirty(e);
  }

  /** Follow-up turn of a session, or the next closed-loop dispatch. */
  private onRequestDone(r: number, t: number): void {
    const next = this.workload.nextTurn[r];
    if (next >= 0) {
      this.arrivals.push(t + this.workload.delayMs[next] / this.speedup, next);
    } else if (this.options.arrivals.kind === 'closed-loop' && this.nextUnit < this.unitOrder.length) {
      this.arrivals.push(t, this.unitOrder[this.nextUnit++]);
    }
  }

  private routeBatch(t: number): void {
    const batch = this.batch;
    if (batch.length === 0) return;
    for (const r of batch) {
      const e = this.router.route(r, this.engines, t);
      // The target must not run ahead of t: its next pass has to see this request.
      this.bringUpToDate(e, t);
      this.collector.onArrival(r, t);
      this.engines[e].enqueue(r);
      if (this.router.onRouted) this.router.onRouted(r, e);
      this.routed++;
      this.markDirty(e);
    }
    batch.length = 0;
  }

  private startIdle(t: number): void {
    const list = this.dirtyList;
    if (list.length > 1) list.sort((a, b) => a - b);
    const horizon = this.router.reads === 'none' ? Number.POSITIVE_INFINITY : this.arrivals.peekTime();
    for (const e of list) {
      this.dirty[e] = 0;
      const engine = this.engines[e];
      if (!engine.isIdle || !engine.hasWork()) continue;
      const end = engine.startPass(t, horizon, this.router.reads === 'engines');
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
    for (const e of this.engines) {
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
      return new RoundRobinRouter(workers);
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
        },
        req,
        workers,
        rng,
      );
  }
}
