import { selectRequests } from '../../sim/workload/slice.ts';
import { type Workload, WorkloadBuilder } from '../../sim/workload/workload.ts';
import {
  addToWorkload,
  type InputLimits,
  TraceError,
  TraceReader,
  type TraceRequest,
  type TraceSummary,
} from '../trace/index.ts';
import { distributionOf } from './distribution.ts';
import {
  type LatencySummary,
  PROFILE_KIND,
  type PrefixReuse,
  rateCurve,
  type SessionStats,
  type WorkloadProfile,
} from './profile.ts';

/**
 * Workload profiles of recorded traffic: a trace file or a request-trace directory is read through the one
 * trace reader into a workload (the replayable form) plus what the deployment measured per request, cut to a
 * lookback window, and summarised as a profile.
 */

/** Measured latencies of the requests in a window (request traces), NaN where a request had none. */
export interface ObservedColumns {
  ttftMs: Float64Array;
  itlMs: Float64Array;
  e2eMs: Float64Array;
  cachedTokens: Float64Array;
  inputTokens: Float64Array;
}

export interface RecordedWindow {
  workload: Workload;
  summary: TraceSummary;
  observed: ObservedColumns | null;
  /** Raw timestamp (ms; epoch for request traces) of the workload's time 0. */
  originMs: number;
  /** The window, in raw timestamps. */
  window: { startMs: number; endMs: number };
  /**
   * With `warmupMs`: the traffic recorded before the window followed by the window's (`measureFromMs`: where
   * the window starts in it), for a replay that reaches the window in the state the deployment was in.
   */
  warmup?: { workload: Workload; measureFromMs: number };
}

export interface RecordedWindowOptions {
  format?: string;
  traceBlockSize?: number;
  lenient?: boolean;
  limits?: Partial<InputLimits>;
  /** Keep the last `lookbackMs` of arrivals: before `endMs` (raw ms, e.g. now), else before the newest one. */
  lookbackMs?: number;
  endMs?: number;
  /** Skip request-trace segments that are symbolic links (see SegmentOptions). */
  noSymlinks?: boolean;
  /**
   * With `lookbackMs` and `endMs`: also read the `warmupMs` before the window, returned as `warmup` (the
   * window itself, its profile and its measurements, are as without it).
   */
  warmupMs?: number;
}

/** Grows typed columns without per-request objects (a busy hour is 100,000+ requests). */
class Column {
  data = new Float64Array(1024);
  length = 0;
  push(v: number): void {
    if (this.length === this.data.length) {
      const next = new Float64Array(this.data.length * 2);
      next.set(this.data);
      this.data = next;
    }
    this.data[this.length++] = v;
  }
  select(keep: (i: number) => boolean): Float64Array {
    const out: number[] = [];
    for (let i = 0; i < this.length; i++) if (keep(i)) out.push(this.data[i]);
    return Float64Array.from(out);
  }
}

/** Reads a trace file or request-trace directory into the window a profile (or a replay) covers. */
export async function readRecordedWindow(
  path: string,
  opts: RecordedWindowOptions = {},
): Promise<RecordedWindow> {
  const explicit =
    opts.lookbackMs !== undefined && opts.endMs !== undefined
      ? { from: opts.endMs - opts.lookbackMs, to: opts.endMs + 1 }
      : undefined;
  const warmupMs = explicit && opts.warmupMs !== undefined && opts.warmupMs > 0 ? opts.warmupMs : 0;
  const readFrom = explicit ? { from: explicit.from - warmupMs, to: explicit.to } : undefined;
  let builder: WorkloadBuilder | null = null;
  let reader: TraceReader | null = null;
  let minRaw = Number.POSITIVE_INFINITY;
  let maxRaw = Number.NEGATIVE_INFINITY;
  const arrival = new Column();
  const cols = {
    ttft: new Column(),
    itl: new Column(),
    e2e: new Column(),
    cached: new Column(),
    input: new Column(),
  };
  let anyObserved = false;
  const sink = (r: TraceRequest) => {
    const summary = (reader as TraceReader).summary;
    builder ??= new WorkloadBuilder(summary.traceBlockSize);
    addToWorkload(builder, r, summary.denseHashIds);
    if (!Number.isNaN(r.arrivalMs)) {
      if (r.arrivalMs < minRaw) minRaw = r.arrivalMs;
      if (r.arrivalMs > maxRaw) maxRaw = r.arrivalMs;
    }
    const o = r.observed;
    if (o !== null) {
      anyObserved = true;
      arrival.push(r.arrivalMs);
      cols.ttft.push(o.ttftMs);
      cols.itl.push(o.itlMs);
      cols.e2e.push(o.e2eMs);
      cols.cached.push(o.cachedTokens);
      cols.input.push(r.inputLength);
    }
  };
  reader = new TraceReader(
    path,
    {
      format: opts.format,
      traceBlockSize: opts.traceBlockSize,
      lenient: opts.lenient,
      limits: opts.limits,
      windowMs: readFrom,
      segments: {
        ...(opts.lookbackMs !== undefined && { lookbackMs: opts.lookbackMs + warmupMs, endMs: opts.endMs }),
        ...(opts.noSymlinks && { noSymlinks: true }),
      },
    },
    sink,
  );
  for await (const _ of reader.batches());
  const summary = reader.summary;
  let workload = (builder as unknown as WorkloadBuilder).build();
  let originMs = minRaw;
  let window = explicit
    ? { startMs: explicit.from, endMs: explicit.to - 1 }
    : { startMs: minRaw, endMs: maxRaw };
  let keepObserved = (_: number) => true;
  let warmup: RecordedWindow['warmup'];
  if (explicit && warmupMs > 0 && workload.size > 0) {
    // What was recorded before the window is the warm-up; the window is what follows (as read without it).
    const cut = explicit.from - minRaw;
    warmup = { workload, measureFromMs: Math.max(0, cut) };
    if (cut > 0) {
      const tail = tailFrom(workload, cut);
      workload = tail.workload;
      originMs = minRaw + tail.shiftMs;
      keepObserved = (i) => Number.isNaN(arrival.data[i]) || arrival.data[i] >= explicit.from;
    }
  } else if (opts.lookbackMs !== undefined && explicit === undefined) {
    const cut = maxRaw - opts.lookbackMs;
    if (cut > minRaw) {
      const tail = tailFrom(workload, cut - minRaw);
      workload = tail.workload;
      originMs = minRaw + tail.shiftMs;
      window = { startMs: cut, endMs: maxRaw };
      keepObserved = (i) => Number.isNaN(arrival.data[i]) || arrival.data[i] >= cut;
    }
  }
  if (workload.size === 0)
    throw new TraceError({
      source: summary.source,
      line: 0,
      field: null,
      message: 'no requests in the window',
    });
  const observed = anyObserved
    ? {
        ttftMs: cols.ttft.select(keepObserved),
        itlMs: cols.itl.select(keepObserved),
        e2eMs: cols.e2e.select(keepObserved),
        cachedTokens: cols.cached.select(keepObserved),
        inputTokens: cols.input.select(keepObserved),
      }
    : null;
  return { workload, summary, observed, originMs, window, ...(warmup && { warmup }) };
}

/**
 * The requests whose (first-turn) arrival is at or after `fromMs`, with their later turns, shifted so the
 * first arrives at 0 (`shiftMs`: by how much).
 */
export function tailFrom(w: Workload, fromMs: number): { workload: Workload; shiftMs: number } {
  const keep = new Uint8Array(w.size);
  let first = Number.POSITIVE_INFINITY;
  for (let i = 0; i < w.size; i++) {
    const a = w.arrivalMs[i];
    if (Number.isNaN(a) || a < fromMs) continue;
    keep[i] = 1;
    if (a < first) first = a;
    for (let t = w.nextTurn[i]; t >= 0; t = w.nextTurn[t]) keep[t] = 1;
  }
  const ids: number[] = [];
  for (let i = 0; i < w.size; i++) if (keep[i] === 1) ids.push(i);
  const out = selectRequests(w, ids);
  const shift = Number.isFinite(first) ? first : 0;
  for (let i = 0; i < out.size; i++) if (!Number.isNaN(out.arrivalMs[i])) out.arrivalMs[i] -= shift;
  return { workload: out, shiftMs: shift };
}

/** Estimated arrival of every request: first turns as recorded, a later turn at its predecessor's plus its delay. */
export function estimatedArrivals(w: Workload): Float64Array {
  const at = new Float64Array(w.size);
  for (let i = 0; i < w.size; i++) at[i] = w.arrivalMs[i];
  // Follow-up turns come after their first turns in a workload, so one pass in index order resolves chains.
  for (let i = 0; i < w.size; i++) {
    if (Number.isNaN(at[i])) at[i] = 0;
    const next = w.nextTurn[i];
    if (next >= 0) at[next] = at[i] + (Number.isNaN(w.delayMs[next]) ? 0 : w.delayMs[next]);
  }
  return at;
}

/** Share of prompt blocks whose hash id appeared in an earlier request (in arrival order). */
export function blockReuse(w: Workload, arrivals: Float64Array): number {
  const order = Array.from({ length: w.size }, (_, i) => i).sort(
    (a, b) => arrivals[a] - arrivals[b] || a - b,
  );
  let maxId = 0;
  for (let k = 0; k < w.hashIds.length; k++) if (w.hashIds[k] > maxId) maxId = w.hashIds[k];
  const seen = new Uint8Array(maxId + 1);
  let reused = 0;
  for (const r of order) {
    for (let k = w.hashOffsets[r]; k < w.hashOffsets[r + 1]; k++) {
      const h = w.hashIds[k];
      if (seen[h] === 1) reused++;
      else seen[h] = 1;
    }
  }
  return w.hashIds.length === 0 ? 0 : reused / w.hashIds.length;
}

/** Bounds for latencies in ms: 2^(k/4) / 16, from 1/16 ms to about 19 hours. */
export const LATENCY_BOUNDS_MS: readonly number[] = Array.from({ length: 121 }, (_, k) => 2 ** (k / 4) / 16);

export const DEFAULT_STEP_S = 10;
/** Most bins of a rate curve: a longer trace gets wider bins. */
export const MAX_RATE_BINS = 4096;

export interface TraceProfileOptions {
  /** Name of the source in the profile. */
  name: string;
  kind?: 'trace' | 'request-trace' | 'synthetic';
  /** Width of a rate-curve bin (s); default 10, widened to keep at most 4096 bins. */
  stepS?: number;
}

function observedSummary(o: ObservedColumns | null): LatencySummary | null {
  if (o === null) return null;
  const some = (a: Float64Array) => a.some((v) => !Number.isNaN(v));
  const out: LatencySummary = {};
  if (some(o.ttftMs)) out.ttft_ms = distributionOf(o.ttftMs, LATENCY_BOUNDS_MS);
  if (some(o.itlMs)) out.itl_ms = distributionOf(o.itlMs, LATENCY_BOUNDS_MS);
  if (some(o.e2eMs)) out.e2e_ms = distributionOf(o.e2eMs, LATENCY_BOUNDS_MS);
  let cached = 0;
  let input = 0;
  for (let i = 0; i < o.cachedTokens.length; i++) {
    if (Number.isNaN(o.cachedTokens[i])) continue;
    cached += o.cachedTokens[i];
    input += o.inputTokens[i];
  }
  if (input > 0) out.cached_token_share = cached / input;
  return Object.keys(out).length > 0 ? out : null;
}

function sessionStats(w: Workload, summary: TraceSummary): SessionStats | null {
  if (summary.sessions === 0) return null;
  const turns = new Map<number, number>();
  for (let i = 0; i < w.size; i++)
    if (w.session[i] >= 0) turns.set(w.session[i], (turns.get(w.session[i]) ?? 0) + 1);
  let inMulti = 0;
  for (let i = 0; i < w.size; i++) if (w.session[i] >= 0 && (turns.get(w.session[i]) ?? 0) >= 2) inMulti++;
  const sessions = turns.size;
  let turnSum = 0;
  for (const t of turns.values()) turnSum += t;
  return {
    sessions,
    turns_mean: sessions > 0 ? turnSum / sessions : 0,
    multi_turn_share: w.size > 0 ? inMulti / w.size : 0,
  };
}

/** The profile of a recorded window (see readRecordedWindow). */
export function profileFromRecorded(rec: RecordedWindow, opts: TraceProfileOptions): WorkloadProfile {
  const w = rec.workload;
  const arrivals = estimatedArrivals(w);
  let last = 0;
  for (let i = 0; i < w.size; i++) if (arrivals[i] > last) last = arrivals[i];
  // An explicit window counts its whole length (as Prometheus does); a whole trace spans its arrivals.
  const windowMs = rec.window.endMs - rec.window.startMs;
  const durationMs = Math.max(last, Number.isFinite(windowMs) ? windowMs : 0);
  const durationS = durationMs / 1000;
  let step = opts.stepS ?? DEFAULT_STEP_S;
  if (durationS / step > MAX_RATE_BINS) step = Math.ceil(durationS / MAX_RATE_BINS);
  const bins = Math.max(1, Math.ceil(durationS / step));
  const counts = new Array<number>(bins).fill(0);
  // Arrivals relative to the window start (the workload's 0 is its first arrival).
  const offsetMs = rec.originMs - rec.window.startMs;
  for (let i = 0; i < w.size; i++) {
    const b = Math.floor((arrivals[i] + (Number.isFinite(offsetMs) ? offsetMs : 0)) / 1000 / step);
    counts[Math.min(bins - 1, Math.max(0, b))]++;
  }
  const s = rec.summary;
  const noPrefix = s.missingHashIds.count >= s.requests;
  const prefix: PrefixReuse = noPrefix
    ? { share: null, basis: 'none' }
    : { share: blockReuse(w, arrivals), basis: 'blocks' };
  const notes: string[] = [];
  if (noPrefix) notes.push('the trace carries no prefix information (no hash ids): prefix reuse unknown');
  else if (s.missingHashIds.count > 0)
    notes.push(`${s.missingHashIds.count} requests carry no hash ids and count as sharing nothing`);
  const sessions = sessionStats(w, s);
  if (sessions === null) notes.push('the source records no sessions: session structure unknown');
  else notes.push('follow-up turns are placed at the previous turn plus its think time in the rate curve');
  return {
    kind: PROFILE_KIND,
    source: {
      kind: opts.kind ?? (s.format === 'dynamo' ? 'request-trace' : 'trace'),
      name: opts.name,
      format: s.format,
    },
    window: { start_ms: Math.max(0, rec.window.startMs), end_ms: Math.max(0, rec.window.endMs) },
    requests: w.size,
    duration_s: durationS,
    request_rate_rps: durationS > 0 ? w.size / durationS : 0,
    rate: rateCurve(counts, step),
    input_tokens: distributionOf(w.inputLength),
    output_tokens: distributionOf(w.outputLength),
    prefix_reuse: prefix,
    sessions,
    concurrency: null,
    observed: observedSummary(rec.observed),
    notes,
  };
}

/**
 * The first or second half (by arrival time) of a recorded window, as a window of its own: the halves of one
 * trace are two windows of one workload (what drift thresholds are calibrated against).
 */
export function halfOfWindow(rec: RecordedWindow, second: boolean): RecordedWindow {
  const w = rec.workload;
  let span = 0;
  for (let i = 0; i < w.size; i++) if (w.arrivalMs[i] > span) span = w.arrivalMs[i];
  const mid = span / 2;
  if (second) {
    const t = tailFrom(w, mid);
    return {
      ...rec,
      workload: t.workload,
      originMs: rec.originMs + t.shiftMs,
      window: { startMs: rec.originMs + mid, endMs: rec.originMs + span },
    };
  }
  const ids: number[] = [];
  for (let i = 0; i < w.size; i++) if (w.arrivalMs[i] < mid) ids.push(i);
  return {
    ...rec,
    workload: selectRequests(w, ids),
    window: { startMs: rec.originMs, endMs: rec.originMs + mid },
  };
}
