import type { ArrivalQueue } from './arrival-queue.ts';
import type { RequestSpec, RequestTable } from './engine/request-table.ts';
import type { Workload } from './workload/workload.ts';

export type ArrivalSpec =
  /** Replay first-turn timestamps, compressed by `speedup` (arrival gaps and inter-turn delays divided). */
  | { kind: 'trace'; speedup: number }
  /** Keep at most `concurrency` requests (or sessions) in flight; arrivals are stamped at dispatch. */
  | { kind: 'closed-loop'; concurrency: number };

/**
 * Where a simulation's requests come from, and when they arrive: a workload held in memory, a trace read as
 * the run goes on (stream-source.ts), or calls from outside (live.ts). Requests are named by the source's own
 * ids until they arrive; then each takes a slot of the request table for as long as it lives.
 */
export interface RequestSource {
  /** Content ids of prompts are dense below this (0: not known to be), which indexes them faster. */
  readonly contentSpace?: number;
  /** Content ids the prompts hold in all (a size hint; 0: unknown). */
  readonly contents?: number;
  /**
   * The requests are all in memory already (a workload): its keys never outgrow it, so compacting them saves
   * nothing. Unbounded sources (streams, live) compact.
   */
  readonly bounded?: boolean;
  /** Schedules the arrivals known at the start. */
  start(q: ArrivalQueue): void;
  /**
   * Whether every arrival up to time t is known (scheduled or derivable when its predecessor ends); when not,
   * the simulation stops before t until its driver has fed the source more input.
   */
  ready(t: number): boolean;
  /**
   * Earliest time an arrival not yet scheduled on the queue may have (Infinity when all are scheduled): with
   * the queue's next arrival, how far an engine may plan ahead without missing one.
   */
  nextUnscheduled(): number;
  /** How reports name request `id` while it lives (a trace line), when not by its id. */
  labelOf?(id: number): number;
  /** Request `id` arrives: writes it into the table, returns its slot. */
  admit(id: number, req: RequestTable): number;
  /** Request `id` ended at t: its session's next turn, or the next closed-loop dispatch, is scheduled. */
  ended(id: number, t: number, q: ArrivalQueue): void;
}

/** A workload held in memory: its first turns arrive at their (sped-up) timestamps, or in a closed loop. */
export class WorkloadSource implements RequestSource {
  readonly workload: Workload;
  private readonly arrivals: ArrivalSpec;
  private readonly speedup: number;
  private unitOrder: number[] = [];
  private nextUnit = 0;

  readonly contentSpace: number;
  readonly contents: number;
  readonly bounded = true;

  constructor(workload: Workload, arrivals: ArrivalSpec) {
    this.contents = workload.hashIds.length;
    this.workload = workload;
    this.arrivals = arrivals;
    this.speedup = arrivals.kind === 'trace' ? arrivals.speedup : 1;
    // A workload's content ids are dense (its builder numbers them); 4 bytes per id to index them.
    let space = 0;
    for (let k = 0; k < workload.hashIds.length; k++)
      if (workload.hashIds[k] >= space) space = workload.hashIds[k] + 1;
    this.contentSpace = space <= 4 * workload.hashIds.length + 1024 ? space : 0;
  }

  start(q: ArrivalQueue): void {
    const w = this.workload;
    const firsts: number[] = [];
    for (let i = 0; i < w.size; i++) if (!Number.isNaN(w.arrivalMs[i])) firsts.push(i);
    if (this.arrivals.kind === 'trace') {
      const times = new Float64Array(firsts.length);
      const ids = new Int32Array(firsts.length);
      for (let k = 0; k < firsts.length; k++) {
        ids[k] = firsts[k];
        times[k] = w.arrivalMs[firsts[k]] / this.speedup;
      }
      q.setStatic(times, ids); // the workload keeps first turns sorted by arrival
    } else {
      // Closed loop ignores timestamps and dispatches sessions in file order.
      const line = w.sourceLine;
      this.unitOrder = line ? firsts.slice().sort((a, b) => line[a] - line[b] || a - b) : firsts;
      const c = Math.max(1, this.arrivals.concurrency);
      for (let k = 0; k < c && k < this.unitOrder.length; k++) q.push(0, this.unitOrder[this.nextUnit++]);
    }
  }

  ready(): boolean {
    return true;
  }

  nextUnscheduled(): number {
    return Number.POSITIVE_INFINITY;
  }

  /** One spec object reused for every admission (nothing allocated per request). */
  private readonly spec: RequestSpec = {
    inputLength: 0,
    outputLength: 0,
    hashIds: [],
    hashFrom: 0,
    source: 0,
  };

  admit(id: number, req: RequestTable): number {
    const w = this.workload;
    const spec = this.spec;
    spec.inputLength = w.inputLength[id];
    spec.outputLength = w.outputLength[id];
    spec.hashIds = w.hashIds;
    spec.hashFrom = w.hashOffsets[id];
    spec.source = id;
    return req.admit(spec);
  }

  ended(id: number, t: number, q: ArrivalQueue): void {
    const next = this.workload.nextTurn[id];
    if (next >= 0) {
      q.push(t + this.workload.delayMs[next] / this.speedup, next);
    } else if (this.arrivals.kind === 'closed-loop' && this.nextUnit < this.unitOrder.length) {
      q.push(t, this.unitOrder[this.nextUnit++]);
    }
  }
}
