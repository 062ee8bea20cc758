import { bracket } from './interp.ts';
import type { GemmTable } from './tables.ts';

/** Speed-of-light bounds a GEMM table is normalised by: peak FLOP/s, HBM bytes/s, bytes per element. */
export interface GemmSol {
  flops: number;
  bandwidth: number;
  bytes: number;
}

/** Roofline time (ms) of C[m x n] = A[m x k] B[k x n] with `wBytes` per weight and `aBytes` per activation. */
export function gemmSolMs(
  m: number,
  n: number,
  k: number,
  flops: number,
  bandwidth: number,
  wBytes: number,
  aBytes: number,
): number {
  const compute = (2 * m * n * k) / flops;
  const memory = (wBytes * n * k + aBytes * (m * k + m * n)) / bandwidth;
  return Math.max(compute, memory) * 1e3;
}

/**
 * Interpolates a measured GEMM grid in utilisation space, as AIConfigurator's design notes describe:
 * util = SOL / measured at the surrounding grid points, log(util) interpolated multilinearly in
 * (log n, log k, log m) and held at the grid boundary, latency = SOL(query) / util. Measured points come
 * back verbatim; between them the roofline's shape carries the interpolation.
 */
export class GemmLookup {
  readonly table: GemmTable;
  private readonly sol: GemmSol;
  /** log(util) per grid point (NaN where unmeasured). */
  private readonly logUtil: Float64Array;

  constructor(table: GemmTable, sol: GemmSol) {
    this.table = table;
    this.sol = sol;
    const { m, n, k, lat } = table;
    const M = m.length;
    const K = k.length;
    this.logUtil = new Float64Array(lat.length);
    for (let ni = 0; ni < n.length; ni++) {
      for (let ki = 0; ki < K; ki++) {
        for (let mi = 0; mi < M; mi++) {
          const idx = (ni * K + ki) * M + mi;
          this.logUtil[idx] = Math.log(this.solMs(m[mi], n[ni], k[ki]) / lat[idx]);
        }
      }
    }
  }

  private solMs(m: number, n: number, k: number): number {
    const s = this.sol;
    return gemmSolMs(m, n, k, s.flops, s.bandwidth, s.bytes, s.bytes);
  }

  /**
   * A function of m for fixed (n, k): the (n, k) bracketing is done once. `wBytes` prices the query's SOL
   * with another weight width (weight-only quantisation borrowing this table's utilisation); NaN when no
   * surrounding point was measured.
   */
  curve(n: number, k: number, wBytes = this.sol.bytes): (m: number) => number {
    const t = this.table;
    const M = t.m.length;
    const K = t.k.length;
    const bn = bracket(t.n, n, true);
    const bk = bracket(t.k, k, true);
    // log(util) along the m axis for this (n, k), skipping unmeasured corners.
    const line = new Float64Array(M);
    for (let mi = 0; mi < M; mi++) {
      let sum = 0;
      let wsum = 0;
      for (let a = 0; a < 2; a++) {
        const wn = a === 0 ? 1 - bn.f : bn.f;
        if (wn === 0) continue;
        for (let b = 0; b < 2; b++) {
          const wk = b === 0 ? 1 - bk.f : bk.f;
          if (wk === 0) continue;
          const v = this.logUtil[((bn.i + a) * K + bk.i + b) * M + mi];
          if (Number.isNaN(v)) continue;
          sum += wn * wk * v;
          wsum += wn * wk;
        }
      }
      line[mi] = wsum > 0 ? sum / wsum : Number.NaN;
    }
    const s = this.sol;
    return (m: number) => {
      const bm = bracket(t.m, m, true);
      const u0 = line[bm.i];
      const u1 = line[bm.i + 1];
      let lu: number;
      if (Number.isNaN(u0)) lu = u1;
      else if (Number.isNaN(u1)) lu = u0;
      else lu = u0 * (1 - bm.f) + u1 * bm.f;
      return gemmSolMs(m, n, k, s.flops, s.bandwidth, wBytes, s.bytes) / Math.exp(lu);
    };
  }

  /** Latency (ms) of one GEMM. */
  ms(m: number, n: number, k: number): number {
    return this.curve(n, k)(m);
  }
}
