/**
 * Requests waiting and running, summed over engines, as time-weighted integrals in a fixed number of equal
 * time buckets: when the run outgrows them, neighbouring buckets merge and the width doubles. Memory stays a
 * few hundred kilobytes however long the run (a raw sample per change would grow with it), and the report's
 * 120-point series is computed from 8,192 buckets (within 1/68 of each output bucket's edges).
 */
const BUCKETS = 8192;

export class QueueDepth {
  /** Bucket width (ms). */
  private width = 1;
  private readonly waitingArea = new Float64Array(BUCKETS);
  private readonly runningArea = new Float64Array(BUCKETS);
  /** Time covered by samples in each bucket (ms). */
  private readonly covered = new Float64Array(BUCKETS);
  private last = Number.NaN;
  private waiting = 0;
  private running = 0;

  /** From t on, `waiting` requests wait and `running` run (t never decreases). */
  sample(t: number, waiting: number, running: number): void {
    if (!Number.isNaN(this.last)) {
      if (waiting === this.waiting && running === this.running) return;
      this.integrate(this.last, t);
    }
    this.last = t;
    this.waiting = waiting;
    this.running = running;
  }

  /**
   * Time-weighted means over `points` equal buckets of [0, endMs] (the last values held until endMs; only
   * the time after the first sample counts).
   */
  series(endMs: number, points: number): { t_s: number[]; waiting: number[]; running: number[] } {
    const out = { t_s: [] as number[], waiting: [] as number[], running: [] as number[] };
    if (Number.isNaN(this.last) || endMs <= 0) return out;
    const tail = this.clone();
    if (endMs > tail.last) tail.integrate(tail.last, endMs);
    const step = endMs / points;
    for (let b = 0; b < points; b++) {
      const lo = b * step;
      const hi = lo + step;
      const w = tail.sum(tail.waitingArea, lo, hi);
      const r = tail.sum(tail.runningArea, lo, hi);
      const c = tail.sum(tail.covered, lo, hi);
      out.t_s.push(Math.round(((lo + hi) / 2) * 1e3) / 1e6);
      out.waiting.push(c > 0 ? w / c : 0);
      out.running.push(c > 0 ? r / c : 0);
    }
    return out;
  }

  /** Adds the current values over [from, to) to the buckets. */
  private integrate(from: number, to: number): void {
    if (!(to > from)) return;
    while (to > BUCKETS * this.width) this.coarsen();
    const w = this.width;
    let a = from;
    while (a < to) {
      const b = Math.floor(a / w);
      const end = Math.min(to, (b + 1) * w);
      const d = end - a;
      this.waitingArea[b] += this.waiting * d;
      this.runningArea[b] += this.running * d;
      this.covered[b] += d;
      a = end;
    }
  }

  private coarsen(): void {
    for (const a of [this.waitingArea, this.runningArea, this.covered]) {
      for (let i = 0; i < BUCKETS / 2; i++) a[i] = a[2 * i] + a[2 * i + 1];
      a.fill(0, BUCKETS / 2);
    }
    this.width *= 2;
  }

  /** Integral over [lo, hi) of a bucketed quantity (a partly covered bucket counts pro rata). */
  private sum(a: Float64Array, lo: number, hi: number): number {
    const w = this.width;
    let s = 0;
    for (let b = Math.floor(lo / w); b < BUCKETS && b * w < hi; b++) {
      const from = Math.max(lo, b * w);
      const to = Math.min(hi, (b + 1) * w);
      if (to > from) s += (a[b] * (to - from)) / w;
    }
    return s;
  }

  private clone(): QueueDepth {
    const q = new QueueDepth();
    q.width = this.width;
    q.waitingArea.set(this.waitingArea);
    q.runningArea.set(this.runningArea);
    q.covered.set(this.covered);
    q.last = this.last;
    q.waiting = this.waiting;
    q.running = this.running;
    return q;
  }
}
