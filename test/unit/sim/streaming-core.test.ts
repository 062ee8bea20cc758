import { describe, expect, it } from 'vitest';
import { toSimulationOptions } from '../../../src/config/run.ts';
import { buildReport } from '../../../src/sim/metrics/report.ts';
import { type SimulationResult, simulate } from '../../../src/sim/simulation.ts';
import type { Workload } from '../../../src/sim/workload/workload.ts';
import { config, conversationSample, synthetic } from '../../support/sim.ts';

/** Every per-request column of two runs' records, and their reports (wall time aside), must be equal. */
function expectSameRun(a: SimulationResult, b: SimulationResult): void {
  const ra = a.records;
  const rb = b.records;
  expect(rb.size).toBe(ra.size);
  for (const f of [
    'arrivalMs',
    'firstAdmitMs',
    'firstTokenMs',
    'secondTokenMs',
    'lastTokenMs',
    'terminalMs',
    'tokens',
    'reusedBest',
    'reusedFirst',
    'admissions',
    'preemptions',
    'engine',
    'status',
  ] as const) {
    expect(Array.from(rb[f]), f).toEqual(Array.from(ra[f]));
  }
  const strip = (r: SimulationResult) => {
    const rep = buildReport(r, 0);
    return { ...rep, simulator: { ...rep.simulator, events_per_s: 0 } };
  };
  expect(strip(b)).toEqual(strip(a));
}

const cases: [string, () => Workload, Record<string, unknown>][] = [
  [
    'vLLM, KV router, host tier',
    () => conversationSample(800),
    { workers: 3, engine: { blockSize: 64, numGpuBlocks: 4096, g2Blocks: 8192 }, router: { mode: 'kv' } },
  ],
  [
    'SGLang, KV router, small pool',
    () => conversationSample(600),
    { workers: 3, engine: { engine: 'sglang', blockSize: 32, numGpuBlocks: 3000 }, router: { mode: 'kv' } },
  ],
  [
    'disaggregated, KV router, sessions',
    () => synthetic({ sessions: 150, turnsPerSession: 3, interTurnDelayMs: 200 }),
    {
      engine: { blockSize: 64 },
      router: { mode: 'kv' },
      disaggregation: { prefill: { workers: 2 }, decode: { workers: 2 } },
    },
  ],
];

describe('request slots and prefix keys of the streaming core', () => {
  for (const [name, workload, overrides] of cases) {
    it(`compacting the prefix keys often changes nothing: ${name}`, () => {
      const w = workload();
      const options = toSimulationOptions(config(overrides));
      const plain = simulate(w, options);
      const compacted = simulate(w, { ...options, compactKeysAbove: 500 });
      expectSameRun(plain, compacted);
      expect(plain.keys.compactions).toBe(0);
      expect(compacted.keys.compactions).toBeGreaterThan(1);
    });
  }
});
