import type { Engine } from '../engine/engine.ts';
import { emptySnapshot, type ForwardPassSnapshot } from '../engine/pass-metrics.ts';
import { RequestStatus, type RequestTable } from '../engine/request-table.ts';
import type { Collector } from '../metrics/collector.ts';
import type { ClusterRole, PlannerConfig } from './config.ts';
import { Fleet, WorkerState } from './fleet.ts';
import {
  emptyTraffic,
  type PerfSamples,
  Planner,
  type RoleObservation,
  type RoleSpec,
  type TrafficWindow,
} from './planner.ts';

/** What the planner runtime needs from the simulation: its pools, and adding and removing workers. */
export interface Cluster {
  /** Engines of pool p by slot (slots of departed workers hold retired stand-ins). */
  poolEngines(p: number): readonly Engine[];
  /** Creates a worker in pool p; it takes no requests until `setEligible`. */
  addEngine(p: number): Engine;
  setEligible(e: Engine, eligible: boolean): void;
  /** True when engine e holds no requests, KV or handoffs (a draining worker may leave). */
  isEmpty(e: Engine): boolean;
  /** The worker left: free its slot and memory. */
  retire(e: Engine): void;
}

export interface PlannerSpec {
  config: PlannerConfig;
  /** Cold start of a new worker (ms): from getting its GPUs to serving. */
  startupMs: number;
  /** One entry per pool, in pool order. */
  roles: RoleSpec[];
  /** Profile samples for the SLA target's regressions. */
  samples?: PerfSamples;
}

/**
 * An engine that published no forward-pass metrics for this long publishes an idle heartbeat (all zeros), as
 * Dynamo's FPM publisher does for vLLM (`HEARTBEAT_INTERVAL`, 1 s) and the reference's replay reproduces.
 */
export const FPM_HEARTBEAT_MS = 1000;

/**
 * Runs the Planner on the simulation's clock: ticks and worker-ready times are events of the same loop. A
 * tick fires last at its time, as in the reference's replay loop: after the passes ending then, the workers
 * becoming ready, the arrivals (routed over the pool as it was) and the passes starting then. The planner gets
 * each ready worker's latest forward-pass metrics (the last pass that ended, with the queue its scheduler left
 * waiting; an idle heartbeat when the worker published nothing for `FPM_HEARTBEAT_MS`; nothing from a worker
 * that has neither run a pass nor been ready that long) and the traffic since the last tick; its targets
 * become workers that start, or drain. The simulation calls `activateReady` after settling a time, then
 * routes and starts passes, then `afterStep`.
 */
export class PlannerRuntime {
  readonly planner: Planner;
  readonly fleet: Fleet;
  private readonly cluster: Cluster;
  private readonly spec: PlannerSpec;
  private readonly poolOfRole = new Map<ClusterRole, number>();
  private traffic = emptyTraffic();
  private lastTickMs = 0;
  /** Workers per pool, oldest first, by state of interest. */
  private readonly pending: Engine[][];
  private readonly starting: { engine: Engine; readyMs: number }[][];
  private readonly draining: Engine[] = [];
  private readonly req: RequestTable;
  private readonly collector: Collector;
  private nextReady = Number.POSITIVE_INFINITY;
  /** When each worker (engine index) became ready: its FPM heartbeat clock starts then. */
  private readonly readyMs: number[] = [];
  /** Per pool: workers in the order the planner first heard from them (its metrics cache), while ready. */
  private readonly heard: Map<number, true>[];

  constructor(cluster: Cluster, spec: PlannerSpec, req: RequestTable, collector: Collector) {
    this.cluster = cluster;
    this.spec = spec;
    this.req = req;
    this.collector = collector;
    this.planner = new Planner(spec.config, spec.roles, spec.samples);
    this.fleet = new Fleet(spec.roles.map((r) => r.role));
    spec.roles.forEach((r, p) => {
      this.poolOfRole.set(r.role, p);
      for (const e of cluster.poolEngines(p)) {
        this.fleet.add(e.index, r.role, e.gpus, WorkerState.Active, 0);
        this.readyMs[e.index] = 0;
        cluster.setEligible(e, true);
      }
    });
    this.pending = spec.roles.map(() => []);
    this.starting = spec.roles.map(() => []);
    this.heard = spec.roles.map(() => new Map());
  }

  /** Next time the runtime needs the loop (a tick or a worker becoming ready), ms. */
  nextEventMs(): number {
    return Math.min(this.planner.nextTickS * 1000, this.nextReady);
  }

  tickDue(t: number): boolean {
    return this.planner.nextTickS * 1000 <= t;
  }

  onArrival(): void {
    this.traffic.numReq++;
  }

  /** A request finished (completed or rejected). */
  onDone(r: number): void {
    if (this.req.status[r] !== RequestStatus.Done) return;
    const c = this.collector;
    const w = this.traffic;
    const k = c.tokens[r];
    w.completed++;
    w.sumIsl += this.req.promptLen[r];
    w.sumOsl += k;
    if (k >= 1) {
      w.ttftCount++;
      w.sumTtftMs += c.firstTokenMs[r] - c.arrivalMs[r];
    }
    if (k >= 2) {
      w.itlCount++;
      w.sumItlMs += (c.lastTokenMs[r] - c.firstTokenMs[r]) / (k - 1);
    }
  }

  /** The router scored a request's prefix overlap with its chosen worker (KV-aware routing only). */
  onRouted(overlapBlocks: number, promptBlocks: number): void {
    if (promptBlocks <= 0) return;
    this.traffic.hitCount++;
    this.traffic.sumHit += overlapBlocks / promptBlocks;
  }

  /** Workers ready by t start serving (before the arrivals at t are routed). */
  activateDue(t: number): void {
    if (this.nextReady <= t) this.activateReady(t);
  }

  /**
   * After routing and pass starts at t: drained workers leave, and a due tick runs (engines must be up to
   * date to t), then workers it drained that hold nothing leave at once.
   */
  endStep(t: number): void {
    this.afterStep(t);
    if (this.tickDue(t)) this.tick(t);
  }

  /** Drained workers leave; pending workers get the GPUs they free. */
  afterStep(t: number): void {
    if (this.draining.length === 0) return;
    let freed = false;
    for (let i = 0; i < this.draining.length; ) {
      const e = this.draining[i];
      if (this.cluster.isEmpty(e)) {
        this.fleet.set(e.index, WorkerState.Removed, t);
        this.cluster.retire(e);
        this.draining.splice(i, 1);
        freed = true;
      } else i++;
    }
    if (freed) this.startPending(t);
  }

  private activateReady(t: number): void {
    let next = Number.POSITIVE_INFINITY;
    for (const list of this.starting) {
      for (let i = 0; i < list.length; ) {
        const s = list[i];
        if (s.readyMs <= t) {
          this.fleet.set(s.engine.index, WorkerState.Active, t);
          this.readyMs[s.engine.index] = t;
          this.cluster.setEligible(s.engine, true);
          list.splice(i, 1);
        } else {
          if (s.readyMs < next) next = s.readyMs;
          i++;
        }
      }
    }
    this.nextReady = next;
  }

  private tick(t: number): void {
    const roles = this.spec.roles;
    const obs: RoleObservation[] = roles.map((r, p) => {
      const latest = new Map<number, ForwardPassSnapshot>();
      for (const e of this.cluster.poolEngines(p)) {
        if (this.fleet.stateOf(e.index) !== WorkerState.Active) continue;
        const f = emptySnapshot();
        e.snapshot(t, f);
        const published = Number.isNaN(f.passEndMs) ? this.readyMs[e.index] : f.passEndMs;
        if (t - published >= FPM_HEARTBEAT_MS) latest.set(e.index, emptySnapshot(e.index));
        else if (!Number.isNaN(f.passEndMs)) latest.set(e.index, f);
      }
      const heard = this.heard[p];
      for (const k of heard.keys()) if (this.fleet.stateOf(k) !== WorkerState.Active) heard.delete(k);
      for (const k of [...latest.keys()].sort((a, b) => a - b)) heard.set(k, true);
      const fpm: ForwardPassSnapshot[] = [];
      for (const k of heard.keys()) {
        const f = latest.get(k);
        if (f) fpm.push(f);
      }
      return {
        ready: this.fleet.count(r.role, WorkerState.Active),
        expected: this.fleet.planned(r.role),
        fpm,
      };
    });
    const window: TrafficWindow = { ...this.traffic, durationS: (t - this.lastTickMs) / 1000 };
    this.traffic = emptyTraffic();
    this.lastTickMs = t;
    const result = this.planner.tick(t / 1000, obs, window);
    const advisory = this.spec.config.advisory;
    result.targets.forEach((target, p) => {
      if (target === null) return;
      const role = roles[p].role;
      const from = obs[p].expected;
      if (target === from) return;
      this.fleet.events.push({
        t_s: t / 1000,
        role,
        from,
        to: target,
        direction: target > from ? 'up' : 'down',
        ...(advisory ? { advisory: true } : {}),
      });
      if (!advisory) this.scaleTo(p, from, target, t);
    });
    // Workers drained with nothing in flight leave at once; freed GPUs go to pending workers.
    this.afterStep(t);
    this.startPending(t);
  }

  private scaleTo(p: number, from: number, to: number, t: number): void {
    const role = this.spec.roles[p].role;
    for (let n = from; n < to; n++) {
      const e = this.cluster.addEngine(p);
      this.fleet.add(e.index, role, e.gpus, WorkerState.Pending, t);
      this.pending[p].push(e);
    }
    let remove = from - to;
    // Cancel workers that never served (newest first), then drain active ones, newest first: as the
    // reference does, and as Kubernetes scales a ReplicaSet down (newer pods go first).
    while (remove > 0 && this.pending[p].length > 0) {
      const e = this.pending[p].pop() as Engine;
      this.fleet.set(e.index, WorkerState.Removed, t);
      this.cluster.retire(e);
      remove--;
    }
    while (remove > 0 && this.starting[p].length > 0) {
      const s = this.starting[p].pop() as { engine: Engine; readyMs: number };
      this.fleet.set(s.engine.index, WorkerState.Removed, t);
      this.cluster.retire(s.engine);
      remove--;
    }
    if (remove > 0) {
      const active = this.cluster
        .poolEngines(p)
        .filter((e) => this.fleet.stateOf(e.index) === WorkerState.Active)
        .sort((a, b) => b.index - a.index);
      for (const e of active.slice(0, remove)) {
        this.fleet.set(e.index, WorkerState.Draining, t);
        this.cluster.setEligible(e, false);
        this.draining.push(e);
      }
    }
  }

  /** Pending workers start once their GPUs fit under the budget next to those still held. */
  private startPending(t: number): void {
    const budget = this.spec.config.max_gpu_budget;
    for (let p = 0; p < this.pending.length; p++) {
      const list = this.pending[p];
      while (list.length > 0) {
        const e = list[0];
        if (budget >= 0 && this.fleet.heldGpus + e.gpus > budget) return;
        list.shift();
        if (this.spec.startupMs <= 0) {
          this.fleet.set(e.index, WorkerState.Active, t);
          this.readyMs[e.index] = t;
          this.cluster.setEligible(e, true);
        } else {
          this.fleet.set(e.index, WorkerState.Starting, t);
          const readyMs = t + this.spec.startupMs;
          this.starting[p].push({ engine: e, readyMs });
          if (readyMs < this.nextReady) this.nextReady = readyMs;
        }
      }
    }
  }
}
