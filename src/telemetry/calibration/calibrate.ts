import { type PoolTimings, toSimulationOptions } from '../../config/run.ts';
import type { SimulationConfig } from '../../config/schema.ts';
import { ScaledTiming } from '../../sim/timing/scaled.ts';
import type { TimingModel } from '../../sim/timing/timing-model.ts';
import type { Workload } from '../../sim/workload/workload.ts';
import type { WorkloadProfile } from '../profile/profile.ts';
import { type MetricValues, measuredReplay, type ObservedBasis } from './measure.ts';
import { CALIBRATION_METRICS, type CalibrationMetric, PERCENTILE_METRICS } from './metrics.ts';

/**
 * Live calibration: replay the recent window through the simulator with the deployment's current settings and
 * compare what it predicts with what the deployment measured over the same window (TTFT and ITL percentiles,
 * end to end, output throughput, the frontend queue), metric by metric as a signed relative error
 * (predicted / observed - 1: +0.2 means the simulator says 20 % slower or more than it was).
 *
 * Where the error is systematic, a small correction is fitted: scale factors on the prefill and decode parts
 * of every forward pass (the deployment's GPUs, kernels or software run this much slower or faster than the
 * model prices them), found by a few damped fixed-point steps on TTFT p50 (prefill) and ITL p50 (decode). The
 * factors are bounded (default [0.5, 2]); a factor at its bound means the model is wrong in a way a scale
 * cannot fix, and is reported as such (`bounded`), never hidden: the errors after the correction are
 * reported beside the errors before.
 */

export { type MetricValues, type ObservedBasis, observedBasis, predictedMetrics } from './measure.ts';
export { CALIBRATION_METRICS } from './metrics.ts';

export interface CorrectionFactors {
  prefill: number;
  decode: number;
}

export interface CalibrationOptions {
  workload: Workload;
  /** The deployment's current settings. */
  config: SimulationConfig;
  /** Timing per pool (hardware timing, from prepareCluster); default: the config's own model. */
  timings?: TimingModel | PoolTimings;
  observed: MetricValues;
  /** How `observed` was measured, so the replay is measured the same way (measure.ts); default `report`. */
  basis?: ObservedBasis;
  /** Length of the window (s): throughput and queue are per window. */
  windowS: number;
  /**
   * Where the window starts in `workload` (ms): the requests before it are a warm-up (see warmup.ts), simulated
   * but not measured. Default: all of it is the window.
   */
  measureFromMs?: number;
  /** Fit a correction (default true when TTFT or ITL was observed). */
  fit?: boolean;
  /** Bounds of each factor (default [0.5, 2]). */
  bounds?: { min: number; max: number };
  /** Simulations the fit may run (default 10). */
  maxIterations?: number;
}

export interface CalibrationResult {
  observed: MetricValues;
  predicted: MetricValues;
  /** Signed relative error per metric (predicted / observed - 1). */
  errors: MetricValues;
  /** Mean absolute relative error over the metrics compared. */
  meanAbsError: number;
  correction: {
    factors: CorrectionFactors;
    predicted: MetricValues;
    errors: MetricValues;
    meanAbsError: number;
    /** A factor reached its bound: the model is off by more than a scale can explain. */
    bounded: boolean;
    iterations: number;
  } | null;
}

/**
 * Observations a percentile needs above it before it is compared: p50 needs 20 samples, p90 100, p99 1,000.
 * With fewer, a tail percentile is one or a few requests (p99 of 50 requests is their maximum) and a handful of
 * odd ones (a request-trace replay deals same-millisecond arrivals in another order) would set the largest
 * error, which gates automatic changes; with 10 above it, the tail's own rank noise (about 1/sqrt(10)) is a
 * third. So it is left out rather than trusted.
 */
export const MIN_TAIL_SAMPLES = 10;

/** Whether `count` observations are enough to compare the `q` quantile (see MIN_TAIL_SAMPLES). */
export function enoughFor(count: number, q: number, minTail = MIN_TAIL_SAMPLES): boolean {
  return count * (1 - q) >= minTail - 1e-9;
}

/**
 * What the deployment measured, from a profile's `observed` block (Prometheus or request traces): the
 * percentiles with at least `minTail` observations above them (MIN_TAIL_SAMPLES; 0 takes every one).
 */
export function observedMetrics(p: WorkloadProfile, minTail = MIN_TAIL_SAMPLES): MetricValues {
  const o = p.observed;
  const out: MetricValues = {};
  if (!o) return out;
  const set = (k: CalibrationMetric, v: number | undefined) => {
    if (v !== undefined && Number.isFinite(v) && v > 0) out[k] = v;
  };
  for (const [k, kind, field, q] of PERCENTILE_METRICS) {
    const d = o[`${kind}_ms`];
    if (d && d.count > 0 && enoughFor(d.count, q, minTail)) set(k, d[field]);
  }
  set('output_tokens_per_s', o.output_tokens_per_s);
  set('queued_mean', o.queued_mean);
  return out;
}

/** The percentiles measured but left out for too few observations: how many there were, how many it needs. */
export function tooFewObservations(
  p: WorkloadProfile,
): { metric: CalibrationMetric; count: number; needed: number }[] {
  const o = p.observed;
  if (!o) return [];
  return PERCENTILE_METRICS.flatMap(([metric, kind, , q]) => {
    const d = o[`${kind}_ms`];
    return d && d.count > 0 && !enoughFor(d.count, q)
      ? [{ metric, count: d.count, needed: Math.ceil(MIN_TAIL_SAMPLES / (1 - q) - 1e-9) }]
      : [];
  });
}

function compare(predicted: MetricValues, observed: MetricValues): { errors: MetricValues; meanAbs: number } {
  const errors: MetricValues = {};
  let sum = 0;
  let n = 0;
  for (const k of CALIBRATION_METRICS) {
    const o = observed[k];
    const p = predicted[k];
    if (o === undefined || p === undefined || !(o > 0)) continue;
    errors[k] = p / o - 1;
    sum += Math.abs(errors[k] as number);
    n++;
  }
  return { errors, meanAbs: n > 0 ? sum / n : 0 };
}

/** The timing models of a run, each scaled (the config's own model built when none is given). */
function scaledTimings(
  config: SimulationConfig,
  timings: TimingModel | PoolTimings | undefined,
  f: CorrectionFactors,
): PoolTimings {
  const base = timings ?? toSimulationOptions(config).timing;
  const scale = (t: TimingModel | undefined) => (t ? new ScaledTiming(t, f.prefill, f.decode) : undefined);
  if ('prefillMs' in base) return { aggregated: scale(base) };
  return { aggregated: scale(base.aggregated), prefill: scale(base.prefill), decode: scale(base.decode) };
}

function run(o: CalibrationOptions, f: CorrectionFactors | null): MetricValues {
  const timings = f === null ? o.timings : scaledTimings(o.config, o.timings, f);
  return measuredReplay({
    workload: o.workload,
    config: o.config,
    timings,
    measureFromMs: o.measureFromMs ?? 0,
    windowS: o.windowS,
    basis: o.basis ?? { kind: 'report' },
  });
}

const clamp = (v: number, lo: number, hi: number) => Math.min(hi, Math.max(lo, v));

export function calibrate(o: CalibrationOptions): CalibrationResult {
  const predicted = run(o, null);
  const before = compare(predicted, o.observed);
  const canFit = o.observed.ttft_p50 !== undefined || o.observed.itl_p50 !== undefined;
  if (!(o.fit ?? true) || !canFit) {
    return {
      observed: o.observed,
      predicted,
      errors: before.errors,
      meanAbsError: before.meanAbs,
      correction: null,
    };
  }
  const { min, max } = o.bounds ?? { min: 0.5, max: 2 };
  const maxIt = o.maxIterations ?? 10;
  const f: CorrectionFactors = { prefill: 1, decode: 1 };
  let current = predicted;
  let best = { f: { ...f }, predicted, ...before };
  let iterations = 0;
  for (; iterations < maxIt; iterations++) {
    // Decode time is what inter-token gaps are made of; TTFT adds prefill (and the queue, hence damping).
    const itlRatio =
      o.observed.itl_p50 !== undefined && current.itl_p50 ? o.observed.itl_p50 / current.itl_p50 : 1;
    const ttftRatio =
      o.observed.ttft_p50 !== undefined && current.ttft_p50 ? o.observed.ttft_p50 / current.ttft_p50 : 1;
    if (Math.abs(itlRatio - 1) < 0.01 && Math.abs(ttftRatio - 1) < 0.01) break;
    f.decode = clamp(f.decode * itlRatio, min, max);
    f.prefill = clamp(f.prefill * ttftRatio ** 0.7, min, max);
    current = run(o, f);
    const c = compare(current, o.observed);
    if (c.meanAbs < best.meanAbs) best = { f: { ...f }, predicted: current, ...c };
  }
  const rounded = { prefill: Number(best.f.prefill.toFixed(4)), decode: Number(best.f.decode.toFixed(4)) };
  const atBound = (v: number) => v <= min * 1.0001 || v >= max * 0.9999;
  return {
    observed: o.observed,
    predicted,
    errors: before.errors,
    meanAbsError: before.meanAbs,
    correction: {
      factors: rounded,
      predicted: best.predicted,
      errors: best.errors,
      meanAbsError: best.meanAbs,
      bounded: atBound(best.f.prefill) || atBound(best.f.decode),
      iterations,
    },
  };
}
