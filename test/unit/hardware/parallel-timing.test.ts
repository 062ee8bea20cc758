import { describe, expect, it } from 'vitest';
import { Catalog } from '../../../src/hardware/catalog.ts';
import { planMemory } from '../../../src/hardware/memory.ts';
import { weightBytesPerGpu } from '../../../src/hardware/models.ts';
import { type HardwareChoice, hardwareModel, resolveHardware } from '../../../src/hardware/setup.ts';
import { tokenCurveAt } from '../../../src/sim/timing/hardware.ts';
import { emptyPassShape, type PassShape } from '../../../src/sim/timing/timing-model.ts';

const catalog = Catalog.builtin();
const ds = catalog.model('deepseek-v3');
const h200 = catalog.gpu('h200');
const model = (extra: Partial<HardwareChoice> = {}) =>
  hardwareModel({ gpu: h200, model: ds, tp: 8, weightDtype: 'fp8', kvDtype: 'bf16', ...extra });

function decode(d: number, context: number): PassShape {
  const s = emptyPassShape();
  s.decodeRequests = d;
  s.decodeContextTokens = d * context;
  s.kvCapacityTokens = 1 << 22;
  return s;
}

describe('attention data parallelism and expert parallelism (tp x dp = moe_tp x moe_ep)', () => {
  it('splits routed experts over every GPU of the worker, the rest over each rank', () => {
    const tp8 = weightBytesPerGpu(ds, 8, 'fp8');
    const dp4 = weightBytesPerGpu(ds, 2, 'fp8', 8);
    expect(dp4).toBeGreaterThan(tp8); // attention and dense layers split 2 ways instead of 8
    expect(dp4).toBeLessThan(weightBytesPerGpu(ds, 2, 'fp8')); // experts still split 8 ways
    const plan = (moeGpus: number) =>
      planMemory({
        gpu: h200,
        model: ds,
        tp: 2,
        moeGpus,
        weightDtype: 'fp8',
        kvDtype: 'bf16',
        gpuMemoryUtilization: 0.9,
        blockSize: 64,
        maxNumBatchedTokens: 8192,
        maxNumSeqs: 256,
        requiredTokens: 8192,
      });
    expect(plan(2).fits).toBe(false);
    expect(plan(8).fits).toBe(true);
  });

  it("prices a rank's MoE layers on all ranks' tokens, with the gather across the worker", () => {
    const single = model({ tp: 2, expertParallel: true });
    const dp4 = model({ tp: 2, attentionDp: 4, expertParallel: true });
    expect(dp4.profile.label).toBe('h200_sxm/deepseek-v3/tp2/dp4/fp8/ep8');
    // The experts of a DP4 rank with t tokens do the work of one EP8 group with 4t tokens.
    const ep8 = model({ tp: 8, expertParallel: true });
    const moeAt = (m: typeof dp4, t: number) => tokenCurveAt(m.profile.breakdown.moe, t);
    for (const t of [16, 64, 512]) expect(moeAt(dp4, t) / moeAt(ep8, 4 * t)).toBeCloseTo(1, 2);
    // Experts spread over 8 GPUs instead of 2: a rank's decode step is cheaper than a lone TP2 worker's.
    const s = decode(64, 2000);
    expect(dp4.timing.decodeMs(s)).toBeLessThan(single.timing.decodeMs(s));
    // The gather across the worker is priced; a lone TP2 worker has only its TP all-reduce.
    expect(tokenCurveAt(dp4.profile.breakdown.allReduce, 64)).toBeGreaterThan(
      tokenCurveAt(single.profile.breakdown.allReduce, 64),
    );
    expect(model({ tp: 2, attentionDp: 4, moeEp: 4 }).profile.label).toMatch(/dp4\/fp8\/ep4$/);
  });

  it('refuses an expert-parallel size that does not divide TP x DP, or a dense model', () => {
    const resolve = (hw: object, dp: number) =>
      resolveHardware(
        {
          gpu: 'h200',
          model: 'deepseek-v3',
          gpuMemoryUtilization: 0.9,
          tier: 'auto',
          expertParallel: false,
          ...hw,
        },
        2,
        { blockSize: 64, maxNumBatchedTokens: 8192, maxNumSeqs: 256 },
        catalog,
        4096,
        undefined,
        { dataParallel: dp },
      );
    expect(() => resolve({ expertParallelSize: 3 }, 4)).toThrow(/does not divide the worker's 8 GPUs/);
    expect(resolve({ expertParallelSize: 8 }, 4).memory.fits).toBe(true);
    expect(() => resolve({ model: 'llama-3.1-8b', expertParallelSize: 2 }, 1)).toThrow(/no experts/);
  });
});

describe('MTP pricing', () => {
  it('a forward with drafts costs more than a plain decode step, less per token when drafts are accepted', () => {
    const plain = model().timing;
    const mtp = model({ nextn: 2 }).timing;
    expect(mtp.name).toMatch(/mtp2/);
    for (const d of [1, 16, 128]) {
      const s = decode(d, 3000);
      const a = plain.decodeMs(s);
      const b = mtp.decodeMs(s);
      expect(b, `batch ${d}`).toBeGreaterThan(a);
      // With the reference's default rates (0.85, 0.3) a forward emits 2.1 tokens on average.
      expect(b / 2.1, `batch ${d}`).toBeLessThan(a);
    }
    // Prefill is priced the same.
    const p = emptyPassShape();
    p.prefillRequests = 1;
    p.prefillNewTokens = 2000;
    p.prefillAttentionPairs = (2000 * 2001) / 2;
    expect(mtp.prefillMs(p)).toBe(plain.prefillMs(p));
  });
});
