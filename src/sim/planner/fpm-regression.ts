/**
 * The forward-pass time estimator Dynamo's SLA planner uses when it has no AI Configurator data for the model
 * and GPU: AISimulate's online regression (`estimation_mode: fpm_regression`), learnt from the forward-pass
 * metrics the workers publish. Implemented from its published design (ai-dynamo/aisimulate, "recursive
 * regression in the forward-pass performance model") and checked against aisimulate-core 0.13.0 on recorded
 * vectors (test/unit/planner/fpm-regression.test.ts).
 *
 * - One role per model: prefill, decode or aggregated. An aggregated worker keeps one store per workload
 *   kind (pure decode, prefill and decode on the rank, pure prefill); a query is answered by the store of its
 *   own kind only, and an empty pass costs 0.
 * - Two features per pass: critical attention work A and token-wise FFN work M. With P fresh prefill tokens
 *   of N requests over H cached ones, B decode requests over K KV tokens, Q = H P / N + P² / 2N + P / 2:
 *   prefill [H + Q, P], decode [K, B], aggregated [H + K + Q, P + B] (H counts only with P > 0).
 * - Each store retains at most `maxObservations` samples, spread over a grid of `log1p` feature cells whose
 *   bounds grow with the data; a full store drops the oldest sample of its fullest cell.
 * - The fit is linear in standardized features (population mean and deviation) with a free intercept and
 *   non-negative slopes: every face of the constraint is solved and the smallest squared error wins. A
 *   store is ready with `minObservations` samples, a varying feature and a positive slope; a fit whose slopes
 *   are all zero keeps the previous one. Predictions are floored at 1e-6 ms.
 */

export type WorkerRole = 'prefill' | 'decode' | 'aggregated';

/** The scheduled side of one pass (one attention-DP rank), as the regression reads it. */
export interface PassWork {
  numPrefillRequests: number;
  sumPrefillTokens: number;
  /** Tokens already in KV before each prefill chunk (prefix-cache hits and earlier chunks), summed. */
  sumPrefillKvTokens: number;
  numDecodeRequests: number;
  sumDecodeKvTokens: number;
}

export interface FpmRegressionSettings {
  maxObservations: number;
  minObservations: number;
  /** Cells of the retention grid in all (a perfect square: per axis, its root). */
  bucketCount: number;
}

/** Workload kinds, in the order the reference lists its aggregated stores. */
export const STORE_KINDS = ['pure_decode', 'contains_locally_mixed', 'pure_prefill'] as const;
export type StoreKind = (typeof STORE_KINDS)[number];

const ACTIVE_REL = 1e-12;
const PIVOT = 1e-12;
const RIDGE = 1e-9;
const FLOOR_MS = 1e-6;

/** The two regression features of a pass for a role, or null for an empty pass. */
export function passFeatures(role: WorkerRole, w: PassWork): [number, number] | null {
  const p = w.sumPrefillTokens;
  const b = w.numDecodeRequests;
  if (p <= 0 && b <= 0) return null;
  const h = p > 0 ? w.sumPrefillKvTokens : 0;
  const n = w.numPrefillRequests;
  const q = p > 0 && n > 0 ? (w.sumPrefillKvTokens * p) / n + (p * p) / (2 * n) + p / 2 : 0;
  if (role === 'prefill') return [h + q, p];
  if (role === 'decode') return [w.sumDecodeKvTokens, b];
  return [h + w.sumDecodeKvTokens + q, p + b];
}

/** The store a pass belongs to (single rank), or null when empty. */
export function storeKind(w: PassWork): StoreKind | null {
  const p = w.sumPrefillTokens > 0;
  const d = w.numDecodeRequests > 0;
  if (p && d) return 'contains_locally_mixed';
  if (p) return 'pure_prefill';
  if (d) return 'pure_decode';
  return null;
}

interface Fit {
  intercept: number;
  slopes: number[];
  means: number[];
  scales: number[];
  active: boolean[];
}

interface Sample {
  x: number[];
  y: number;
}

/** One workload store: retained samples on a dynamic log1p grid, and the fit they support. */
export class RegressionStore {
  private readonly settings: FpmRegressionSettings;
  private readonly perAxis: number;
  /** Cells in creation order; each holds its samples oldest first. */
  private cells = new Map<string, Sample[]>();
  private total = 0;
  private readonly lo = [Number.POSITIVE_INFINITY, Number.POSITIVE_INFINITY];
  private readonly hi = [Number.NEGATIVE_INFINITY, Number.NEGATIVE_INFINITY];
  private fit: Fit | null = null;
  /** Scratch columns for refits (features, then standardized features; observed ms). */
  private readonly bufX0: Float64Array;
  private readonly bufX1: Float64Array;
  private readonly bufY: Float64Array;

  constructor(settings: FpmRegressionSettings) {
    this.settings = settings;
    this.bufX0 = new Float64Array(settings.maxObservations + 1);
    this.bufX1 = new Float64Array(settings.maxObservations + 1);
    this.bufY = new Float64Array(settings.maxObservations + 1);
    this.perAxis = Math.max(1, Math.floor(Math.sqrt(settings.bucketCount)));
  }

  get observations(): number {
    return this.total;
  }

  get ready(): boolean {
    return this.fit !== null;
  }

  private key(b: number[]): string {
    let k = '';
    for (let i = 0; i < 2; i++) {
      const lo = this.lo[i];
      const hi = this.hi[i];
      const idx = hi <= lo ? 0 : Math.trunc(((b[i] - lo) / (hi - lo)) * this.perAxis);
      k += `${Math.max(0, Math.min(this.perAxis - 1, idx))},`;
    }
    return k;
  }

  private push(s: Sample): void {
    const k = this.key(s.x.map(Math.log1p));
    let cell = this.cells.get(k);
    if (!cell) {
      cell = [];
      this.cells.set(k, cell);
    }
    cell.push(s);
  }

  /** Adds a sample (features, observed ms) and refits. */
  add(x: number[], y: number): void {
    if (!x.every((v) => Number.isFinite(v) && v >= 0) || !(Number.isFinite(y) && y > 0)) return;
    const b = x.map(Math.log1p);
    let widened = false;
    for (let i = 0; i < 2; i++) {
      if (b[i] < this.lo[i]) {
        this.lo[i] = b[i];
        widened = true;
      }
      if (b[i] > this.hi[i]) {
        this.hi[i] = b[i];
        widened = true;
      }
    }
    if (widened && this.total > 0) {
      const all = [...this.cells.values()].flat();
      this.cells = new Map();
      for (const s of all) this.push(s);
    }
    this.push({ x: x.slice(), y });
    this.total++;
    if (this.total > this.settings.maxObservations) {
      // The reference breaks ties between equally full cells in hash order (per process); here: the first.
      let fattest: string | null = null;
      let size = -1;
      for (const [k, c] of this.cells) {
        if (c.length > size) {
          size = c.length;
          fattest = k;
        }
      }
      const cell = this.cells.get(fattest as string) as Sample[];
      cell.shift();
      if (cell.length === 0) this.cells.delete(fattest as string);
      this.total--;
    }
    this.refit();
  }

  /**
   * Refits after every sample, as the reference does (a fit with no load signal keeps the previous one, so
   * the sequence matters). Called on every observed pass, so it reuses its buffers: the sums every face of
   * the constraint needs are accumulated once, in sample order, and each face reads its sub-matrix from them
   * (the same floating-point sums as accumulating per face).
   */
  private refit(): void {
    const n = this.total;
    if (n < this.settings.minObservations) {
      this.fit = null;
      return;
    }
    const x0 = this.bufX0;
    const x1 = this.bufX1;
    const y = this.bufY;
    let i = 0;
    for (const cell of this.cells.values()) {
      for (const s of cell) {
        x0[i] = s.x[0];
        x1[i] = s.x[1];
        y[i] = s.y;
        i++;
      }
    }
    let m0 = 0;
    let m1 = 0;
    for (let k = 0; k < n; k++) {
      m0 += x0[k];
      m1 += x1[k];
    }
    m0 /= n;
    m1 /= n;
    let v0 = 0;
    let v1 = 0;
    for (let k = 0; k < n; k++) {
      v0 += (x0[k] - m0) ** 2;
      v1 += (x1[k] - m1) ** 2;
    }
    const sc0 = Math.sqrt(v0 / n);
    const sc1 = Math.sqrt(v1 / n);
    const on0 = Number.isFinite(sc0) && sc0 > ACTIVE_REL * Math.max(1, Math.abs(m0));
    const on1 = Number.isFinite(sc1) && sc1 > ACTIVE_REL * Math.max(1, Math.abs(m1));
    if (!on0 && !on1) {
      this.fit = null;
      return;
    }
    // Standardized features (0 on an inactive axis) and the sums of the normal equations.
    let su0 = 0;
    let su1 = 0;
    let s00 = 0;
    let s01 = 0;
    let s11 = 0;
    let sy = 0;
    let s0y = 0;
    let s1y = 0;
    for (let k = 0; k < n; k++) {
      const u0 = on0 ? (x0[k] - m0) / sc0 : 0;
      const u1 = on1 ? (x1[k] - m1) / sc1 : 0;
      x0[k] = u0;
      x1[k] = u1;
      su0 += u0;
      su1 += u1;
      s00 += u0 * u0;
      s01 += u0 * u1;
      s11 += u1 * u1;
      sy += y[k];
      s0y += u0 * y[k];
      s1y += u1 * y[k];
    }
    let bestSse = Number.POSITIVE_INFINITY;
    let bestIntercept = 0;
    let bestSlope0 = 0;
    let bestSlope1 = 0;
    let found = false;
    // Faces: the intercept alone, with slope 0, with slope 1, with both (active axes only).
    for (let face = 0; face < 4; face++) {
      const with0 = (face & 1) !== 0;
      const with1 = (face & 2) !== 0;
      if ((with0 && !on0) || (with1 && !on1)) continue;
      let sol: number[] | null;
      if (with0 && with1) {
        const lhs = [
          [n, su0, su1],
          [su0, s00, s01],
          [su1, s01, s11],
        ];
        const rhs = [sy, s0y, s1y];
        sol = solve(lhs, rhs) ?? solveRidge(lhs, rhs);
      } else if (with0 || with1) {
        const su = with0 ? su0 : su1;
        const lhs = [
          [n, su],
          [su, with0 ? s00 : s11],
        ];
        const rhs = [sy, with0 ? s0y : s1y];
        sol = solve(lhs, rhs) ?? solveRidge(lhs, rhs);
      } else {
        const lhs = [[n]];
        const rhs = [sy];
        sol = solve(lhs, rhs) ?? solveRidge(lhs, rhs);
      }
      if (sol === null || !sol.every(Number.isFinite)) continue;
      const c0 = with0 ? sol[1] : 0;
      const c1 = with1 ? sol[with0 ? 2 : 1] : 0;
      if (c0 < 0 || c1 < 0) continue;
      let sse = 0;
      for (let k = 0; k < n; k++) {
        const r = sol[0] + c0 * x0[k] + c1 * x1[k] - y[k];
        sse += r * r;
      }
      if (!Number.isFinite(sse)) continue;
      if (!found || sse < bestSse) {
        found = true;
        bestSse = sse;
        bestIntercept = sol[0];
        bestSlope0 = c0;
        bestSlope1 = c1;
      }
    }
    if (!found) {
      this.fit = null;
      return;
    }
    // An identifiable fit with no load signal does not serve: the previous fit stays.
    const axes = (on0 ? 1 : 0) + (on1 ? 1 : 0);
    if (n > axes && !(bestSlope0 > 0 || bestSlope1 > 0)) return;
    this.fit = {
      intercept: bestIntercept,
      slopes: [bestSlope0, bestSlope1],
      means: [m0, m1],
      scales: [sc0, sc1],
      active: [on0, on1],
    };
  }

  /** Predicted ms for features x, or null when the store is not ready. */
  predict(x: number[]): number | null {
    const f = this.fit;
    if (f === null) return null;
    let y = f.intercept;
    for (let j = 0; j < 2; j++) if (f.active[j]) y += f.slopes[j] * ((x[j] - f.means[j]) / f.scales[j]);
    return Number.isFinite(y) ? Math.max(FLOOR_MS, y) : null;
  }

  /** The fit in raw feature units (intercept at zero work, ms per feature unit), for reports. */
  rawFit(): { intercept: number; coef: number[] } | null {
    const f = this.fit;
    if (f === null) return null;
    const coef = [0, 1].map((j) => (f.active[j] ? f.slopes[j] / f.scales[j] : 0));
    return { intercept: f.intercept - coef[0] * f.means[0] - coef[1] * f.means[1], coef };
  }
}

/** One worker role's forward-pass time model: its stores, tuned with observed passes. */
export class FpmRegression {
  readonly role: WorkerRole;
  readonly stores = new Map<StoreKind, RegressionStore>();

  constructor(role: WorkerRole, settings: FpmRegressionSettings) {
    this.role = role;
    const kinds: StoreKind[] =
      role === 'aggregated' ? [...STORE_KINDS] : role === 'prefill' ? ['pure_prefill'] : ['pure_decode'];
    for (const k of kinds) this.stores.set(k, new RegressionStore(settings));
  }

  /** The role takes this pass (a prefill worker decodes nothing, a decode worker prefills nothing). */
  private accepts(w: PassWork): boolean {
    if (this.role === 'prefill') return w.numDecodeRequests <= 0;
    if (this.role === 'decode') return w.sumPrefillTokens <= 0;
    return true;
  }

  /** Learns from one observed pass (wall time in seconds; idle passes and heartbeats teach nothing). */
  tune(w: PassWork, wallTimeS: number): void {
    if (!this.accepts(w)) return;
    const kind = storeKind(w);
    const x = passFeatures(this.role, w);
    if (kind === null || x === null || !(wallTimeS > 0)) return;
    this.stores.get(kind)?.add(x, wallTimeS * 1000);
  }

  /** Estimated wall time (ms) of a pass: 0 when empty, null when its store cannot answer yet. */
  estimateMs(w: PassWork): number | null {
    if (!this.accepts(w)) return null;
    const kind = storeKind(w);
    const x = passFeatures(this.role, w);
    if (kind === null || x === null) return 0;
    return this.stores.get(kind)?.predict(x) ?? null;
  }

  /** Ready when any store can answer (the reference's readiness). */
  get ready(): boolean {
    for (const s of this.stores.values()) if (s.ready) return true;
    return false;
  }

  get observations(): number {
    let n = 0;
    for (const s of this.stores.values()) n += s.observations;
    return n;
  }
}

/** Gaussian elimination with partial pivoting; null when a pivot is below 1e-12. */
function solve(a: number[][], b: number[]): number[] | null {
  const lhs = a.map((r) => r.slice());
  const rhs = b.slice();
  const n = rhs.length;
  for (let col = 0; col < n; col++) {
    let pivot = col;
    for (let r = col + 1; r < n; r++) if (Math.abs(lhs[r][col]) > Math.abs(lhs[pivot][col])) pivot = r;
    if (Math.abs(lhs[pivot][col]) < PIVOT) return null;
    [lhs[col], lhs[pivot]] = [lhs[pivot], lhs[col]];
    [rhs[col], rhs[pivot]] = [rhs[pivot], rhs[col]];
    const d = lhs[col][col];
    for (let j = col; j < n; j++) lhs[col][j] /= d;
    rhs[col] /= d;
    for (let r = 0; r < n; r++) {
      if (r === col) continue;
      const f = lhs[r][col];
      if (f === 0) continue;
      for (let j = col; j < n; j++) lhs[r][j] -= f * lhs[col][j];
      rhs[r] -= f * rhs[col];
    }
  }
  return rhs;
}

/** The singular-solve fallback: a small ridge on the slopes (not the intercept). */
function solveRidge(a: number[][], b: number[]): number[] | null {
  let scale = 0;
  for (let i = 0; i < a.length; i++) scale += Math.abs(a[i][i]);
  const ridge = RIDGE * Math.max(1, scale);
  return solve(
    a.map((r, i) => r.map((v, j) => (i === j && i > 0 ? v + ridge : v))),
    b,
  );
}
