import type { PlannerConfig } from './config.ts';

/**
 * One-step-ahead forecasters of a per-interval series (requests, mean ISL, mean OSL), the throughput
 * planner's view of the coming interval. All of them skip the idle stretch before the first non-zero point
 * (as the reference does, so a cold start does not drag forecasts to zero), treat non-finite points as zero,
 * and forecast the last value until they have enough points.
 *
 * The reference's `arima` (pmdarima auto-ARIMA) and `prophet` (Meta Prophet) are libraries; here they are
 * small stand-ins with the same role: `arima` picks AR(p) on levels or on differences by AIC, `prophet` fits
 * a linear trend over its window (Prophet's trend term; its daily and weekly seasonalities do not show at
 * planner horizons). `moving_average` and `holt_winters` (additive level, trend and season) are extensions.
 */
export interface LoadPredictor {
  add(value: number): void;
  predict(): number;
}

abstract class Base implements LoadPredictor {
  protected readonly data: number[] = [];
  private seenNonZero = false;

  add(value: number): void {
    const v = Number.isFinite(value) ? value : 0;
    if (v === 0 && !this.seenNonZero) return;
    if (v !== 0) this.seenNonZero = true;
    this.data.push(v);
    this.observed(v);
  }

  protected observed(_v: number): void {}

  protected last(): number {
    return this.data.length > 0 ? this.data[this.data.length - 1] : 0;
  }

  abstract predict(): number;
}

class Constant extends Base {
  predict(): number {
    return this.last();
  }
}

class MovingAverage extends Base {
  private readonly window: number;
  constructor(window: number) {
    super();
    this.window = window;
  }
  predict(): number {
    const n = Math.min(this.window, this.data.length);
    if (n === 0) return 0;
    let s = 0;
    for (let i = this.data.length - n; i < this.data.length; i++) s += this.data[i];
    return s / n;
  }
}

/** Local linear trend Kalman filter: level and slope, both random walks; one predict/update per point. */
class Kalman extends Base {
  private x0 = 0; // level
  private x1 = 0; // trend
  private p00 = 1000;
  private p01 = 0;
  private p11 = 1000;
  private initialized = false;
  private cached: number | null = null;
  private readonly qLevel: number;
  private readonly qTrend: number;
  private readonly r: number;
  private readonly minPoints: number;

  constructor(qLevel: number, qTrend: number, r: number, minPoints: number) {
    super();
    this.qLevel = Math.max(1e-12, qLevel);
    this.qTrend = Math.max(1e-12, qTrend);
    this.r = Math.max(1e-9, r);
    this.minPoints = minPoints;
  }

  private step(): void {
    // x <- F x, P <- F P F' + Q with F = [[1, 1], [0, 1]].
    this.x0 += this.x1;
    const p00 = this.p00 + 2 * this.p01 + this.p11 + this.qLevel;
    const p01 = this.p01 + this.p11;
    const p11 = this.p11 + this.qTrend;
    this.p00 = p00;
    this.p01 = p01;
    this.p11 = p11;
  }

  protected override observed(z: number): void {
    if (!this.initialized) {
      this.x0 = z;
      this.x1 = 0;
      this.initialized = true;
      return;
    }
    if (this.cached === null) this.step(); // a forecast already advanced the state
    this.cached = null;
    const s = this.p00 + this.r;
    const k0 = this.p00 / s;
    const k1 = this.p01 / s;
    const y = z - this.x0;
    this.x0 += k0 * y;
    this.x1 += k1 * y;
    const p00 = (1 - k0) * this.p00;
    const p01 = (1 - k0) * this.p01;
    const p11 = this.p11 - k1 * this.p01;
    this.p00 = p00;
    this.p01 = p01;
    this.p11 = p11;
  }

  predict(): number {
    if (!this.initialized || this.data.length < this.minPoints) return this.last();
    if (this.cached === null) {
      this.step();
      this.cached = this.x0;
    }
    return Math.max(0, this.cached);
  }
}

/** Least squares of y on the columns of x (with an intercept); null when singular. */
function leastSquares(x: number[][], y: number[]): { beta: number[]; rss: number } | null {
  const k = (x[0]?.length ?? 0) + 1;
  const a = Array.from({ length: k }, () => new Array<number>(k + 1).fill(0));
  for (let i = 0; i < y.length; i++) {
    const row = [1, ...x[i]];
    for (let p = 0; p < k; p++) {
      for (let q = 0; q < k; q++) a[p][q] += row[p] * row[q];
      a[p][k] += row[p] * y[i];
    }
  }
  const beta = solve(a);
  if (beta === null) return null;
  let rss = 0;
  for (let i = 0; i < y.length; i++) {
    let f = beta[0];
    for (let j = 1; j < k; j++) f += beta[j] * x[i][j - 1];
    rss += (y[i] - f) ** 2;
  }
  return { beta, rss };
}

/** Gauss-Jordan with partial pivoting on an augmented matrix; null when (near) singular. */
export function solve(a: number[][]): number[] | null {
  const n = a.length;
  for (let c = 0; c < n; c++) {
    let piv = c;
    for (let r = c + 1; r < n; r++) if (Math.abs(a[r][c]) > Math.abs(a[piv][c])) piv = r;
    const scale = Math.max(1e-300, ...a.map((row) => Math.abs(row[c])));
    if (Math.abs(a[piv][c]) <= 1e-12 * scale) return null;
    [a[c], a[piv]] = [a[piv], a[c]];
    for (let r = 0; r < n; r++) {
      if (r === c) continue;
      const f = a[r][c] / a[c][c];
      if (f === 0) continue;
      for (let j = c; j <= n; j++) a[r][j] -= f * a[c][j];
    }
  }
  return a.map((row, i) => row[n] / row[i]);
}

/** AR(p) on the series (d = 0) or on its differences (d = 1), p <= 2, chosen by AIC over the recent past. */
class Arima extends Base {
  predict(): number {
    const all = this.data;
    if (all.length < 5) return this.last();
    const ys = all.slice(-200);
    if (ys.every((v) => v === ys[0])) return ys[0];
    let best = { aic: Number.POSITIVE_INFINITY, forecast: this.last() };
    for (const d of [0, 1]) {
      const s = d === 0 ? ys : ys.slice(1).map((v, i) => v - ys[i]);
      for (let p = d === 0 ? 1 : 0; p <= 2; p++) {
        if (s.length - p < p + 3) continue;
        const x: number[][] = [];
        const y: number[] = [];
        for (let t = p; t < s.length; t++) {
          x.push(Array.from({ length: p }, (_, j) => s[t - 1 - j]));
          y.push(s[t]);
        }
        const fit = leastSquares(x, y);
        if (fit === null) continue;
        const n = y.length;
        const aic = n * Math.log(Math.max(fit.rss, 1e-12) / n) + 2 * (p + 1);
        let next = fit.beta[0];
        for (let j = 0; j < p; j++) next += fit.beta[j + 1] * s[s.length - 1 - j];
        const forecast = d === 0 ? next : ys[ys.length - 1] + next;
        if (aic < best.aic) best = { aic, forecast };
      }
    }
    return Math.max(0, best.forecast);
  }
}

/** Linear trend over the last `window` points. */
class Trend extends Base {
  private readonly window: number;
  constructor(window: number) {
    super();
    this.window = window;
  }
  predict(): number {
    const ys = this.data.slice(-this.window);
    if (ys.length < 5) return this.last();
    const fit = leastSquares(
      ys.map((_, i) => [i]),
      ys,
    );
    if (fit === null) return this.last();
    return Math.max(0, fit.beta[0] + fit.beta[1] * ys.length);
  }
}

/**
 * Additive Holt-Winters (level, trend, season of `period` points). Until two seasons are seen it is Holt's
 * linear method (level and trend only).
 */
class HoltWinters extends Base {
  private readonly period: number;
  private readonly alpha = 0.5;
  private readonly beta = 0.1;
  private readonly gamma = 0.3;
  constructor(period: number) {
    super();
    this.period = period;
  }
  predict(): number {
    const y = this.data;
    const m = this.period;
    if (y.length < 3) return this.last();
    const a = this.alpha;
    const b = this.beta;
    if (y.length < 2 * m) {
      let level = y[0];
      let trend = y[1] - y[0];
      for (let t = 1; t < y.length; t++) {
        const prev = level;
        level = a * y[t] + (1 - a) * (level + trend);
        trend = b * (level - prev) + (1 - b) * trend;
      }
      return Math.max(0, level + trend);
    }
    const g = this.gamma;
    let mean1 = 0;
    let mean2 = 0;
    for (let i = 0; i < m; i++) {
      mean1 += y[i] / m;
      mean2 += y[m + i] / m;
    }
    let level = mean1;
    let trend = (mean2 - mean1) / m;
    const season = Array.from({ length: m }, (_, i) => y[i] - mean1);
    for (let t = m; t < y.length; t++) {
      const s = season[t % m];
      const prev = level;
      level = a * (y[t] - s) + (1 - a) * (level + trend);
      trend = b * (level - prev) + (1 - b) * trend;
      season[t % m] = g * (y[t] - level) + (1 - g) * s;
    }
    return Math.max(0, level + trend + season[y.length % m]);
  }
}

/** Forecasts in log1p space (spiky series), back in linear space. */
class Log1p implements LoadPredictor {
  private readonly inner: LoadPredictor;
  constructor(inner: LoadPredictor) {
    this.inner = inner;
  }
  add(value: number): void {
    this.inner.add(Number.isFinite(value) ? Math.log1p(Math.max(0, value)) : 0);
  }
  predict(): number {
    return Math.max(0, Math.expm1(this.inner.predict()));
  }
}

export function createPredictor(
  c: Pick<
    PlannerConfig,
    | 'load_predictor'
    | 'load_predictor_log1p'
    | 'prophet_window_size'
    | 'kalman_q_level'
    | 'kalman_q_trend'
    | 'kalman_r'
    | 'kalman_min_points'
    | 'moving_average_window'
    | 'seasonal_period'
  >,
): LoadPredictor {
  const p: LoadPredictor = (() => {
    switch (c.load_predictor) {
      case 'constant':
        return new Constant();
      case 'moving_average':
        return new MovingAverage(c.moving_average_window);
      case 'kalman':
        return new Kalman(c.kalman_q_level, c.kalman_q_trend, c.kalman_r, c.kalman_min_points);
      case 'arima':
        return new Arima();
      case 'prophet':
        return new Trend(c.prophet_window_size);
      case 'holt_winters':
        return new HoltWinters(c.seasonal_period);
    }
  })();
  return c.load_predictor_log1p ? new Log1p(p) : p;
}
