import { describe, expect, it } from 'vitest';
import {
  candidateGpus,
  candidateLabel,
  enumerateCandidates,
  SearchSpaceSchema,
} from '../../../src/sweep/space.ts';

describe('search space', () => {
  it('enumerates candidates within each GPU budget and reports what it leaves out', () => {
    const space = SearchSpaceSchema.parse({
      tensorParallel: [1, 4, 16],
      router: { modes: ['round-robin', 'kv'], overlapWeights: [1, 2] },
    });
    const { candidates, pruned } = enumerateCandidates(space, [
      { type: 'h100', count: 8 },
      { type: 'a100', count: 3 },
    ]);
    for (const c of candidates) {
      const budget = c.gpuType === 'h100' ? 8 : 3;
      expect(candidateGpus(c)).toBeLessThanOrEqual(budget);
    }
    // h100: TP1 x 1..8 workers, TP4 x 1..2; one router variant at 1 worker, three otherwise.
    expect(candidates.filter((c) => c.gpuType === 'h100').length).toBe(1 + 7 * 3 + 1 + 1 * 3);
    expect(pruned.map((p) => p.label)).toEqual(['h100 TP16', 'a100 TP4', 'a100 TP16']);
    expect(pruned[0].reason).toBe('needs 16 GPUs, budget has 8');
    expect(new Set(candidates.map((c) => c.id)).size).toBe(candidates.length);
  });

  it('applies a veto (e.g. memory) per shape, with its reason', () => {
    const space = SearchSpaceSchema.parse({ tensorParallel: [1, 2], workers: [1, 2] });
    const { candidates, pruned } = enumerateCandidates(space, [{ type: 'l40s', count: 4 }], (_gpu, tp) =>
      tp < 2 ? 'model weights need 140 GB, 1 GPU has 48 GB' : null,
    );
    expect(candidates.every((c) => c.tensorParallel === 2)).toBe(true);
    expect(pruned).toContainEqual({
      label: 'l40s TP1',
      reason: 'model weights need 140 GB, 1 GPU has 48 GB',
    });
  });

  it('enumerates disaggregated splits at the budget edge, with per-role TP', () => {
    const space = SearchSpaceSchema.parse({
      topologies: ['aggregated', 'disaggregated'],
      tensorParallel: [1],
      workers: [4],
      router: { modes: ['kv'], overlapWeights: [1] },
      disaggregated: { prefillTensorParallel: [1, 2], decodeTensorParallel: [1, 4] },
    });
    const { candidates, pruned } = enumerateCandidates(space, [{ type: 'h100', count: 6 }]);
    const dis = candidates.filter((c) => c.topology === 'disaggregated');
    expect(candidates.filter((c) => c.topology === 'aggregated').length).toBe(1);
    for (const c of dis) {
      const used = candidateGpus(c);
      expect(used).toBeLessThanOrEqual(6);
      // Budget edge: no room left for another worker of either role.
      const spare = 6 - used;
      expect(spare < (c.prefill?.tensorParallel ?? 0) && spare < c.tensorParallel).toBe(true);
      expect(c.prefill?.workers).toBeGreaterThanOrEqual(1);
      expect(c.workers).toBeGreaterThanOrEqual(1);
    }
    // P(TP1)+D(TP1): 1+5 .. 5+1; P(TP2)+D(TP1): 1+4, 2+2; P(TP1)+D(TP4): 2+1 (1+1 leaves room); P(TP2)+D(TP4): 1+1.
    expect(
      dis
        .map((c) => `${c.prefill?.tensorParallel}x${c.prefill?.workers}+${c.tensorParallel}x${c.workers}`)
        .sort(),
    ).toEqual(
      [
        '1x1+1x5',
        '1x2+1x4',
        '1x3+1x3',
        '1x4+1x2',
        '1x5+1x1',
        '2x1+1x4',
        '2x2+1x2',
        '1x2+4x1',
        '2x1+4x1',
      ].sort(),
    );
    expect(pruned).toEqual([]);
    const small = enumerateCandidates(space, [{ type: 'h100', count: 4 }]);
    expect(small.pruned.map((p) => p.label)).toContain('h100 P(TP2)+D(TP4)');
  });

  it('validates space files field by field', () => {
    const r = SearchSpaceSchema.safeParse({ tensorParallel: [0], router: { modes: ['fastest'] } });
    expect(r.success).toBe(false);
    const paths = r.success ? [] : r.error.issues.map((i) => i.path.join('.'));
    expect(paths).toContain('tensorParallel.0');
    expect(paths).toContain('router.modes.0');
    expect(SearchSpaceSchema.safeParse({ workers: { min: 5, max: 2 } }).success).toBe(false);
    expect(SearchSpaceSchema.safeParse({ extra: 1 }).success).toBe(false);
  });
});

describe('search space: Planner settings as dimensions', () => {
  it('expands every candidate over the planner values, within the sweep budget', () => {
    const space = SearchSpaceSchema.parse({
      tensorParallel: [1],
      workers: [1, 2],
      router: { modes: ['round-robin'] },
      planner: {
        base: { optimization_target: 'sla', enable_load_scaling: true, min_endpoint: 2 },
        loadAdjustmentIntervalS: [5, 30],
        startupTimeS: [0, 60],
      },
    });
    const { candidates, pruned } = enumerateCandidates(space, [{ type: 'h100', count: 6 }]);
    // One worker is below min_endpoint: left out with the reason.
    expect(candidates.length).toBe(4);
    expect(pruned.filter((p) => /min_endpoint/.test(p.reason)).length).toBe(4);
    for (const c of candidates) {
      expect(c.workers).toBe(2);
      expect(c.planner?.settings.max_gpu_budget).toBe(6);
      expect(c.planner?.settings.optimization_target).toBe('sla');
    }
    expect(candidates.map((c) => c.planner?.label).sort()).toEqual([
      'planner(li=30s st=0s)',
      'planner(li=30s st=60s)',
      'planner(li=5s st=0s)',
      'planner(li=5s st=60s)',
    ]);
    expect(candidateLabel(candidates[0])).toMatch(/h100 2x TP1 round-robin planner\(li=5s st=0s\)/);
  });

  it("takes a candidate's cold start from its worker size when given per size (the slowest role's)", () => {
    const space = SearchSpaceSchema.parse({
      topologies: ['aggregated', 'disaggregated'],
      tensorParallel: [1, 4],
      workers: [2],
      router: { modes: ['round-robin'] },
      disaggregated: {
        prefillTensorParallel: [1],
        decodeTensorParallel: [4],
        prefillWorkers: [1],
        decodeWorkers: [1],
        budgetEdge: false,
      },
      planner: {
        base: { optimization_target: 'throughput' },
        startupTimeByWorkerGpus: { '1': 120, '4': 60 },
      },
    });
    const { candidates } = enumerateCandidates(space, [{ type: 'h100', count: 16 }]);
    const st = candidates.map(
      (c) => `${c.prefill ? 'disagg' : `TP${c.tensorParallel}`}: ${c.planner?.startupTimeS}`,
    );
    expect(st.sort()).toEqual(['TP1: 120', 'TP4: 60', 'disagg: 120']);
    // The label names no single cold start.
    expect(candidates.every((c) => !c.planner?.label.includes('st='))).toBe(true);
    expect(SearchSpaceSchema.safeParse({ planner: { startupTimeByWorkerGpus: { x: 1 } } }).success).toBe(
      false,
    );
  });

  it('prunes invalid combinations and validates the base, naming the field', () => {
    const space = SearchSpaceSchema.parse({
      tensorParallel: [1],
      workers: [2],
      router: { modes: ['round-robin'] },
      planner: {
        base: { optimization_target: 'sla', enable_load_scaling: true, max_gpu_budget: 4 },
        loadAdjustmentIntervalS: [10, 200],
        throughputAdjustmentIntervalS: [180],
      },
    });
    const { candidates, pruned } = enumerateCandidates(space, [{ type: 'h100', count: 8 }]);
    expect(candidates.length).toBe(1);
    expect(candidates[0].planner?.settings.max_gpu_budget).toBe(4); // the base asks for less than the sweep
    expect(pruned[0].reason).toMatch(/load_adjustment_interval_seconds/);
    const bad = SearchSpaceSchema.safeParse({ planner: { base: { ttft_ms: 0 } } });
    expect(bad.success).toBe(false);
    expect(bad.error?.issues[0].path.join('.')).toBe('planner.base.ttft_ms');
  });

  it("starts every candidate from given worker counts, moved into each variant's bounds", () => {
    const space = SearchSpaceSchema.parse({
      topologies: ['disaggregated'],
      router: { modes: ['round-robin'] },
      disaggregated: {
        prefillTensorParallel: [1],
        decodeTensorParallel: [1],
        prefillWorkers: [1],
        decodeWorkers: [1],
        budgetEdge: false,
      },
      planner: {
        base: { mode: 'disagg', optimization_target: 'throughput' },
        minEndpoint: [1, 3],
        maxGpuBudget: [4, 8, -1],
        start: { prefill: 3, decode: 3 },
      },
    });
    const { candidates, pruned } = enumerateCandidates(space, [{ type: 'h100', count: 6 }]);
    const seen = candidates.map(
      (c) =>
        `${c.planner?.settings.min_endpoint}/${c.planner?.settings.max_gpu_budget}: ${c.prefill?.workers}P ${c.workers}D`,
    );
    // 6 GPUs over a ceiling of 4: the larger role above its floor gives a worker until it fits.
    expect(seen.sort()).toEqual(['1/4: 2P 2D', '1/6: 3P 3D', '3/6: 3P 3D']);
    // A budget of -1 is labelled with the GPUs it stands for.
    expect(candidates.map((c) => c.planner?.label).sort()).toEqual([
      'planner(min=1 gpu_budget=4)',
      'planner(min=1 gpu_budget=6)',
      'planner(min=3 gpu_budget=6)',
    ]);
    // A floor of 3 + 3 cannot fit a ceiling of 4; a budget of 8 exceeds the sweep's 6.
    expect(pruned.map((p) => p.reason).sort()).toEqual([
      "planner: field 'max_gpu_budget': 4 GPUs cannot hold the minimum replicas (6 GPUs)",
      'planner: max_gpu_budget 8 exceeds the GPU budget of 6',
      'planner: max_gpu_budget 8 exceeds the GPU budget of 6',
    ]);
  });
});
