import { describe, expect, it } from 'vitest';
import { toSimulationOptions } from '../../../src/config/run.ts';
import type { SimulationOptions } from '../../../src/sim/simulation.ts';
import { busiestStart, simulateTransition } from '../../../src/sweep/transition-sim.ts';
import { config, synthetic } from '../../support/sim.ts';

/** Two minutes of chat-like traffic with shared prefixes (so cache warmth matters), a few turns each. */
const workload = synthetic({
  sessions: 240,
  arrival: { kind: 'poisson', ratePerS: 2 },
  inputTokens: { mean: 1500, stddev: 300 },
  outputTokens: { mean: 60, stddev: 20 },
  sharedPrefixRatio: 0.7,
  prefixGroups: 6,
  turnsPerSession: 2,
  interTurnDelayMs: 2000,
  seed: 7,
});

const timing = { model: 'fixed', prefillMs: 40, decodeMs: 8 };
const options = (over: Record<string, unknown> = {}): SimulationOptions =>
  toSimulationOptions(config({ timing, router: { mode: 'kv' }, engine: { numGpuBlocks: 4000 }, ...over }));

describe('simulateTransition', () => {
  it('scales down without cold starts and with little impact', () => {
    const baseline = options({ workers: 4 });
    const proposal = { ...options({ workers: 3 }), timing: baseline.timing };
    const r = simulateTransition({
      workload,
      baseline,
      proposal,
      coldStartMs: 60_000,
      slo: { ttftMs: 2000 },
    });
    if (!r.supported) throw new Error(r.reason);
    expect(r.workersStarted).toBe(0);
    expect(r.workersDrained).toBe(1);
    // Only the drain of one worker's requests in flight: seconds, not the cold start.
    expect(r.durationSeconds).toBeLessThan(30);
    expect(r.ttftP90Ms.transition).toBeLessThanOrEqual(r.ttftP90Ms.steady * 1.5 + 50);
    expect(r.sloMissSeconds).toBe(0);
  });

  it('restarts a pool rolling for an engine or TP change: at least a cold start, cold caches', () => {
    const baseline = options({ workers: 2 });
    // Another GPU count per worker (TP 2): a new timing model too, so the pool restarts.
    const proposal = options({ workers: 2, tensorParallelSize: 2 });
    const coldStartMs = 20_000;
    const r = simulateTransition({ workload, baseline, proposal, coldStartMs, maxSurge: 1 });
    if (!r.supported) throw new Error(r.reason);
    expect(r.workersStarted).toBe(2);
    expect(r.workersDrained).toBe(2);
    // Two waves of one cold worker each.
    expect(r.durationSeconds).toBeGreaterThanOrEqual((2 * coldStartMs) / 1000);
    expect(r.requests).toBeGreaterThan(0);
    // New workers start with empty prefix caches.
    expect(r.prefixHitRate.transition).toBeLessThan(r.prefixHitRate.steady);
    expect(r.ttftP90Ms.transition).toBeGreaterThanOrEqual(r.ttftP90Ms.steady);
    expect(r.sloMissSeconds).toBeUndefined();
  });

  it('a wider surge finishes a rolling restart sooner', () => {
    const baseline = options({ workers: 4 });
    const proposal = options({ workers: 4, engine: { numGpuBlocks: 4000, maxNumSeqs: 128 } });
    const slow = simulateTransition({ workload, baseline, proposal, coldStartMs: 10_000, maxSurge: 1 });
    const fast = simulateTransition({ workload, baseline, proposal, coldStartMs: 10_000, maxSurge: 4 });
    if (!slow.supported || !fast.supported) throw new Error('unsupported');
    expect(slow.durationSeconds).toBeGreaterThanOrEqual(40);
    expect(fast.durationSeconds).toBeLessThan(slow.durationSeconds);
  });

  it('grows a restarted pool after its rolling restart, and changes disaggregated pools separately', () => {
    const grow = simulateTransition({
      workload,
      baseline: options({ workers: 1 }),
      proposal: options({ workers: 3, tensorParallelSize: 2 }),
      coldStartMs: 5000,
    });
    if (!grow.supported) throw new Error(grow.reason);
    // One worker replaced (one wave), then two more added on the new spec (a second wave).
    expect(grow).toMatchObject({ workersStarted: 3, workersDrained: 1 });
    expect(grow.durationSeconds).toBeGreaterThanOrEqual(10);
    const disagg = (prefill: number, decodeTp: number) =>
      options({
        router: { mode: 'round-robin' },
        disaggregation: {
          prefill: { workers: prefill },
          decode: { workers: 2, tensorParallelSize: decodeTp },
          kvTransferGbps: 50,
          conditional: false,
        },
      });
    const a = disagg(1, 1);
    const b = disagg(2, 2);
    // The prefill pool's hardware is unchanged: it only scales.
    const proposal = {
      ...b,
      disaggregation: {
        ...b.disaggregation!,
        prefill: { ...b.disaggregation!.prefill, timing: a.disaggregation!.prefill.timing },
      },
    };
    const r = simulateTransition({ workload, baseline: a, proposal, coldStartMs: 5000 });
    if (!r.supported) throw new Error(r.reason);
    // One prefill worker added, two decode workers restarted rolling.
    expect(r).toMatchObject({ workersStarted: 3, workersDrained: 2 });
    expect(r.durationSeconds).toBeGreaterThanOrEqual(10);
  });

  it('says when the change cannot be made at run time', () => {
    const baseline = options({ workers: 2 });
    const block = simulateTransition({
      workload,
      baseline,
      proposal: options({ workers: 2, engine: { numGpuBlocks: 4000, blockSize: 32 } }),
      coldStartMs: 1000,
    });
    expect(block).toEqual({ supported: false, reason: expect.stringMatching(/block size/) });
    const disagg = simulateTransition({
      workload,
      baseline,
      proposal: options({
        disaggregation: { prefill: { workers: 1 }, decode: { workers: 1 }, kvTransferGbps: 50 },
      }),
      coldStartMs: 1000,
    });
    expect(disagg).toEqual({ supported: false, reason: expect.stringMatching(/topology/) });
  });

  it('is deterministic for a seed', () => {
    const baseline = options({ workers: 3 });
    const proposal = options({ workers: 2, tensorParallelSize: 2 });
    const run = () =>
      simulateTransition({ workload, baseline, proposal, coldStartMs: 5000, slo: { ttftMs: 500 } });
    expect(run()).toEqual(run());
  });
});

describe('busiestStart', () => {
  it('finds the densest stretch after the first tenth of the window', () => {
    const arrivals = Float64Array.from([0, 1000, 2000, 50_000, 50_100, 50_200, 50_300, 90_000, 100_000]);
    expect(busiestStart(arrivals, 5_000)).toBe(50_000);
    // A burst in the first tenth is skipped: caches are cold there.
    const early = Float64Array.from([0, 10, 20, 30, 40, 60_000, 100_000]);
    expect(busiestStart(early, 1_000)).toBeGreaterThanOrEqual(10_000);
  });
});
