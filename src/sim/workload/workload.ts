/**
 * A workload is the set of requests a simulation replays, stored column-wise (one typed array per
 * field) so that million-request traces cost a few bytes per request and no per-request objects.
 *
 * Prompts are described the way Mooncake traces do: a list of hash ids, each standing for
 * `traceBlockSize` identical tokens. Two prompts share a prefix exactly as far as their hash ids agree.
 */
export interface Workload {
  /** Number of requests (turns). */
  readonly size: number;
  /** Tokens represented by one hash id (Mooncake traces: 512). */
  readonly traceBlockSize: number;
  /** Arrival time in ms of a first turn (relative, first arrival at 0); NaN for a follow-up turn. */
  readonly arrivalMs: Float64Array;
  /** Prompt length in tokens (>= 1). */
  readonly inputLength: Int32Array;
  /** Requested output length in tokens (>= 1). */
  readonly outputLength: Int32Array;
  /** Hash ids of request i are `hashIds[hashOffsets[i] .. hashOffsets[i+1])`; dense non-negative ints. */
  readonly hashOffsets: Int32Array;
  readonly hashIds: Int32Array;
  /** Index of the next turn of the same session, or -1. */
  readonly nextTurn: Int32Array;
  /** For a follow-up turn: ms between the previous turn's completion and this turn's arrival. */
  readonly delayMs: Float64Array;
  /** Session index per request (-1 for independent requests). */
  readonly session: Int32Array;
  /** Human-readable origin of request i (e.g. its 1-based line in the trace file), or null. */
  readonly sourceLine: Int32Array | null;
  /**
   * Agentic traces: requests that start once others completed (or were dispatched), each edge with its delay;
   * their arrival is NaN. Absent or null: none.
   */
  readonly dependents?: DependencyGraph | null;
  /**
   * 1 for a request whose session's next turn's prompt is this request's prompt and output followed by new
   * tokens (delta and agentic session formats): the blocks its output fills are shareable with that turn.
   */
  readonly promptContinues?: Uint8Array | null;
  /**
   * Agentic traces: each request's rank by its request id (string order). Requests ready at the same time
   * start in this order, as in the reference simulator (its agentic driver breaks ties of its ready queue
   * by it), and round robin then assigns them in it.
   */
  readonly readyOrder?: Int32Array | null;
}

/**
 * Requests waiting on others: a DAG whose edges run from earlier to later rows of the trace. Request d waiting
 * for p arrives once, for each such p, p completed (or, for a dispatch edge, arrived) `delayMs[edge]` ago, and
 * not before `notBeforeMs[d]`.
 */
export interface DependencyGraph {
  /** Edges from request i to the requests waiting for it: `[offsets[i], offsets[i + 1])` of the arrays below. */
  readonly offsets: Int32Array;
  readonly ids: Int32Array;
  readonly delayMs: Float64Array;
  /** 1 for an edge released by the predecessor's arrival rather than its completion; null when none is. */
  readonly onDispatch: Uint8Array | null;
  /** How many requests each request waits for. */
  readonly waits: Int32Array;
  /** Earliest arrival of each request (relative like arrivals; NaN: none); null when none has one. */
  readonly notBeforeMs: Float64Array | null;
}

/** A request's wait for one added before it (by insertion index). */
export interface WaitEdge {
  readonly index: number;
  readonly delayMs: number;
  readonly onDispatch?: boolean;
}

/** Accumulates requests and produces a compact {@link Workload}. */
export class WorkloadBuilder {
  private arrival: number[] = [];
  private input: number[] = [];
  private output: number[] = [];
  private offsets: number[] = [0];
  private hashes: number[] = [];
  private sessions: number[] = [];
  private delays: number[] = [];
  private lines: number[] = [];
  /** Agentic rows (sparse, by insertion index): what each waits for, and its earliest start. */
  private readonly waitFor = new Map<number, readonly WaitEdge[]>();
  private readonly notBefore = new Map<number, number>();
  private anyDispatch = false;
  /** Follow-up turns that extend the previous turn's prompt and output (insertion indices). */
  private readonly extendsPrevious = new Set<number>();
  /** Agentic rows: request ids by insertion index. */
  private readonly requestIds = new Map<number, string>();
  private readonly hashMap = new Map<number, number>();

  readonly traceBlockSize: number;
  constructor(traceBlockSize: number) {
    this.traceBlockSize = traceBlockSize;
  }

  get size(): number {
    return this.input.length;
  }

  private nextDense = 0;

  /** Maps an arbitrary integer hash id onto a dense id (stable within this builder). */
  denseHash(id: number): number {
    let dense = this.hashMap.get(id);
    if (dense === undefined) {
      dense = this.nextDense++;
      this.hashMap.set(id, dense);
    }
    return dense;
  }

  /** A fresh dense hash id that no trace id maps to (synthetic unique blocks). */
  freshHash(): number {
    return this.nextDense++;
  }

  /**
   * Ids a trace hands out densely itself (added with `denseHashIds`): fresh ids are kept above them. A trace
   * mixing such ids with fresh ones must reserve before asking for fresh ids (request-trace formats, the
   * only dense ones, give every row its ids).
   */
  reserveDense(ids: ArrayLike<number>): void {
    for (let i = 0; i < ids.length; i++) if (ids[i] >= this.nextDense) this.nextDense = ids[i] + 1;
  }

  add(req: {
    arrivalMs: number;
    inputLength: number;
    outputLength: number;
    hashIds: ArrayLike<number>;
    session?: number;
    delayMs?: number;
    sourceLine?: number;
    denseHashIds?: boolean;
    /** The requests it waits for (each added earlier); it then has no own arrival. */
    waitFor?: readonly WaitEdge[] | null;
    /** With `waitFor`: the earliest arrival (same clock as `arrivalMs`). */
    notBeforeMs?: number;
    /** A follow-up turn whose prompt starts with the previous turn's prompt and output. */
    extendsPrevious?: boolean;
    /** Agentic rows: the request's id (ties of ready time are broken by it). */
    requestId?: string;
  }): number {
    this.arrival.push(req.arrivalMs);
    this.input.push(req.inputLength);
    this.output.push(req.outputLength);
    for (let i = 0; i < req.hashIds.length; i++) {
      this.hashes.push(req.denseHashIds ? req.hashIds[i] : this.denseHash(req.hashIds[i]));
    }
    this.offsets.push(this.hashes.length);
    this.sessions.push(req.session ?? -1);
    this.delays.push(req.delayMs ?? Number.NaN);
    this.lines.push(req.sourceLine ?? 0);
    const index = this.input.length - 1;
    if (req.waitFor && req.waitFor.length > 0) {
      this.waitFor.set(index, req.waitFor);
      if (req.waitFor.some((e) => e.onDispatch)) this.anyDispatch = true;
      if (req.notBeforeMs !== undefined) this.notBefore.set(index, req.notBeforeMs);
    }
    if (req.extendsPrevious) this.extendsPrevious.add(index);
    if (req.requestId !== undefined) this.requestIds.set(index, req.requestId);
    return index;
  }

  /**
   * Builds the workload. Turns of one session are linked in insertion order; a session's first turn keeps
   * its arrival, later turns arrive `delayMs` after the previous one completes (their arrival is cleared).
   * First-turn arrivals are shifted so the earliest is 0, and requests are reordered by first-turn arrival
   * (stable), follow-up turns keeping their session order.
   */
  build(): Workload {
    const n = this.input.length;
    // Session linking: first turn of each session is the first inserted row of that session.
    const lastOfSession = new Map<number, number>();
    const next = new Int32Array(n).fill(-1);
    const isFollowUp = new Uint8Array(n);
    const continues = this.extendsPrevious.size > 0 ? new Uint8Array(n) : null;
    for (let i = 0; i < n; i++) {
      const s = this.sessions[i];
      if (s < 0) continue;
      const prev = lastOfSession.get(s);
      if (prev !== undefined) {
        next[prev] = i;
        isFollowUp[i] = 1;
        if (continues !== null && this.extendsPrevious.has(i)) continues[prev] = 1;
      }
      lastOfSession.set(s, i);
    }
    // A request waiting for others arrives when they complete, like a follow-up turn.
    for (const i of this.waitFor.keys()) isFollowUp[i] = 1;
    // Order: first turns by arrival (stable), each followed by nothing (follow-ups are appended after).
    const firsts: number[] = [];
    const follow: number[] = [];
    for (let i = 0; i < n; i++) (isFollowUp[i] ? follow : firsts).push(i);
    // Agentic rows (every row has an id): equal arrivals in request-id order, as the reference starts them.
    const rank = this.requestIds.size === n && n > 0 ? this.idRanks(n) : null;
    firsts.sort(
      rank === null
        ? (a, b) => this.arrival[a] - this.arrival[b] || a - b
        : (a, b) => this.arrival[a] - this.arrival[b] || rank[a] - rank[b],
    );
    const order = firsts.concat(follow);
    const newIndex = new Int32Array(n);
    for (let k = 0; k < n; k++) newIndex[order[k]] = k;

    let t0 = Number.POSITIVE_INFINITY;
    for (const i of firsts) t0 = Math.min(t0, this.arrival[i]);
    if (!Number.isFinite(t0)) t0 = 0;

    const arrivalMs = new Float64Array(n);
    const inputLength = new Int32Array(n);
    const outputLength = new Int32Array(n);
    const hashOffsets = new Int32Array(n + 1);
    const hashIds = new Int32Array(this.hashes.length);
    const nextTurn = new Int32Array(n);
    const delayMs = new Float64Array(n);
    const session = new Int32Array(n);
    const sourceLine = new Int32Array(n);
    let w = 0;
    for (let k = 0; k < n; k++) {
      const i = order[k];
      arrivalMs[k] = isFollowUp[i] ? Number.NaN : this.arrival[i] - t0;
      inputLength[k] = this.input[i];
      outputLength[k] = this.output[i];
      hashOffsets[k] = w;
      for (let j = this.offsets[i]; j < this.offsets[i + 1]; j++) hashIds[w++] = this.hashes[j];
      nextTurn[k] = next[i] < 0 ? -1 : newIndex[next[i]];
      delayMs[k] = isFollowUp[i] ? this.delays[i] : Number.NaN;
      session[k] = this.sessions[i];
      sourceLine[k] = this.lines[i];
    }
    hashOffsets[n] = w;
    let dependents: DependencyGraph | null = null;
    if (this.waitFor.size > 0) {
      const count = new Int32Array(n + 1);
      const waits = new Int32Array(n);
      for (const [i, wf] of this.waitFor) {
        for (const e of wf) count[newIndex[e.index] + 1]++;
        waits[newIndex[i]] = wf.length;
      }
      for (let k = 0; k < n; k++) count[k + 1] += count[k];
      const ids = new Int32Array(count[n]);
      const delays = new Float64Array(count[n]);
      const onDispatch = this.anyDispatch ? new Uint8Array(count[n]) : null;
      const fill = count.slice(0, n);
      // In insertion order (the map's), so each request lists those waiting for it in trace order.
      for (const [i, wf] of this.waitFor) {
        for (const e of wf) {
          const at = fill[newIndex[e.index]]++;
          ids[at] = newIndex[i];
          delays[at] = e.delayMs;
          if (onDispatch !== null && e.onDispatch) onDispatch[at] = 1;
        }
      }
      let notBeforeMs: Float64Array | null = null;
      if (this.notBefore.size > 0) {
        notBeforeMs = new Float64Array(n).fill(Number.NaN);
        for (const [i, nb] of this.notBefore) notBeforeMs[newIndex[i]] = Math.max(0, nb - t0);
      }
      dependents = { offsets: count, ids, delayMs: delays, onDispatch, waits, notBeforeMs };
    }
    let promptContinues: Uint8Array | null = null;
    if (continues !== null) {
      promptContinues = new Uint8Array(n);
      for (let i = 0; i < n; i++) promptContinues[newIndex[i]] = continues[i];
    }
    let readyOrder: Int32Array | null = null;
    if (rank !== null) {
      readyOrder = new Int32Array(n);
      for (let i = 0; i < n; i++) readyOrder[newIndex[i]] = rank[i];
    }
    return {
      size: n,
      traceBlockSize: this.traceBlockSize,
      arrivalMs,
      inputLength,
      outputLength,
      hashOffsets,
      hashIds,
      nextTurn,
      delayMs,
      session,
      sourceLine,
      dependents,
      promptContinues,
      readyOrder,
    };
  }

  /** Each request's rank by its id, in string order (code units; ids are unique). */
  private idRanks(n: number): Int32Array {
    const ids = this.requestIds;
    const byId = Array.from({ length: n }, (_, i) => i).sort((a, b) => {
      const x = ids.get(a) as string;
      const y = ids.get(b) as string;
      return x < y ? -1 : x > y ? 1 : 0;
    });
    const rank = new Int32Array(n);
    for (let k = 0; k < n; k++) rank[byId[k]] = k;
    return rank;
  }
}

/** Total input and output tokens, request count and span; cheap summary used by reports. */
export function summarizeWorkload(w: Workload): {
  requests: number;
  sessions: number;
  inputTokens: number;
  outputTokens: number;
  spanMs: number;
} {
  let input = 0;
  let output = 0;
  let span = 0;
  const sessions = new Set<number>();
  for (let i = 0; i < w.size; i++) {
    input += w.inputLength[i];
    output += w.outputLength[i];
    if (!Number.isNaN(w.arrivalMs[i])) span = Math.max(span, w.arrivalMs[i]);
    if (w.session[i] >= 0) sessions.add(w.session[i]);
  }
  return {
    requests: w.size,
    sessions: sessions.size,
    inputTokens: input,
    outputTokens: output,
    spanMs: span,
  };
}
