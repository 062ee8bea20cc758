/**
 * The live (incremental) simulation: the same core as `simulate()`, driven from outside on a virtual clock,
 * for the twin (issue 13) and for streaming replays of traces too large to hold in memory.
 *
 * Clock. Virtual milliseconds from 0. `advanceTo(t)` processes every event with time <= t and none after it:
 * passes ending by t, KV transfers, arrivals due (including session follow-ups and delayed submissions),
 * Planner ticks, workers becoming ready, faults. Afterwards every engine is brought up to date to t (lazily
 * planned decode runs are applied up to the pass in flight at t), so token counts are current. Time never goes
 * back: `advanceTo` with t < `now` is an error. `nextEventTime()` is the time of the next event (Infinity
 * when nothing is scheduled), so a driver can sleep until then instead of polling.
 *
 * Causality. Engines apply a pass's effects when it starts and stamp its tokens at its end (the batch core's
 * model). Observers never see the future: a token, a first token, a finish stamped at a time after `now` is
 * held back and delivered by the `advanceTo` call that passes its time. Per request, callbacks come in time
 * order; across requests, in time order, ties in the core's processing order.
 *
 * Requests. `submit(req)` at `now` or later (`atMs`, default `now`) returns an id: a small integer, recycled
 * once the request has ended (finished, rejected or cancelled) and the observer was told; callers must not use
 * an id after its end callback. Prompts are described as traces do: `hashIds` are content ids (any integers
 * in [0, 2^53)), one per `traceBlockSize` tokens (the last one may cover a partial block), equal leading ids =
 * shared prompt prefix; the core chains them into prefix-cache keys at the engines' block size (which need not
 * divide the trace block size). Content ids no cached block refers to are forgotten (the interned key space is
 * compacted as it grows), so ids may be unbounded over a long run. Sessions: a request with
 * `after: {id, delayMs}` arrives `delayMs` after request `id` completes (at once if it already has).
 *
 * Cancellation. `cancel(id)` at `now` (a client disconnected): a request not yet arrived is dropped at once;
 * one on a worker leaves at that worker's next scheduling point (now if it is idle, else when the pass in
 * flight ends, as vLLM processes aborts between steps), its KV blocks released then (blocks already computed
 * stay cached, as in vLLM); its tokens stamped after `now` are never delivered. Disaggregated: a request on
 * a prefill worker or in its KV hand-off is dropped where the hand-off lands (the decode worker's queue), so
 * both sides release their KV through the normal path. It ends with `onEnded(id, t, 'cancelled')` and counts as
 * cancelled, never as completed.
 *
 * Progress (observer; every argument a primitive, nothing allocated per call):
 *   - `onRouted(id, worker, t)`: the worker (stable id) that took the request (prefill worker when
 *     disaggregated);
 *   - `onFirstToken(id, t, cachedTokens)`: prompt tokens served from the prefix cache (every KV tier) on the
 *     worker that prefilled it, as Dynamo's `cached_tokens`;
 *   - `onToken(id, index, t)`: every output token (index 1 = the first token, also announced above); a decode
 *     run of many passes delivers all its tokens, each at its own time;
 *   - `onEnded(id, t, reason)`: 'finished' | 'cancelled' | one of the rejection reasons ('prompt larger than
 *     the KV cache', 'worker killed', ...). `requestInfo(id)` (until then) gives the timeline so far: arrival,
 *     first admission (queue wait), prefill end, decode worker.
 *
 * Fleet at run time, pools addressed by role ('aggregated' | 'prefill' | 'decode'):
 *   - `setReplicas(role, n, {startupMs})`: new workers serve after startupMs; removed ones (newest first,
 *     starting ones before ready ones) stop taking new work and drain without losing requests, leaving when
 *     empty (the Planner runtime's lifecycle);
 *   - `passTimeFactor` (both): the workers the pool creates from then on price their passes that many times
 *     slower (a fault for the new settings only; the pool keeps it until another call sets one);
 *   - `replacePool(role, spec, {startupMs, maxSurge})`: a rolling restart onto a new engine / timing / GPUs
 *     spec (TP or engine-argument change): up to maxSurge (default 1) new workers start; each one that becomes
 *     ready drains one old worker. The KV block size cannot change at run time (prefix keys depend on it):
 *     build a new simulation for that;
 *   - `setRouter(spec)`: routing of later arrivals; requests in flight keep their worker;
 *   - `setPlanner(spec | null)`: Dynamo's Planner drives the replicas (its decisions reported through
 *     `onPlannerDecision(role, replicas, t)`), or stops;
 *   - `workers()`: per worker {id, role, state, activeBlocks, totalBlocks, usage, prefixHitRate (cumulative:
 *     prompt tokens served from cache / prompt tokens admitted), waiting, running}.
 *
 * Faults: `setPassTimeFactor(target, factor)` (> 0; passes starting afterwards take factor x as long; target
 * = worker ids, a role or 'all': the workers alive now); `stall(target, untilMs)` (no pass starts before untilMs; Infinity = until
 * cleared by `stall(target, now)`); `killWorker(id)`: the worker leaves at once, and each of its requests is
 * re-routed from scratch to the remaining workers (its prompt recomputed, tokens already delivered kept, as
 * Dynamo's frontend migrates a request whose worker stream broke; `migrationLimit` in the options, default 3,
 * after which the request ends with 'worker killed').
 *
 * Memory is bounded by live requests and KV contents: request slots are recycled, per-request state lives
 * only while a request lives, the interned key space is compacted, and the batch statistics (the collector's
 * report columns) are not kept unless `collect: true` (streaming replays keep compact per-request results).
 *
 * Determinism: the same options, seed and sequence of calls at the same virtual times give the same callbacks.
 */
import type { ArrivalQueue } from './arrival-queue.ts';
import { grown, RequestStatus, type RequestTable } from './engine/request-table.ts';
import { WorkerState } from './planner/fleet.ts';
import type { PlannerSpec } from './planner/runtime.ts';
import { type RouterSpec, Simulation, type SimulationOptions } from './simulation.ts';
import type { RequestSource } from './source.ts';

/** A pool of the cluster. */
export type LiveRole = 'aggregated' | 'prefill' | 'decode';

export interface LiveRequest {
  inputLength: number;
  /** Output tokens to generate (0 = the request ends with its prefill). */
  outputLength: number;
  /** Content ids, one per `traceBlockSize` prompt tokens (the last may cover a partial block). */
  hashIds: ArrayLike<number>;
  /** Arrival time (>= now); default now. */
  atMs?: number;
  /** A session's next turn: arrives `delayMs` after request `id` completes. */
  after?: { id: number; delayMs: number };
}

export type LiveEndReason = 'finished' | 'cancelled' | string;

export interface LiveObserver {
  onRouted?(id: number, worker: number, tMs: number): void;
  onFirstToken?(id: number, tMs: number, cachedTokens: number): void;
  onToken?(id: number, index: number, tMs: number): void;
  onEnded?(id: number, tMs: number, reason: LiveEndReason): void;
  onPlannerDecision?(role: LiveRole, replicas: number, tMs: number): void;
}

export interface LiveRequestInfo {
  arrivalMs: number;
  /** First admission to a running batch (queue wait = this - arrival); NaN before. */
  firstAdmitMs: number;
  /** End of its prefill (first token on an aggregated worker); NaN before. */
  prefillDoneMs: number;
  /** Tokens produced (delivered) so far. */
  tokens: number;
  /** Worker ids: prefill (or aggregated) and decode (-1 when none). */
  prefillWorker: number;
  decodeWorker: number;
  cachedTokens: number;
}

export type LiveWorkerState = 'starting' | 'ready' | 'draining' | 'gone';

export interface LiveWorker {
  id: number;
  role: LiveRole;
  state: LiveWorkerState;
  activeBlocks: number;
  totalBlocks: number;
  /** activeBlocks / totalBlocks. */
  usage: number;
  /** Cumulative prompt tokens served from the prefix cache / prompt tokens admitted (0 before any). */
  prefixHitRate: number;
  waiting: number;
  running: number;
}

/** A pool's engine, timing and GPUs per worker (block size fixed for the run). */
export type LivePoolSpec = Pick<SimulationOptions, 'engine' | 'timing' | 'gpusPerWorker'>;

export interface LiveOptions extends Omit<SimulationOptions, 'maxSimTimeMs' | 'arrivals' | 'driven'> {
  /** Tokens per content id of submitted requests (Mooncake: 512). */
  traceBlockSize: number;
  /** Times a request whose worker was killed is re-routed before it fails (default 3). */
  migrationLimit?: number;
  /** Keep the batch collector's per-request columns for a report (default false). */
  collect?: boolean;
}

export interface LiveSimulation {
  readonly now: number;
  advanceTo(tMs: number): void;
  nextEventTime(): number;
  submit(req: LiveRequest): number;
  cancel(id: number): void;
  requestInfo(id: number): LiveRequestInfo | null;
  setObserver(observer: LiveObserver | null): void;
  setReplicas(role: LiveRole, replicas: number, opts?: { startupMs?: number; passTimeFactor?: number }): void;
  replacePool(
    role: LiveRole,
    spec: LivePoolSpec,
    opts?: { startupMs?: number; maxSurge?: number; passTimeFactor?: number },
  ): void;
  setRouter(spec: RouterSpec): void;
  setPlanner(spec: SimulationOptions['planner'] | null): void;
  setPassTimeFactor(target: number[] | LiveRole | 'all', factor: number): void;
  stall(target: number[] | LiveRole | 'all', untilMs: number): void;
  killWorker(id: number): void;
  workers(): LiveWorker[];
  /**
   * Requests of a pool routed to a worker but not yet admitted to its running batch (the simulated router
   * routes on arrival and holds no queue of its own, so this is the workers' waiting queues summed).
   */
  queued(role: LiveRole): number;
  /** What it holds, for checking that memory stays bounded: request slots, prefix keys, buffered events. */
  memory?(): { requestSlots: number; liveRequests: number; prefixKeys: number; bufferedEvents: number };
}

/** Most prompt tokens one submitted request may have (bounded like trace rows). */
const MAX_TOKENS = 1 << 24;

/** Request states of the live source. */
const FREE = 0;
const SCHEDULED = 1;
const AFTER = 2;
const ARRIVED = 3;
const ENDED = 4;

/**
 * Requests submitted from outside: each id is scheduled on the arrival queue (or waits for its predecessor)
 * and enters the request table when it arrives. Ids are recycled once their end was delivered.
 */
class LiveSource implements RequestSource {
  readonly traceBlockSize: number;
  private queue: ArrivalQueue | null = null;
  state = new Uint8Array(64);
  input = new Int32Array(64);
  output = new Int32Array(64);
  hashes: (ArrayLike<number> | null)[] = [];
  slot = new Int32Array(64).fill(-1);
  /** Set when cancelled before it arrived. */
  withdrawn = new Uint8Array(64);
  /** End time of an ended request whose end is not yet delivered. */
  endMs = new Float64Array(64);
  /** Successors waiting for an id to end: [successor, delay]. */
  private readonly after = new Map<number, [number, number][]>();
  private readonly freeIds: number[] = [];
  private top = 0;

  constructor(traceBlockSize: number) {
    this.traceBlockSize = traceBlockSize;
  }

  start(q: ArrivalQueue): void {
    this.queue = q;
  }

  ready(): boolean {
    return true;
  }

  nextUnscheduled(): number {
    return Number.POSITIVE_INFINITY;
  }

  newId(): number {
    if (this.freeIds.length > 0) return this.freeIds.pop() as number;
    const id = this.top++;
    if (id >= this.state.length) {
      const n = this.state.length * 2;
      this.state = grown(this.state, n);
      this.input = grown(this.input, n);
      this.output = grown(this.output, n);
      this.withdrawn = grown(this.withdrawn, n);
      this.endMs = grown(this.endMs, n);
      const s = grown(this.slot, n);
      s.fill(-1, n / 2);
      this.slot = s;
    }
    return id;
  }

  freeId(id: number): void {
    this.state[id] = FREE;
    this.hashes[id] = null;
    this.slot[id] = -1;
    this.withdrawn[id] = 0;
    this.freeIds.push(id);
  }

  schedule(id: number, at: number): void {
    this.state[id] = SCHEDULED;
    (this.queue as ArrivalQueue).push(at, id);
  }

  waitFor(id: number, predecessor: number, delayMs: number): void {
    this.state[id] = AFTER;
    let list = this.after.get(predecessor);
    if (list === undefined) {
      list = [];
      this.after.set(predecessor, list);
    }
    list.push([id, delayMs]);
  }

  /** Drops a successor waiting for its predecessor (it was cancelled). */
  unwait(id: number): void {
    for (const [p, list] of this.after) {
      const i = list.findIndex(([s]) => s === id);
      if (i < 0) continue;
      list.splice(i, 1);
      if (list.length === 0) this.after.delete(p);
      return;
    }
  }

  admit(id: number, req: RequestTable): number {
    if (this.withdrawn[id] === 1) {
      // Cancelled before it arrived (its end already told): the id was kept for this moment.
      this.freeId(id);
      return -1;
    }
    this.state[id] = ARRIVED;
    const r = req.admit({
      inputLength: this.input[id],
      outputLength: this.output[id],
      hashIds: this.hashes[id] as ArrayLike<number>,
      hashFrom: 0,
      source: id,
    });
    this.slot[id] = r;
    return r;
  }

  ended(id: number, t: number, q: ArrivalQueue): void {
    this.state[id] = ENDED;
    this.endMs[id] = t;
    this.slot[id] = -1;
    const next = this.after.get(id);
    if (next === undefined) return;
    this.after.delete(id);
    for (const [s, delay] of next) {
      this.state[s] = SCHEDULED;
      q.push(t + delay, s);
    }
  }
}

// Observer events, delivered in (time, order) once `advanceTo` passes their time.
const EV_ROUTED = 0;
const EV_FIRST = 1;
const EV_TOKEN = 2;
const EV_ENDED = 3;

/** A time-ordered buffer of observer events on typed arrays (a binary heap on (time, sequence)). */
class EventBuffer {
  private time = new Float64Array(256);
  private seq = new Float64Array(256);
  private kind = new Uint8Array(256);
  private id = new Int32Array(256);
  private arg = new Float64Array(256);
  private len = 0;
  private next = 0;

  get size(): number {
    return this.len;
  }

  peekTime(): number {
    return this.len > 0 ? this.time[0] : Number.POSITIVE_INFINITY;
  }

  push(t: number, kind: number, id: number, arg: number): void {
    if (this.len === this.time.length) {
      const n = this.len * 2;
      this.time = grown(this.time, n);
      this.seq = grown(this.seq, n);
      this.kind = grown(this.kind, n);
      this.id = grown(this.id, n);
      this.arg = grown(this.arg, n);
    }
    const s = this.next++;
    let i = this.len++;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!(t < this.time[p] || (t === this.time[p] && s < this.seq[p]))) break;
      this.move(p, i);
      i = p;
    }
    this.time[i] = t;
    this.seq[i] = s;
    this.kind[i] = kind;
    this.id[i] = id;
    this.arg[i] = arg;
  }

  /** Sequence number the next event pushed gets. */
  get nextSeq(): number {
    return this.next;
  }

  /** The earliest event (read its fields before the next call): kind, id, arg, time, sequence. */
  popKind = 0;
  popId = 0;
  popArg = 0;
  popTime = 0;
  popSeq = 0;

  pop(): void {
    this.popKind = this.kind[0];
    this.popId = this.id[0];
    this.popArg = this.arg[0];
    this.popTime = this.time[0];
    this.popSeq = this.seq[0];
    const n = --this.len;
    if (n === 0) return;
    const t = this.time[n];
    const s = this.seq[n];
    const k = this.kind[n];
    const id = this.id[n];
    const a = this.arg[n];
    let i = 0;
    for (;;) {
      let c = 2 * i + 1;
      if (c >= n) break;
      if (
        c + 1 < n &&
        (this.time[c + 1] < this.time[c] ||
          (this.time[c + 1] === this.time[c] && this.seq[c + 1] < this.seq[c]))
      )
        c++;
      if (!(this.time[c] < t || (this.time[c] === t && this.seq[c] < s))) break;
      this.move(c, i);
      i = c;
    }
    this.time[i] = t;
    this.seq[i] = s;
    this.kind[i] = k;
    this.id[i] = id;
    this.arg[i] = a;
  }

  private move(from: number, to: number): void {
    this.time[to] = this.time[from];
    this.seq[to] = this.seq[from];
    this.kind[to] = this.kind[from];
    this.id[to] = this.id[from];
    this.arg[to] = this.arg[from];
  }
}

const ROLES: readonly LiveRole[] = ['aggregated', 'prefill', 'decode'];

function checkFactor(factor: number | undefined): void {
  if (factor !== undefined && !(factor > 0 && Number.isFinite(factor)))
    throw new RangeError(`passTimeFactor must be > 0, got ${factor}`);
}

/** Builds a live simulation (see the module comment for the contract). */
export function createLiveSimulation(options: LiveOptions): LiveSimulation {
  return new LiveSimulationImpl(options);
}

class LiveSimulationImpl implements LiveSimulation {
  private readonly sim: Simulation;
  private readonly source: LiveSource;
  private readonly req: RequestTable;
  private readonly events = new EventBuffer();
  private observer: LiveObserver | null = null;
  private time = 0;
  private readonly migrationLimit: number;
  private readonly reasons = new Map<number, string>();
  /** Per id: when its client cancelled it (NaN: not cancelled); tokens after that are not delivered. */
  private cancelledAt = new Float64Array(64).fill(Number.NaN);
  /** Per id: tokens delivered, migrations, and its timeline (kept until its end is delivered). */
  private delivered = new Int32Array(64);
  private migrations = new Int32Array(64);
  /** Per id: tokens it had before its last migration (its new tokens are numbered on from there). */
  private tokenBase = new Int32Array(64);
  /** Per id: token events buffered before this sequence number are from a killed worker's lost pass. */
  private staleBefore = new Float64Array(64);
  private arrivalMs = new Float64Array(64);
  private firstAdmitMs = new Float64Array(64);
  private prefillDoneMs = new Float64Array(64);
  private prefillWorker = new Int32Array(64);
  private decodeWorker = new Int32Array(64);
  private cachedTokens = new Int32Array(64);
  private freshContent = -3;

  constructor(options: LiveOptions) {
    this.migrationLimit = options.migrationLimit ?? 3;
    this.source = new LiveSource(options.traceBlockSize);
    this.sim = new Simulation(
      this.source,
      options.traceBlockSize,
      { ...options, arrivals: { kind: 'trace', speedup: 1 }, driven: true },
      null,
    );
    this.sim.start();
    this.req = this.sim.requests;
    const col = this.sim.collectorOf;
    col.tokenObserver = (r, count, t) => {
      const id = this.req.source[r];
      // A migrated request numbers its tokens on from those it had.
      const index = count + this.tokenBase[id];
      if (index === 1) this.events.push(t, EV_FIRST, id, Math.max(0, col.reusedBest[r]));
      this.events.push(t, EV_TOKEN, id, index);
    };
    this.sim.hooks = {
      routed: (r, e, t) => this.events.push(t, EV_ROUTED, this.req.source[r], e),
      ended: (r, t, reason) => {
        const id = this.req.source[r];
        this.snapshot(id, r);
        this.reasons.set(
          id,
          Number.isNaN(this.cancelledAt[id]) || reason === 'worker killed' ? reason : 'cancelled',
        );
        this.events.push(t, EV_ENDED, id, 0);
      },
    };
    const planner = this.sim.planner;
    if (planner !== null)
      planner.onDecision = (role, n, t) => this.observer?.onPlannerDecision?.(role as LiveRole, n, t);
  }

  get now(): number {
    return this.time;
  }

  setObserver(observer: LiveObserver | null): void {
    this.observer = observer;
  }

  advanceTo(tMs: number): void {
    if (!(tMs >= this.time) || !Number.isFinite(tMs))
      throw new RangeError(`advanceTo(${tMs}): time must be finite and not before now (${this.time})`);
    this.sim.advance(tMs);
    this.sim.materializeAll(tMs);
    this.time = tMs;
    this.deliver(tMs);
  }

  nextEventTime(): number {
    return Math.min(this.sim.nextEventTime(), this.events.peekTime());
  }

  submit(request: LiveRequest): number {
    const input = request.inputLength;
    const output = request.outputLength;
    if (!Number.isInteger(input) || input < 1 || input > MAX_TOKENS)
      throw new RangeError(`inputLength must be an integer in [1, ${MAX_TOKENS}], got ${input}`);
    if (!Number.isInteger(output) || output < 0 || output > MAX_TOKENS)
      throw new RangeError(`outputLength must be an integer in [0, ${MAX_TOKENS}], got ${output}`);
    const tb = this.source.traceBlockSize;
    const needed = Math.ceil(input / tb);
    const ids = request.hashIds;
    if (ids.length < needed)
      throw new RangeError(
        `hashIds: ${ids.length} ids cover fewer than the ${input} prompt tokens (${tb} each)`,
      );
    for (let k = 0; k < needed; k++) {
      const v = ids[k];
      if (!Number.isSafeInteger(v) || v < 0)
        throw new RangeError(`hashIds[${k}] must be an integer in [0, 2^53)`);
    }
    const at = request.atMs ?? this.time;
    if (!(at >= this.time) || !Number.isFinite(at))
      throw new RangeError(`atMs ${at} is before now (${this.time}) or not finite`);
    const after = request.after;
    if (after !== undefined) {
      const s = this.source.state[after.id];
      if (after.id < 0 || after.id >= this.source.state.length || s === FREE)
        throw new RangeError(`after.id ${after.id} is not a live request`);
      if (!(after.delayMs >= 0) || !Number.isFinite(after.delayMs))
        throw new RangeError(`after.delayMs must be finite and >= 0, got ${after.delayMs}`);
    }
    const id = this.source.newId();
    this.source.input[id] = input;
    this.source.output[id] = output;
    this.source.hashes[id] = Array.from({ length: needed }, (_, k) => ids[k]);
    this.ensureIds();
    this.cancelledAt[id] = Number.NaN;
    this.delivered[id] = 0;
    this.migrations[id] = 0;
    this.tokenBase[id] = 0;
    this.staleBefore[id] = 0;
    this.arrivalMs[id] = Number.NaN;
    this.firstAdmitMs[id] = Number.NaN;
    this.prefillDoneMs[id] = Number.NaN;
    this.prefillWorker[id] = -1;
    this.decodeWorker[id] = -1;
    this.cachedTokens[id] = 0;
    if (after === undefined) this.source.schedule(id, at);
    else if (this.source.state[after.id] === ENDED)
      this.source.schedule(id, Math.max(this.time, this.source.endMs[after.id] + after.delayMs));
    else this.source.waitFor(id, after.id, after.delayMs);
    return id;
  }

  cancel(id: number): void {
    const s = this.source.state[id];
    if (s === FREE || s === ENDED || !Number.isNaN(this.cancelledAt[id])) return;
    this.cancelledAt[id] = this.time;
    if (s === AFTER) {
      this.source.unwait(id);
      this.reasons.set(id, 'cancelled');
      this.source.state[id] = ENDED;
      this.events.push(this.time, EV_ENDED, id, 0);
      return;
    }
    if (s === SCHEDULED) {
      // Ends now; its id stays taken until its arrival comes up and is dropped.
      this.source.withdrawn[id] = 1;
      this.reasons.set(id, 'cancelled');
      this.events.push(this.time, EV_ENDED, id, 0);
      return;
    }
    this.sim.cancelRequest(this.source.slot[id], this.time);
  }

  requestInfo(id: number): LiveRequestInfo | null {
    const s = this.source.state[id];
    if (s === FREE) return null;
    const r = this.source.slot[id];
    if (s === ARRIVED && r >= 0) this.snapshot(id, r);
    return {
      arrivalMs: this.arrivalMs[id],
      firstAdmitMs: this.firstAdmitMs[id],
      prefillDoneMs: this.prefillDoneMs[id],
      tokens: this.delivered[id],
      prefillWorker: this.prefillWorker[id],
      decodeWorker: this.decodeWorker[id],
      cachedTokens: this.cachedTokens[id],
    };
  }

  setReplicas(
    role: LiveRole,
    replicas: number,
    opts: { startupMs?: number; passTimeFactor?: number } = {},
  ): void {
    if (!Number.isInteger(replicas) || replicas < 0 || replicas > 100_000)
      throw new RangeError(`replicas must be an integer in [0, 100000], got ${replicas}`);
    checkFactor(opts.passTimeFactor);
    this.sim.setReplicas(this.poolIndex(role), replicas, opts.startupMs ?? 0, this.time, opts.passTimeFactor);
  }

  replacePool(
    role: LiveRole,
    spec: LivePoolSpec,
    opts: { startupMs?: number; maxSurge?: number; passTimeFactor?: number } = {},
  ): void {
    checkFactor(opts.passTimeFactor);
    const p = this.poolIndex(role);
    const pool = this.sim.poolList[p];
    this.sim.replacePool(
      p,
      { ...spec, workers: pool.spec.workers },
      opts.startupMs ?? 0,
      opts.maxSurge ?? 1,
      this.time,
      opts.passTimeFactor,
    );
  }

  setRouter(spec: RouterSpec): void {
    this.sim.setRouter(spec, this.time);
  }

  setPlanner(spec: PlannerSpec | null): void {
    this.sim.setPlanner(spec ?? null, this.time);
    const planner = this.sim.planner;
    if (planner !== null)
      planner.onDecision = (role, n, t) => this.observer?.onPlannerDecision?.(role as LiveRole, n, t);
  }

  setPassTimeFactor(target: number[] | LiveRole | 'all', factor: number): void {
    if (!(factor > 0) || !Number.isFinite(factor)) throw new RangeError(`factor must be > 0, got ${factor}`);
    for (const e of this.targets(target)) this.sim.setPassTimeFactor(e, factor, this.time);
  }

  stall(target: number[] | LiveRole | 'all', untilMs: number): void {
    if (Number.isNaN(untilMs)) throw new RangeError('untilMs must be a time or Infinity');
    for (const e of this.targets(target)) this.sim.stallEngine(e, untilMs, this.time);
  }

  killWorker(id: number): void {
    const engine = this.sim.allEngines[id];
    if (engine === undefined || engine.residents === undefined)
      throw new RangeError(`worker ${id} is not alive`);
    const t = this.time;
    const held = this.sim.killEngine(id, t);
    for (const r of held) {
      const lid = this.req.source[r];
      // Tokens up to now were delivered; those stamped after now came from passes the worker never finished.
      const kept = this.delivered[lid];
      if (this.migrations[lid] >= this.migrationLimit) {
        this.staleBefore[lid] = this.events.nextSeq;
        this.sim.failRequest(r, t, 'worker killed');
        continue;
      }
      this.migrate(lid, r, kept, t);
    }
  }

  workers(): LiveWorker[] {
    const out: LiveWorker[] = [];
    const fm = this.sim.fleetManager;
    const col = this.sim.collectorOf;
    const engines = this.sim.allEngines;
    for (let e = 0; e < engines.length; e++) {
      const engine = engines[e];
      const st = fm?.fleet.stateOf(e) ?? WorkerState.Active;
      const state: LiveWorkerState =
        st === WorkerState.Active
          ? 'ready'
          : st === WorkerState.Draining
            ? 'draining'
            : st === WorkerState.Removed
              ? 'gone'
              : 'starting';
      const total = engine.totalBlocks ?? 0;
      const admitted = col.admittedTokens[e] ?? 0;
      out.push({
        id: e,
        role: engine.role,
        state,
        activeBlocks: engine.activeBlocks,
        totalBlocks: total,
        usage: total > 0 ? engine.activeBlocks / total : 0,
        prefixHitRate: admitted > 0 ? (col.cachedTokens[e] ?? 0) / admitted : 0,
        waiting: engine.waitingCount,
        running: engine.runningCount,
      });
    }
    return out;
  }

  memory(): { requestSlots: number; liveRequests: number; prefixKeys: number; bufferedEvents: number } {
    return {
      requestSlots: this.req.capacity,
      liveRequests: this.req.live,
      prefixKeys: this.req.keys.size,
      bufferedEvents: this.events.size,
    };
  }

  queued(role: LiveRole): number {
    const p = this.poolIndex(role);
    let n = 0;
    for (const e of this.sim.poolList[p].engines) n += e.waitingCount;
    return n;
  }

  // -----------------------------------------------------------------------------------------------------

  private deliver(t: number): void {
    const ev = this.events;
    const obs = this.observer;
    while (ev.size > 0 && ev.peekTime() <= t) {
      ev.pop();
      const id = ev.popId;
      const at = ev.popTime;
      switch (ev.popKind) {
        case EV_ROUTED:
          obs?.onRouted?.(id, ev.popArg, at);
          break;
        case EV_FIRST:
          if (at > this.cancelledAt[id] || ev.popSeq < this.staleBefore[id]) break;
          obs?.onFirstToken?.(id, at, ev.popArg);
          break;
        case EV_TOKEN: {
          // Suppressed after the client left, and from a killed worker's lost pass.
          if (at > this.cancelledAt[id] || ev.popSeq < this.staleBefore[id]) break;
          this.delivered[id] = ev.popArg;
          obs?.onToken?.(id, ev.popArg, at);
          break;
        }
        case EV_ENDED: {
          const reason = this.reasons.get(id) ?? 'finished';
          this.reasons.delete(id);
          obs?.onEnded?.(id, at, reason);
          if (this.source.withdrawn[id] === 0) this.source.freeId(id);
          break;
        }
      }
    }
  }

  /**
   * Re-submits a killed worker's request as Dynamo's frontend migrates it: the prompt plus the tokens already
   * produced, asking for the rest, routed afresh now; the same id, tokens numbered on.
   */
  private migrate(id: number, r: number, kept: number, t: number): void {
    const tb = this.source.traceBlockSize;
    const input = this.req.promptLen[r] + kept;
    const output = Math.max(0, this.req.outputLen[r] - kept);
    const hashes = (this.source.hashes[id] as ArrayLike<number>) ?? [];
    const ids: number[] = Array.from(hashes as ArrayLike<number>);
    // The generated tokens have no content ids of their own: fresh ones, shared with nothing.
    while (ids.length < Math.ceil(input / tb)) ids.push(this.freshContent--);
    this.sim.abandon(r);
    this.migrations[id]++;
    this.tokenBase[id] = kept;
    this.staleBefore[id] = this.events.nextSeq;
    this.source.input[id] = input;
    this.source.output[id] = output;
    this.source.hashes[id] = ids;
    this.source.slot[id] = -1;
    this.source.schedule(id, t);
  }

  private snapshot(id: number, r: number): void {
    const col = this.sim.collectorOf;
    this.arrivalMs[id] = col.arrivalMs[r];
    this.firstAdmitMs[id] = col.firstAdmitMs[r];
    const h = this.sim.handoff;
    this.prefillDoneMs[id] = h !== null ? h.prefillDoneAt(r) : col.firstTokenMs[r];
    this.decodeWorker[id] = h !== null ? h.decodeEngineOf(r) : -1;
    this.prefillWorker[id] = this.req.status[r] === RequestStatus.Pending ? -1 : this.prefillWorkerOf(id, r);
    this.cachedTokens[id] = Math.max(0, col.reusedBest[r]);
  }

  private prefillWorkerOf(id: number, r: number): number {
    const known = this.prefillWorker[id];
    return known >= 0 ? known : this.req.engine[r];
  }

  private poolIndex(role: LiveRole): number {
    const pools = this.sim.poolList;
    const p = pools.findIndex((pool) => pool.role === role);
    if (p < 0)
      throw new RangeError(
        `no ${role} pool (this simulation has ${pools.map((x) => x.role).join(', ')}; roles: ${ROLES.join(', ')})`,
      );
    return p;
  }

  private targets(target: number[] | LiveRole | 'all'): number[] {
    const engines = this.sim.allEngines;
    const alive = (e: number) => engines[e]?.residents !== undefined;
    if (Array.isArray(target)) {
      for (const e of target) if (!alive(e)) throw new RangeError(`worker ${e} is not alive`);
      return target;
    }
    const out: number[] = [];
    for (let e = 0; e < engines.length; e++)
      if (alive(e) && (target === 'all' || engines[e].role === target)) out.push(e);
    return out;
  }

  private ensureIds(): void {
    const n = this.source.state.length;
    if (this.cancelledAt.length >= n) return;
    const from = this.cancelledAt.length;
    this.cancelledAt = grown(this.cancelledAt, n);
    this.cancelledAt.fill(Number.NaN, from);
    this.delivered = grown(this.delivered, n);
    this.migrations = grown(this.migrations, n);
    this.tokenBase = grown(this.tokenBase, n);
    this.staleBefore = grown(this.staleBefore, n);
    this.arrivalMs = grown(this.arrivalMs, n);
    this.firstAdmitMs = grown(this.firstAdmitMs, n);
    this.prefillDoneMs = grown(this.prefillDoneMs, n);
    this.prefillWorker = grown(this.prefillWorker, n);
    this.decodeWorker = grown(this.decodeWorker, n);
    this.cachedTokens = grown(this.cachedTokens, n);
  }
}
