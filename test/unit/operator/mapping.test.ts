import { describe, expect, it } from 'vitest';
import { DeploymentTuningSpecSchema, type ServingSettings } from '../../../src/api/index.ts';
import {
  baselineSpace,
  gainPercent,
  settingsOf,
  sweepBudget,
  sweepObjective,
  sweepSlos,
  sweepSpace,
} from '../../../src/operator/sweep/mapping.ts';
import { coldStartSeconds } from '../../../src/operator/sweep/transition.ts';
import { enumerateCandidates } from '../../../src/sweep/space.ts';

const agg: ServingSettings = {
  gpuType: 'h100_sxm',
  gpus: 4,
  topology: 'Aggregated',
  aggregated: { workers: 2, tensorParallel: 2, gpusPerWorker: 2 },
  router: { mode: 'KV', overlapWeight: 0.5 },
  planner: { enabled: false },
  engine: { maxNumSeqs: 128 },
};

describe('mapping onto the sweep library', () => {
  it('translates objectives, SLOs and budgets', () => {
    expect(sweepObjective('ThroughputPerGPU')).toBe('throughput_per_gpu');
    expect(sweepObjective('Cost')).toBe('cost');
    expect(sweepSlos([{ metric: 'TTFT', percentile: 90, maxMs: 500 }])).toEqual([
      { metric: 'ttft', percentile: 'p90', maxMs: 500 },
    ]);
    expect(sweepBudget({ h200_sxm: 8, h100_sxm: 4, b200_sxm: 0 })).toEqual([
      { type: 'h100_sxm', count: 4 },
      { type: 'h200_sxm', count: 8 },
    ]);
    expect(sweepBudget({ h200_sxm: 8, h100_sxm: 4 }, ['h200_sxm'])).toEqual([{ type: 'h200_sxm', count: 8 }]);
  });

  it('scores the baseline as exactly one candidate', () => {
    const { space, budget } = baselineSpace(agg);
    const { candidates } = enumerateCandidates(space, budget);
    expect(candidates).toHaveLength(1);
    expect(settingsOf(candidates[0])).toMatchObject({
      gpus: 4,
      topology: 'Aggregated',
      aggregated: { workers: 2, tensorParallel: 2 },
      router: { mode: 'KV', overlapWeight: 0.5 },
      engine: { maxNumSeqs: 128 },
    });
    const disagg: ServingSettings = {
      ...agg,
      gpus: 6,
      topology: 'Disaggregated',
      aggregated: undefined,
      prefill: { workers: 2, tensorParallel: 1, gpusPerWorker: 1 },
      decode: { workers: 1, tensorParallel: 4, gpusPerWorker: 4 },
    };
    const d = baselineSpace(disagg);
    const dc = enumerateCandidates(d.space, d.budget).candidates;
    expect(dc).toHaveLength(1);
    expect(settingsOf(dc[0])).toMatchObject({
      gpus: 6,
      topology: 'Disaggregated',
      prefill: { workers: 2, tensorParallel: 1 },
      decode: { workers: 1, tensorParallel: 4 },
    });
  });

  it('maps the search space, disaggregated roles included', () => {
    const spec = DeploymentTuningSpecSchema.parse({
      targetRef: { name: 'x' },
      workload: { source: { file: { path: '/t' } } },
      searchSpace: {
        topologies: ['Aggregated', 'Disaggregated'],
        tensorParallel: { aggregated: [1], prefill: [1], decode: [2] },
        workers: { aggregated: { min: 1, max: 2 } },
        routers: ['RoundRobin'],
      },
    });
    const space = sweepSpace(spec.searchSpace, agg);
    expect(space.topologies).toEqual(['aggregated', 'disaggregated']);
    expect(space.workers).toEqual({ min: 1, max: 2 });
    expect(space.disaggregated.decodeTensorParallel).toEqual([2]);
    expect(space.engine.maxNumSeqs).toEqual([128]);
    expect(space.engine.engines).toEqual(['vllm']);
    expect(sweepSpace({ ...spec.searchSpace, backends: ['vLLM', 'SGLang'] }, agg).engine.engines).toEqual([
      'vllm',
      'sglang',
    ]);
    const { candidates } = enumerateCandidates(space, [{ type: 'h100_sxm', count: 4 }]);
    expect(candidates.some((c) => c.topology === 'disaggregated')).toBe(true);
  });

  it('computes gains in the objective direction', () => {
    expect(gainPercent('throughput_per_gpu', 100, 150)).toBe(50);
    expect(gainPercent('cost', 2, 1)).toBe(50);
    expect(gainPercent('cost', 1, 2)).toBe(-100);
  });

  it('prices a Planner-managed target under its Planner: the baseline with its bounds, candidates over bounds', () => {
    const planned: ServingSettings = {
      ...agg,
      model: 'meta-llama/Llama-3.1-70B',
      gpus: 6,
      aggregated: { workers: 3, tensorParallel: 2, gpusPerWorker: 2 },
      router: { mode: 'RoundRobin' },
      planner: {
        enabled: true,
        minEndpoint: 2,
        maxGpuBudget: 8,
        config: '{"mode":"agg","optimization_target":"throughput","min_endpoint":2,"max_gpu_budget":8}',
      },
    };
    // The baseline: one candidate, under the deployment's configuration, starting from its 3 workers.
    const b = baselineSpace(planned, 16);
    expect(b.budget).toEqual([{ type: 'h100_sxm', count: 8 }]);
    const [base] = enumerateCandidates(b.space, b.budget).candidates;
    expect(base.workers).toBe(3);
    expect(base.planner?.settings).toMatchObject({
      optimization_target: 'throughput',
      min_endpoint: 2,
      max_gpu_budget: 8,
    });
    expect(base.planner?.startupTimeS).toBeGreaterThan(0);
    expect(settingsOf(base).planner).toEqual({ enabled: true, minEndpoint: 2, maxGpuBudget: 8 });

    // The sweep: the bounds are the knobs; every candidate starts from the current replicas, clamped.
    const spec = DeploymentTuningSpecSchema.parse({
      targetRef: { name: 'x' },
      workload: { source: { file: { path: '/t' } } },
      searchSpace: { tensorParallel: { aggregated: [2, 4] }, routers: ['RoundRobin'] },
    });
    const space = sweepSpace(spec.searchSpace, planned);
    expect(space.planner).toMatchObject({
      minEndpoint: [1, 2],
      maxGpuBudget: [-1, 8, 6],
      start: { aggregated: 3 },
    });
    const { candidates, pruned } = enumerateCandidates(space, [{ type: 'h100_sxm', count: 8 }]);
    const bounds = (c: (typeof candidates)[number]) => settingsOf(c).planner;
    // TP2 starts at 3 workers (6 GPUs) under budgets 8 and 6; TP4 is trimmed to 2 workers (8 GPUs) under 8
    // and to 1 under 6 with min_endpoint 1; with min_endpoint 2 the 6-GPU ceiling cannot hold TP4's floor.
    const shapes = candidates.map((c) => `TP${c.tensorParallel}x${c.workers} ${JSON.stringify(bounds(c))}`);
    expect(shapes).toContain('TP2x3 {"enabled":true,"minEndpoint":2,"maxGpuBudget":6}');
    expect(shapes).toContain('TP4x2 {"enabled":true,"minEndpoint":1,"maxGpuBudget":8}');
    expect(shapes).toContain('TP4x1 {"enabled":true,"minEndpoint":1,"maxGpuBudget":6}');
    expect(
      shapes.filter((x) => x.startsWith('TP4') && x.includes('"minEndpoint":2,"maxGpuBudget":6')),
    ).toEqual([]);
    expect(pruned.some((p) => p.reason.includes("planner: field 'max_gpu_budget'"))).toBe(true);
    // A swept budget over the tuning's GPU budget is pruned, not silently lowered.
    const small = enumerateCandidates(space, [{ type: 'h100_sxm', count: 6 }]);
    expect(
      small.pruned.some((p) => p.reason === 'planner: max_gpu_budget 8 exceeds the GPU budget of 6'),
    ).toBe(true);
    expect(small.candidates.every((c) => (bounds(c).maxGpuBudget ?? 0) <= 6)).toBe(true);

    // Each worker size starts in its own time (its share of the weights), unless the spec gives one.
    const startup = (tp: number) => candidates.find((c) => c.tensorParallel === tp)?.planner?.startupTimeS;
    expect(startup(2)).toBe(coldStartSeconds(planned.model, 2));
    expect(startup(4)).toBe(coldStartSeconds(planned.model, 4));
    expect(startup(4)).toBeLessThan(startup(2) as number);
    const given = enumerateCandidates(sweepSpace(spec.searchSpace, planned, 90), [
      { type: 'h100_sxm', count: 8 },
    ]);
    expect(new Set(given.candidates.map((c) => c.planner?.startupTimeS))).toEqual(new Set([90]));
  });
});
