import { describe, expect, it } from 'vitest';
import type { ServingSettings } from '../../../src/api/index.ts';
import { degradeMatches, parseDegrade, planFleet, poolsOf } from '../../../src/twin/fleet.ts';

const base = {
  timing: { model: 'polynomial' as const, prefillMs: 0, decodeMs: 0 },
  seed: 7,
  traceBlockSize: 64,
  startupTimeS: 30,
};

const agg: ServingSettings = {
  model: 'Qwen/Qwen3-8B',
  gpuType: 'h100_sxm',
  gpus: 8,
  topology: 'Aggregated',
  aggregated: { workers: 4, tensorParallel: 2, gpusPerWorker: 2 },
  router: { mode: 'KV', overlapWeight: 0.5 },
  planner: { enabled: false },
  engine: { maxNumSeqs: 128 },
};

describe('planFleet', () => {
  it('prices a catalogued model and GPU on hardware, with the workers, TP, router and engine knobs of the settings', () => {
    const p = planFleet(agg, null, base);
    expect(p.config.timing.model).toBe('hardware');
    expect(p.config.hardware).toMatchObject({ gpu: 'h100_sxm', model: expect.stringMatching(/qwen3-8b/i) });
    expect(p.options.workers).toBe(4);
    expect(p.options.gpusPerWorker).toBe(2);
    expect(p.options.router).toEqual({ kind: 'kv', overlapWeight: 0.5, overlapCredit: 1, temperature: 0 });
    expect(p.options.engine).toMatchObject({ maxNumSeqs: 128 });
    // KV sized from HBM by the memory plan, not the generic default.
    expect(p.options.engine.numGpuBlocks).not.toBe(16384);
    expect(p.config.startupTimeS).toBe(30);
  });

  it('falls back to the base timing for an unknown model, and splits pools when disaggregated', () => {
    const p = planFleet(
      {
        ...agg,
        model: 'acme/unknown-model',
        topology: 'Disaggregated',
        aggregated: undefined,
        prefill: { workers: 2, tensorParallel: 1, gpusPerWorker: 1 },
        decode: { workers: 3, tensorParallel: 2, gpusPerWorker: 2 },
        gpus: 8,
      },
      null,
      base,
    );
    expect(p.config.timing.model).toBe('polynomial');
    expect(p.note).toMatch(/not in the hardware catalog/);
    const pools = poolsOf(p.options);
    expect(pools.prefill).toMatchObject({ workers: 2, spec: { gpusPerWorker: 1 } });
    expect(pools.decode).toMatchObject({ workers: 3, spec: { gpusPerWorker: 2 } });
    expect(pools.aggregated).toBeUndefined();
  });
});

describe('--degrade', () => {
  it('parses a factor and a selector, and refuses bad ones naming the part', () => {
    expect(parseDegrade('3')).toEqual({ factor: 3, selector: {} });
    expect(parseDegrade('2.5:tp=2,role=aggregated')).toEqual({
      factor: 2.5,
      selector: { tp: '2', role: 'aggregated' },
    });
    expect(() => parseDegrade('0.5')).toThrow(/from 1 to 1000/);
    expect(() => parseDegrade('2:colour=red')).toThrow(/'colour=red'/);
    expect(() => parseDegrade('2:tp')).toThrow(/'tp'/);
    expect(parseDegrade('3:changed=true').selector).toEqual({ changed: 'true' });
    expect(() => parseDegrade('3:changed=yes')).toThrow(/true or false/);
  });

  it('matches a role of settings by every selector key', () => {
    expect(degradeMatches(parseDegrade('2:tp=2,router=kv'), agg, 'aggregated')).toBe(true);
    expect(degradeMatches(parseDegrade('2:tp=1'), agg, 'aggregated')).toBe(false);
    expect(degradeMatches(parseDegrade('2:maxNumSeqs=128,gpu=h100_sxm'), agg, 'aggregated')).toBe(true);
    expect(degradeMatches(parseDegrade('2'), agg, 'decode')).toBe(false);
    const changed = parseDegrade('2:changed=true');
    expect(degradeMatches(changed, agg, 'aggregated', agg)).toBe(false);
    expect(degradeMatches(changed, agg, 'aggregated')).toBe(false);
    expect(degradeMatches(changed, structuredClone(agg), 'aggregated', agg)).toBe(false);
    const knob = { ...agg, router: { ...agg.router, overlapWeight: 7 } };
    expect(degradeMatches(changed, knob, 'aggregated', agg)).toBe(true);
    expect(degradeMatches(parseDegrade('2:changed=false'), knob, 'aggregated', agg)).toBe(false);
    const seqs = { ...agg, engine: { ...agg.engine, maxNumSeqs: 64 } };
    expect(degradeMatches(changed, seqs, 'aggregated', agg)).toBe(true);
    // Under the Planner: its scaling is no change, its bounds are.
    const planned = { ...agg, planner: { enabled: true, minEndpoint: 2, maxGpuBudget: 8 } };
    const scaled = { ...planned, aggregated: { ...agg.aggregated!, workers: agg.aggregated!.workers + 3 } };
    expect(degradeMatches(changed, scaled, 'aggregated', planned)).toBe(false);
    expect(degradeMatches(changed, { ...agg, aggregated: scaled.aggregated }, 'aggregated', agg)).toBe(true);
    const bounds = { ...planned, planner: { ...planned.planner, minEndpoint: 1 } };
    expect(degradeMatches(changed, bounds, 'aggregated', planned)).toBe(true);
  });
});
