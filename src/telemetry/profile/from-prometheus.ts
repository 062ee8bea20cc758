import { type PrometheusClient, PrometheusError, type Series, selectorOf } from '../prometheus/client.ts';
import { DYNAMO } from '../prometheus/dynamo-queries.ts';
import { type Distribution, distributionFromBuckets } from './distribution.ts';
import { type LatencySummary, PROFILE_KIND, rateCurve, type WorkloadProfile } from './profile.ts';

/**
 * The workload profile of a window of a Dynamo deployment's traffic, from its frontend's Prometheus metrics:
 *
 * - the rate curve at the query step (the scrape resolution, so bursts survive): per-step increments of the
 *   started-requests counter, series by series, a drop read as a counter reset, then summed;
 * - ISL and OSL distributions: the histograms' bucket counters differenced the same way over the window and
 *   summed by `le` (not PromQL's `increase()`, which extrapolates to the window's edges and misses what a
 *   series counted before its first scrape: Dynamo creates a histogram's series at its first observation);
 *   percentiles interpolate within Dynamo's buckets (about x2 wide), the mean is exact (`_sum`);
 * - prefix reuse: cached tokens over input tokens (what the deployment's caches hit);
 * - concurrency: the in-flight gauge's mean and peak;
 * - what the deployment measured: TTFT, ITL and request-duration histograms, output tokens per second and
 *   the frontend queue, for calibration.
 *
 * A selector's `model` value is lower-cased, as Dynamo lower-cases the label. Empty answers are NoData
 * errors naming the metric and selector; everything else a PrometheusError from the client.
 */

export const MAX_WINDOW_S = 7 * 24 * 3600;
export const MIN_STEP_S = 1;

export interface PrometheusProfileOptions {
  /** Label matchers (e.g. model, dynamo_namespace). */
  selector: Record<string, string>;
  /** Window length (s), ending at `endS`. */
  windowS: number;
  /** Resolution (s) of the rate curve; default 15 (a common scrape interval). */
  stepS?: number;
  /** End of the window (unix s); default now. */
  endS?: number;
}

/** The selector as queried: `model` lower-cased, as Dynamo's frontend writes the label. */
export function normalisedSelector(selector: Record<string, string>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(selector)) out[k] = k === 'model' ? v.toLowerCase() : v;
  return out;
}

/**
 * Per-step increments of counter series (resets read as restarts from 0), summed over the series. `first`
 * is the first step time: a series whose first point comes later appeared in the window (a new pod), and its
 * first value counts as increments since it started.
 */
export function counterIncrements(series: Series[], first: number, step: number, bins: number): number[] {
  const counts = new Array<number>(bins).fill(0);
  for (const s of series) {
    let prevT = Number.NaN;
    let prevV = Number.NaN;
    for (const [t, v] of s.values) {
      if (!Number.isFinite(v) || v < 0)
        throw new PrometheusError('BadResponse', `a counter sample of ${v} (counters are finite and >= 0)`);
      const bin = Math.round((t - first) / step) - 1;
      let inc: number;
      if (Number.isNaN(prevV)) inc = t > first + step / 2 ? v : 0;
      else inc = v >= prevV ? v - prevV : v;
      if (bin >= 0 && bin < bins) counts[bin] += inc;
      else if (bin < 0 && !Number.isNaN(prevT)) counts[0] += inc;
      prevT = t;
      prevV = v;
    }
  }
  return counts;
}

function gaugeStats(series: Series[]): { mean: number; peak: number } | null {
  let n = 0;
  let sum = 0;
  let peak = 0;
  for (const s of series)
    for (const [, v] of s.values) {
      if (!Number.isFinite(v)) continue;
      n++;
      sum += v;
      peak = Math.max(peak, v);
    }
  return n > 0 ? { mean: sum / n, peak } : null;
}

export async function profileFromPrometheus(
  client: PrometheusClient,
  opts: PrometheusProfileOptions,
): Promise<WorkloadProfile> {
  const step = opts.stepS ?? 15;
  if (!(opts.windowS > 0 && opts.windowS <= MAX_WINDOW_S))
    throw new PrometheusError(
      'QueryRefused',
      `the window must be between 1 s and ${MAX_WINDOW_S} s (7 days)`,
    );
  if (!(step >= MIN_STEP_S && step <= opts.windowS))
    throw new PrometheusError('QueryRefused', `the step must be between ${MIN_STEP_S} s and the window`);
  const end = Math.floor(opts.endS ?? Date.now() / 1000);
  const bins = Math.max(1, Math.floor(opts.windowS / step));
  const windowS = bins * step;
  const start = end - windowS;
  const sel = selectorOf(normalisedSelector(opts.selector));
  const noData = (metric: string) =>
    new PrometheusError(
      'NoData',
      `${client.shown}: no ${metric}${sel} samples in the window (is the selector right, and is the frontend scraped?)`,
    );

  // Arrivals: started requests (offered load, as Dynamo's Planner prefers), else finished ones.
  let arrivalsMetric: string = DYNAMO.requestsStarted;
  let series = await client.queryRange(`${DYNAMO.requestsStarted}${sel}`, start, end, step);
  if (series.length === 0) {
    arrivalsMetric = DYNAMO.requests;
    series = await client.queryRange(`${DYNAMO.requests}${sel}`, start, end, step);
  }
  if (series.length === 0) throw noData(DYNAMO.requestsStarted);
  const counts = counterIncrements(series, start, step, bins);
  const requests = counts.reduce((a, b) => a + b, 0);

  // Totals over the window need no resolution: a coarser step keeps long windows within the point cap.
  const totalStep = Math.max(step, Math.ceil(windowS / 2000));
  const totalBins = Math.max(1, Math.floor(windowS / totalStep));
  const totalStart = end - totalBins * totalStep;
  /** Increase over the window of each series of a counter, reset-aware, keyed by a label (or ''). */
  const increases = async (promql: string, by?: string): Promise<Map<string, number> | null> => {
    const ss = await client.queryRange(promql, totalStart, end, totalStep);
    if (ss.length === 0) return null;
    const out = new Map<string, number>();
    for (const series of ss) {
      const key = by === undefined ? '' : (series.metric[by] ?? '');
      const inc = counterIncrements([series], totalStart, totalStep, totalBins).reduce((a, b) => a + b, 0);
      out.set(key, (out.get(key) ?? 0) + inc);
    }
    return out;
  };
  const total = async (metric: string): Promise<number | null> =>
    (await increases(`${metric}${sel}`))?.get('') ?? null;
  const histogram = async (metric: string, scale = 1): Promise<Distribution | null> => {
    const byLe = await increases(`${metric}_bucket${sel}`, 'le');
    if (byLe === null) return null;
    if (byLe.size > 512)
      throw new PrometheusError(
        'TooLarge',
        `${client.shown}: ${metric} has ${byLe.size} buckets (at most 512)`,
      );
    const cumulative = [...byLe].map(([leText, count]) => {
      const le = leText === '+Inf' ? Number.POSITIVE_INFINITY : Number(leText);
      if (leText === '' || Number.isNaN(le))
        throw new PrometheusError(
          'BadResponse',
          `${client.shown}: a ${metric} bucket le="${leText.slice(0, 20)}"`,
        );
      return { le: le * scale, count };
    });
    if (!cumulative.some((b) => !Number.isFinite(b.le)))
      throw new PrometheusError('BadResponse', `${client.shown}: ${metric} has no +Inf bucket`);
    const sum = await total(`${metric}_sum`);
    const d = distributionFromBuckets(cumulative, sum === null ? undefined : sum * scale);
    return d.count > 0 ? d : null;
  };

  const input = await histogram(DYNAMO.inputTokens);
  if (input === null) throw noData(`${DYNAMO.inputTokens}_bucket`);
  const output = await histogram(DYNAMO.outputTokens);
  if (output === null) throw noData(`${DYNAMO.outputTokens}_bucket`);
  const notes = [
    "lengths are known only to the exporter's buckets; prompt and output lengths are not paired per request",
    'prefix reuse is the share of prompt tokens the caches hit, not which requests share which prefixes',
    `arrivals finer than the ${step} s step are not seen`,
    'the source records no sessions: session structure unknown',
  ];
  if (arrivalsMetric === DYNAMO.requests)
    notes.push(`${DYNAMO.requestsStarted} is not exported: arrivals are counted when requests finish`);

  const cachedSum = await total(`${DYNAMO.cachedTokens}_sum`);
  const inputSum = input.mean * input.count;
  const share = cachedSum === null || inputSum <= 0 ? null : Math.min(1, Math.max(0, cachedSum / inputSum));
  if (share === null) notes.push(`no ${DYNAMO.cachedTokens} samples: prefix reuse unknown`);

  const inflight = gaugeStats(await client.queryRange(`sum(${DYNAMO.inflight}${sel})`, start, end, step));
  const queued = gaugeStats(await client.queryRange(`sum(${DYNAMO.queued}${sel})`, start, end, step));
  const observed: LatencySummary = {};
  const ttft = await histogram(DYNAMO.ttft, 1000);
  if (ttft) observed.ttft_ms = ttft;
  const itl = await histogram(DYNAMO.itl, 1000);
  if (itl) observed.itl_ms = itl;
  const e2e = await histogram(DYNAMO.requestDuration, 1000);
  if (e2e) observed.e2e_ms = e2e;
  const outTokens = await total(DYNAMO.outputTokensTotal);
  if (outTokens !== null) observed.output_tokens_per_s = outTokens / windowS;
  if (queued) observed.queued_mean = queued.mean;
  if (share !== null) observed.cached_token_share = share;

  return {
    kind: PROFILE_KIND,
    source: { kind: 'prometheus', name: `${client.shown} ${sel}` },
    window: { start_ms: start * 1000, end_ms: end * 1000 },
    requests: Math.round(requests),
    duration_s: windowS,
    request_rate_rps: requests / windowS,
    rate: rateCurve(counts, step),
    input_tokens: input,
    output_tokens: output,
    prefix_reuse: { share, basis: share === null ? 'none' : 'cached_tokens' },
    sessions: null,
    concurrency: inflight,
    observed: Object.keys(observed).length > 0 ? observed : null,
    notes,
  };
}
