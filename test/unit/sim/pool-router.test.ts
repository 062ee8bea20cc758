import { describe, expect, it } from 'vitest';
import { toSimulationOptions } from '../../../src/config/run.ts';
import { SimulationConfigSchema } from '../../../src/config/schema.ts';
import { poolRouterSpec, type RouterSpec } from '../../../src/sim/router/pool-router.ts';
import { simulate } from '../../../src/sim/simulation.ts';
import { enumerateCandidates, SearchSpaceSchema } from '../../../src/sweep/space.ts';
import { config, conversationSample } from '../../support/sim.ts';

const kv: RouterSpec = { kind: 'kv', overlapWeight: 2, overlapCredit: 1, temperature: 0.5 };
const loadOnly = { kind: 'kv', overlapWeight: 0, overlapCredit: 0, temperature: 0, assumeKvReuse: false };

describe('router of each pool (poolRouterSpec)', () => {
  it('KV routing: aggregated as asked, prefill without the decode term, decode balanced by blocks in flight', () => {
    expect(poolRouterSpec('aggregated', kv)).toEqual(kv);
    expect(poolRouterSpec('prefill', kv)).toEqual({ ...kv, trackActiveBlocks: false });
    expect(poolRouterSpec('decode', kv)).toEqual(loadOnly);
  });

  it('state-blind routers are the same for every pool (a decode pool stays round robin)', () => {
    for (const kind of ['round-robin', 'random', 'least-loaded'] as const)
      for (const role of ['aggregated', 'prefill', 'decode'] as const)
        expect(poolRouterSpec(role, { kind })).toEqual({ kind });
  });

  it('a disaggregated round-robin run routes decode round robin', () => {
    const w = conversationSample(60);
    const opts = toSimulationOptions(
      config({ disaggregation: { prefill: { workers: 1 }, decode: { workers: 3 } } }),
    );
    const result = simulate(w, opts);
    // Engines 1..3 are the decode workers, taken in turn in hand-off order.
    const byHandoff = Array.from({ length: w.size }, (_, r) => r)
      .filter((r) => (result.records.decodeEngine![r] ?? -1) >= 0)
      .sort(
        (a, b) => (result.records.prefillDoneMs![a] ?? 0) - (result.records.prefillDoneMs![b] ?? 0) || a - b,
      );
    expect(byHandoff.length).toBeGreaterThan(30);
    expect(byHandoff.map((r) => result.records.decodeEngine![r])).toEqual(
      byHandoff.map((_, i) => 1 + (i % 3)),
    );
  });
});

describe('conditional disaggregation needs the KV router', () => {
  const disaggregation = { prefill: { workers: 1 }, decode: { workers: 1 }, conditional: true };

  it('is rejected by the configuration schema, naming the field', () => {
    const parsed = SimulationConfigSchema.safeParse({
      workload: { trace: 'inline' },
      router: { mode: 'round-robin' },
      disaggregation,
    });
    expect(parsed.success).toBe(false);
    const issue = parsed.error?.issues[0];
    expect(issue?.path).toEqual(['disaggregation', 'conditional']);
    expect(issue?.message).toMatch(/needs router mode 'kv'/);
    expect(
      SimulationConfigSchema.safeParse({
        workload: { trace: 'inline' },
        router: { mode: 'kv' },
        disaggregation,
      }).success,
    ).toBe(true);
  });

  it('is refused by the simulation itself with another router', () => {
    const opts = toSimulationOptions(config({ router: { mode: 'kv' }, disaggregation }));
    expect(() => simulate(conversationSample(20), { ...opts, router: { kind: 'round-robin' } })).toThrow(
      /conditional disaggregation needs the KV router/,
    );
  });

  it('sweeps pair it with KV routing only and say so', () => {
    const space = SearchSpaceSchema.parse({
      topologies: ['disaggregated'],
      router: { modes: ['round-robin', 'kv'], overlapWeights: [1] },
      disaggregated: { prefillTensorParallel: [1], decodeTensorParallel: [1], conditional: [false, true] },
    });
    const { candidates, pruned } = enumerateCandidates(space, [{ type: 'h100', count: 4 }]);
    const conditional = candidates.filter((c) => c.disagg?.conditional);
    expect(conditional.length).toBeGreaterThan(0);
    expect(conditional.every((c) => c.router.mode === 'kv')).toBe(true);
    expect(candidates.some((c) => !c.disagg?.conditional && c.router.mode === 'round-robin')).toBe(true);
    expect(pruned).toContainEqual({
      label: 'h100 conditional disaggregation with round-robin routing',
      reason: 'conditional disaggregation needs the KV router',
    });
  });
});
