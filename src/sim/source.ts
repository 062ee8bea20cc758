import type { ArrivalQueue } from './arrival-queue.ts';
import type { RequestSpec, RequestTable } from './engine/request-table.ts';
import type { DependencyGraph, Workload } from './workload/workload.ts';

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
  /**
   * Why request `id`, just admitted, is rejected on arrival without running (null: it runs). Sources whose
   * requests wait for others define it (a request whose predecessor was rejected can never run as described).
   */
  refuse?(id: number): string | null;
  /** Request `id` was dispatched at t (sources whose requests wait for others' dispatch define it). */
  arrived?(id: number, t: number, q: ArrivalQueue): void;
  /**
   * Request `id` ended at t (`completed`: it finished, rather than being rejected or cancelled): its
   * session's next turn, or the next closed-loop dispatch, is scheduled.
   */
  ended(id: number, t: number, q: ArrivalQueue, completed: boolean): void;
}

/** Which dependency edges an event releases. */
const ON_COMPLETION = 1;
const ON_DISPATCH = 2;

/**
 * Release state of a workload's dependency graph (agentic traces): a request arrives once every edge to it was
 * released (its predecessor completed, or was dispatched) at the latest release plus that edge's delay, and
 * not before its own earliest start. A request with a predecessor that never ran (rejected, or itself refused)
 * still arrives, when its last edge is released, and is refused at once, which in turn releases those waiting
 * for it: a run never waits forever (the parser already refused cycles and missing ids).
 */
class DependencyRelease {
  private readonly graph: DependencyGraph;
  private readonly speedup: number;
  private readonly waits: Int32Array;
  private readonly readyAt: Float64Array;
  private readonly doomed: Uint8Array;
  /** Ties of ready time broken by this rank (the queue's sequence number), else by release order. */
  private readonly readyOrder: Int32Array | null;

  constructor(graph: DependencyGraph, size: number, speedup: number, readyOrder: Int32Array | null) {
    this.graph = graph;
    this.readyOrder = readyOrder;
    this.speedup = speedup;
    this.waits = graph.waits.slice();
    this.doomed = new Uint8Array(size);
    this.readyAt = new Float64Array(size).fill(Number.NEGATIVE_INFINITY);
    const nb = graph.notBeforeMs;
    if (nb) for (let i = 0; i < size; i++) if (!Number.isNaN(nb[i])) this.readyAt[i] = nb[i] / speedup;
  }

  get hasDispatchEdges(): boolean {
    return this.graph.onDispatch !== null;
  }

  isDoomed(id: number): boolean {
    return this.doomed[id] === 1;
  }

  /** Releases the edges of `p` of the given kinds at t; `failed`: p never ran, so those waiting cannot. */
  release(p: number, t: number, kinds: number, failed: boolean, q: ArrivalQueue): void {
    const g = this.graph;
    const dispatch = g.onDispatch;
    for (let k = g.offsets[p]; k < g.offsets[p + 1]; k++) {
      const onDispatch = dispatch !== null && dispatch[k] === 1;
      if ((kinds & (onDispatch ? ON_DISPATCH : ON_COMPLETION)) === 0) continue;
      const d = g.ids[k];
      if (failed) this.doomed[d] = 1;
      const ready = t + g.delayMs[k] / this.speedup;
      if (ready > this.readyAt[d]) this.readyAt[d] = ready;
      if (--this.waits[d] > 0) continue;
      const at = this.doomed[d] === 1 ? t : Math.max(t, this.readyAt[d]);
      if (this.readyOrder !== null) q.push(at, d, this.readyOrder[d]);
      else q.push(at, d);
    }
  }
}

/** A workload held in memory: its first turns arrive at their (sped-up) timestamps, or in a closed loop. */
export class WorkloadSource implements RequestSource {
  readonly workload: Workload;
  private readonly arrivals: ArrivalSpec;
  private readonly speedup: number;
  private unitOrder: number[] = [];
  private nextUnit = 0;
  private readonly dependencies: DependencyRelease | null = null;

  readonly contentSpace: number;
  readonly contents: number;
  readonly bounded = true;

  constructor(workload: Workload, arrivals: ArrivalSpec) {
    this.contents = workload.hashIds.length;
    this.workload = workload;
    this.arrivals = arrivals;
    this.speedup = arrivals.kind === 'trace' ? arrivals.speedup : 1;
    if (workload.dependents) {
      if (arrivals.kind === 'closed-loop')
        throw new RangeError(
          'requests that wait for others (agentic traces) replay on their own schedule, not with a concurrency',
        );
      this.dependencies = new DependencyRelease(
        workload.dependents,
        workload.size,
        this.speedup,
        workload.readyOrder ?? null,
      );
      // Without dispatch edges, the simulation need not report dispatches.
      if (!this.dependencies.hasDispatchEdges) this.arrived = undefined;
    } else {
      this.refuse = undefined;
      this.arrived = undefined;
    }
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
    sharedBlocks: undefined,
    nextFrom: undefined,
  };

  admit(id: number, req: RequestTable): number {
    const w = this.workload;
    const spec = this.spec;
    spec.inputLength = w.inputLength[id];
    spec.outputLength = w.outputLength[id];
    spec.hashIds = w.hashIds;
    spec.hashFrom = w.hashOffsets[id];
    spec.source = id;
    const cont = w.promptContinues;
    if (cont && cont[id] === 1 && w.nextTurn[id] >= 0) {
      // Its output blocks the next turn's prompt repeats take that prompt's keys (see RequestSpec).
      const next = w.nextTurn[id];
      const bs = req.blockSize;
      const own = Math.floor(spec.inputLength / bs);
      const through = Math.floor((spec.inputLength + spec.outputLength) / bs);
      spec.sharedBlocks = Math.max(own, Math.min(through, Math.floor(w.inputLength[next] / bs)));
      spec.nextFrom = w.hashOffsets[next];
    } else {
      spec.sharedBlocks = undefined;
      spec.nextFrom = undefined;
    }
    return req.admit(spec);
  }

  refuse?(id: number): string | null {
    return (this.dependencies as DependencyRelease).isDoomed(id)
      ? 'waits for a request that was rejected'
      : null;
  }

  arrived?(id: number, t: number, q: ArrivalQueue): void {
    const d = this.dependencies as DependencyRelease;
    // One refused on arrival never really ran, so those waiting for its dispatch cannot either.
    d.release(id, t, ON_DISPATCH, d.isDoomed(id), q);
  }

  ended(id: number, t: number, q: ArrivalQueue, completed: boolean): void {
    const next = this.workload.nextTurn[id];
    if (next >= 0) {
      q.push(t + this.workload.delayMs[next] / this.speedup, next);
    } else if (this.arrivals.kind === 'closed-loop' && this.nextUnit < this.unitOrder.length) {
      q.push(t, this.unitOrder[this.nextUnit++]);
    }
    this.dependencies?.release(id, t, ON_COMPLETION, !completed, q);
  }
}
