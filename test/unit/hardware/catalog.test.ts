import { describe, expect, it } from 'vitest';
import { Catalog, CatalogError } from '../../../src/hardware/catalog.ts';
import {
  kvBytesPerToken,
  kvBytesPerTokenPerGpu,
  ModelSpecSchema,
  paramCounts,
  tensorParallelProblem,
} from '../../../src/hardware/models.ts';

const catalog = Catalog.builtin();

describe('catalog lookups', () => {
  it('finds GPUs by id, alias, name and nvidia.com/gpu.product label', () => {
    expect(catalog.gpu('h100').id).toBe('h100_sxm');
    expect(catalog.gpu('H100-SXM').id).toBe('h100_sxm');
    expect(catalog.gpu('NVIDIA-H100-80GB-HBM3').id).toBe('h100_sxm');
    expect(catalog.gpu('NVIDIA-H100-80GB-HBM3-SHARED').id).toBe('h100_sxm');
    expect(catalog.gpu('NVIDIA-H200').id).toBe('h200_sxm');
    expect(catalog.gpu('NVIDIA-A100-SXM4-80GB').id).toBe('a100_sxm');
    expect(catalog.gpu('l40s').id).toBe('l40s');
    expect(catalog.gpu('gb200').id).toBe('gb200');
    expect(catalog.gpu('b200').id).toBe('b200_sxm');
  });

  it('finds models by id, Hugging Face id and checkpoint variants', () => {
    expect(catalog.model('llama-3.1-70b').name).toBe('Llama-3.1-70B');
    expect(catalog.model('meta-llama/Llama-3.1-8B-Instruct').id).toBe('llama-3.1-8b');
    expect(catalog.model('nvidia/Llama-3.1-8B-Instruct-FP8').id).toBe('llama-3.1-8b');
    expect(catalog.model('Qwen/Qwen3-235B-A22B-FP8').id).toBe('qwen3-235b-a22b');
    expect(catalog.model('MiniMaxAI/MiniMax-M2.5').id).toBe('minimax-m2.5');
    expect(catalog.model('openai/gpt-oss-120b').id).toBe('gpt-oss-120b');
    expect(catalog.model('deepseek-ai/DeepSeek-V3').id).toBe('deepseek-v3');
  });

  it('names the known entries when a name is unknown', () => {
    expect(() => catalog.gpu('tpu-v5')).toThrow(/unknown GPU 'tpu-v5' \(known: h100_sxm, /);
    expect(() => catalog.model('llama-9')).toThrow(CatalogError);
  });

  it('covers the required GPUs and models', () => {
    for (const g of ['h100_sxm', 'h200_sxm', 'b200_sxm', 'gb200', 'a100_sxm', 'l40s']) {
      expect(catalog.gpu(g).kernelTables, g).toBe(g);
    }
    for (const m of [
      'llama-3.1-8b',
      'llama-3.1-70b',
      'qwen3-8b',
      'qwen3-32b',
      'qwen3-30b-a3b',
      'qwen3-235b-a22b',
      'deepseek-v3',
      'minimax-m2.5',
      'gpt-oss-120b',
    ]) {
      expect(catalog.findModel(m), m).toBeDefined();
    }
  });
});

describe('model facts', () => {
  it('counts parameters like the published sizes', () => {
    const b = (id: string) => paramCounts(catalog.model(id)).total / 1e9;
    expect(b('llama-3.1-70b')).toBeCloseTo(70.6, 1);
    expect(b('llama-3.1-8b')).toBeCloseTo(8.0, 1);
    expect(b('qwen3-235b-a22b')).toBeCloseTo(235, 0);
    expect(b('deepseek-v3')).toBeCloseTo(671, 0);
    expect(b('gpt-oss-120b')).toBeCloseTo(117, 0);
    expect(paramCounts(catalog.model('qwen3-30b-a3b')).active / 1e9).toBeCloseTo(3.4, 1);
  });

  it('says which tensor-parallel sizes vLLM refuses: heads, or KV heads, not divisible', () => {
    const llama = catalog.model('llama-3.1-8b'); // 32 heads, 8 KV heads
    for (const tp of [1, 2, 4, 8, 16, 32]) expect(tensorParallelProblem(llama, tp)).toBeUndefined();
    expect(tensorParallelProblem(llama, 3)).toBe(
      'Llama-3.1-8B has 32 attention heads, not divisible by tensor-parallel size 3 (vLLM refuses it)',
    );
    // 48 heads divide by 6, but 8 KV heads neither divide by 6 nor are 6 a multiple of them.
    const odd = ModelSpecSchema.parse({ ...llama, id: 'odd', name: 'Odd', heads: 48, hidden: 6144 });
    expect(tensorParallelProblem(odd, 6)).toMatch(
      /^Odd has 8 KV heads, which tensor-parallel size 6 neither divides/,
    );
    expect(tensorParallelProblem(odd, 16)).toBeUndefined(); // divides 48 heads, a multiple of 8 KV heads
    expect(tensorParallelProblem(odd, 4)).toBeUndefined();
    // MLA keeps one latent per token on every rank: only the attention heads count.
    expect(tensorParallelProblem(catalog.model('deepseek-v3'), 8)).toBeUndefined();
  });

  it('exports KV bytes per token for GQA and MLA models', () => {
    // Llama-3.1-70B: 2 (K, V) x 80 layers x 8 KV heads x 128 dims x 2 bytes.
    expect(kvBytesPerToken(catalog.model('llama-3.1-70b'))).toBe(327680);
    expect(kvBytesPerToken(catalog.model('llama-3.1-70b'), 'fp8')).toBe(163840);
    // DeepSeek-V3: 61 layers x (512 latent + 64 rope) x 2 bytes, replicated on every TP rank.
    expect(kvBytesPerToken(catalog.model('deepseek-v3'))).toBe(61 * 576 * 2);
    expect(kvBytesPerTokenPerGpu(catalog.model('deepseek-v3'), 8)).toBe(61 * 576 * 2);
    // GQA KV heads split across TP ranks, replicated beyond the KV head count.
    expect(kvBytesPerTokenPerGpu(catalog.model('llama-3.1-70b'), 4)).toBe(327680 / 4);
    expect(kvBytesPerTokenPerGpu(catalog.model('qwen3-235b-a22b'), 8)).toBe(2 * 94 * 1 * 128 * 2);
  });
});

describe('catalog files', () => {
  const gpu = {
    id: 'mi300x',
    name: 'AMD Instinct MI300X',
    productLabels: ['AMD-Instinct-MI300X'],
    hbmGiB: 192,
    hbmBandwidthGBps: 5300,
    tflops: { bf16: 1307, fp8: 2615 },
    nvlinkGBps: 448,
  };

  it('adds GPUs and models from a list or a mapping', () => {
    const c = Catalog.builtin();
    c.addGpusFrom('gpus.yaml', { gpus: [gpu] });
    expect(c.gpu('AMD-Instinct-MI300X').spec.hbmGiB).toBe(192);
    expect(c.gpu('mi300x').kernelTables).toBeNull();
    c.addModelsFrom('models.yaml', [
      {
        id: 'tiny',
        name: 'Tiny',
        layers: 2,
        hidden: 256,
        heads: 4,
        kvHeads: 2,
        intermediate: 512,
        vocab: 1000,
        maxContext: 4096,
      },
    ]);
    expect(c.model('tiny').kvHeads).toBe(2);
  });

  it('names the file and the field of an invalid entry', () => {
    const c = Catalog.builtin();
    expect(() => c.addGpusFrom('gpus.yaml', { gpus: [{ ...gpu, hbmGiB: -1 }] })).toThrow(
      "gpus.yaml: field 'gpus.0.hbmGiB': must be positive",
    );
    expect(() => c.addGpusFrom('g.json', [gpu, { ...gpu, tflops: { bf16: 'fast' } }])).toThrow(
      /^g\.json: field '1\.tflops\.bf16': /,
    );
    expect(() => c.addGpusFrom('g.json', [{ ...gpu, hbm: 1 }])).toThrow(/^g\.json: field '0': .*hbm/);
    expect(() => c.addGpusFrom('g.json', [{ ...gpu, id: 'Bad Id' }])).toThrow(
      /field '0\.id': must be lowercase/,
    );
    expect(() => c.addGpusFrom('g.json', [gpu, gpu])).toThrow("g.json: field '1.id': duplicate id 'mi300x'");
    expect(() => c.addGpusFrom('g.json', { gpu: [] })).toThrow("g.json: unknown key 'gpu' (expected 'gpus')");
    expect(() => c.addGpusFrom('g.json', 'h100')).toThrow(/expected a list of gpus/);
    const { hbmGiB: _, ...noHbm } = gpu;
    expect(() => c.addGpusFrom('g.json', [noHbm])).toThrow(/field '0\.hbmGiB'/);
    const model = {
      id: 'm',
      name: 'M',
      layers: 2,
      hidden: 256,
      heads: 6,
      kvHeads: 4,
      intermediate: 1,
      vocab: 10,
    };
    expect(() => c.addModelsFrom('m.yaml', [{ ...model, maxContext: 10 }])).toThrow(
      "m.yaml: field '0.kvHeads': heads must be a multiple of kvHeads",
    );
    expect(() => c.addModelsFrom('m.yaml', { models: [model] })).toThrow(
      "m.yaml: field 'models.0.maxContext'",
    );
    expect(() =>
      c.addModelsFrom('m.yaml', [
        { ...model, heads: 4, maxContext: 8, moe: { experts: 4, expertsPerToken: 8, intermediate: 64 } },
      ]),
    ).toThrow("m.yaml: field '0.moe.expertsPerToken': expertsPerToken must not exceed experts");
  });
});
