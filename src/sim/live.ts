/**
 * The live (incremental) simulation: the same core as `simulate()`, driven from outside on a virtual clock,
 * for the twin (issue 13) and for streaming replays of traces too large to hold in memory.
 *
 * Status: this module states the contract first (so the twin can integrate against it); the implementation
 * lands behind it in steps, each step noted here. Until `createLiveSimulation` exists, only the types are here.
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
 * Cancellation. `cancel(id)` at `now` (a client disconnected): a request not yet arrived is dropped; a waiting
 * one leaves its queue; a running one is removed at its engine's next scheduling point (the end of the pass in
 * flight, as vLLM processes aborts between steps; its tokens stamped after `now` are not delivered) and its
 * KV blocks are released then (prefix blocks stay cached, as in vLLM); a request whose KV is moving between a
 * prefill and a decode worker has the transfer dropped and both reservations released. It ends with
 * `onEnded(id, t, 'cancelled')` and counts as cancelled, never as completed.
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
 * Faults: `setPassTimeFactor(target, factor)` (>= 1; passes starting afterwards take factor x as long; target
 * = worker ids, a role or 'all'); `stall(target, untilMs)` (no pass starts before untilMs; Infinity = until
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
import type { RouterSpec, SimulationOptions } from './simulation.ts';

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

export interface LiveOptions extends Omit<SimulationOptions, 'maxSimTimeMs'> {
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
  setReplicas(role: LiveRole, replicas: number, opts?: { startupMs?: number }): void;
  replacePool(role: LiveRole, spec: LivePoolSpec, opts?: { startupMs?: number; maxSurge?: number }): void;
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
}
