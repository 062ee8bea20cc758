import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decodeLatencies, encodeLatencies } from '../../../src/hardware/kernels/encoding.ts';
import { GemmLookup, gemmSolMs } from '../../../src/hardware/kernels/gemm.ts';
import {
  bracket,
  linearCurve,
  logLogCurve,
  makeNonDecreasing,
} from '../../../src/hardware/kernels/interp.ts';
import { loadKernelTables } from '../../../src/hardware/kernels/load.ts';
import type { GemmTable } from '../../../src/hardware/kernels/tables.ts';
import {
  HardwareTiming,
  sampleTokenAxis,
  TOKEN_AXIS_LENGTH,
  tokenAxisAt,
  tokenCurveAt,
} from '../../../src/sim/timing/hardware.ts';
import { emptyPassShape } from '../../../src/sim/timing/timing-model.ts';

const SOL = { flops: 1e15, bandwidth: 3e12, bytes: 2 };

/** A synthetic grid whose latency is `factor(n, k, m)` times the roofline. */
function table(factor: (n: number, k: number, m: number) => number, holes: number[] = []): GemmTable {
  const m = [1, 16, 256, 4096];
  const n = [1024, 4096, 16384];
  const k = [1024, 8192];
  const lat = new Float64Array(m.length * n.length * k.length);
  for (let ni = 0; ni < n.length; ni++)
    for (let ki = 0; ki < k.length; ki++)
      for (let mi = 0; mi < m.length; mi++) {
        const sol = gemmSolMs(m[mi], n[ni], k[ki], SOL.flops, SOL.bandwidth, 2, 2);
        lat[(ni * k.length + ki) * m.length + mi] = sol * factor(n[ni], k[ki], m[mi]);
      }
  for (const h of holes) lat[h] = Number.NaN;
  return {
    dtype: 'bfloat16',
    m: Float64Array.from(m),
    n: Float64Array.from(n),
    k: Float64Array.from(k),
    lat,
  };
}

describe('GEMM tables (utilisation-space interpolation)', () => {
  it('returns measured latencies at grid points', () => {
    const t = table((n, k, m) => 1 + (n + k) / 1e5 + 1 / m);
    const l = new GemmLookup(t, SOL);
    for (let ni = 0; ni < 3; ni++)
      for (let ki = 0; ki < 2; ki++)
        for (let mi = 0; mi < 4; mi++) {
          const v = t.lat[(ni * 2 + ki) * 4 + mi];
          expect(l.ms(t.m[mi], t.n[ni], t.k[ki])).toBeCloseTo(v, 12);
        }
  });

  it('between grid points follows the roofline at the interpolated utilisation', () => {
    // Constant utilisation everywhere: any query is exactly SOL / util.
    const l = new GemmLookup(
      table(() => 2.5),
      SOL,
    );
    for (const [m, n, k] of [
      [7, 2000, 3000],
      [100, 5000, 1024],
      [3000, 12000, 6000],
    ]) {
      expect(l.ms(m, n, k)).toBeCloseTo(gemmSolMs(m, n, k, SOL.flops, SOL.bandwidth, 2, 2) * 2.5, 12);
    }
    // Geometric mean of utilisations halfway (in log m) between two grid points.
    const l2 = new GemmLookup(
      table((_n, _k, m) => (m <= 16 ? 2 : 8)),
      SOL,
    );
    const mid = Math.sqrt(16 * 256);
    expect(l2.ms(mid, 4096, 1024)).toBeCloseTo(
      gemmSolMs(mid, 4096, 1024, SOL.flops, SOL.bandwidth, 2, 2) * 4,
      10,
    );
  });

  it('holds utilisation beyond the grid and skips unmeasured corners', () => {
    const l = new GemmLookup(
      table((_n, _k, m) => (m >= 4096 ? 1.25 : 3)),
      SOL,
    );
    const big = 65536;
    expect(l.ms(big, 4096, 8192)).toBeCloseTo(
      gemmSolMs(big, 4096, 8192, SOL.flops, SOL.bandwidth, 2, 2) * 1.25,
      10,
    );
    // Hole at (n=1024, k=1024, m=1): the other corner along n carries the point.
    const holed = new GemmLookup(
      table(() => 2, [0]),
      SOL,
    );
    expect(holed.ms(1, 2048, 1024)).toBeCloseTo(
      gemmSolMs(1, 2048, 1024, SOL.flops, SOL.bandwidth, 2, 2) * 2,
      10,
    );
  });

  it('prices weight-only quantisation with the bf16 utilisation and narrower weights', () => {
    const l = new GemmLookup(
      table(() => 2),
      SOL,
    );
    const f = l.curve(4096, 8192, 0.5);
    // Memory-bound at m = 1: a quarter of the weight bytes.
    const bf16 = l.ms(1, 4096, 8192);
    expect(f(1)).toBeLessThan(bf16 * 0.3);
    expect(f(1)).toBeGreaterThan(bf16 * 0.2);
  });

  it('reads the bundled H100 tables back at a measured point', () => {
    const t = loadKernelTables('h100_sxm');
    const g = t.gemm.get('bfloat16')!;
    // From the source table: n = k = 8192, m = 4096 measured 0.6977 ms.
    const ni = Array.from(g.n).indexOf(8192);
    const ki = Array.from(g.k).indexOf(8192);
    const mi = Array.from(g.m).indexOf(4096);
    expect(g.lat[(ni * g.k.length + ki) * g.m.length + mi]).toBeCloseTo(0.6977, 3);
    const l = new GemmLookup(g, { flops: 989e12, bandwidth: 3.35e12, bytes: 2 });
    expect(l.ms(4096, 8192, 8192)).toBeCloseTo(0.6977, 3);
    const between = l.ms(3000, 8192, 8192);
    expect(between).toBeGreaterThan(l.ms(2048, 8192, 8192));
    expect(between).toBeLessThan(l.ms(4096, 8192, 8192));
  });

  it('encodes latencies within 0.04 %', () => {
    fc.assert(
      fc.property(fc.array(fc.double({ min: 1e-4, max: 1e4, noNaN: true }), { maxLength: 50 }), (xs) => {
        const back = decodeLatencies(encodeLatencies(xs), xs.length);
        return xs.every((x, i) => Math.abs(back[i] / x - 1) < 4e-4);
      }),
    );
    expect(Number.isNaN(decodeLatencies(encodeLatencies([null]), 1)[0])).toBe(true);
  });
});

describe('curves', () => {
  it('brackets linearly and in log space, holding the ends', () => {
    expect(bracket([1, 2, 4], 3)).toEqual({ i: 1, f: 0.5 });
    expect(bracket([1, 2, 4], 2 * Math.SQRT2, true).f).toBeCloseTo(0.5, 12);
    expect(bracket([1, 2, 4], 0.5)).toEqual({ i: 0, f: 0 });
    expect(bracket([1, 2, 4], 9)).toEqual({ i: 1, f: 1 });
  });

  it('interpolates measured curves and extrapolates in proportion to size', () => {
    const c = { x: Float64Array.from([1, 10, 100]), y: Float64Array.from([1, 2, 11]) };
    expect(linearCurve(c, 10)).toBe(2);
    expect(linearCurve(c, 55)).toBeCloseTo(6.5, 12);
    expect(linearCurve(c, 200)).toBe(22);
    expect(logLogCurve(c, 10)).toBeCloseTo(2, 12);
    expect(logLogCurve(c, Math.sqrt(10))).toBeCloseTo(Math.SQRT2, 12);
    expect(logLogCurve(c, 0.1)).toBe(1);
  });

  it('makes curves non-decreasing with the least-squares fit', () => {
    const y = Float64Array.from([1, 3, 2, 2, 5]);
    makeNonDecreasing(y);
    expect(Array.from(y)).toEqual([1, 7 / 3, 7 / 3, 7 / 3, 5]);
  });

  it('samples the token axis and reads it back exactly at and linearly between points', () => {
    expect(tokenAxisAt(0)).toBe(1);
    expect(tokenAxisAt(255)).toBe(256);
    expect(tokenAxisAt(479)).toBe(2048);
    expect(tokenAxisAt(TOKEN_AXIS_LENGTH - 1)).toBe(262144);
    const c = sampleTokenAxis((t) => 3 + 0.5 * t);
    for (const t of [1, 2, 100, 256, 300, 2049, 9999, 16384, 100000, 262144, 300000]) {
      expect(tokenCurveAt(c, t)).toBeCloseTo(3 + 0.5 * t, 9);
    }
    const q = sampleTokenAxis((t) => t * t);
    expect(tokenCurveAt(q, 260)).toBeCloseTo((256 * 256 + 264 * 264) / 2, 9);
  });
});

describe('attention grids', () => {
  it('are read bilinearly, exact at grid points', () => {
    const zero = new Float64Array(TOKEN_AXIS_LENGTH);
    const grid = {
      batch: Float64Array.from([1, 2, 4]),
      seq: Float64Array.from([10, 100]),
      ms: Float64Array.from([1, 2, 3, 5, 4, 9]),
    };
    const t = new HardwareTiming({
      label: 'test',
      tier: 'measured',
      nonAttnMs: zero,
      logitsMs: zero,
      context: grid,
      generation: grid,
      kvReadMsPerToken: 0,
      overhead: { stepMs: 0, perSeqMs: 0, perPrefillMs: 0, prefillScale: 1 },
    });
    const s = emptyPassShape();
    const dec = (b: number, ctx: number) => {
      s.decodeRequests = b;
      s.decodeContextTokens = b * ctx;
      return t.decodeMs(s);
    };
    expect(dec(1, 10)).toBe(1);
    expect(dec(2, 100)).toBe(5);
    expect(dec(1, 55)).toBeCloseTo(1.5, 12);
    expect(dec(3, 10)).toBeCloseTo(3.5, 12);
    expect(dec(3, 55)).toBeCloseTo(((3 + 5) / 2 + (4 + 9) / 2) / 2, 12);
    // Past the batch axis: proportional to the batch.
    expect(dec(8, 100)).toBeCloseTo(18, 12);
  });
});
