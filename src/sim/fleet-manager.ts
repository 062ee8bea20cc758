import type { Engine } from './engine/engine.ts';
import type { ClusterRole } from './planner/config.ts';
import { Fleet, WorkerState } from './planner/fleet.ts';

/** What changing the fleet needs from the simulation: its pools, and adding and removing workers. */
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

/**
 * The workers of a cluster over time, as Dynamo's Planner and operator move them: a worker added is Pending
 * until its GPUs fit the budget (only while draining workers still hold them), then Starting for its startup
 * time (holding GPUs, serving nothing), then Active. Scaling down cancels Pending and Starting workers first
 * (newest first), then drains Active ones, newest first (as the reference does, and as Kubernetes scales a
 * ReplicaSet down): a Draining worker takes no new requests and leaves once it holds nothing. A rolling
 * replacement (a new engine or timing spec for a pool) starts new workers `maxSurge` at a time and drains one
 * old worker per new one that becomes ready.
 *
 * The simulation calls `activateDue(t)` after settling a time (workers ready by then serve the arrivals at
 * t) and `afterStep(t)` at its end; `nextEventMs()` is when it must look again. After `scaleTo` the caller
 * lets drained workers leave (`afterStep`) and then starts pending ones (`startPending`), in that order.
 */
export class FleetManager {
  readonly fleet: Fleet;
  private readonly cluster: Cluster;
  private readonly roles: readonly ClusterRole[];
  /** GPUs the fleet may hold at once (< 0: no limit). */
  budget: number;
  /** Workers per pool, oldest first, by state of interest. */
  private readonly pending: { engine: Engine; startupMs: number }[][];
  private readonly starting: { engine: Engine; readyMs: number }[][];
  private readonly draining: Engine[] = [];
  private nextReady = Number.POSITIVE_INFINITY;
  /** When each worker (engine index) became ready. */
  readonly readyMs: number[] = [];
  /** Per pool, a rolling replacement in progress: the old workers still serving, and how many to start. */
  private readonly replacing: ({ old: Engine[]; toStart: number; surge: number; startupMs: number } | null)[];
  /** Told of each worker that becomes ready. */
  onReady: ((e: Engine, t: number) => void) | null = null;

  constructor(cluster: Cluster, roles: readonly ClusterRole[], budget = -1) {
    this.cluster = cluster;
    this.roles = roles;
    this.budget = budget;
    this.fleet = new Fleet([...roles]);
    roles.forEach((role, p) => {
      for (const e of cluster.poolEngines(p)) {
        this.fleet.add(e.index, role, e.gpus, WorkerState.Active, 0);
        this.readyMs[e.index] = 0;
        cluster.setEligible(e, true);
      }
    });
    this.pending = roles.map(() => []);
    this.starting = roles.map(() => []);
    this.replacing = roles.map(() => null);
  }

  /** Next time a worker becomes ready (Infinity when none is starting). */
  nextEventMs(): number {
    return this.nextReady;
  }

  /** Workers ready by t start serving. */
  activateDue(t: number): void {
    if (this.nextReady <= t) this.activateReady(t);
  }

  /** Drained workers that hold nothing leave; pending workers get the GPUs they free. */
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

  /**
   * Pool p to `to` workers (counting Pending, Starting and Active ones) from t: new workers take
   * `startupMs` to start once they have GPUs; removals as the class comment says.
   */
  scaleTo(p: number, to: number, t: number, startupMs: number): void {
    const role = this.roles[p];
    const from = this.fleet.planned(role);
    for (let n = from; n < to; n++) this.addWorker(p, t, startupMs);
    let remove = from - to;
    while (remove > 0 && this.pending[p].length > 0) {
      const { engine } = this.pending[p].pop() as { engine: Engine };
      this.fleet.set(engine.index, WorkerState.Removed, t);
      this.cluster.retire(engine);
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
      for (const e of active.slice(0, remove)) this.drain(e, t);
    }
  }

  /**
   * Replaces every worker of pool p, rolling: the caller has set the pool's new spec (new workers get it).
   * Up to `maxSurge` new workers start at once; each that becomes ready drains one old worker.
   */
  replace(p: number, t: number, startupMs: number, maxSurge: number): void {
    const old = this.cluster
      .poolEngines(p)
      .filter((e) => {
        const s = this.fleet.stateOf(e.index);
        return s === WorkerState.Active || s === WorkerState.Starting || s === WorkerState.Pending;
      })
      .sort((a, b) => a.index - b.index);
    // Workers not serving yet are simply replaced.
    for (const e of old) {
      if (this.fleet.stateOf(e.index) === WorkerState.Active) continue;
      this.removeUnstarted(p, e, t);
    }
    const serving = old.filter((e) => this.fleet.stateOf(e.index) === WorkerState.Active);
    const surge = Math.max(1, maxSurge);
    const state = { old: serving, toStart: old.length, surge, startupMs };
    this.replacing[p] = state;
    this.startReplacements(p, t);
  }

  /** Role of pool p. */
  roleOf(p: number): ClusterRole {
    return this.roles[p];
  }

  /** Workers of pool p planned (Pending, Starting, Active). */
  planned(p: number): number {
    return this.fleet.planned(this.roles[p]);
  }

  private startReplacements(p: number, t: number): void {
    const r = this.replacing[p];
    if (r === null) return;
    while (r.toStart > 0 && this.pending[p].length + this.starting[p].length < r.surge) {
      this.addWorker(p, t, r.startupMs);
      r.toStart--;
    }
    if (r.toStart === 0 && r.old.length === 0) this.replacing[p] = null;
  }

  private addWorker(p: number, t: number, startupMs: number): void {
    const e = this.cluster.addEngine(p);
    this.fleet.add(e.index, this.roles[p], e.gpus, WorkerState.Pending, t);
    this.pending[p].push({ engine: e, startupMs });
  }

  private removeUnstarted(p: number, e: Engine, t: number): void {
    const pi = this.pending[p].findIndex((x) => x.engine === e);
    if (pi >= 0) this.pending[p].splice(pi, 1);
    const si = this.starting[p].findIndex((x) => x.engine === e);
    if (si >= 0) this.starting[p].splice(si, 1);
    this.fleet.set(e.index, WorkerState.Removed, t);
    this.cluster.retire(e);
  }

  private drain(e: Engine, t: number): void {
    this.fleet.set(e.index, WorkerState.Draining, t);
    this.cluster.setEligible(e, false);
    this.draining.push(e);
  }

  /** Removes a worker at once (it was killed): it holds nothing any more. */
  kill(e: Engine, t: number): void {
    for (let p = 0; p < this.roles.length; p++) {
      const pi = this.pending[p].findIndex((x) => x.engine === e);
      if (pi >= 0) this.pending[p].splice(pi, 1);
      const si = this.starting[p].findIndex((x) => x.engine === e);
      if (si >= 0) this.starting[p].splice(si, 1);
      const r = this.replacing[p];
      if (r !== null) r.old = r.old.filter((x) => x !== e);
    }
    const di = this.draining.indexOf(e);
    if (di >= 0) this.draining.splice(di, 1);
    this.fleet.set(e.index, WorkerState.Removed, t);
    this.cluster.retire(e);
    this.startPending(t);
  }

  private activateReady(t: number): void {
    let next = Number.POSITIVE_INFINITY;
    for (let p = 0; p < this.starting.length; p++) {
      const list = this.starting[p];
      for (let i = 0; i < list.length; ) {
        const s = list[i];
        if (s.readyMs <= t) {
          this.fleet.set(s.engine.index, WorkerState.Active, t);
          this.readyMs[s.engine.index] = t;
          this.cluster.setEligible(s.engine, true);
          list.splice(i, 1);
          this.onReady?.(s.engine, t);
          this.replacedOne(p, t);
        } else {
          if (s.readyMs < next) next = s.readyMs;
          i++;
        }
      }
    }
    this.nextReady = Math.min(next, this.nextStartingReady());
  }

  /** A new worker of pool p became ready during a rolling replacement: one old worker drains. */
  private replacedOne(p: number, t: number): void {
    const r = this.replacing[p];
    if (r === null) return;
    const old = r.old.shift();
    if (old !== undefined) this.drain(old, t);
    this.startReplacements(p, t);
    this.startPending(t);
  }

  private nextStartingReady(): number {
    let next = Number.POSITIVE_INFINITY;
    for (const list of this.starting) for (const s of list) if (s.readyMs < next) next = s.readyMs;
    return next;
  }

  /** Pending workers start once their GPUs fit under the budget next to those still held. */
  startPending(t: number): void {
    for (let p = 0; p < this.pending.length; p++) {
      const list = this.pending[p];
      while (list.length > 0) {
        const { engine: e, startupMs } = list[0];
        if (this.budget >= 0 && this.fleet.heldGpus + e.gpus > this.budget) return;
        list.shift();
        if (startupMs <= 0) {
          this.fleet.set(e.index, WorkerState.Active, t);
          this.readyMs[e.index] = t;
          this.cluster.setEligible(e, true);
          this.onReady?.(e, t);
          this.replacedOne(p, t);
        } else {
          this.fleet.set(e.index, WorkerState.Starting, t);
          const readyMs = t + startupMs;
          this.starting[p].push({ engine: e, readyMs });
          if (readyMs < this.nextReady) this.nextReady = readyMs;
        }
      }
    }
  }
}
