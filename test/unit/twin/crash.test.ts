import { describe, expect, it } from 'vitest';
import { parseRestartAfter } from '../../../src/cli/twin.ts';
import { toSimulationOptions } from '../../../src/config/run.ts';
import { coldStartSeconds } from '../../../src/operator/sweep/transition.ts';
import { createLiveSimulation, type LiveSimulation } from '../../../src/sim/live.ts';
import { crashWorker } from '../../../src/twin/crash.ts';
import { defaultRestartAfterMs } from '../../../src/twin/twin.ts';
import { config } from '../../support/sim.ts';

/** A standalone twin's crashed worker, on the real live simulation: restarted after its cold start, or not. */

const RESTART_MS = 30_000;

function fleet(workers: number) {
  const live = createLiveSimulation({
    ...toSimulationOptions(config({ workers, seed: 5 })),
    traceBlockSize: 64,
  });
  const routed: number[] = [];
  live.setObserver({ onRouted: (_id, worker) => routed.push(worker) });
  return { live, routed };
}

/** A request every 100 ms from `fromMs` to `toMs`, each with its own prompt, then the clock run to `toMs`. */
function traffic(live: LiveSimulation, fromMs: number, toMs: number): void {
  for (let t = fromMs; t < toMs; t += 100) {
    live.submit({ inputLength: 256, outputLength: 20, hashIds: [t + 1, t + 2, t + 3, t + 4], atMs: t });
  }
  for (let t = live.now; t < toMs; t = Math.min(toMs, t + 500)) live.advanceTo(Math.min(toMs, t + 500));
}

const alive = (live: LiveSimulation) => live.workers().filter((w) => w.state !== 'gone');

describe('crashWorker on a standalone twin', () => {
  it('replaces the killed worker with a cold one that serves after the cold start', () => {
    const { live, routed } = fleet(3);
    traffic(live, 0, 10_000);
    const victim = live.workers()[0];
    expect(victim.activeBlocks + victim.prefixHitRate).toBeGreaterThan(0);
    expect(crashWorker(live, victim.id, { restartAfterMs: () => RESTART_MS })).toBe(RESTART_MS);

    const replacement = alive(live).find((w) => w.state === 'starting');
    expect(replacement).toBeDefined();
    const newId = replacement!.id;
    expect(newId).not.toBe(victim.id);
    expect(live.workers().find((w) => w.id === victim.id)?.state ?? 'gone').toBe('gone');
    // Cold: nothing cached, nothing served.
    expect(replacement).toMatchObject({ activeBlocks: 0, prefixHitRate: 0, running: 0, waiting: 0 });

    routed.length = 0;
    traffic(live, 10_000, 10_000 + RESTART_MS - 500);
    expect(routed).not.toContain(newId);
    expect(alive(live).find((w) => w.id === newId)?.state).toBe('starting');
    expect(alive(live).filter((w) => w.state === 'ready')).toHaveLength(2);

    traffic(live, 10_000 + RESTART_MS, 60_000);
    expect(alive(live).filter((w) => w.state === 'ready')).toHaveLength(3);
    expect(alive(live).find((w) => w.id === newId)?.state).toBe('ready');
    expect(routed.filter((w) => w === newId).length).toBeGreaterThan(10);
  });

  it('leaves the worker dead with restarts off (--restart-after never)', () => {
    const { live, routed } = fleet(3);
    traffic(live, 0, 5_000);
    const victim = live.workers()[1].id;
    expect(crashWorker(live, victim, { restartAfterMs: () => null })).toBeNull();
    routed.length = 0;
    traffic(live, 5_000, 120_000);
    expect(alive(live)).toHaveLength(2);
    expect(new Set(routed).size).toBe(2);
    expect(routed).not.toContain(victim);
  });

  it('does not replace a worker that was draining, nor one that does not exist', () => {
    const { live } = fleet(3);
    // Long requests on every worker, so the one scaled away drains rather than leaving at once.
    for (let i = 0; i < 30; i++) live.submit({ inputLength: 64, outputLength: 5_000, hashIds: [i + 1] });
    live.advanceTo(1_000);
    live.setReplicas('aggregated', 2);
    const draining = live.workers().find((w) => w.state === 'draining');
    expect(draining).toBeDefined();
    expect(crashWorker(live, draining!.id, { restartAfterMs: () => 0 })).toBeNull();
    expect(crashWorker(live, 999, { restartAfterMs: () => 0 })).toBeNull();
    expect(alive(live).filter((w) => w.state === 'ready' || w.state === 'starting')).toHaveLength(2);
  });
});

describe('the default cold start of a restarted worker', () => {
  it('is the configured startup time, else the catalog model load, else the generic one', () => {
    expect(defaultRestartAfterMs(config({ startupTimeS: 42 }), 1)).toBe(42_000);
    const qwen = config({ hardware: { gpu: 'h100_sxm', model: 'qwen3-8b' } });
    expect(defaultRestartAfterMs(qwen, 1)).toBe(coldStartSeconds('qwen3-8b', 1) * 1000);
    expect(defaultRestartAfterMs(qwen, 2)).toBeLessThan(defaultRestartAfterMs(qwen, 1));
    expect(defaultRestartAfterMs(config(), 1)).toBe(coldStartSeconds(undefined, 1) * 1000);
  });
});

describe('--restart-after', () => {
  it('reads a duration or never, and refuses anything else naming the flag', () => {
    expect(parseRestartAfter('90s')).toBe(90_000);
    expect(parseRestartAfter('0s')).toBe(0);
    expect(parseRestartAfter('1h30m')).toBe(5_400_000);
    expect(parseRestartAfter('never')).toBeNull();
    expect(() => parseRestartAfter('soon')).toThrow(/--restart-after: 'soon' is not a duration/);
    expect(() => parseRestartAfter('25h')).toThrow(/--restart-after: '25h' must be from 0s to 24h/);
    expect(() => parseRestartAfter('99999999999999999999h')).toThrow(/must be from 0s to 24h/);
    expect(() => parseRestartAfter('')).toThrow(/--restart-after/);
  });
});
