import { describe, expect, it } from 'vitest';
import type { Engine } from '../../../src/sim/engine/engine.ts';
import type { ForwardPassSnapshot } from '../../../src/sim/engine/pass-metrics.ts';
import { consolidated, Planner } from '../../../src/sim/planner/planner.ts';
import { RoundRobinRouter } from '../../../src/sim/router/simple-routers.ts';
import { mooncake, run } from '../../support/sim.ts';

/** Rules of the reference's Planner replay (ai-dynamo 1.6.1), as docs/fidelity.md compares them. */
describe('Planner rules taken from the reference', () => {
  it('round robin over a changing pool keeps its position in the list of workers by creation order', () => {
    // The reference's own case: workers 0, 1, 2 take requests 0, 1, 2, 0; worker 2 drains; the next goes to 1.
    const engines = [0, 1, 2].map((index) => ({ index })) as unknown as Engine[];
    const eligible = new Uint8Array([1, 1, 1]);
    const rr = new RoundRobinRouter();
    expect([0, 1, 2, 3].map((r) => rr.route(r, engines, 0, eligible))).toEqual([0, 1, 2, 0]);
    eligible[2] = 0;
    expect(rr.route(4, engines, 0, eligible)).toBe(1);
    // A new worker created later in a reused slot goes to the end of the order.
    const reused = [{ index: 0 }, { index: 1 }, { index: 3 }] as unknown as Engine[];
    eligible[2] = 1;
    const rr2 = new RoundRobinRouter();
    eligible[0] = 1;
    expect([0, 1, 2].map((r) => rr2.route(r, reused, 0, eligible))).toEqual([0, 1, 2]);
  });

  it('an easy-mode scale-down holds when the busiest worker’s load over the survivors reaches the scale-up threshold', () => {
    // Throughput target, agg: up above 100 % KV, down when all are under 60 %.
    expect(consolidated(2, 3, [0.5, 0.2, 0.1], 1)).toBe(2); // 0.5 x 3 / 2 = 0.75
    expect(consolidated(2, 3, [0.59, 0.2, 0.1], 0.8)).toBeNull(); // 0.885 >= 0.8
    expect(consolidated(1, 2, [0.55, 0.1], 1)).toBeNull(); // 1.1 >= 1
  });
});

/** Runs `fn` and returns what the planner saw at each tick: time (s), first pool's FPMs and traffic window. */
function observeTicks(fn: () => void): { t: number; fpm: ForwardPassSnapshot[]; numReq: number }[] {
  const original = Planner.prototype.tick;
  const seen: { t: number; fpm: ForwardPassSnapshot[]; numReq: number }[] = [];
  Planner.prototype.tick = function (this: Planner, nowS, obs, traffic) {
    seen.push({ t: nowS, fpm: obs[0].fpm.map((f) => ({ ...f })), numReq: traffic.numReq });
    return original.call(this, nowS, obs, traffic);
  };
  try {
    fn();
  } finally {
    Planner.prototype.tick = original;
  }
  return seen;
}

const fixed = { model: 'fixed', prefillMs: 30, decodeMs: 30 };

describe('what the Planner observes, as in the reference replay (and Dynamo)', () => {
  it('a forward pass reports the queue its scheduler left waiting, not the queue at the tick', () => {
    // One worker, one sequence at a time: r0 decodes in 30 ms passes from 30 ms on (boundaries at 30k ms).
    // r1 arrives at 995 ms, inside the pass [990, 1020): the last pass ended by the 1 s tick, [960, 990), was
    // scheduled before it, so that tick sees an empty queue; by the 2 s tick r1 has waited through passes.
    const w = mooncake([
      { timestamp: 0, input_length: 100, output_length: 1000, hash_ids: [1] },
      { timestamp: 995, input_length: 300, output_length: 5, hash_ids: [2] },
    ]);
    const seen = observeTicks(() =>
      run(w, {
        timing: fixed,
        engine: { blockSize: 64, maxNumSeqs: 1 },
        planner: {
          optimization_target: 'throughput',
          load_adjustment_interval_seconds: 1,
          max_gpu_budget: 1,
        },
      }),
    );
    const at = (t: number) => (seen.find((s) => s.t === t) as (typeof seen)[number]).fpm[0];
    expect(at(1)).toMatchObject({ passEndMs: 990, numDecodeRequests: 1, numQueuedPrefill: 0 });
    expect(at(2)).toMatchObject({ passEndMs: 1980, numQueuedPrefill: 1, sumQueuedPrefillTokens: 300 });
  });

  it('an idle worker reports an empty heartbeat after 1 s without a pass; a fresh one reports nothing before', () => {
    // Two workers, ticks every 0.5 s. r0 (worker 0) decodes in 30 ms passes until 4.5 s; worker 1 stays idle
    // until r1 arrives at 6 s.
    const w = mooncake([
      { timestamp: 0, input_length: 100, output_length: 150, hash_ids: [1] },
      { timestamp: 6000, input_length: 100, output_length: 2, hash_ids: [2] },
    ]);
    const seen = observeTicks(() =>
      run(w, {
        workers: 2,
        timing: fixed,
        engine: { blockSize: 64 },
        planner: {
          optimization_target: 'throughput',
          load_adjustment_interval_seconds: 0.5,
          min_endpoint: 2,
          max_gpu_budget: 2,
        },
      }),
    );
    const at = (t: number) =>
      (seen.find((s) => s.t === t) as (typeof seen)[number]).fpm.map((f) => [
        f.engine,
        f.wallTimeS,
        f.passEndMs,
      ]);
    // Worker 1, ready since 0 without a pass, reports nothing until it has been silent for 1 s.
    expect(at(0.5)).toEqual([[0, 0.03, 480]]);
    expect(at(1)).toEqual([
      [0, 0.03, 990],
      [1, 0, Number.NaN],
    ]);
    // Worker 0's last pass ended at 4.5 s: still its latest at 5 s, a heartbeat from 5.5 s.
    expect(at(5)).toEqual([
      [0, 0.03, 4500],
      [1, 0, Number.NaN],
    ]);
    expect(at(5.5)).toEqual([
      [0, 0, Number.NaN],
      [1, 0, Number.NaN],
    ]);
  });

  it('a tick fires after the arrivals of its instant, which are routed over the pool as it was', () => {
    // Scale up at the 5 s tick (r0 holds 2 % of the KV cache, above 1 %); r1 arrives at exactly 5 s, r2 just after.
    const w = mooncake([
      {
        timestamp: 0,
        input_length: 20000,
        output_length: 2000,
        hash_ids: Array.from({ length: 40 }, (_, i) => i),
      },
      { timestamp: 5000, input_length: 100, output_length: 5, hash_ids: [50] },
      { timestamp: 5001, input_length: 100, output_length: 5, hash_ids: [60] },
    ]);
    let engines: number[] = [];
    const seen = observeTicks(() => {
      const { result } = run(w, {
        timing: fixed,
        engine: { blockSize: 64 },
        planner: {
          optimization_target: 'load',
          decode_scale_up_kv_rate: 1,
          decode_scale_down_kv_rate: 0,
          load_adjustment_interval_seconds: 5,
          max_endpoint: 2,
          max_gpu_budget: 2,
        },
      });
      engines = Array.from(result.records.engine);
    });
    expect(engines).toEqual([0, 0, 1]);
    // The window ending at the 5 s tick counts r1.
    expect(seen[0]).toMatchObject({ t: 5, numReq: 2 });
  });
});
