import { describe, expect, it } from 'vitest';
import { emptySnapshot, type ForwardPassSnapshot } from '../../../src/sim/engine/pass-metrics.ts';
import { PlannerConfigSchema } from '../../../src/sim/planner/config.ts';
import {
  emptyTraffic,
  type PerfSamples,
  Planner,
  type RoleSpec,
  type TrafficWindow,
} from '../../../src/sim/planner/planner.ts';

const caps = { maxNumBatchedTokens: 8192, maxKvTokens: 100_000, maxNumSeqs: 256, contextLength: 100_000 };
const role = (r: RoleSpec['role'], extra: Partial<RoleSpec> = {}): RoleSpec => ({
  role: r,
  gpus: 1,
  caps,
  scaled: true,
  bounds: { min: 1, max: 10 },
  ...extra,
});
const fpm = (o: Partial<ForwardPassSnapshot>): ForwardPassSnapshot => ({ ...emptySnapshot(0), ...o });
const traffic = (o: Partial<TrafficWindow>): TrafficWindow => ({ ...emptyTraffic(), ...o });

/** Pass time of a made-up engine: 10 ms + 10 us per prefill token + 10 ns per decode KV token. */
const wall = (prefill: number, kv: number) => 0.01 + 1e-5 * prefill + 1e-8 * kv;
function samples(): PerfSamples {
  const prefill: ForwardPassSnapshot[] = [];
  const decode: ForwardPassSnapshot[] = [];
  const mixed: ForwardPassSnapshot[] = [];
  for (let t = 500; t <= 8000; t += 500) {
    prefill.push(fpm({ numPrefillRequests: 1, sumPrefillTokens: t, wallTimeS: wall(t, 0) }));
  }
  for (const ctx of [500, 2000, 4000]) {
    for (const b of [1, 8, 32, 64]) {
      decode.push(fpm({ numDecodeRequests: b, sumDecodeKvTokens: b * ctx, wallTimeS: wall(0, b * ctx) }));
      for (const t of [1000, 4000]) {
        mixed.push(
          fpm({
            numPrefillRequests: 1,
            sumPrefillTokens: t,
            numDecodeRequests: b,
            sumDecodeKvTokens: b * ctx,
            wallTimeS: wall(t, b * ctx),
          }),
        );
      }
    }
  }
  return { prefill, decode, agg: [...prefill, ...decode], mixed };
}

describe('planner: load scaling', () => {
  it('throughput target (aggregated): up when any engine is over its KV, down when all are light', () => {
    const p = new Planner(PlannerConfigSchema.parse({}), [role('aggregated')]);
    expect(p.nextTickS).toBe(5);
    const busy = fpm({ sumDecodeKvTokens: 90_000, sumQueuedPrefillTokens: 20_000 });
    const light = fpm({ sumDecodeKvTokens: 10_000 });
    let r = p.tick(5, [{ ready: 2, expected: 2, fpm: [busy, light] }], emptyTraffic());
    expect(r.targets).toEqual([3]);
    expect(r.reasons).toEqual(['scale_up']);
    expect(p.nextTickS).toBe(10);
    // The new worker is still starting: no new decision for that role.
    r = p.tick(10, [{ ready: 2, expected: 3, fpm: [busy, light] }], emptyTraffic());
    expect(r.targets).toEqual([null]);
    expect(r.reasons).toEqual(['scaling_in_progress']);
    r = p.tick(15, [{ ready: 3, expected: 3, fpm: [light, light, light] }], emptyTraffic());
    expect(r.targets).toEqual([2]);
    r = p.tick(
      20,
      [{ ready: 2, expected: 2, fpm: [light, fpm({ sumDecodeKvTokens: 70_000 })] }],
      emptyTraffic(),
    );
    expect(r.targets).toEqual([null]);
  });

  it('load target (disaggregated): user thresholds per role, within min_endpoint', () => {
    const c = PlannerConfigSchema.parse({
      optimization_target: 'load',
      prefill_scale_up_queue_tokens: 10_000,
      prefill_scale_down_queue_tokens: 1_000,
      decode_scale_up_kv_rate: 80,
      decode_scale_down_kv_rate: 30,
      min_endpoint: 2,
    });
    const p = new Planner(c, [
      role('prefill', { bounds: { min: 2, max: 10 } }),
      role('decode', { bounds: { min: 2, max: 10 } }),
    ]);
    const r = p.tick(
      5,
      [
        { ready: 2, expected: 2, fpm: [fpm({ sumQueuedPrefillTokens: 12_000 }), fpm({})] },
        {
          ready: 2,
          expected: 2,
          fpm: [fpm({ sumDecodeKvTokens: 10_000 }), fpm({ sumDecodeKvTokens: 5_000 })],
        },
      ],
      emptyTraffic(),
    );
    // Prefill grows; decode is light but already at min_endpoint.
    expect(r.targets).toEqual([3, null]);
  });

  it('SLA target: up when every engine misses the TTFT target, down when one fewer would still meet it', () => {
    const c = PlannerConfigSchema.parse({
      optimization_target: 'sla',
      enable_load_scaling: true,
      ttft_ms: 500,
      itl_ms: 50,
    });
    const p = new Planner(c, [role('prefill'), role('decode')], samples());
    // 60k queued tokens: ~8 chunks of ~92 ms each, far over 500 ms.
    const queued = fpm({ sumQueuedPrefillTokens: 60_000 });
    const idle = fpm({});
    let r = p.tick(
      5,
      [
        { ready: 2, expected: 2, fpm: [queued, queued] },
        { ready: 3, expected: 3, fpm: [idle, idle, idle] },
      ],
      emptyTraffic(),
    );
    expect(r.targets).toEqual([3, 2]);
    // One engine within the target: no scale-up (it takes all of them), and the busy one blocks scale-down.
    r = p.tick(
      10,
      [
        { ready: 2, expected: 2, fpm: [queued, idle] },
        { ready: 2, expected: 2, fpm: [fpm({ sumDecodeKvTokens: 90_000 }), idle] },
      ],
      emptyTraffic(),
    );
    expect(r.targets).toEqual([null, null]);
  });
});

describe('planner: the SLA target as Dynamo 1.6.1 runs it', () => {
  const c = PlannerConfigSchema.parse({
    optimization_target: 'sla',
    enable_load_scaling: true,
    enable_throughput_scaling: false,
    ttft_ms: 500,
    itl_ms: 50,
  });

  it('without a profile, decides nothing until a store has load_min_observations live passes', () => {
    const p = new Planner(c, [role('aggregated')]);
    // Busy mixed passes: every one a sample for the mixed store; 2 workers per tick.
    const busy = (k: number) =>
      fpm({
        engine: k,
        numPrefillRequests: 1,
        sumPrefillTokens: 4000 + 100 * k,
        numDecodeRequests: 20 + k,
        sumDecodeKvTokens: 100_000 + 5000 * k,
        wallTimeS: 0.2 + 0.01 * k,
        numQueuedPrefill: 10,
        sumQueuedPrefillTokens: 80_000,
      });
    const obs = (t: number) => [{ ready: 2, expected: 2, fpm: [busy(t), busy(t + 1)] }];
    expect(p.tick(5, obs(0), emptyTraffic()).reasons).toEqual(['insufficient_data']);
    expect(p.tick(10, obs(2), emptyTraffic()).reasons).toEqual(['insufficient_data']);
    // Five samples now: every engine's estimated TTFT (80k queued tokens) is far over 500 ms.
    expect(p.tick(15, obs(4), emptyTraffic()).targets).toEqual([3]);
  });

  it('holds while a ready worker has not reported (the reference checks the count)', () => {
    const p = new Planner(PlannerConfigSchema.parse({}), [role('aggregated')]);
    const busy = fpm({ sumDecodeKvTokens: 200_000 });
    const r = p.tick(5, [{ ready: 2, expected: 2, fpm: [busy] }], emptyTraffic());
    expect(r.targets).toEqual([null]);
    expect(r.reasons).toEqual(['worker_count_mismatch']);
  });
});

describe('planner: throughput scaling', () => {
  it('sizes each role from the predicted rate and the model of one worker', () => {
    const c = PlannerConfigSchema.parse({
      optimization_target: 'sla',
      load_predictor: 'constant',
      ttft_ms: 500,
      itl_ms: 50,
      throughput_adjustment_interval_seconds: 60,
      load_adjustment_interval_seconds: 5,
    });
    const p = new Planner(c, [role('prefill'), role('decode')], samples());
    const obs = [
      { ready: 1, expected: 1, fpm: [fpm({})] },
      { ready: 1, expected: 1, fpm: [fpm({})] },
    ];
    for (let t = 5; t < 60; t += 5) expect(p.tick(t, obs, emptyTraffic()).targets).toEqual([null, null]);
    // 20 req/s of 2000-token prompts and 100-token answers.
    const w = traffic({ durationS: 60, numReq: 1200, completed: 1000, sumIsl: 2_000_000, sumOsl: 100_000 });
    const r = p.tick(60, obs, w);
    // Prefill: up to 4 prompts of 2000 tokens per 8192-token pass; 4 in one 90 ms pass -> 44.4 req/s per
    // engine -> 1 engine.
    // Decode: context 2050; largest batch with wall(b x 2050) <= 50 ms is 1951 > caps, so B = 48 (KV cap
    // 100000 / 2050), step 10.98 ms -> 48 / (100 x 0.010984) = 43.7 req/s -> 1 engine.
    expect(r.targets).toEqual([null, null]);
    const rec = p.throughputLog.at(-1);
    expect(rec?.demand_rps).toBeCloseTo(20, 9);
    expect(rec?.engine_rps[0]).toBeCloseTo(4 / wall(8000, 0), 6);
    expect(rec?.engine_rps[1]).toBeCloseTo(48 / (100 * wall(0, 48 * 2050)), 6);
    // Four times the traffic needs more of both (ticks come in order: load ticks in between).
    for (let t = 65; t < 120; t += 5) p.tick(t, obs, emptyTraffic());
    const r2 = p.tick(120, obs, traffic({ ...w, numReq: 4800 }));
    expect(r2.targets).toEqual([
      Math.ceil(80 / (4 / wall(8000, 0))),
      Math.ceil(80 / (48 / (100 * wall(0, 48 * 2050)))),
    ]);
  });

  it('with load scaling on, the throughput answer is a floor under load decisions', () => {
    const c = PlannerConfigSchema.parse({
      optimization_target: 'sla',
      enable_load_scaling: true,
      load_predictor: 'constant',
      max_gpu_budget: -1,
      throughput_adjustment_interval_seconds: 60,
      load_adjustment_interval_seconds: 10,
    });
    const p = new Planner(c, [role('aggregated')], samples());
    const idle = { ready: 1, expected: 1, fpm: [fpm({})] };
    for (let t = 10; t < 60; t += 10) p.tick(t, [idle], emptyTraffic());
    // The throughput tick itself only sets the floor...
    const w = traffic({
      durationS: 60,
      numReq: 3000,
      completed: 3000,
      sumIsl: 3000 * 3000,
      sumOsl: 3000 * 200,
    });
    const r = p.tick(60, [idle], w);
    expect(r.targets).toEqual([null]);
    const floor = p.throughputLog.at(-1)?.replicas[0] as number;
    expect(floor).toBeGreaterThan(1);
    expect(floor).toBeLessThan(10);
    // ...which the next load tick applies although load alone would not scale.
    expect(p.tick(70, [idle], emptyTraffic()).targets).toEqual([floor]);
  });

  it('keeps the result within the GPU budget', () => {
    const c = PlannerConfigSchema.parse({
      optimization_target: 'sla',
      load_predictor: 'constant',
      max_gpu_budget: 6,
      throughput_adjustment_interval_seconds: 60,
    });
    const p = new Planner(c, [role('aggregated', { gpus: 2 })], samples());
    const idle = { ready: 1, expected: 1, fpm: [fpm({})] };
    for (let t = 5; t < 60; t += 5) p.tick(t, [idle], emptyTraffic());
    const w = traffic({
      durationS: 60,
      numReq: 60_000,
      completed: 60_000,
      sumIsl: 60_000 * 3000,
      sumOsl: 60_000 * 200,
    });
    expect(p.tick(60, [idle], w).targets).toEqual([3]);
  });
});
