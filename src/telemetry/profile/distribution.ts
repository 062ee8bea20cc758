/**
 * Length (and latency) distributions as a profile keeps them: a histogram over increasing upper bounds plus
 * the summary statistics people read (mean, p50, p90, p99). A histogram from a trace uses fine log-spaced
 * bounds (FINE_BOUNDS, about 19 % wide); one from Prometheus keeps the exporter's buckets. Both answer the
 * same questions (a CDF at any point, a quantile), so profiles from either source compare with each other.
 */

export interface Distribution {
  /** Observations. */
  count: number;
  mean: number;
  p50: number;
  p90: number;
  p99: number;
  /** Finite upper bounds, ascending (a value v falls in the first bucket with v <= bound). */
  bounds: number[];
  /** Observations per bucket: counts.length = bounds.length + 1, the last above the last bound. */
  counts: number[];
}

/** Bounds 2^(k/4) rounded, 1 to 2^22 tokens (about 4 million): fine enough that binning errors stay small. */
export const FINE_BOUNDS: readonly number[] = (() => {
  const out: number[] = [];
  for (let k = 0; k <= 88; k++) {
    const v = Math.round(2 ** (k / 4));
    if (out.length === 0 || v > out[out.length - 1]) out.push(v);
  }
  return out;
})();

/** The first bucket whose bound holds v (bounds.length for the overflow bucket). */
export function bucketOf(bounds: readonly number[], v: number): number {
  let lo = 0;
  let hi = bounds.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (v <= bounds[mid]) hi = mid;
    else lo = mid + 1;
  }
  return lo;
}

/** Exact percentile of sorted values (nearest rank, as the simulator's report computes them). */
function exactQuantile(sorted: Float64Array, q: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))];
}

/** The distribution of `values` (NaN entries skipped), exact statistics and a histogram over `bounds`. */
export function distributionOf(
  values: ArrayLike<number>,
  bounds: readonly number[] = FINE_BOUNDS,
): Distribution {
  let n = 0;
  for (let i = 0; i < values.length; i++) if (!Number.isNaN(values[i])) n++;
  const sorted = new Float64Array(n);
  let k = 0;
  let sum = 0;
  const counts = new Array<number>(bounds.length + 1).fill(0);
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (Number.isNaN(v)) continue;
    sorted[k++] = v;
    sum += v;
    counts[bucketOf(bounds, v)]++;
  }
  sorted.sort();
  return {
    count: n,
    mean: n > 0 ? sum / n : 0,
    p50: exactQuantile(sorted, 0.5),
    p90: exactQuantile(sorted, 0.9),
    p99: exactQuantile(sorted, 0.99),
    bounds: [...bounds],
    counts,
  };
}

/**
 * A distribution known only as a histogram (Prometheus buckets): cumulative counts at upper bounds (the last
 * +Inf), and the sum when known (else the mean is estimated from bucket midpoints). Quantiles interpolate
 * within buckets as PromQL's histogram_quantile does.
 */
export function distributionFromBuckets(
  cumulative: readonly { le: number; count: number }[],
  sum?: number,
): Distribution {
  const sorted = [...cumulative].sort((a, b) => a.le - b.le);
  const bounds: number[] = [];
  const counts: number[] = [];
  let prev = 0;
  let total = 0;
  for (const b of sorted) {
    // Cumulative counts must not decrease; a scrape racing an observation can make them, so clamp.
    const c = Math.max(prev, b.count);
    if (Number.isFinite(b.le)) {
      bounds.push(b.le);
      counts.push(c - prev);
    } else {
      counts.push(c - prev);
    }
    prev = c;
    total = c;
  }
  if (counts.length === bounds.length) counts.push(0);
  const d: Distribution = { count: total, mean: 0, p50: 0, p90: 0, p99: 0, bounds, counts };
  d.mean = sum !== undefined && total > 0 ? sum / total : estimatedMean(d);
  d.p50 = quantile(d, 0.5);
  d.p90 = quantile(d, 0.9);
  d.p99 = quantile(d, 0.99);
  return d;
}

/** Lower edge of bucket i (0 below the first bound). */
const lowerOf = (d: Distribution, i: number) => (i === 0 ? 0 : d.bounds[i - 1]);

function estimatedMean(d: Distribution): number {
  if (d.count === 0) return 0;
  let s = 0;
  for (let i = 0; i < d.counts.length; i++) {
    const hi = i < d.bounds.length ? d.bounds[i] : lowerOf(d, i);
    s += d.counts[i] * ((lowerOf(d, i) + hi) / 2);
  }
  return s / d.count;
}

/**
 * The q-quantile by linear interpolation inside its bucket (histogram_quantile's rule: the overflow bucket
 * answers the highest finite bound, and the first bucket interpolates from 0).
 */
export function quantile(d: Distribution, q: number): number {
  if (d.count === 0) return 0;
  const rank = q * d.count;
  let cum = 0;
  for (let i = 0; i < d.counts.length; i++) {
    const c = d.counts[i];
    if (cum + c >= rank && c > 0) {
      if (i >= d.bounds.length) return d.bounds.length > 0 ? d.bounds[d.bounds.length - 1] : 0;
      const lo = lowerOf(d, i);
      return lo + (d.bounds[i] - lo) * ((rank - cum) / c);
    }
    cum += c;
  }
  return d.bounds.length > 0 ? d.bounds[d.bounds.length - 1] : 0;
}

/**
 * The CDF at x, interpolated inside buckets on a log scale (lengths and latencies spread over decades, so a
 * bucket's mass is closer to uniform in log x than in x). Above the last bound: the mass below it, rising to
 * 1 at twice the bound (the overflow bucket's content is unknown; this keeps the CDF continuous).
 */
export function cdfAt(d: Distribution, x: number): number {
  if (d.count === 0) return 0;
  let cum = 0;
  for (let i = 0; i < d.counts.length; i++) {
    const c = d.counts[i];
    const hasBound = i < d.bounds.length;
    const lo = lowerOf(d, i);
    const hi = hasBound ? d.bounds[i] : Math.max(1, lo) * 2;
    if (x >= hi) {
      cum += c;
      continue;
    }
    if (x <= lo) break;
    const logLo = Math.log(Math.max(lo, hi / 1024, 1e-12));
    const frac = x <= 0 ? 0 : Math.min(1, Math.max(0, (Math.log(x) - logLo) / (Math.log(hi) - logLo)));
    cum += c * frac;
    break;
  }
  return Math.min(1, cum / d.count);
}

/** `d` re-bucketed onto `bounds` (its CDF read at each bound): to compare it with a coarser histogram. */
export function rebucket(d: Distribution, bounds: readonly number[]): Distribution {
  const counts: number[] = [];
  let prev = 0;
  for (const b of bounds) {
    const c = cdfAt(d, b) * d.count;
    counts.push(Math.max(0, c - prev));
    prev = Math.max(prev, c);
  }
  counts.push(Math.max(0, d.count - prev));
  return { ...d, bounds: [...bounds], counts };
}

const sameBounds = (a: Distribution, b: Distribution) =>
  a.bounds.length === b.bounds.length && a.bounds.every((v, i) => v === b.bounds[i]);

/**
 * Both distributions on one set of buckets: the coarser one's (fewer bounds), the finer re-bucketed onto it.
 * Comparing at the coarser resolution keeps a histogram's guess about its buckets' insides from counting as
 * a difference: a trace and the same traffic seen through Dynamo's buckets compare as equal.
 */
function aligned(a: Distribution, b: Distribution): [Distribution, Distribution] {
  if (sameBounds(a, b)) return [a, b];
  return a.bounds.length <= b.bounds.length ? [a, rebucket(b, a.bounds)] : [rebucket(a, b.bounds), b];
}

/** Points at which to compare: the common bounds, plus twice the largest (the overflow bucket). */
function comparisonPoints(a: Distribution): number[] {
  const pts = a.bounds.filter((v) => v > 0);
  pts.push((a.bounds[a.bounds.length - 1] ?? 1) * 2);
  return pts;
}

/** Kolmogorov-Smirnov distance (largest CDF gap, 0-1), at the coarser histogram's resolution. */
export function ksDistance(x: Distribution, y: Distribution): number {
  if (x.count === 0 || y.count === 0) return x.count === y.count ? 0 : 1;
  const [a, b] = aligned(x, y);
  let d = 0;
  for (const p of comparisonPoints(a)) d = Math.max(d, Math.abs(cdfAt(a, p) - cdfAt(b, p)));
  return d;
}

/**
 * Wasserstein-1 distance on a log2 scale: the area between the CDFs over log2(x), i.e. by how many doublings
 * the mass moved on average (0.5: lengths about 40 % longer or shorter). Scale-free, so prompts of 100 and
 * 100,000 tokens weigh alike. At the coarser histogram's resolution, like the KS distance.
 */
export function log2Wasserstein(x: Distribution, y: Distribution): number {
  if (x.count === 0 || y.count === 0) return x.count === y.count ? 0 : Number.POSITIVE_INFINITY;
  const [a, b] = aligned(x, y);
  const pts = comparisonPoints(a).filter((p) => p >= 1);
  let area = 0;
  for (let i = 1; i < pts.length; i++) {
    // Between neighbouring bounds both CDFs are log-linear, so the gap is too (up to a sign change).
    const g0 = Math.abs(cdfAt(a, pts[i - 1]) - cdfAt(b, pts[i - 1]));
    const g1 = Math.abs(cdfAt(a, pts[i]) - cdfAt(b, pts[i]));
    area += ((g0 + g1) / 2) * Math.log2(pts[i] / pts[i - 1]);
  }
  return area;
}
