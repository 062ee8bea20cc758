import { describe, expect, it } from 'vitest';
import { runSimulation } from '../../../src/config/run.ts';
import type { VllmEngine } from '../../../src/sim/engine/vllm-engine.ts';
import { PolynomialTiming } from '../../../src/sim/timing/polynomial.ts';
import type { PassShape, TimingModel } from '../../../src/sim/timing/timing-model.ts';
import { config, conversationSample, mooncake, run, synthetic } from '../../support/sim.ts';

const prefill = (t: number) => 4.209989e-7 * t * t + 0.01518344 * t + 16.50142;
const decode = (kv: number, cap = 16384 * 64) => {
  const u = Math.min(1, kv / cap);
  return Math.max(1, -25.74 * u * u + 54.01 * u + 5.74);
};
const ns = (ms: number) => Math.round(ms * 1e6) / 1e6;

describe('vLLM engine, hand-computed timelines (polynomial timing)', () => {
  it('a lone request: TTFT is its prefill; each later token costs one decode step priced by its context', () => {
    const w = mooncake([{ timestamp: 0, input_length: 100, output_length: 3, hash_ids: [1] }]);
    const { result, report } = run(w, { engine: { blockSize: 64 } });
    const c = result.records;
    const t1 = ns(prefill(100));
    const t2 = t1 + ns(decode(101));
    const t3 = t2 + ns(decode(102));
    expect(c.firstTokenMs[0]).toBeCloseTo(t1, 9);
    expect(c.lastTokenMs[0]).toBeCloseTo(t3, 9);
    expect(report.tpot_ms.mean).toBeCloseTo((t3 - t1) / 2, 9);
    expect(report.ttft_ms.mean).toBeCloseTo(18.023974, 6);
  });

  it('chunks a long prompt over passes within the token budget', () => {
    const w = mooncake([
      {
        timestamp: 0,
        input_length: 10000,
        output_length: 2,
        hash_ids: Array.from({ length: 20 }, (_, i) => i),
      },
    ]);
    const { result } = run(w, { engine: { blockSize: 64, maxNumBatchedTokens: 8192 } });
    // Pass 1: 8192 new tokens; pass 2: 1808 new tokens after an 8192-token prefix (T = 1 x (10000 - 8192)).
    expect(result.records.firstTokenMs[0]).toBeCloseTo(ns(prefill(8192)) + ns(prefill(1808)), 9);
  });

  it('a second request arriving mid-pass waits for the pass end and shares the next pass with the decode', () => {
    const w = mooncake([
      { timestamp: 0, input_length: 100, output_length: 4, hash_ids: [1] },
      { timestamp: 5, input_length: 200, output_length: 2, hash_ids: [2] },
    ]);
    const { result } = run(w, { engine: { blockSize: 64 } });
    const c = result.records;
    const end1 = ns(prefill(100));
    expect(c.firstAdmitMs[1]).toBeCloseTo(end1, 9); // admitted when the first pass ends
    // Pass 2: B's 200-token prefill + A's decode (context 101); B's first token rides along for free.
    const end2 = end1 + ns(prefill(200)) + ns(decode(101));
    expect(c.firstTokenMs[1]).toBeCloseTo(end2, 9);
    expect(c.secondTokenMs[0]).toBeCloseTo(end2, 9);
  });

  it('reuses a cached prefix, always recomputing the last block of a fully cached prompt', () => {
    const w = mooncake([
      { timestamp: 0, input_length: 128, output_length: 2, hash_ids: [1, 2] },
      { timestamp: 1000, input_length: 128, output_length: 2, hash_ids: [1, 2] },
      { timestamp: 2000, input_length: 129, output_length: 2, hash_ids: [1, 2, 3] },
    ]);
    const { result, report } = run(w, {
      engine: { blockSize: 64 },
      workload: { trace: 'inline', traceBlockSize: 64 },
    });
    expect(Array.from(result.records.reusedBest)).toEqual([0, 64, 128]);
    expect(report.prefix_cache_reused_ratio).toBeCloseTo(192 / 385, 12);
    // 129 tokens with 128 cached: one token of prefill.
    expect(result.records.firstTokenMs[2] - 2000).toBeCloseTo(ns(prefill(1)), 9);
  });

  it('preempts the newest running request when KV runs out, and it recomputes from its cached blocks', () => {
    // 6 blocks of 16 tokens; two requests grow past the pool together.
    const w = mooncake([
      { timestamp: 0, input_length: 32, output_length: 40, hash_ids: [1, 2] },
      { timestamp: 0, input_length: 32, output_length: 40, hash_ids: [3, 4] },
    ]);
    const { result, report } = run(w, {
      engine: { blockSize: 16, numGpuBlocks: 6 },
      workload: { trace: 'inline', traceBlockSize: 16 },
    });
    expect(report.preemptions).toBeGreaterThan(0);
    expect(result.records.preemptions[1]).toBeGreaterThan(0); // the newer one is the victim
    expect(result.records.preemptions[0]).toBe(0);
    expect(report.completed_requests).toBe(2);
    // The victim re-admits reusing its own cached blocks (prompt and generated).
    expect(result.records.reusedBest[1]).toBeGreaterThan(0);
    expect(result.records.admissions[1]).toBeGreaterThan(1);
  });

  it('rejects a request that can never fit in the KV cache and completes the rest', () => {
    const w = mooncake([
      { timestamp: 0, input_length: 100, output_length: 2, hash_ids: [1] },
      { timestamp: 0, input_length: 2000, output_length: 2, hash_ids: [2, 3, 4, 5] },
    ]);
    const { report } = run(w, { engine: { blockSize: 64, numGpuBlocks: 10 } });
    expect(report.rejected_requests).toBe(1);
    expect(report.completed_requests).toBe(1);
  });
});

/** Records every pass shape, to check scheduler limits from the outside. */
class RecordingTiming implements TimingModel {
  readonly name = 'recording';
  readonly inner = new PolynomialTiming();
  passes: { prefillTokens: number; prefillRequests: number; decodeRequests: number }[] = [];
  prefillMs(s: PassShape): number {
    this.passes.push({
      prefillTokens: s.prefillNewTokens,
      prefillRequests: s.prefillRequests,
      decodeRequests: 0,
    });
    return this.inner.prefillMs(s);
  }
  decodeMs(s: PassShape): number {
    // prefillMs ran for this pass only if it had prompt work (the shape is reset at every pass start).
    if (s.prefillRequests > 0) this.passes[this.passes.length - 1].decodeRequests = s.decodeRequests;
    else this.passes.push({ prefillTokens: 0, prefillRequests: 0, decodeRequests: s.decodeRequests });
    return this.inner.decodeMs(s);
  }
}

describe('scheduler invariants', () => {
  const settings = [
    { workers: 2, engine: { blockSize: 64, numGpuBlocks: 900, maxNumSeqs: 12, maxNumBatchedTokens: 2048 } },
    {
      workers: 3,
      engine: { blockSize: 16, numGpuBlocks: 4000, maxNumSeqs: 64, maxNumBatchedTokens: 512 },
      router: { mode: 'kv' },
    },
    { workers: 1, engine: { blockSize: 512, numGpuBlocks: 60, maxNumSeqs: 8 } },
  ];
  for (const s of settings) {
    it(`hold for ${JSON.stringify(s)}`, () => {
      const timing = new RecordingTiming();
      const w = conversationSample(250);
      const { result, report } = runSimulation(config({ ...s, coalesceDecode: false }), w, timing);
      // Every request finished or was rejected; no KV block is still held by anyone.
      expect(report.completed_requests + report.rejected_requests).toBe(w.size);
      for (const e of result.engines as VllmEngine[]) {
        expect(e.pool.activeBlocks).toBe(0);
        expect(e.runningCount + e.waitingCount).toBe(0);
        e.pool.assertInvariants();
      }
      for (const p of timing.passes) {
        expect(p.prefillTokens + p.decodeRequests).toBeLessThanOrEqual(s.engine.maxNumBatchedTokens ?? 8192);
        expect(p.prefillRequests + p.decodeRequests).toBeLessThanOrEqual(s.engine.maxNumSeqs);
      }
      // Tokens emitted equal the outputs requested by completed requests.
      let tokens = 0;
      for (let r = 0; r < w.size; r++) if (result.records.status[r] === 3) tokens += w.outputLength[r];
      expect(Array.from(result.records.tokens).reduce((a, b) => a + b, 0)).toBe(tokens);
    });
  }
});

describe('determinism', () => {
  it('the same inputs and seed give the same report; another seed changes random choices', () => {
    const w = synthetic({ sessions: 150, turnsPerSession: 2, interTurnDelayMs: 200 });
    for (const router of [{ mode: 'random' }, { mode: 'kv', temperature: 0.3 }]) {
      const a = run(w, { workers: 3, router, seed: 7 }).report;
      const b = run(w, { workers: 3, router, seed: 7 }).report;
      const c = run(w, { workers: 3, router, seed: 8 }).report;
      const strip = (r: typeof a) => ({ ...r, wall_s: 0, simulator: { ...r.simulator, events_per_s: 0 } });
      expect(strip(b)).toEqual(strip(a));
      expect(c.ttft_ms.mean).not.toBe(a.ttft_ms.mean);
    }
  });

  it('the synthetic generator is seeded', () => {
    const a = synthetic({ seed: 3 });
    const b = synthetic({ seed: 3 });
    const c = synthetic({ seed: 4 });
    expect(Array.from(b.arrivalMs)).toEqual(Array.from(a.arrivalMs));
    expect(Array.from(b.inputLength)).toEqual(Array.from(a.inputLength));
    expect(Array.from(c.inputLength)).not.toEqual(Array.from(a.inputLength));
  });
});
