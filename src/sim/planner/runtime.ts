import { emptySnapshot, type ForwardPassSnapshot } from '../engine/pass-metrics.ts';
import { RequestStatus, type RequestTable } from '../engine/request-table.ts';
import { type Cluster, FleetManager } from '../fleet-manager.ts';
import type { Collector } from '../metrics/collector.ts';
import type { PlannerConfig } from './config.ts';
import { type Fleet, WorkerState } from './fleet.ts';
import {
  emptyTraffic,
  type PerfSamples,
  Planner,
  type RoleObservation,
  type RoleSpec,
  type TrafficWindow,
} from './planner.ts';

export type { Cluster } from '../fleet-manager.ts';

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
  readonly manager: FleetManager;
  private readonly cluster: Cluster;
  private readonly spec: PlannerSpec;
  private traffic = emptyTraffic();
  private lastTickMs = 0;
  private readonly req: RequestTable;
  private readonly collector: Collector;
  /** Per pool: workers in the order the planner first heard from them (its metrics cache), while ready. */
  private readonly heard: Map<number, true>[];
  /** Told of each replica target the planner sets (role, replicas, time). */
  onDecision: ((role: string, replicas: number, t: number) => void) | null = null;

  /** `manager`: the cluster's workers (created for the planner when not given: batch runs). */
  constructor(
    cluster: Cluster,
    spec: PlannerSpec,
    req: RequestTable,
    collector: Collector,
    manager?: FleetManager,
    startMs = 0,
  ) {
    this.cluster = cluster;
    this.spec = spec;
    this.req = req;
    this.collector = collector;
    this.planner = new Planner(spec.config, spec.roles, spec.samples, startMs / 1000);
    this.manager =
      manager ??
      new FleetManager(
        cluster,
        spec.roles.map((r) => r.role),
        spec.config.max_gpu_budget,
      );
    this.manager.budget = spec.config.max_gpu_budget;
    this.fleet = this.manager.fleet;
    this.lastTickMs = startMs;
    this.heard = spec.roles.map(() => new Map());
  }

  /** Next time the runtime needs the loop (a tick or a worker becoming ready), ms. */
  nextEventMs(): number {
    return Math.min(this.planner.nextTickS * 1000, this.manager.nextEventMs());
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
    this.manager.activateDue(t);
  }

  /**
   * After routing and pass starts at t: drained workers leave, and a due tick runs (engines must be up to
   * date to t), then workers it drained that hold nothing leave at once.
   */
  endStep(t: number): void {
    this.manager.afterStep(t);
    if (this.tickDue(t)) this.tick(t);
  }

  private tick(t: number): void {
    const roles = this.spec.roles;
    const obs: RoleObservation[] = roles.map((r, p) => {
      const latest = new Map<number, ForwardPassSnapshot>();
      for (const e of this.cluster.poolEngines(p)) {
        if (this.fleet.stateOf(e.index) !== WorkerState.Active) continue;
        const f = emptySnapshot();
        e.snapshot(t, f);
        const published = Number.isNaN(f.passEndMs) ? this.manager.readyMs[e.index] : f.passEndMs;
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
      if (!advisory) this.manager.scaleTo(p, target, t, this.spec.startupMs);
      this.onDecision?.(role, target, t);
    });
    // Workers drained with nothing in flight leave at once; freed GPUs go to pending workers.
    this.manager.afterStep(t);
    this.manager.startPending(t);
  }
}
