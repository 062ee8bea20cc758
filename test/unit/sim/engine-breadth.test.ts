import { describe, expect, it } from 'vitest';
import { toSimulationOptions } from '../../../src/config/run.ts';
import { SimulationConfigSchema } from '../../../src/config/schema.ts';
import { DpWorker } from '../../../src/sim/engine/dp-worker.ts';
import { expectedTokensPerForward, SpeculativeSampler } from '../../../src/sim/engine/speculative.ts';
import { TrtllmEngine } from '../../../src/sim/engine/trtllm-engine.ts';
import { simulate } from '../../../src/sim/simulation.ts';
import { cli } from '../../support/cli.ts';
import { config, conversationSample, FIXTURES, mooncake, run } from '../../support/sim.ts';

describe('TensorRT-LLM engine (GUARANTEED_NO_EVICT)', () => {
  it('defaults its block size to 32 and keeps an explicit one', () => {
    expect(config({ engine: { engine: 'trtllm' } }).engine.blockSize).toBe(32);
    expect(config({ engine: { engine: 'trtllm', blockSize: 64 } }).engine.blockSize).toBe(64);
    expect(config({ engine: { engine: 'vllm' } }).engine.blockSize).toBe(64);
  });

  it('never preempts under KV pressure, where vLLM does', () => {
    const w = conversationSample(250);
    const engine = { blockSize: 64, numGpuBlocks: 2500 };
    const vllm = run(w, { workers: 1, engine });
    const trt = run(w, { workers: 1, engine: { ...engine, engine: 'trtllm' } });
    expect(vllm.report.preemptions).toBeGreaterThan(0);
    expect(trt.report.preemptions).toBe(0);
    expect(trt.result.engines[0]).toBeInstanceOf(TrtllmEngine);
    expect(trt.report.completed_requests + trt.report.rejected_requests).toBe(w.size);
  });

  it('admits only what fits to completion: running footprints never exceed the pool', () => {
    // Two requests whose prompts fit together but whose completions do not: the second waits.
    const w = mooncake([
      { timestamp: 0, input_length: 1000, output_length: 600, hash_ids: [1, 2] },
      { timestamp: 0, input_length: 1000, output_length: 600, hash_ids: [3, 4] },
    ]);
    const engine = { engine: 'trtllm', blockSize: 100, numGpuBlocks: 20 };
    const { result } = run(w, { workers: 1, engine, timing: { model: 'fixed' } });
    const c = result.collector;
    // 16 blocks to completion each: the second is admitted only once the first finished.
    expect(c.firstAdmitMs[1]).toBe(c.terminalMs[0]);
    const vllm = run(w, { workers: 1, engine: { ...engine, engine: 'vllm' }, timing: { model: 'fixed' } });
    expect(vllm.result.collector.firstAdmitMs[1]).toBe(0);
  });

  it('rejects a request whose prompt plus output can never fit, naming why', () => {
    const w = mooncake([{ timestamp: 0, input_length: 900, output_length: 500, hash_ids: [1, 2] }]);
    const { report } = run(w, { engine: { engine: 'trtllm', blockSize: 100, numGpuBlocks: 12 } });
    expect(report.rejected_requests).toBe(1);
  });
});

describe('MTP / speculative decoding', () => {
  it('draws bursts from a seeded stream: rates 0 and 1 are exact, others average 1 + r1 + r1 r2 + ...', () => {
    expect(new SpeculativeSampler({ nextn: 3, acceptRates: [1, 1, 0], seed: 1 }, 0).sample()).toBe(3);
    expect(new SpeculativeSampler({ nextn: 2, acceptRates: [0, 1], seed: 1 }, 0).sample()).toBe(1);
    const spec = { nextn: 3, acceptRates: [0.7, 0.5, 0.2], seed: 42 };
    const a = new SpeculativeSampler(spec, 3);
    const b = new SpeculativeSampler(spec, 3);
    const c = new SpeculativeSampler(spec, 4);
    const xs = Array.from({ length: 100_000 }, () => a.sample());
    expect(Array.from({ length: 100 }, () => b.sample())).toEqual(xs.slice(0, 100));
    expect(Array.from({ length: 100 }, () => c.sample())).not.toEqual(xs.slice(0, 100));
    const mean = xs.reduce((s, x) => s + x, 0) / xs.length;
    expect(Math.abs(mean - expectedTokensPerForward(spec))).toBeLessThan(0.02);
    expect(expectedTokensPerForward(spec)).toBeCloseTo(1 + 0.7 + 0.35 + 0.07, 12);
  });

  it('takes rates as a list or as the reference spells them, bounded', () => {
    expect(config({ engine: { nextn: 2, nextnAcceptRates: '0.9, 0.4' } }).engine.nextnAcceptRates).toEqual([
      0.9, 0.4,
    ]);
    for (const bad of ['1.5', 'x', '0.5,,0.2', [0.1, 0.1, 0.1, 0.1, 0.1, 0.1]])
      expect(
        SimulationConfigSchema.safeParse({
          workload: { trace: 'x' },
          engine: { nextn: 2, nextnAcceptRates: bad },
        }).success,
      ).toBe(false);
    expect(SimulationConfigSchema.safeParse({ workload: { trace: 'x' }, engine: { nextn: 6 } }).success).toBe(
      false,
    );
  });

  for (const engine of ['vllm', 'sglang', 'trtllm'])
    it(`${engine}: shortens decoding by the accepted drafts, and the fast paths change nothing`, () => {
      const w = conversationSample(300);
      const base = { workers: 2, engine: { engine, blockSize: 64 } };
      const off = run(w, base).report;
      const mtp = { ...base, engine: { ...base.engine, nextn: 2, nextnAcceptRates: [0.8, 0.5] } };
      const fast = run(w, mtp);
      const plain = run(w, { ...mtp, coalesceDecode: false });
      expect(fast.report.tpot_ms.mean).toBeLessThan(off.tpot_ms.mean * 0.6);
      expect(Array.from(fast.result.collector.lastTokenMs)).toEqual(
        Array.from(plain.result.collector.lastTokenMs),
      );
      expect(fast.report.total_output_tokens).toBe(off.total_output_tokens);
    });
});

describe('attention-data-parallel ranks (--dp-size)', () => {
  it('a worker holds TP x DP GPUs in every accounting', () => {
    const w = conversationSample(100);
    const { report, result } = run(w, { workers: 2, tensorParallelSize: 2, dataParallelSize: 4 });
    expect(report.gpus).toBe(16);
    expect(result.engines).toHaveLength(2);
    expect(result.engines[0]).toBeInstanceOf(DpWorker);
    expect(result.engines[0].gpus).toBe(8);
  });

  it('routes round robin over workers first, then over each worker ranks', () => {
    const rows = Array.from({ length: 8 }, (_, i) => ({
      timestamp: 0,
      input_length: 100,
      output_length: 2,
      hash_ids: [i + 1],
    }));
    const { result } = run(mooncake(rows), { workers: 2, dataParallelSize: 2 });
    const ranks = result.engines.map((e) => e as DpWorker);
    const where = Array.from(
      { length: 8 },
      (_, r) => `${result.records.engine[r]}:${ranks[result.records.engine[r]].rankOf(r)}`,
    );
    expect(where).toEqual(['0:0', '1:0', '0:1', '1:1', '0:0', '1:0', '0:1', '1:1']);
  });

  it("ranks step together: every rank's tokens come out at the slowest rank's pass end", () => {
    // Two prompts on one worker's two ranks; the longer prefill sets both first tokens.
    const w = mooncake([
      { timestamp: 0, input_length: 4000, output_length: 3, hash_ids: [1, 2, 3, 4, 5, 6, 7, 8] },
      { timestamp: 0, input_length: 200, output_length: 3, hash_ids: [9] },
    ]);
    const dp = run(w, { workers: 1, dataParallelSize: 2 }).result.collector;
    expect(dp.firstTokenMs[1]).toBe(dp.firstTokenMs[0]);
    const alone = run(mooncake([{ timestamp: 0, input_length: 200, output_length: 3, hash_ids: [9] }]), {
      workers: 1,
    }).result.collector;
    expect(dp.firstTokenMs[1]).toBeGreaterThan(alone.firstTokenMs[0]);
  });

  it('is refused with disaggregation, the planner or host offload, naming the field', () => {
    for (const extra of [
      { disaggregation: { prefill: { workers: 1 }, decode: { workers: 1 } } },
      { engine: { g2Blocks: 100 } },
    ]) {
      const parsed = SimulationConfigSchema.safeParse({
        workload: { trace: 'x' },
        dataParallelSize: 2,
        ...extra,
      });
      expect(parsed.success).toBe(false);
      expect(parsed.error?.issues[0].path).toEqual(['dataParallelSize']);
    }
    const opts = toSimulationOptions(config({ router: { mode: 'kv' } }));
    expect(() =>
      simulate(conversationSample(10), {
        ...opts,
        dataParallelSize: 2,
        disaggregation: {
          ...opts,
          prefill: { ...opts, workers: 1 },
          decode: { ...opts, workers: 1 },
        } as never,
      }),
    ).toThrow(/data-parallel ranks/);
  });
});

describe('servetune simulate flags', () => {
  it('--engine trtllm --dp-size --nextn --nextn-accept-rates', async () => {
    const r = await cli(
      'simulate',
      '--trace',
      `${FIXTURES}traces/conversation-sample.jsonl`,
      '--engine',
      'trtllm',
      '--dp-size',
      '2',
      '--nextn',
      '2',
      '--nextn-accept-rates',
      '1,0.5',
      '--quiet',
    );
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    const bad = await cli(
      'simulate',
      '--trace',
      `${FIXTURES}traces/conversation-sample.jsonl`,
      '--nextn-accept-rates',
      '2',
    );
    expect(bad.code).toBe(2);
    expect(bad.err).toMatch(/nextn-accept-rates/);
  });
});
