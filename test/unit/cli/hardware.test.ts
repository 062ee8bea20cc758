import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { cli } from '../../support/cli.ts';

const dir = mkdtempSync(join(tmpdir(), 'servetune-hw-'));
const synthetic = [
  '--request-count',
  '60',
  '--input-tokens',
  '2000',
  '--output-tokens',
  '100',
  '--concurrency',
  '16',
];

describe('servetune catalog', () => {
  it('lists GPUs and models in aligned tables', async () => {
    const r = await cli('catalog');
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/^GPUs\ngpu\s+name\s+aliases\s+nvidia\.com\/gpu\.product\s+HBM GiB/);
    expect(r.out).toMatch(
      /h100_sxm\s+NVIDIA H100 SXM 80GB\s+h100, .*NVIDIA-H100-80GB-HBM3.*\s+80\s+3\.35\s+989\s+1,978\s+-\s+NVLink 450 GB\/s\s+measured/,
    );
    expect(r.out).toMatch(/b300_sxm .* roofline/);
    expect(r.out).toMatch(
      /llama-3\.1-70b\s+Llama-3\.1-70B\s+70\.6\s+70\.6\s+80\s+8192\s+64\/8\s+-\s+bf16\/bf16\s+320\.0/,
    );
    expect(r.out).toMatch(/deepseek-v3 .*128\/MLA\s+256\/8\s+fp8\/bf16\s+68\.6/);
  });

  it('prints JSON and takes extra entries from files', async () => {
    const gpus = join(dir, 'gpus.yaml');
    writeFileSync(
      gpus,
      'gpus:\n  - id: mi300x\n    name: AMD Instinct MI300X\n    hbmGiB: 192\n    hbmBandwidthGBps: 5300\n    tflops: { bf16: 1307, fp8: 2615 }\n    nvlinkGBps: 448\n',
    );
    const r = await cli('catalog', '--json', '--gpus-file', gpus);
    expect(r.code).toBe(0);
    const doc = JSON.parse(r.out);
    const mi = doc.gpus.find((g: { id: string }) => g.id === 'mi300x');
    expect(mi.tier).toBe('roofline');
    expect(doc.models.find((m: { id: string }) => m.id === 'llama-3.1-70b').kvBytesPerToken).toBe(327680);
  });

  it('exits 2 naming the file and field of a bad catalog file', async () => {
    const f = join(dir, 'bad.yaml');
    writeFileSync(f, 'models:\n  - id: m\n    name: M\n    layers: 0\n');
    const r = await cli('catalog', '--models-file', f);
    expect(r.code).toBe(2);
    const [first, expected, ...shape] = r.err.trim().split('\n');
    expect(first).toBe(`servetune catalog: ${f}: field 'models.0.layers': must be positive`);
    // Then what one entry takes, from the schema, and where to copy from.
    expect(expected).toBe('expected for each of models (commented example: config/examples/models.yaml):');
    expect(shape).toContain('  layers: integer');
    expect(shape).toContain('  kvHeads: integer');
    const missing = await cli('catalog', '--gpus-file', join(dir, 'none.yaml'));
    expect(missing.code).toBe(2);
    expect(missing.err).toMatch(/none\.yaml: file not found/);
  });
});

describe('servetune simulate --timing hardware', () => {
  it('prices passes for a GPU, model, TP and dtype and sizes the KV cache from HBM', async () => {
    const json = join(dir, 'r.json');
    const r = await cli(
      'simulate',
      '--timing',
      'hardware',
      '--gpu',
      'h100',
      '--model',
      'llama-3.1-70b',
      '--tp',
      '4',
      '--dtype',
      'fp8',
      ...synthetic,
      '--json',
      json,
    );
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/timing hardware/);
    expect(r.out).toMatch(
      /hardware: NVIDIA H100 SXM 80GB x 4 \(TP4\), Llama-3\.1-70B, weights fp8, KV bf16; tier measured .*KV [\d,]+ blocks x 64 tokens from HBM/,
    );
    const doc = JSON.parse(readFileSync(json, 'utf8'));
    expect(doc.hardware.tier).toBe('measured');
    expect(doc.config.engine.numGpuBlocks).toBe(doc.hardware.memory.numGpuBlocks);
    expect(doc.report.ttft_ms.p50).toBeGreaterThan(10);
    expect(doc.report.tpot_ms.mean).toBeGreaterThan(3);
    expect(doc.report.tpot_ms.mean).toBeLessThan(100);
  });

  it('prices and sizes each disaggregated role on its own tensor-parallel shape', async () => {
    const json = join(dir, 'disagg.json');
    const r = await cli(
      'simulate',
      '--gpu',
      'h100',
      '--model',
      'llama-3.1-70b',
      '--disagg',
      '--prefill-tp',
      '2',
      '--decode-tp',
      '4',
      ...synthetic,
      '--json',
      json,
    );
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    // Each pool's KV is sized on its own shape, and the first line says so (not the unused top-level figure).
    expect(r.out).toMatch(
      /^servetune simulate: .* [\d,]+ KV blocks per prefill worker, [\d,]+ per decode worker$/m,
    );
    expect(r.out).toMatch(/prefill hardware: NVIDIA H100 SXM 80GB x 2 \(TP2\)/);
    expect(r.out).toMatch(/decode hardware: NVIDIA H100 SXM 80GB x 4 \(TP4\)/);
    const doc = JSON.parse(readFileSync(json, 'utf8'));
    const { prefill, decode } = doc.hardwareByRole;
    // Half the GPUs per worker: the same weights leave less room for KV per worker.
    expect(prefill.memory.numGpuBlocks).toBeLessThan(decode.memory.numGpuBlocks);
    expect(doc.config.disaggregation.prefill.engine.numGpuBlocks).toBe(prefill.memory.numGpuBlocks);
    expect(doc.config.disaggregation.decode.engine.numGpuBlocks).toBe(decode.memory.numGpuBlocks);
    expect(doc.hardware.memory.numGpuBlocks).toBe(decode.memory.numGpuBlocks);
    // Every prompt moves at the model's KV size (Llama-3.1-70B bf16: 320 KiB per token), not a default.
    expect(doc.report.kv_transfer.count).toBe(60);
    expect(doc.report.kv_transfer.bytes).toBe(60 * 2000 * 327680);
  });

  it('selects hardware timing when a GPU is named, and takes GPUs and models from files', async () => {
    const models = join(dir, 'models.json');
    writeFileSync(
      models,
      JSON.stringify([
        {
          id: 'tiny-moe',
          name: 'Tiny-MoE',
          layers: 8,
          hidden: 1024,
          heads: 16,
          kvHeads: 4,
          intermediate: 2048,
          vocab: 32000,
          moe: { experts: 16, expertsPerToken: 2, intermediate: 512 },
          maxContext: 8192,
        },
      ]),
    );
    const r = await cli(
      'simulate',
      '--gpu',
      'NVIDIA-L4',
      '--model',
      'tiny-moe',
      '--models-file',
      models,
      ...synthetic,
    );
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/timing hardware/);
    expect(r.out).toMatch(/NVIDIA L4 24GB x 1 \(TP1\), Tiny-MoE, weights bf16, KV bf16; tier roofline/);
  });

  it('keeps an explicit --num-gpu-blocks', async () => {
    const r = await cli(
      'simulate',
      '--gpu',
      'h200',
      '--model',
      'qwen3-8b',
      '--num-gpu-blocks',
      '5000',
      ...synthetic,
    );
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/5,000 KV blocks/);
    expect(r.out).toMatch(/KV blocks as configured/);
  });

  const bad: [string, string[], RegExp][] = [
    [
      'an unknown GPU',
      ['--gpu', 'tpu', '--model', 'qwen3-8b'],
      /^servetune simulate: --gpu tpu: unknown GPU 'tpu' \(known: /,
    ],
    ['an unknown model', ['--gpu', 'h100', '--model', 'gpt-9'], /unknown model 'gpt-9'/],
    [
      'a missing model',
      ['--timing', 'hardware', '--gpu', 'h100'],
      /--gpu h100 needs --model too: hardware timing prices a model on a GPU/,
    ],
    [
      'a bad dtype',
      ['--gpu', 'h100', '--model', 'qwen3-8b', '--dtype', 'int3'],
      /--dtype: unknown value 'int3'/,
    ],
    [
      'a model that does not fit',
      ['--gpu', 'l40s', '--model', 'llama-3.1-70b'],
      /Llama-3\.1-70B \(bf16\) on 1 x NVIDIA L40S 48GB does not fit: weights/,
    ],
    [
      'a KV cache below one request',
      ['--gpu', 'h100', '--model', 'llama-3.1-70b', '--tp', '2', '--max-model-len', '1000000'],
      /less than one request of 1000000 tokens/,
    ],
    [
      'a bad memory fraction',
      ['--gpu', 'h100', '--model', 'qwen3-8b', '--gpu-memory-utilization', '1.5'],
      /--gpu-memory-utilization: must be at most 1/,
    ],
  ];
  for (const [name, argv, pattern] of bad) {
    it(`exits 2 with one line on ${name}`, async () => {
      const r = await cli('simulate', ...argv, ...synthetic);
      expect(r.code).toBe(2);
      expect(r.err).toMatch(pattern);
      expect(r.err.trim().split('\n')).toHaveLength(1);
    });
  }
});

describe('hardware section of a config file', () => {
  it('takes the GPU, model and calibration overrides from the file', async () => {
    const cfg = join(dir, 'hw.yaml');
    const json = join(dir, 'hw.json');
    writeFileSync(
      cfg,
      [
        'tensorParallelSize: 2',
        'hardware:',
        '  gpu: NVIDIA-H200',
        '  model: Qwen/Qwen3-32B',
        '  calibration: { stepMs: 2 }',
        'workload:',
        '  concurrency: 8',
        '  synthetic: { requests: 40, inputTokens: 1000, outputTokens: 50 }',
        '',
      ].join('\n'),
    );
    const r = await cli('simulate', '--config', cfg, '--json', json, '--quiet');
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    const doc = JSON.parse(readFileSync(json, 'utf8'));
    expect(doc.config.timing.model).toBe('hardware');
    expect(doc.hardware.gpu).toBe('h200_sxm');
    expect(doc.hardware.overhead.stepMs).toBe(2);
    writeFileSync(
      cfg,
      'hardware:\n  gpu: h200\n  model: qwen3-32b\n  calibration: { moeScale: -1 }\nworkload:\n  trace: x\n',
    );
    const bad = await cli('simulate', '--config', cfg);
    expect(bad.code).toBe(2);
    // One message naming the file and field, then what that level of the file takes.
    const [first, ...shape] = bad.err.trim().split('\n');
    expect(first).toBe(`servetune simulate: ${cfg}: field 'hardware.calibration.moeScale': must be positive`);
    expect(shape[0]).toBe(
      "expected under 'hardware.calibration' (commented example: config/examples/simulate.yaml):",
    );
    expect(shape).toContain('  moeScale: number');
  });
});
