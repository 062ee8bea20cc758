import { describe, expect, it } from 'vitest';
import type { Engine } from '../../../src/sim/engine/engine.ts';
import { consolidated } from '../../../src/sim/planner/planner.ts';
import { RoundRobinRouter } from '../../../src/sim/router/simple-routers.ts';

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
