import { describe, expect, it } from 'vitest';
import { prepareHardware } from '../../../src/config/hardware.ts';
import { SimulationConfigSchema } from '../../../src/config/schema.ts';
import { Catalog } from '../../../src/hardware/catalog.ts';
import { planMemory } from '../../../src/hardware/memory.ts';
import { kvBytesPerTokenPerGpu, weightBytesPerGpu } from '../../../src/hardware/models.ts';
import { HardwareRejection } from '../../../src/hardware/setup.ts';
import { synthetic } from '../../support/sim.ts';

const catalog = Catalog.builtin();
const GiB = 2 ** 30;

function plan(gpu: string, model: string, tp: number, extra: Partial<Parameters<typeof planMemory>[0]> = {}) {
  return planMemory({
    gpu: catalog.gpu(gpu),
    model: catalog.model(model),
    tp,
    weightDtype: 'bf16',
    kvDtype: 'bf16',
    gpuMemoryUtilization: 0.9,
    blockSize: 16,
    maxNumBatchedTokens: 8192,
    maxNumSeqs: 256,
    requiredTokens: 4096,
    ...extra,
  });
}

describe('KV cache sizing from HBM', () => {
  it('gives what is left after weights and the reserve, in whole blocks', () => {
    const p = plan('h100', 'llama-3.1-8b', 1);
    expect(p.fits).toBe(true);
    const left = 80 * GiB * 0.9 - p.weightBytes - p.reserveBytes;
    expect(p.numGpuBlocks).toBe(Math.floor(left / (128 * 1024 * 16)));
    expect(p.capacityTokens).toBe(p.numGpuBlocks * 16);
    expect(p.weightBytes / 1e9).toBeCloseTo(16.06, 1);
  });

  it('shards weights and KV heads by the tensor-parallel size', () => {
    const m = catalog.model('llama-3.1-70b');
    expect(weightBytesPerGpu(m, 4, 'bf16')).toBeCloseTo(weightBytesPerGpu(m, 1, 'bf16') / 4, 0);
    expect(weightBytesPerGpu(m, 1, 'fp8')).toBeLessThan(weightBytesPerGpu(m, 1, 'bf16') * 0.55);
    const tp2 = plan('h100', 'llama-3.1-70b', 2);
    const tp4 = plan('h100', 'llama-3.1-70b', 4);
    expect(tp2.kvBytesPerTokenPerGpu).toBe(kvBytesPerTokenPerGpu(m, 2));
    expect(tp4.capacityTokens).toBeGreaterThan(2 * tp2.capacityTokens);
  });

  it('rejects a model whose weights do not fit, naming the sizes', () => {
    const p = plan('h100', 'llama-3.1-70b', 1);
    expect(p.fits).toBe(false);
    expect(p.numGpuBlocks).toBe(0);
    expect(p.reason).toMatch(
      /^Llama-3\.1-70B \(bf16\) on 1 x NVIDIA H100 SXM 80GB does not fit: weights 131\.\d GiB/,
    );
    expect(plan('l40s', 'deepseek-v3', 8).fits).toBe(false);
  });

  it('rejects a KV cache smaller than one request of the longest length', () => {
    // Llama-3.1-70B bf16 on two H100: ~6 GiB of KV per GPU, ~40k tokens.
    const ok = plan('h100', 'llama-3.1-70b', 2);
    expect(ok.fits).toBe(true);
    const edge = plan('h100', 'llama-3.1-70b', 2, { requiredTokens: ok.capacityTokens });
    expect(edge.fits).toBe(true);
    const over = plan('h100', 'llama-3.1-70b', 2, { requiredTokens: ok.capacityTokens + 1 });
    expect(over.fits).toBe(false);
    expect(over.reason).toMatch(/KV cache holds \d+ tokens .* less than one request of \d+ tokens/);
  });

  it('scales with the memory-utilisation fraction and the KV precision', () => {
    const a = plan('h200', 'qwen3-32b', 1);
    const b = plan('h200', 'qwen3-32b', 1, { gpuMemoryUtilization: 0.8 });
    expect(b.numGpuBlocks).toBeLessThan(a.numGpuBlocks);
    const fp8 = plan('h200', 'qwen3-32b', 1, { kvDtype: 'fp8' });
    expect(fp8.numGpuBlocks).toBeGreaterThanOrEqual(2 * a.numGpuBlocks - 1);
  });
});

describe('prepareHardware', () => {
  const workload = synthetic({ sessions: 20 });
  const config = (over: Record<string, unknown> = {}) =>
    SimulationConfigSchema.parse({
      tensorParallelSize: 2,
      timing: { model: 'hardware' },
      hardware: { gpu: 'h100', model: 'llama-3.1-70b', dtype: 'fp8' },
      workload: { trace: 'inline' },
      ...over,
    });

  it('fills numGpuBlocks from the memory plan unless it was set', () => {
    const p = prepareHardware(config(), catalog, workload);
    expect(p.derivedBlocks).toBe(true);
    expect(p.config.engine.numGpuBlocks).toBe(p.memory.numGpuBlocks);
    const q = prepareHardware(config({ engine: { numGpuBlocks: 100 } }), catalog, workload);
    expect(q.derivedBlocks).toBe(false);
    expect(q.config.engine.numGpuBlocks).toBe(100);
  });

  it('rejects setups that do not fit with the reason', () => {
    expect(() =>
      prepareHardware(
        config({ tensorParallelSize: 1, hardware: { gpu: 'l40s', model: 'llama-3.1-70b' } }),
        catalog,
        workload,
      ),
    ).toThrow(HardwareRejection);
    expect(() =>
      prepareHardware(
        config({ hardware: { gpu: 'h100', model: 'llama-3.1-70b', dtype: 'fp8', maxModelLen: 10_000_000 } }),
        catalog,
        workload,
      ),
    ).toThrow(/less than one request of 10000000 tokens/);
  });
});
