import type { ClusterRole } from './config.ts';

/**
 * Worker lifecycle and its bookkeeping. A worker the planner adds is Pending until its GPUs are free within
 * the budget (only while draining workers still hold them), then Starting for the startup time (it holds GPUs
 * but serves nothing), then Active. Removal cancels Pending and Starting workers first, then drains Active
 * ones: a Draining worker takes no new requests, finishes what it has, and releases its GPUs when empty.
 *
 * GPU-hours are the integral of GPUs held (Starting + Active + Draining) over time, kept as a step function
 * so the report can integrate it over exactly the window it reports on.
 */
export const WorkerState = { Pending: 0, Starting: 1, Active: 2, Draining: 3, Removed: 4 } as const;
export type WorkerStateValue = (typeof WorkerState)[keyof typeof WorkerState];
const STATE_NAMES = ['pending', 'starting', 'active', 'draining', 'removed'] as const;

export interface ScalingEvent {
  t_s: number;
  role: ClusterRole;
  from: number;
  to: number;
  direction: 'up' | 'down';
  /** True when the planner only advised it (advisory mode). */
  advisory?: boolean;
}

export interface WorkerTimes {
  worker: number;
  role: ClusterRole;
  gpus: number;
  /** When the planner asked for it (0 for initial workers), got GPUs, became ready, began draining, left. */
  requested_s: number;
  started_s: number | null;
  ready_s: number | null;
  drain_s: number | null;
  removed_s: number | null;
  cancelled: boolean;
}

/** Replica counts per role and GPUs held per state, after each change (a step function of time). */
export interface FleetTimeline {
  t_ms: number[];
  roles: Record<string, { starting: number[]; active: number[]; draining: number[] }>;
  gpus: { starting: number[]; active: number[]; draining: number[] };
}

export class Fleet {
  private readonly state: WorkerStateValue[] = [];
  private readonly roleOf: ClusterRole[] = [];
  private readonly gpusOf: number[] = [];
  private readonly times: WorkerTimes[] = [];
  private readonly roles: ClusterRole[];
  /** counts[role][state] */
  private readonly counts: Map<ClusterRole, number[]> = new Map();
  private readonly gpuByState = [0, 0, 0, 0, 0];
  readonly timeline: FleetTimeline;
  readonly events: ScalingEvent[] = [];

  constructor(roles: ClusterRole[]) {
    this.roles = roles;
    for (const r of roles) this.counts.set(r, [0, 0, 0, 0, 0]);
    this.timeline = {
      t_ms: [],
      roles: Object.fromEntries(roles.map((r) => [r, { starting: [], active: [], draining: [] }])),
      gpus: { starting: [], active: [], draining: [] },
    };
  }

  /** Registers worker `e` (engine index; indices arrive in order) in `state`. */
  add(e: number, role: ClusterRole, gpus: number, state: WorkerStateValue, tMs: number): void {
    if (e !== this.state.length) throw new Error(`fleet: worker ${e} registered out of order`);
    this.state.push(WorkerState.Removed);
    this.roleOf.push(role);
    this.gpusOf.push(gpus);
    this.times.push({
      worker: e,
      role,
      gpus,
      requested_s: tMs / 1000,
      started_s: null,
      ready_s: null,
      drain_s: null,
      removed_s: null,
      cancelled: false,
    });
    (this.counts.get(role) as number[])[WorkerState.Removed]++;
    this.set(e, state, tMs);
  }

  stateOf(e: number): WorkerStateValue {
    return this.state[e];
  }

  count(role: ClusterRole, state: WorkerStateValue): number {
    return (this.counts.get(role) as number[])[state];
  }

  /** Workers the planner counts on: Pending, Starting and Active (not Draining). */
  planned(role: ClusterRole): number {
    const c = this.counts.get(role) as number[];
    return c[WorkerState.Pending] + c[WorkerState.Starting] + c[WorkerState.Active];
  }

  /** GPUs held now (Starting, Active, Draining). */
  get heldGpus(): number {
    return (
      this.gpuByState[WorkerState.Starting] +
      this.gpuByState[WorkerState.Active] +
      this.gpuByState[WorkerState.Draining]
    );
  }

  set(e: number, next: WorkerStateValue, tMs: number): void {
    const prev = this.state[e];
    if (prev === next) return;
    const role = this.roleOf[e];
    const c = this.counts.get(role) as number[];
    c[prev]--;
    c[next]++;
    this.gpuByState[prev] -= this.gpusOf[e];
    this.gpuByState[next] += this.gpusOf[e];
    this.state[e] = next;
    const w = this.times[e];
    const s = tMs / 1000;
    if (next === WorkerState.Starting) w.started_s = s;
    if (next === WorkerState.Active) {
      if (w.started_s === null) w.started_s = s;
      w.ready_s = s;
    }
    if (next === WorkerState.Draining) w.drain_s = s;
    if (next === WorkerState.Removed) {
      w.removed_s = s;
      if (w.ready_s === null) w.cancelled = true;
    }
    this.sample(tMs);
  }

  private sample(tMs: number): void {
    const tl = this.timeline;
    let i = tl.t_ms.length - 1;
    if (i < 0 || tl.t_ms[i] !== tMs) {
      tl.t_ms.push(tMs);
      i++;
    }
    for (const r of this.roles) {
      const c = this.counts.get(r) as number[];
      const row = tl.roles[r];
      row.starting[i] = c[WorkerState.Starting] + c[WorkerState.Pending];
      row.active[i] = c[WorkerState.Active];
      row.draining[i] = c[WorkerState.Draining];
    }
    tl.gpus.starting[i] = this.gpuByState[WorkerState.Starting];
    tl.gpus.active[i] = this.gpuByState[WorkerState.Active];
    tl.gpus.draining[i] = this.gpuByState[WorkerState.Draining];
  }

  workerTimes(): WorkerTimes[] {
    return this.times.map((t) => ({ ...t }));
  }

  static stateName(s: WorkerStateValue): string {
    return STATE_NAMES[s];
  }
}

/** GPU-milliseconds held over [0, endMs] from a timeline, per state. */
export function integrateGpus(
  tl: FleetTimeline,
  endMs: number,
): { starting: number; active: number; draining: number } {
  const out = { starting: 0, active: 0, draining: 0 };
  for (let i = 0; i < tl.t_ms.length; i++) {
    const from = tl.t_ms[i];
    if (from >= endMs) break;
    const to = Math.min(endMs, i + 1 < tl.t_ms.length ? tl.t_ms[i + 1] : endMs);
    out.starting += tl.gpus.starting[i] * (to - from);
    out.active += tl.gpus.active[i] * (to - from);
    out.draining += tl.gpus.draining[i] * (to - from);
  }
  return out;
}
