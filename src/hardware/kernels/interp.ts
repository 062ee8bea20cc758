import type { Curve } from './tables.ts';

/** Position of x on a sorted axis: value = (1 - f) * at(i) + f * at(i + 1); clamped to the ends (f in [0, 1]). */
export interface Bracket {
  i: number;
  f: number;
}

/** Brackets x on an increasing axis, linearly or in log space; outside the axis the end point is held. */
export function bracket(axis: ArrayLike<number>, x: number, log = false): Bracket {
  const n = axis.length;
  if (n === 1 || x <= axis[0]) return { i: 0, f: 0 };
  if (x >= axis[n - 1]) return { i: n - 2, f: 1 };
  let lo = 0;
  let hi = n - 1;
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1;
    if (axis[mid] <= x) lo = mid;
    else hi = mid;
  }
  const a = axis[lo];
  const b = axis[lo + 1];
  const f = log ? Math.log(x / a) / Math.log(b / a) : (x - a) / (b - a);
  return { i: lo, f };
}

/**
 * Piecewise-linear y(x) through the measured points; below the first point y is held, above the last it
 * grows in proportion to x (work that scales with size once the kernel is saturated).
 */
export function linearCurve(c: Curve, x: number): number {
  const n = c.x.length;
  if (x >= c.x[n - 1]) return (c.y[n - 1] * x) / c.x[n - 1];
  const b = bracket(c.x, x);
  return c.y[b.i] * (1 - b.f) + c.y[b.i + 1] * b.f;
}

/** Like linearCurve but interpolating in log-log space (for curves over sizes spanning decades). */
export function logLogCurve(c: Curve, x: number): number {
  const n = c.x.length;
  if (x >= c.x[n - 1]) return (c.y[n - 1] * x) / c.x[n - 1];
  if (x <= c.x[0]) return c.y[0];
  const b = bracket(c.x, x, true);
  return Math.exp(Math.log(c.y[b.i]) * (1 - b.f) + Math.log(c.y[b.i + 1]) * b.f);
}

/**
 * Pool-adjacent-violators: the least-squares non-decreasing fit of y, in place. Used on composed step-time
 * curves so that more tokens are never priced cheaper (kernel tables carry tile-selection noise).
 */
export function makeNonDecreasing(y: Float64Array): void {
  const n = y.length;
  const val = new Float64Array(n);
  const cnt = new Int32Array(n);
  let top = -1;
  for (let i = 0; i < n; i++) {
    top++;
    val[top] = y[i];
    cnt[top] = 1;
    while (top > 0 && val[top - 1] > val[top]) {
      const c = cnt[top - 1] + cnt[top];
      val[top - 1] = (val[top - 1] * cnt[top - 1] + val[top] * cnt[top]) / c;
      cnt[top - 1] = c;
      top--;
    }
  }
  let k = 0;
  for (let b = 0; b <= top; b++) for (let j = 0; j < cnt[b]; j++) y[k++] = val[b];
}
