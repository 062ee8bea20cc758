import { describe, expect, it } from 'vitest';
import { DeploymentTuningSpecSchema, type ServingSettings } from '../../../src/api/index.ts';
import { runSweepJobInline, simulationFor } from '../../../src/operator/sweep/job.ts';

const row = (ts: number, hashes: number[], out: number) =>
  JSON.stringify({ timestamp: ts, input_length: hashes.length * 16, output_length: out, hash_ids: hashes });
// 40 requests over 4 s with shared prefixes, long enough prompts that TP changes prefill time.
const traceText = Array.from({ length: 40 }, (_, i) =>
  row(
    i * 100,
    Array.from({ length: 64 }, (_, k) => (k < 32 ? k : 1000 * i + k)),
    32,
  ),
).join('\n');

const baseline: ServingSettings = {
  gpuType: 'h100_sxm',
  gpus: 1,
  topology: 'Aggregated',
  aggregated: { workers: 1, tensorParallel: 1, gpusPerWorker: 1 },
  router: { mode: 'RoundRobin' },
  planner: { enabled: false },
  model: 'Qwen/Qwen3-8B',
};

const spec = DeploymentTuningSpecSchema.parse({
  targetRef: { name: 'llm' },
  searchSpace: {
    routers: ['RoundRobin'],
    tensorParallel: { aggregated: [1, 2] },
    workers: { aggregated: { min: 1, max: 1 } },
  },
  workload: { source: { file: { path: '/t' } } },
});

describe('sweep job timing', () => {
  it('prices candidates on the hardware when the model and GPU are in the catalog', () => {
    expect(simulationFor('Qwen/Qwen3-8B', 'h100_sxm').simulation).toEqual({
      hardware: { model: 'qwen3-8b' },
    });
    const unknownModel = simulationFor('acme/secret-model', 'h100_sxm');
    expect(unknownModel.simulation).toEqual({});
    expect(unknownModel.note).toContain("'acme/secret-model' is not in the hardware catalog");
    expect(simulationFor('Qwen/Qwen3-8B', 'unknown').note).toContain("GPU type 'unknown'");
    expect(simulationFor(undefined, 'h100_sxm').note).toContain('served model is unknown');
  });

  it('replays the window with hardware timing: TP2 reaches the first token sooner than TP1 on H100', async () => {
    const job = (b: ServingSettings) =>
      runSweepJobInline({
        traceText,
        source: 'test',
        traceBlockSize: 16,
        baseline: b,
        spec,
        budget: { h100_sxm: 2 },
        threads: 0,
      });
    const tp1 = await job(baseline);
    const tp2 = await job({
      ...baseline,
      gpus: 2,
      aggregated: { workers: 1, tensorParallel: 2, gpusPerWorker: 2 },
    });
    expect(tp1.explanation).toContain('timed on each candidate');
    expect(tp1.candidates).toBe(2);
    expect(tp2.baseline.ttftMs.p50).toBeLessThan(tp1.baseline.ttftMs.p50);
    // The generic cost model ignores tensor parallelism, so the difference comes from the hardware model.
    const generic = await job({ ...baseline, model: 'acme/secret-model' });
    expect(generic.explanation).toContain('generic cost model');
    expect(generic.baseline.ttftMs.p50).not.toBeCloseTo(tp1.baseline.ttftMs.p50, 3);
  });

  it('simulates the transition to the best candidate and explains it', async () => {
    const r = await runSweepJobInline({
      traceText,
      source: 'test',
      traceBlockSize: 16,
      baseline: { ...baseline, gpus: 2, aggregated: { workers: 1, tensorParallel: 2, gpusPerWorker: 2 } },
      spec,
      budget: { h100_sxm: 2 },
      threads: 0,
      rollout: { maxGpusChanging: 2, coldStartSeconds: 1 },
    });
    expect(r.best?.settings.aggregated?.tensorParallel).toBe(1);
    // TP 2 -> 1 restarts the worker: one cold start of 1 s, the old worker drained.
    const sim = r.transition?.simulated;
    expect(sim?.workersStarted).toBe(1);
    expect(sim?.workersDrained).toBe(1);
    expect(sim?.durationSeconds).toBeGreaterThanOrEqual(1);
    expect(r.explanation).toMatch(/Simulated transition \(made [\d.]+ s into the window/);
  });

  it('prices a Planner-managed target under its Planner: the baseline and every candidate scale', async () => {
    // Two workers for light traffic, load scaling every second: the Planner drains one, so per GPU held the
    // deployment does better than the same two workers fixed.
    const config = {
      mode: 'agg',
      optimization_target: 'throughput',
      load_adjustment_interval: 1,
      min_endpoint: 1,
      max_gpu_budget: 2,
    };
    const two: ServingSettings = {
      ...baseline,
      gpus: 2,
      aggregated: { workers: 2, tensorParallel: 1, gpusPerWorker: 1 },
    };
    const job = (b: ServingSettings) =>
      runSweepJobInline({
        traceText,
        source: 'test',
        traceBlockSize: 16,
        baseline: b,
        spec: { ...spec, objective: 'ThroughputPerGPU' },
        budget: { h100_sxm: 4 },
        threads: 0,
        rollout: { maxGpusChanging: 4, coldStartSeconds: 0.5 },
      });
    const fixed = await job(two);
    const r = await job({
      ...two,
      planner: { enabled: true, minEndpoint: 1, maxGpuBudget: 2, config: JSON.stringify(config) },
    });
    expect(r.baseline.outputTokensPerSecondPerGpu).toBeGreaterThan(
      fixed.baseline.outputTokensPerSecondPerGpu,
    );
    // Every candidate ran under the Planner, with its bounds: min_endpoint {1, 2} x max_gpu_budget
    // {the budget, 2} over TP {1, 2}, less those whose floor exceeds the ceiling.
    expect(r.candidates).toBeGreaterThan(fixed.candidates);
    expect(r.best?.settings.planner).toMatchObject({ enabled: true });
    expect(r.best?.settings.planner.maxGpuBudget).toBeLessThanOrEqual(4);
    for (const c of r.frontier) {
      expect(c.settings.planner.enabled).toBe(true);
      expect(c.settings.planner.minEndpoint).toBeGreaterThanOrEqual(1);
    }
  }, 60_000);
});
