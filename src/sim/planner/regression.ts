import { solve } from './predictors.ts';

/**
 * A linear regression of pass wall time on one or two pass features, over a bounded, bucketed sample store:
 * each axis is cut into equal-width buckets between the smallest and largest value seen, and beyond
 * `maxSamples` the oldest sample of the fullest bucket is retired, so sustained traffic at one operating point
 * does not push out what was learnt about others (the reference planner's retirement rule).
 */
export class BucketedRegression {
  readonly ndim: number;
  private readonly maxSamples: number;
  readonly minObservations: number;
  private readonly perAxis: number;
  /** Features whose negative coefficients are clipped to 0; any other negative coefficient rejects the fit. */
  private readonly clippable: ReadonlySet<number>;
  private readonly buckets = new Map<string, { x: number[]; y: number }[]>();
  private total = 0;
  private readonly lo: number[];
  private readonly hi: number[];
  private coef: number[] | null = null;
  private intercept = 0;
  private stale = true;

  constructor(
    ndim: number,
    maxSamples: number,
    minObservations: number,
    bucketCount: number,
    clippable: number[] = [],
  ) {
    this.ndim = ndim;
    this.maxSamples = maxSamples;
    this.minObservations = minObservations;
    this.perAxis = ndim === 1 ? bucketCount : Math.max(1, Math.round(Math.sqrt(bucketCount)));
    this.clippable = new Set(clippable);
    this.lo = new Array(ndim).fill(Number.POSITIVE_INFINITY);
    this.hi = new Array(ndim).fill(Number.NEGATIVE_INFINITY);
  }

  get observations(): number {
    return this.total;
  }

  hasSufficientData(): boolean {
    return this.total >= this.minObservations;
  }

  private key(x: number[]): string {
    let k = '';
    for (let i = 0; i < this.ndim; i++) {
      const lo = this.lo[i];
      const hi = this.hi[i];
      const idx =
        hi <= lo
          ? 0
          : Math.max(0, Math.min(this.perAxis - 1, Math.floor(((x[i] - lo) / (hi - lo)) * this.perAxis)));
      k += `${idx},`;
    }
    return k;
  }

  add(x: number[], y: number): void {
    let widened = false;
    for (let i = 0; i < this.ndim; i++) {
      if (x[i] < this.lo[i]) {
        this.lo[i] = x[i];
        widened = true;
      }
      if (x[i] > this.hi[i]) {
        this.hi[i] = x[i];
        widened = true;
      }
    }
    if (widened && this.total > 0) {
      // Bounds moved: re-bucket everything, oldest first within each bucket as before.
      const all = [...this.buckets.values()].flat();
      this.buckets.clear();
      for (const o of all) this.bucketOf(o.x).push(o);
    }
    this.bucketOf(x).push({ x: x.slice(), y });
    this.total++;
    if (this.total > this.maxSamples) {
      let fattest: string | null = null;
      let size = -1;
      for (const [k, b] of this.buckets) {
        if (b.length > size) {
          size = b.length;
          fattest = k;
        }
      }
      const b = this.buckets.get(fattest as string) as { x: number[]; y: number }[];
      b.shift();
      if (b.length === 0) this.buckets.delete(fattest as string);
      this.total--;
    }
    this.stale = true;
  }

  private bucketOf(x: number[]): { x: number[]; y: number }[] {
    const k = this.key(x);
    let b = this.buckets.get(k);
    if (!b) {
      b = [];
      this.buckets.set(k, b);
    }
    return b;
  }

  /** Fits (if samples changed); false while there is too little data or the fit is unphysical. */
  ensureFitted(): boolean {
    if (!this.stale) return this.coef !== null;
    this.stale = false;
    this.coef = null;
    if (this.total < this.minObservations) return false;
    const k = this.ndim + 1;
    const a = Array.from({ length: k }, () => new Array<number>(k + 1).fill(0));
    let n = 0;
    for (const b of this.buckets.values()) {
      for (const o of b) {
        const row = [1, ...o.x];
        for (let p = 0; p < k; p++) {
          for (let q = 0; q < k; q++) a[p][q] += row[p] * row[q];
          a[p][k] += row[p] * o.y;
        }
        n++;
      }
    }
    let beta = solve(a.map((r) => r.slice()));
    if (beta === null) {
      // Collinear or constant features: a whisker of ridge gives the minimum-norm-like answer.
      const ridge = a.map((r, i) =>
        r.map((v, j) => (i === j && i > 0 ? v + 1e-9 * Math.max(1, a[i][i]) : v)),
      );
      beta = solve(ridge);
      if (beta === null) return false;
    }
    const coef = beta.slice(1);
    for (let i = 0; i < coef.length; i++) {
      if (coef[i] >= 0) continue;
      if (!this.clippable.has(i)) return false;
      coef[i] = 0;
    }
    this.coef = coef;
    this.intercept = beta[0];
    return n > 0;
  }

  /** Predicted wall time (seconds), at least 1 us. Call `ensureFitted` first. */
  predict(x: number[]): number {
    const c = this.coef as number[];
    let y = this.intercept;
    for (let i = 0; i < c.length; i++) y += c[i] * x[i];
    return Math.max(1e-6, y);
  }

  /** The fitted line, for reports. */
  fit(): { intercept: number; coef: number[] } | null {
    return this.ensureFitted() ? { intercept: this.intercept, coef: (this.coef as number[]).slice() } : null;
  }
}

/** Mean of the last `window` values, ignoring the zeros before the first non-zero one. */
export class MovingAverage {
  private readonly window: number;
  private readonly values: number[] = [];
  private sum = 0;
  private seenNonZero = false;
  constructor(window: number) {
    this.window = window;
  }
  add(v: number): void {
    if (v === 0 && !this.seenNonZero) return;
    if (v !== 0) this.seenNonZero = true;
    this.values.push(v);
    this.sum += v;
    if (this.values.length > this.window) this.sum -= this.values.shift() as number;
  }
  get value(): number {
    return this.values.length === 0 ? 0 : this.sum / this.values.length;
  }
}
