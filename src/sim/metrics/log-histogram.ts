/**
 * A weighted log-bucket histogram (the DDSketch layout) for pooled distributions with millions of samples,
 * such as every inter-token gap of a run. Values are bucketed with a fixed relative accuracy; count, sum,
 * sum of squares, min and max are exact. Adding n equal samples costs O(1), which the coalesced decode path
 * relies on.
 */
export class LogHistogram {
  private readonly gamma: number;
  private readonly logGamma: number;
  private readonly offset: number;
  private readonly counts: Float64Array;
  private zeroCount = 0;
  private lastValue = Number.NaN;
  private lastBucket = 0;
  count = 0;
  sum = 0;
  sumSquares = 0;
  min = Number.POSITIVE_INFINITY;
  max = Number.NEGATIVE_INFINITY;

  /** relativeAccuracy 0.001 and 32,768 buckets span about 1e-7 .. 1e7 (ms). */
  constructor(relativeAccuracy = 0.001, buckets = 32768) {
    this.gamma = (1 + relativeAccuracy) / (1 - relativeAccuracy);
    this.logGamma = Math.log(this.gamma);
    this.counts = new Float64Array(buckets);
    this.offset = buckets >> 1;
  }

  add(value: number, weight = 1): void {
    if (weight <= 0) return;
    this.count += weight;
    this.sum += value * weight;
    this.sumSquares += value * value * weight;
    if (value < this.min) this.min = value;
    if (value > this.max) this.max = value;
    if (value <= 0) {
      this.zeroCount += weight;
      return;
    }
    // Consecutive samples are often equal (every request of a pass sees the same gap): skip the logarithm.
    if (value === this.lastValue) {
      this.counts[this.lastBucket] += weight;
      return;
    }
    let i = Math.ceil(Math.log(value) / this.logGamma) + this.offset;
    if (i < 0) i = 0;
    else if (i >= this.counts.length) i = this.counts.length - 1;
    this.counts[i] += weight;
    this.lastValue = value;
    this.lastBucket = i;
  }

  /** Value at rank round((count - 1) * p) of the sorted samples, within the relative accuracy. */
  quantile(p: number): number {
    if (this.count === 0) return Number.NaN;
    const rank = Math.round((this.count - 1) * p);
    if (rank <= 0) return this.min;
    if (rank >= this.count - 1) return this.max;
    let seen = this.zeroCount;
    if (rank < seen) return 0;
    for (let i = 0; i < this.counts.length; i++) {
      seen += this.counts[i];
      if (seen > rank) {
        const v = (2 * this.gamma ** (i - this.offset)) / (this.gamma + 1);
        return Math.min(this.max, Math.max(this.min, v));
      }
    }
    return this.max;
  }

  mean(): number {
    return this.count === 0 ? Number.NaN : this.sum / this.count;
  }

  std(): number {
    if (this.count === 0) return Number.NaN;
    const m = this.sum / this.count;
    return Math.sqrt(Math.max(0, this.sumSquares / this.count - m * m));
  }
}
