import { type PoolTimings, runSimulation } from '../../config/run.ts';
import type { SimulationConfig } from '../../config/schema.ts';
import { RequestStatus } from '../../sim/engine/request-table.ts';
import type { SimulationReport } from '../../sim/metrics/report.ts';
import type { TimingModel } from '../../sim/timing/timing-model.ts';
import type { Workload } from '../../sim/workload/workload.ts';
import { bucketOf, type Distribution, distributionOf, quantile } from '../profile/distribution.ts';
import type { WorkloadProfile } from '../profile/profile.ts';
import { type CalibrationMetric, PERCENTILE_METRICS } from './metrics.ts';

/**
 * The replay of a calibration window measured the way the deployment measured itself, so that a perfect model
 * scores zero. Two sources, two ways of measuring, and each differs from the simulator's own report:
 *
 * - `histograms` (Prometheus): Dynamo's frontend observes each TTFT when the first token is sent, each
 *   inter-token gap when its token is, each request duration when the request ends, counts output tokens as
 *   they stream and keeps a gauge of requests waiting for their first token; a window's figures are what was
 *   observed inside it (whoever arrived when), and its percentiles are `histogram_quantile`'s: linear inside
 *   Dynamo's buckets, which are about 2.1x wide. So the replay's events inside the window go into the same
 *   buckets and are read with the same interpolation. Measured against a twin, the bucket reading alone moved
 *   TTFT p50 by +20 % and ITL p90 by +49 % from the exact percentiles (docs/telemetry.md): comparing an exact
 *   percentile with an interpolated one is comparing two different statistics.
 * - `requests` (DYN_REQUEST_TRACE): one record per request of the window (by arrival), with its TTFT, its
 *   total time and its *mean* inter-token gap; percentiles are over requests. So the replay's ITL is each
 *   request's mean gap over the requests that arrived in the window (not every gap pooled: a pooled median
 *   is a typical decode step, a median of per-request means counts each request's stalls behind other
 *   prompts' prefills once per request), and every percentile is the same nearest-rank one as the record side.
 *
 * `report` keeps the simulator's own statistics (pooled gaps, arrivals in the window): for a deployment that
 * is itself a simulation's report.
 */

export type ObservedBasis =
  | { kind: 'report' }
  | { kind: 'requests' }
  | {
      kind: 'histograms';
      bounds: { ttft?: readonly number[]; itl?: readonly number[]; e2e?: readonly number[] };
    };

/** Values per metric (ms, tokens/s, requests); a metric without a measurement is absent. */
export type MetricValues = Partial<Record<CalibrationMetric, number>>;

/** How the source of a profile measured what it observed. */
export function observedBasis(p: WorkloadProfile): ObservedBasis {
  const o = p.observed;
  if (p.source.kind === 'prometheus' && o)
    return {
      kind: 'histograms',
      bounds: { ttft: o.ttft_ms?.bounds, itl: o.itl_ms?.bounds, e2e: o.e2e_ms?.bounds },
    };
  return p.source.kind === 'request-trace' ? { kind: 'requests' } : { kind: 'report' };
}

export interface ReplayOptions {
  workload: Workload;
  config: SimulationConfig;
  timings?: TimingModel | PoolTimings;
  /** Where the window starts in the workload (ms; earlier requests are a warm-up) and how long it is (s). */
  measureFromMs: number;
  windowS: number;
  basis: ObservedBasis;
}

/** Observations counted into fixed buckets, read back as a Prometheus histogram is. */
class Buckets {
  readonly bounds: readonly number[];
  readonly counts: number[];
  count = 0;
  constructor(bounds: readonly number[]) {
    this.bounds = bounds;
    this.counts = new Array<number>(bounds.length + 1).fill(0);
  }
  add(v: number): void {
    this.counts[bucketOf(this.bounds, v)]++;
    this.count++;
  }
  quantile(q: number): number {
    const d: Distribution = {
      count: this.count,
      mean: 0,
      p50: 0,
      p90: 0,
      p99: 0,
      bounds: [...this.bounds],
      counts: this.counts,
    };
    return quantile(d, q);
  }
}

function set(out: MetricValues, k: CalibrationMetric, v: number): void {
  if (Number.isFinite(v)) out[k] = v;
}

/**
 * The simulator's report as calibration metrics (basis `report`). The frontend's queue gauge counts requests
 * from the handler's entry to their first token, so by Little's law its mean is the arrival rate times the
 * mean TTFT.
 */
export function predictedMetrics(r: SimulationReport, windowS: number): MetricValues {
  const out: MetricValues = {};
  for (const [k, kind, field] of PERCENTILE_METRICS) set(out, k, r[`${kind}_ms`][field]);
  if (windowS > 0) {
    set(out, 'output_tokens_per_s', r.total_output_tokens / windowS);
    set(out, 'queued_mean', (r.num_requests / windowS) * (r.ttft_ms.mean / 1000));
  }
  return out;
}

/** Runs the replay and measures it as `basis` says. */
export function measuredReplay(o: ReplayOptions): MetricValues {
  if (o.basis.kind === 'histograms') return histogramReplay(o, o.basis.bounds);
  const from = o.measureFromMs;
  const { result, report } = runSimulation(o.config, o.workload, o.timings, from > 0 ? from : undefined);
  if (o.basis.kind === 'report') return predictedMetrics(report, o.windowS);
  // Per request, as the request records are: those that arrived in the window and completed. (Request records
  // carry no throughput or queue: those stay the report's.)
  const out = predictedMetrics(report, o.windowS);
  const c = result.records;
  const n = c.size;
  const ttft = new Float64Array(n).fill(Number.NaN);
  const itl = new Float64Array(n).fill(Number.NaN);
  const e2e = new Float64Array(n).fill(Number.NaN);
  for (let r = 0; r < n; r++) {
    if (!(c.arrivalMs[r] >= from) || c.status[r] !== RequestStatus.Done) continue;
    const k = c.tokens[r];
    const arrival = c.arrivalMs[r];
    if (k >= 1) ttft[r] = c.firstTokenMs[r] - arrival;
    if (k >= 2) itl[r] = (c.lastTokenMs[r] - c.firstTokenMs[r]) / (k - 1);
    e2e[r] = (k >= 1 ? c.lastTokenMs[r] : c.terminalMs[r]) - arrival;
  }
  const dists = { ttft: distributionOf(ttft), itl: distributionOf(itl), e2e: distributionOf(e2e) };
  for (const [k, kind, field] of PERCENTILE_METRICS)
    if (dists[kind].count > 0) set(out, k, dists[kind][field]);
  return out;
}

/**
 * Every event inside the window (from, from + window], as the frontend's exporter saw them: TTFT at the first
 * token, gaps at their token, durations at the end, tokens as they stream, the queue gauge's time average.
 */
function histogramReplay(o: ReplayOptions, bounds: Extract<ObservedBasis, { kind: 'histograms' }>['bounds']) {
  const from = o.measureFromMs;
  const to = from + o.windowS * 1000;
  const inside = (t: number) => t > from && t <= to;
  const ttft = bounds.ttft ? new Buckets(bounds.ttft) : null;
  const itl = bounds.itl ? new Buckets(bounds.itl) : null;
  const e2e = bounds.e2e ? new Buckets(bounds.e2e) : null;
  const last = new Float64Array(o.workload.size);
  let tokens = 0;
  const onToken = (row: number, index: number, t: number) => {
    if (inside(t)) {
      tokens++;
      if (index > 1) itl?.add(t - last[row]);
    }
    last[row] = t;
  };
  // Every event counts by its time, so the run measures from the start (measureFromMs would drop the gaps
  // of requests that arrived before the window but stream inside it).
  const { result } = runSimulation(o.config, o.workload, o.timings, undefined, onToken);
  const c = result.records;
  let queuedMs = 0;
  for (let r = 0; r < c.size; r++) {
    const arrival = c.arrivalMs[r];
    if (Number.isNaN(arrival)) continue;
    const first = c.firstTokenMs[r];
    if (ttft && inside(first)) ttft.add(first - arrival);
    const end =
      c.status[r] === RequestStatus.Done || c.status[r] === RequestStatus.Rejected
        ? c.terminalMs[r]
        : Number.NaN;
    if (e2e && inside(end)) e2e.add((c.tokens[r] >= 1 ? c.lastTokenMs[r] : end) - arrival);
    // In the queue gauge from arrival to the first token (or the end, for one that never had it).
    const left = Number.isNaN(first) ? (Number.isNaN(end) ? to : end) : first;
    queuedMs += Math.max(0, Math.min(left, to) - Math.max(arrival, from));
  }
  const out: MetricValues = {};
  const buckets = { ttft, itl, e2e };
  for (const [k, kind, , q] of PERCENTILE_METRICS) {
    const b = buckets[kind];
    if (b && b.count > 0) set(out, k, b.quantile(q));
  }
  if (o.windowS > 0) {
    set(out, 'output_tokens_per_s', tokens / o.windowS);
    set(out, 'queued_mean', queuedMs / (to - from));
  }
  return out;
}
