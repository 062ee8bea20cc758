import type { LogHistogram } from './log-histogram.ts';

/** Summary of a distribution: mean, min, max, percentiles (rank round((n-1)p)), population std. */
export interface Distribution {
  count: number;
  mean: number;
  min: number;
  max: number;
  p50: number;
  p75: number;
  p90: number;
  p95: number;
  p99: number;
  std: number;
}

const EMPTY: Distribution = {
  count: 0,
  mean: Number.NaN,
  min: Number.NaN,
  max: Number.NaN,
  p50: Number.NaN,
  p75: Number.NaN,
  p90: Number.NaN,
  p95: Number.NaN,
  p99: Number.NaN,
  std: Number.NaN,
};

/** Exact summary of the first `n` values (sorted in place). */
export function summarize(values: Float64Array, n = values.length): Distribution {
  if (n === 0) return { ...EMPTY };
  const v = values.subarray(0, n).sort();
  let sum = 0;
  for (let i = 0; i < n; i++) sum += v[i];
  const mean = sum / n;
  let sq = 0;
  for (let i = 0; i < n; i++) sq += (v[i] - mean) ** 2;
  const at = (p: number) => v[Math.round((n - 1) * p)];
  return {
    count: n,
    mean,
    min: v[0],
    max: v[n - 1],
    p50: at(0.5),
    p75: at(0.75),
    p90: at(0.9),
    p95: at(0.95),
    p99: at(0.99),
    std: Math.sqrt(sq / n),
  };
}

export function summarizeHistogram(h: LogHistogram): Distribution {
  if (h.count === 0) return { ...EMPTY };
  return {
    count: h.count,
    mean: h.mean(),
    min: h.min,
    max: h.max,
    p50: h.quantile(0.5),
    p75: h.quantile(0.75),
    p90: h.quantile(0.9),
    p95: h.quantile(0.95),
    p99: h.quantile(0.99),
    std: h.std(),
  };
}
