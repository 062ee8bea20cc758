import { describe, expect, it } from 'vitest';
import type { SimulationResult } from '../../../src/sim/simulation.ts';
import { conversationSample, run, synthetic } from '../../support/sim.ts';

/** Every per-request timeline must be bit-identical between the coalesced and the plain path. */
function expectSameTimelines(x: SimulationResult, y: SimulationResult): void {
  const a = x.records;
  const b = y.records;
  for (const f of [
    'arrivalMs',
    'firstAdmitMs',
    'firstTokenMs',
    'secondTokenMs',
    'lastTokenMs',
    'terminalMs',
  ] as const) {
    expect(Array.from(b[f]), f).toEqual(Array.from(a[f]));
  }
  expect(Array.from(b.tokens)).toEqual(Array.from(a.tokens));
  expect(Array.from(b.reusedBest)).toEqual(Array.from(a.reusedBest));
  expect(y.collector.itl.count).toBe(x.collector.itl.count);
  expect(y.collector.itl.quantile(0.9)).toBe(x.collector.itl.quantile(0.9));
  expect(y.collector.itl.sum).toBeCloseTo(x.collector.itl.sum, 3);
}

const cases: [string, () => ReturnType<typeof conversationSample>, Record<string, unknown>][] = [
  [
    'conversation, 4 workers, round-robin, block 512',
    () => conversationSample(1500),
    { workers: 4, engine: { blockSize: 512 } },
  ],
  [
    'conversation, 3 workers, KV router, block 64',
    () => conversationSample(800),
    { workers: 3, router: { mode: 'kv' } },
  ],
  [
    'conversation, 2 workers, tiny KV pool (preemptions)',
    () => conversationSample(300),
    { workers: 2, engine: { numGpuBlocks: 700, blockSize: 64 } },
  ],
  [
    'synthetic multi-turn sessions, least-loaded',
    () => synthetic({ sessions: 80, turnsPerSession: 3, interTurnDelayMs: 500 }),
    { workers: 3, router: { mode: 'least-loaded' } },
  ],
  [
    'synthetic closed loop, random router',
    () => synthetic({ sessions: 300, arrival: { kind: 'burst' } }),
    { workers: 2, router: { mode: 'random' }, workload: { trace: 'inline', concurrency: 24 } },
  ],
  [
    'synthetic, KV router with temperature, small budget',
    () => synthetic({ sessions: 150 }),
    {
      workers: 4,
      router: { mode: 'kv', temperature: 0.5 },
      engine: { maxNumBatchedTokens: 1024, maxNumSeqs: 16 },
    },
  ],
  // SGLang: the run watches the head of waiting as the admission reserve shrinks.
  [
    'SGLang, conversation, 3 workers, round-robin, page 64',
    () => conversationSample(1000),
    { workers: 3, engine: { engine: 'sglang' } },
  ],
  [
    'SGLang, conversation, 3 workers, KV router, page 32',
    () => conversationSample(600),
    { workers: 3, router: { mode: 'kv' }, engine: { engine: 'sglang', blockSize: 32 } },
  ],
  [
    'SGLang, tiny pool (retractions), lpm',
    () => conversationSample(250),
    {
      workers: 2,
      engine: { engine: 'sglang', numGpuBlocks: 900, schedulePolicy: 'lpm', scheduleConservativeness: 0.3 },
    },
  ],
  [
    'SGLang, synthetic sessions with shared prefixes, least-loaded, page 16',
    () => synthetic({ sessions: 80, turnsPerSession: 3, interTurnDelayMs: 300 }),
    { workers: 3, router: { mode: 'least-loaded' }, engine: { engine: 'sglang', blockSize: 16 } },
  ],
  [
    'SGLang, synthetic closed loop, small clip and budgets',
    () => synthetic({ sessions: 300, arrival: { kind: 'burst' } }),
    {
      workers: 2,
      workload: { trace: 'inline', concurrency: 24 },
      engine: { engine: 'sglang', clipMaxNewTokens: 64, chunkedPrefillSize: 1024, maxNumSeqs: 12 },
    },
  ],
];

/** Planner runs: ticks read every engine's forward-pass metrics, so both paths must see the same numbers. */
const sla = {
  optimization_target: 'sla',
  enable_load_scaling: true,
  ttft_ms: 800,
  itl_ms: 15,
  load_adjustment_interval_seconds: 2,
  throughput_adjustment_interval_seconds: 30,
  max_gpu_budget: 8,
};
const plannerCases: [string, () => ReturnType<typeof conversationSample>, Record<string, unknown>][] = [
  [
    'planner (SLA, load + throughput), 2 workers, KV router',
    () => conversationSample(800),
    { workers: 2, router: { mode: 'kv' }, planner: sla, startupTimeS: 7 },
  ],
  [
    'planner (latency thresholds), round-robin, instant start',
    () =>
      synthetic({ sessions: 400, arrival: { kind: 'poisson', ratePerS: 40 }, outputTokens: { mean: 300 } }),
    { workers: 1, planner: { optimization_target: 'latency', load_adjustment_interval_seconds: 1 } },
  ],
  [
    'planner (SLA), disaggregated 1P + 1D',
    () => conversationSample(500),
    {
      router: { mode: 'kv' },
      disaggregation: { prefill: { workers: 1 }, decode: { workers: 1 } },
      planner: sla,
      startupTimeS: 3,
    },
  ],
];

describe('coalesced decode runs', () => {
  for (const [name, workload, overrides] of cases) {
    it(`give the same results as stepping every pass: ${name}`, () => {
      const w = workload();
      const plain = run(w, { ...overrides, coalesceDecode: false });
      const fast = run(w, { ...overrides, coalesceDecode: true });
      expectSameTimelines(plain.result, fast.result);
      expect(fast.report.completed_requests).toBe(plain.report.completed_requests);
      expect(fast.report.preemptions).toBe(plain.report.preemptions);
      expect(fast.report.simulator.passes).toBe(plain.report.simulator.passes);
      expect(fast.report.ttft_ms).toEqual(plain.report.ttft_ms);
      expect(fast.report.tpot_ms).toEqual(plain.report.tpot_ms);
      expect(fast.report.prefix_cache_reused_ratio).toBe(plain.report.prefix_cache_reused_ratio);
      // The fast path must actually coalesce on these workloads.
      expect(fast.report.simulator.coalesced_runs).toBeGreaterThan(0);
    });
  }

  for (const [name, workload, overrides] of plannerCases) {
    it(`give the same planner decisions and timelines as stepping every pass: ${name}`, () => {
      const w = workload();
      const plain = run(w, { ...overrides, coalesceDecode: false });
      const fast = run(w, { ...overrides, coalesceDecode: true });
      expectSameTimelines(plain.result, fast.result);
      expect(fast.report.planner?.events).toEqual(plain.report.planner?.events);
      expect(fast.report.replicas_over_time).toEqual(plain.report.replicas_over_time);
      expect(fast.report.gpu_hours).toBe(plain.report.gpu_hours);
      expect(fast.report.planner?.perf_model).toEqual(plain.report.planner?.perf_model);
      expect(fast.report.simulator.passes).toBe(plain.report.simulator.passes);
      expect(fast.report.simulator.coalesced_runs).toBeGreaterThan(0);
      // The planner must actually act on these workloads.
      expect(fast.report.scaling_events?.total).toBeGreaterThan(0);
    });
  }
});
