import { describe, expect, it } from 'vitest';
import { runSimulation } from '../../../src/config/run.ts';
import { SimulationConfigSchema } from '../../../src/config/schema.ts';
import { PolynomialTiming } from '../../../src/sim/timing/polynomial.ts';
import { ScaledTiming } from '../../../src/sim/timing/scaled.ts';
import {
  CALIBRATION_METRICS,
  calibrate,
  enoughFor,
  observedMetrics,
  predictedMetrics,
} from '../../../src/telemetry/calibration/calibrate.ts';
import { withWarmup } from '../../../src/telemetry/calibration/warmup.ts';
import { profileFromRecorded, readRecordedWindow } from '../../../src/telemetry/profile/from-trace.ts';

const SAMPLE = new URL('../../fixtures/traces/conversation-sample.jsonl', import.meta.url).pathname;

async function setup() {
  const rec = await readRecordedWindow(SAMPLE, { lookbackMs: 300_000 });
  const config = SimulationConfigSchema.parse({
    workers: 4,
    engine: { blockSize: 64 },
    workload: { trace: 'x' },
  });
  const windowS = 300;
  /** What a deployment whose passes run `p` and `d` times slower than the model would have measured. */
  const deployment = (p: number, d: number) => {
    const { report } = runSimulation(config, rec.workload, new ScaledTiming(new PolynomialTiming(), p, d));
    return predictedMetrics(report, windowS);
  };
  return { rec, config, windowS, deployment };
}

describe('live calibration', () => {
  it('reports zero error against itself and needs no correction', async () => {
    const { rec, config, windowS, deployment } = await setup();
    const r = calibrate({ workload: rec.workload, config, observed: deployment(1, 1), windowS });
    for (const k of CALIBRATION_METRICS) expect(r.errors[k], k).toBe(0);
    expect(r.meanAbsError).toBe(0);
    expect(r.correction?.factors).toEqual({ prefill: 1, decode: 1 });
    expect(r.correction?.bounded).toBe(false);
  });

  it('measures a systematically slower deployment and fits bounded factors that remove most of the error', async () => {
    const { rec, config, windowS, deployment } = await setup();
    const observed = deployment(1.4, 1.25);
    const r = calibrate({ workload: rec.workload, config, observed, windowS });
    // Before: the model predicts faster than observed.
    expect(r.errors.itl_p50 as number).toBeLessThan(-0.15);
    expect(r.errors.ttft_p50 as number).toBeLessThan(-0.1);
    const c = r.correction!;
    expect(c.factors.decode).toBeCloseTo(1.25, 1);
    expect(c.factors.prefill).toBeGreaterThan(1.15);
    expect(c.factors.prefill).toBeLessThan(1.7);
    expect(c.bounded).toBe(false);
    expect(c.meanAbsError).toBeLessThan(r.meanAbsError / 3);
    expect(Math.abs(c.errors.itl_p50 as number)).toBeLessThan(0.03);
  });

  it('never hides a broken model: a factor at its bound is reported with the error left', async () => {
    const { rec, config, windowS, deployment } = await setup();
    const r = calibrate({ workload: rec.workload, config, observed: deployment(1, 4), windowS });
    expect(r.correction?.bounded).toBe(true);
    expect(r.correction?.factors.decode).toBe(2);
    expect(r.correction!.meanAbsError).toBeGreaterThan(0.2);
  });

  it('replays a warm-up before the window and measures the window alone', async () => {
    const { rec, config, windowS } = await setup();
    const warmed = withWarmup(rec.workload, { spanMs: 60_000, maxRows: 1_000_000 });
    expect(warmed.warmupRequests).toBeGreaterThan(0);
    const observed = { itl_p50: 30, output_tokens_per_s: 100 };
    const o = { config, observed, windowS, fit: false };
    const cold = calibrate({ ...o, workload: rec.workload });
    const warm = calibrate({ ...o, workload: warmed.workload, measureFromMs: warmed.measureFromMs });
    // The warm-up's tokens are not the window's: throughput over the window is the same either way.
    let out = 0;
    for (let i = 0; i < rec.workload.size; i++) out += rec.workload.outputLength[i];
    expect(warm.predicted.output_tokens_per_s).toBeCloseTo(out / windowS, 9);
    expect(cold.predicted.output_tokens_per_s).toBeCloseTo(out / windowS, 9);
    // Pooled token gaps of the window's requests only: not those of the cold run.
    expect(warm.predicted.itl_p50).toBeGreaterThan(0);
  });

  it('compares only what was measured; fit: false skips the correction', async () => {
    const { rec, config, windowS } = await setup();
    const r = calibrate({ workload: rec.workload, config, observed: { itl_p50: 30 }, windowS, fit: false });
    expect(Object.keys(r.errors)).toEqual(['itl_p50']);
    expect(r.correction).toBeNull();
  });

  it("reads the observed metrics from a request-trace profile's measurements", async () => {
    const { rec } = await setup();
    const p = profileFromRecorded(rec, { name: 'x' });
    expect(observedMetrics(p)).toEqual({});
    const withObserved = {
      ...p,
      observed: {
        ttft_ms: { ...p.input_tokens, count: 20, p50: 120, p90: 300, p99: 900 },
        output_tokens_per_s: 55,
        queued_mean: 0,
      },
    };
    expect(observedMetrics(withObserved)).toEqual({
      ttft_p50: 120,
      output_tokens_per_s: 55,
    });
    // A percentile is compared once at least MIN_TAIL_SAMPLES observations lie above it.
    const at = (count: number) =>
      Object.keys(
        observedMetrics({
          ...withObserved,
          observed: { ...withObserved.observed, ttft_ms: { ...withObserved.observed.ttft_ms, count } },
        }),
      );
    expect(at(19)).toEqual(['output_tokens_per_s']);
    expect(at(99)).toEqual(['ttft_p50', 'output_tokens_per_s']);
    expect(at(100)).toEqual(['ttft_p50', 'ttft_p90', 'output_tokens_per_s']);
    expect(at(999)).toEqual(['ttft_p50', 'ttft_p90', 'output_tokens_per_s']);
    expect(at(1000)).toEqual(['ttft_p50', 'ttft_p90', 'ttft_p99', 'output_tokens_per_s']);
    expect(enoughFor(1000, 0.99)).toBe(true);
    expect(enoughFor(20, 0.5)).toBe(true);
    expect(enoughFor(19, 0.5)).toBe(false);
  });
});

describe("the correction applied to a sweep's candidates", () => {
  it('scales every candidate, hardware-agnostic or not', async () => {
    const { Evaluator } = await import('../../../src/sweep/evaluate.ts');
    const rec = await readRecordedWindow(SAMPLE, { lookbackMs: 120_000 });
    const candidate = {
      id: 0,
      gpuType: 'h100_sxm',
      topology: 'aggregated' as const,
      tensorParallel: 1,
      workers: 2,
      router: { mode: 'round-robin' as const, overlapWeight: 1, overlapCredit: 1, temperature: 0 },
      engine: { engine: 'vllm' as const, blockSize: 64, maxNumSeqs: 256, maxNumBatchedTokens: 8192 },
    };
    const base = {
      timing: { model: 'polynomial' as const, prefillMs: 0, decodeMs: 0 },
      traceBlockSize: 512,
      arrivalSpeedupRatio: 1,
      seed: 1,
      prices: {},
      slos: [],
    };
    const plain = new Evaluator(rec.workload, base).evaluate(candidate, 1);
    const same = new Evaluator(rec.workload, { ...base, timingScale: { prefill: 1, decode: 1 } }).evaluate(
      candidate,
      1,
    );
    const slow = new Evaluator(rec.workload, {
      ...base,
      timingScale: { prefill: 1.5, decode: 1.5 },
    }).evaluate(candidate, 1);
    expect(same).toEqual(plain);
    expect(slow.itl.p50).toBeGreaterThan(plain.itl.p50 * 1.3);
    expect(slow.ttft.p50).toBeGreaterThan(plain.ttft.p50 * 1.3);
  });
});
