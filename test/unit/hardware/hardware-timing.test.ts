import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { runSimulation } from '../../../src/config/run.ts';
import { SimulationConfigSchema } from '../../../src/config/schema.ts';
import { Catalog } from '../../../src/hardware/catalog.ts';
import type { WeightDtype } from '../../../src/hardware/dtypes.ts';
import { type HardwareChoice, hardwareModel } from '../../../src/hardware/setup.ts';
import { tokenCurveAt } from '../../../src/sim/timing/hardware.ts';
import { emptyPassShape, type PassShape } from '../../../src/sim/timing/timing-model.ts';
import { synthetic } from '../../support/sim.ts';

const catalog = Catalog.builtin();
const choice = (
  gpu: string,
  model: string,
  tp: number,
  dtype?: WeightDtype,
  extra: Partial<HardwareChoice> = {},
) => {
  const m = catalog.model(model);
  return hardwareModel({
    gpu: catalog.gpu(gpu),
    model: m,
    tp,
    weightDtype: dtype ?? m.weightDtype,
    kvDtype: 'bf16',
    ...extra,
  });
};

function prefill(n: number, chunk: number, cached = 0): PassShape {
  const s = emptyPassShape();
  s.prefillRequests = n;
  s.prefillNewTokens = n * chunk;
  s.prefillCachedTokens = n * cached;
  s.prefillAttentionPairs = n * (chunk * cached + (chunk * (chunk + 1)) / 2);
  return s;
}

describe('hardware timing profiles', () => {
  it('answers for every catalogued GPU and model, and says which tier', () => {
    for (const g of catalog.gpus) {
      for (const m of ['llama-3.1-8b', 'qwen3-30b-a3b', 'deepseek-v3']) {
        const t = choice(g.id, m, 8, 'bf16').timing;
        const v = t.prefillMs(prefill(1, 1000));
        expect(Number.isFinite(v) && v > 0, `${g.id} ${m}`).toBe(true);
      }
    }
    expect(choice('h100', 'llama-3.1-70b', 4, 'fp8').profile.tier).toBe('measured');
    expect(choice('b300', 'llama-3.1-70b', 4, 'fp8').profile.tier).toBe('roofline');
    expect(choice('h100', 'deepseek-v3', 8).profile.parts.attention).toBe('roofline');
    expect(choice('h100', 'deepseek-v3', 8).profile.tier).toBe('mixed');
    expect(choice('h200', 'qwen3-235b-a22b', 4, 'fp8').profile.parts.moe).toBe('measured');
    expect(choice('h100', 'llama-3.1-70b', 4, 'fp8', { tier: 'roofline' }).profile.tier).toBe('roofline');
    expect(choice('h100', 'llama-3.1-70b', 4, 'fp8').timing.name).toBe(
      'hardware(h100_sxm/llama-3.1-70b/tp4/fp8, measured)',
    );
  });

  it('prices a mixed pass as one set of token-linear kernels over all tokens', () => {
    const { timing, profile: p } = choice('h100', 'llama-3.1-70b', 4, 'fp8');
    const s = prefill(2, 1500, 500);
    s.decodeRequests = 40;
    s.decodeContextTokens = 40 * 3000;
    const pre = timing.prefillMs(s);
    const dec = timing.decodeMs(s);
    const o = p.overhead;
    const nonAttn = (t: number) => tokenCurveAt(p.nonAttnMs, t);
    const logits = (t: number) => tokenCurveAt(p.logitsMs, t);
    const decodeOnly = emptyPassShape();
    decodeOnly.decodeRequests = 40;
    decodeOnly.decodeContextTokens = 40 * 3000;
    const genAttention = timing.decodeMs(decodeOnly) - nonAttn(40) - logits(40) - o.stepMs - o.perSeqMs * 40;
    expect(dec).toBeCloseTo(
      nonAttn(3040) - nonAttn(3000) + logits(42) - logits(2) + genAttention + o.perSeqMs * 40,
      9,
    );
    const attention = (pre - o.stepMs - o.perPrefillMs * 2) / o.prefillScale - nonAttn(3000) - logits(2);
    expect(attention).toBeGreaterThan(0);
    // The token-linear part of the whole pass is nonAttn(prefill + decode tokens), counted once.
    expect(pre + dec).toBeCloseTo(
      o.prefillScale * (nonAttn(3000) + logits(2) + attention) +
        o.stepMs +
        o.perPrefillMs * 2 +
        nonAttn(3040) -
        nonAttn(3000) +
        logits(42) -
        logits(2) +
        genAttention +
        o.perSeqMs * 40,
      9,
    );
  });

  const profiles = [
    ['h100', 'llama-3.1-70b', 4, 'fp8'],
    ['b200', 'minimax-m2.5', 4, 'fp8'],
    ['l40s', 'qwen3-8b', 2, 'bf16'],
    ['b300', 'gpt-oss-120b', 2, 'fp4'],
    ['l4', 'llama-3.1-8b', 1, 'fp8'],
  ] as const;

  it('never prices more tokens, requests or context as faster', () => {
    for (const [g, m, tp, dt] of profiles) {
      const { timing, profile } = choice(g, m, tp, dt);
      for (let i = 1; i < profile.nonAttnMs.length; i++) {
        expect(profile.nonAttnMs[i]).toBeGreaterThanOrEqual(profile.nonAttnMs[i - 1]);
      }
      fc.assert(
        fc.property(
          fc.integer({ min: 1, max: 16000 }),
          fc.integer({ min: 1, max: 4000 }),
          fc.integer({ min: 0, max: 20000 }),
          (chunk, extra, cached) => {
            const a = timing.prefillMs(prefill(1, chunk, cached));
            return (
              timing.prefillMs(prefill(1, chunk + extra, cached)) >= a - 1e-9 &&
              timing.prefillMs(prefill(1, chunk, cached + extra)) >= a - 1e-9
            );
          },
        ),
        { numRuns: 200 },
      );
      fc.assert(
        fc.property(
          fc.integer({ min: 1, max: 1500 }),
          fc.integer({ min: 1, max: 500 }),
          fc.integer({ min: 2, max: 60000 }),
          fc.integer({ min: 1, max: 30000 }),
          (b, more, ctx, longer) => {
            const s = emptyPassShape();
            s.decodeRequests = b;
            s.decodeContextTokens = b * ctx;
            const a = timing.decodeMs(s);
            s.decodeContextTokens = b * (ctx + longer);
            const c = timing.decodeMs(s);
            s.decodeRequests = b + more;
            s.decodeContextTokens = (b + more) * ctx;
            return c >= a - 1e-9 && timing.decodeMs(s) >= a - 1e-9;
          },
        ),
        { numRuns: 200 },
      );
    }
  });

  it('gets faster per GPU with more TP on compute-bound shapes unless the all-reduce eats the gain', () => {
    const at = (a: Float64Array, t: number) => tokenCurveAt(a, t);
    for (const g of ['h100', 'h200', 'b200', 'gb200', 'a100', 'l40s', 'b300', 'h100_pcie', 'l4']) {
      for (const m of ['llama-3.1-70b', 'qwen3-32b', 'qwen3-235b-a22b']) {
        for (const tp of [1, 2, 4]) {
          const a = choice(g, m, tp, 'bf16').profile;
          const b = choice(g, m, tp * 2, 'bf16').profile;
          for (const t of [4096, 8192, 16384]) {
            const computeA = at(a.breakdown.gemm, t) + at(a.breakdown.moe, t) + at(a.breakdown.memory, t);
            const computeB = at(b.breakdown.gemm, t) + at(b.breakdown.moe, t) + at(b.breakdown.memory, t);
            expect(computeB, `${g} ${m} tp${tp}->${tp * 2} at ${t}`).toBeLessThan(computeA);
            const totalA = at(a.nonAttnMs, t);
            const totalB = at(b.nonAttnMs, t);
            if (totalB > totalA) {
              // Slower only where communication grew by more than the compute saved (PCIe all-reduce).
              const commGrowth = at(b.breakdown.allReduce, t) - at(a.breakdown.allReduce, t);
              expect(commGrowth, `${g} ${m} tp${tp}->${tp * 2}`).toBeGreaterThan(computeA - computeB);
            }
          }
          if (catalog.gpu(g).spec.nvlinkGBps > 0) {
            const ta = choice(g, m, tp, 'bf16').timing.prefillMs(prefill(1, 8192));
            const tb = choice(g, m, tp * 2, 'bf16').timing.prefillMs(prefill(1, 8192));
            expect(tb, `${g} ${m} prefill tp${tp}->${tp * 2}`).toBeLessThan(ta);
          }
        }
      }
    }
  });
});

describe('hardware timing in the simulator', () => {
  it('gives the same results on the coalesced decode path as stepping every pass', () => {
    const w = synthetic({ sessions: 120, arrival: { kind: 'burst' } });
    const { timing } = choice('h100', 'llama-3.1-8b', 1, 'bf16');
    const run = (coalesceDecode: boolean) =>
      runSimulation(
        SimulationConfigSchema.parse({
          workers: 2,
          coalesceDecode,
          engine: { numGpuBlocks: 4000, maxNumBatchedTokens: 4096 },
          workload: { trace: 'inline', concurrency: 24 },
        }),
        w,
        timing,
      ).result.records;
    const a = run(true);
    const b = run(false);
    expect(Array.from(b.firstTokenMs)).toEqual(Array.from(a.firstTokenMs));
    expect(Array.from(b.lastTokenMs)).toEqual(Array.from(a.lastTokenMs));
  });
});
