import { describe, expect, it } from 'vitest';
import { parseSlos } from '../../../src/sweep/objective.ts';
import { SearchSpaceSchema } from '../../../src/sweep/space.ts';
import { runSweep, type SweepResult } from '../../../src/sweep/sweep.ts';
import { conversationSample, synthetic } from '../../support/sim.ts';

const strip = (r: SweepResult) => ({ ...r, stats: { ...r.stats, wall_s: 0, threads: 0 } });

describe('runSweep', () => {
  const workload = conversationSample(600);
  const space = SearchSpaceSchema.parse({
    tensorParallel: [1, 2],
    workers: { min: 1, max: 4 },
    router: { modes: ['round-robin', 'kv'], overlapWeights: [1] },
  });
  const request = {
    workload,
    space,
    budget: [{ type: 'h100', count: 4 }],
    objective: 'throughput_per_gpu' as const,
    slos: parseSlos('ttft_p90=1500ms'),
  };

  it('gives identical results whatever the number of threads', async () => {
    const inProcess = await runSweep(request, { threads: 0 });
    const one = await runSweep(request, { threads: 1 });
    const two = await runSweep(request, { threads: 2 });
    expect(strip(one)).toEqual(strip(inProcess));
    expect(strip(two)).toEqual(strip(inProcess));
    expect(inProcess.stats.fullEvaluations).toBe(inProcess.stats.enumerated);
  });

  it('recommends the best feasible candidate and explains it', async () => {
    const r = await runSweep(request, { threads: 0 });
    const rec = r.recommended;
    expect(rec).not.toBeNull();
    expect(rec?.feasible).toBe(true);
    expect(rec?.rank).toBe(1);
    for (const c of r.candidates) {
      if (c.feasible) expect(c.score).toBeLessThanOrEqual(rec?.score ?? 0);
    }
    // Polynomial timing ignores GPU type and TP: one GPU type goes unnamed, the two TP sizes stay apart.
    expect(r.timing).toEqual({ model: 'polynomial', ignores: ['gpuType', 'tensorParallel'] });
    expect(r.explanation[0]).toMatch(/^Recommended: \dx TP\d /);
    expect(r.explanation.join(' ')).toMatch(/ttft_p90 [\d.]+ ms <= 1500 ms/);
    expect(r.frontier.latency).toContain(rec?.id);
  });

  it('says so when nothing meets the SLOs, and ranks by how close candidates come', async () => {
    const r = await runSweep({ ...request, slos: parseSlos('ttft_p90=1ms') }, { threads: 0 });
    expect(r.recommended).toBeNull();
    expect(r.explanation[0]).toMatch(/^No candidate meets every SLO/);
    const ranked = r.candidates
      .filter((c) => c.rank !== null)
      .sort((a, b) => (a.rank as number) - (b.rank as number));
    for (let i = 1; i < ranked.length; i++)
      expect(ranked[i].violation).toBeGreaterThanOrEqual(ranked[i - 1].violation);
  });

  const agreementCases: [
    string,
    () => typeof workload,
    Parameters<typeof parseSlos>[0],
    'throughput_per_gpu' | 'goodput' | 'cost',
  ][] = [
    [
      'conversation sample, TTFT SLO, throughput per GPU',
      () => conversationSample(600),
      'ttft_p90=1500ms',
      'throughput_per_gpu',
    ],
    [
      'conversation sample, ITL and E2E SLOs, cost',
      () => conversationSample(600),
      'itl_p90=16ms,e2e_p90=12s',
      'cost',
    ],
    [
      'synthetic shared-prefix traffic, goodput',
      () => synthetic({ sessions: 300, arrival: { kind: 'poisson', ratePerS: 6 } }),
      'ttft_p99=800ms,itl_p90=12ms',
      'goodput',
    ],
  ];
  for (const [name, wl, slo, objective] of agreementCases) {
    it(`successive halving and coordinate descent find the grid's best feasible candidate: ${name}`, async () => {
      const req = { ...request, workload: wl(), slos: parseSlos(slo), objective };
      const grid = await runSweep({ ...req, optimizer: 'grid' }, { threads: 0 });
      const halving = await runSweep({ ...req, optimizer: 'halving' }, { threads: 0 });
      const coordinate = await runSweep({ ...req, optimizer: 'coordinate' }, { threads: 0 });
      expect(grid.recommended).not.toBeNull();
      expect(halving.recommended?.id).toBe(grid.recommended?.id);
      expect(halving.stats.evaluations).toBeLessThan(grid.stats.evaluations * 2);
      expect(coordinate.recommended?.id).toBe(grid.recommended?.id);
      expect(coordinate.stats.evaluations).toBeLessThan(grid.stats.evaluations);
    });
  }

  it('compares aggregated and disaggregated deployments in one sweep', async () => {
    const mixed = SearchSpaceSchema.parse({
      topologies: ['aggregated', 'disaggregated'],
      tensorParallel: [1],
      workers: { min: 2, max: 4 },
      router: { modes: ['kv'], overlapWeights: [1] },
      disaggregated: { prefillTensorParallel: [1], decodeTensorParallel: [1] },
    });
    const r = await runSweep({ ...request, space: mixed }, { threads: 0 });
    const dis = r.candidates.filter((c) => c.candidate.topology === 'disaggregated');
    expect(dis.length).toBe(3); // 1+3, 2+2, 3+1
    for (const c of dis) {
      expect(c.metrics?.gpus).toBe(4);
      // TP 1 everywhere and one GPU type under a hardware-agnostic timing model: neither is named.
      expect(c.label).toMatch(/^\dP\+\dD kv/);
    }
    expect(r.recommended).not.toBeNull();
  });

  it('stops when aborted and returns partial results', async () => {
    const controller = new AbortController();
    let seen = 0;
    const r = await runSweep(request, {
      threads: 0,
      signal: controller.signal,
      onProgress: (p) => {
        seen = p.done;
        if (p.done === 3) controller.abort();
      },
    });
    expect(seen).toBe(3);
    expect(r.stats.partial).toBe(true);
    expect(r.candidates.filter((c) => c.metrics !== null).length).toBe(3);
  });

  it('sweeps Planner settings: each candidate runs under the planner, its GPU-hours are those held', async () => {
    const r = await runSweep(
      {
        workload: conversationSample(400),
        space: SearchSpaceSchema.parse({
          tensorParallel: [1],
          workers: [2],
          router: { modes: ['kv'], overlapWeights: [1] },
          planner: {
            base: { optimization_target: 'sla', enable_load_scaling: true, ttft_ms: 1000, itl_ms: 30 },
            loadAdjustmentIntervalS: [2, 20],
            throughputAdjustmentIntervalS: [60],
            startupTimeS: [0, 30],
          },
        }),
        budget: [{ type: 'h100', count: 4 }],
        objective: 'requests_per_gpu_hour',
        slos: parseSlos('ttft_p90=3000ms'),
        optimizer: 'coordinate',
      },
      { threads: 0 },
    );
    expect(r.stats.enumerated).toBe(4);
    const evaluated = r.candidates.filter((c) => c.metrics !== null);
    expect(evaluated.length).toBe(4);
    for (const c of evaluated) {
      const m = c.metrics;
      if (!m) continue;
      expect(m.scaling_events).toBeGreaterThan(0);
      expect(m.gpus).toBeLessThanOrEqual(4); // peak GPUs held within the sweep budget
      expect(m.gpu_hours).toBeCloseTo((m.mean_gpus * m.duration_s) / 3600, 9);
    }
    // Shorter intervals react more often.
    const events = (li: number) =>
      evaluated
        .filter((c) => c.candidate.planner?.label.includes(`li=${li}s`))
        .map((c) => c.metrics?.scaling_events ?? 0);
    expect(Math.min(...events(2))).toBeGreaterThan(Math.max(...events(20)));
  });
});

describe('runSweep with hardware timing', () => {
  it('prices candidates on their own GPU type and TP and leaves out shapes that do not fit in memory', async () => {
    const workload = synthetic({ sessions: 120, inputTokens: { mean: 2000 }, outputTokens: { mean: 150 } });
    const space = SearchSpaceSchema.parse({
      tensorParallel: [1, 2, 4],
      workers: [1, 2],
      router: { modes: ['round-robin'] },
    });
    const r = await runSweep(
      {
        workload,
        space,
        budget: [
          { type: 'h100', count: 4 },
          { type: 'l40s', count: 4 },
        ],
        objective: 'throughput_per_gpu',
        slos: parseSlos('ttft_p90=3000ms'),
        simulation: { hardware: { model: 'llama-3.1-70b', dtype: 'fp8' } },
      },
      { threads: 0 },
    );
    // 70B fp8 weights (~70 GB) do not fit one 80 GB H100 with its reserve, nor one 48 GB L40S.
    const left = r.pruned.map((p) => p.label);
    expect(left).toContain('h100 TP1');
    expect(left).toContain('l40s TP1');
    expect(left).not.toContain('h100 TP2');
    expect(r.pruned.find((p) => p.label === 'h100 TP1')?.reason).toMatch(/GiB|fit/);
    const byLabel = new Map(r.candidates.map((c) => [c.label, c.metrics]));
    const h100 = byLabel.get('h100 1x TP4 round-robin');
    const l40s = byLabel.get('l40s 1x TP4 round-robin');
    expect(h100).toBeTruthy();
    expect(l40s).toBeTruthy();
    // The same deployment shape is faster on the faster GPU.
    expect(h100?.tpot.mean).toBeLessThan(l40s?.tpot.mean ?? 0);
    expect(r.timing).toEqual({ model: 'hardware', servedModel: 'llama-3.1-70b', ignores: [] });
  });

  it('leaves out TP sizes vLLM refuses for the model (heads not divisible), with the reason', async () => {
    const r = await runSweep(
      {
        workload: conversationSample(100),
        space: SearchSpaceSchema.parse({
          tensorParallel: [2, 3],
          workers: [1],
          router: { modes: ['round-robin'] },
        }),
        budget: [{ type: 'h100', count: 6 }],
        objective: 'throughput_per_gpu',
        slos: [],
        simulation: { hardware: { model: 'llama-3.1-8b' } },
      },
      { threads: 0 },
    );
    expect(r.candidates.map((c) => c.label)).toEqual(['h100 1x TP2 round-robin']);
    expect(r.pruned).toEqual([
      {
        label: 'h100 TP3',
        reason:
          'Llama-3.1-8B has 32 attention heads, not divisible by tensor-parallel size 3 (vLLM refuses it)',
      },
    ]);
  });
});
