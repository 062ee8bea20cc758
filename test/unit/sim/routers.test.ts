import { describe, expect, it } from 'vitest';
import type { Engine } from '../../../src/sim/engine/engine.ts';
import { Rng } from '../../../src/sim/random.ts';
import { KvRouter } from '../../../src/sim/router/kv-router.ts';
import { LeastLoadedRouter, RandomRouter, RoundRobinRouter } from '../../../src/sim/router/simple-routers.ts';
import { requestTable, synthetic } from '../../support/sim.ts';

/** Engines as routers see them: only load counts and (absent) KV event logs. */
function engines(loads: number[]): Engine[] {
  return loads.map(
    (l, i) => ({ index: i, runningCount: l, waitingCount: 0, kvEvents: null }) as unknown as Engine,
  );
}

describe('routers on pools whose workers change (planner)', () => {
  it('round-robin cycles over eligible slots only and keeps its order as slots come and go', () => {
    const r = new RoundRobinRouter();
    const e = engines([0, 0, 0, 0]);
    const el = Uint8Array.from([1, 0, 1, 1]);
    expect(Array.from({ length: 6 }, () => r.route(0, e, 0, el))).toEqual([0, 2, 3, 0, 2, 3]);
    el[1] = 1;
    el[3] = 0;
    expect(Array.from({ length: 4 }, () => r.route(0, e, 0, el))).toEqual([0, 1, 2, 0]);
  });

  it('without an eligibility mask every router behaves as before', () => {
    const r = new RoundRobinRouter();
    const e = engines([3, 1, 2]);
    expect(Array.from({ length: 4 }, () => r.route(0, e, 0))).toEqual([0, 1, 2, 0]);
    expect(new LeastLoadedRouter().route(0, e)).toBe(1);
  });

  it('least-loaded and random never pick an ineligible slot', () => {
    const e = engines([5, 0, 2, 0]);
    const el = Uint8Array.from([1, 0, 1, 0]);
    expect(new LeastLoadedRouter().route(0, e, 0, el)).toBe(2);
    const rnd = new RandomRouter(new Rng(7));
    const picks = new Set(Array.from({ length: 200 }, () => rnd.route(0, e, 0, el)));
    expect([...picks].sort()).toEqual([0, 2]);
  });

  it('the KV router skips ineligible slots (greedy and softmax), grows and resets slots', () => {
    const w = synthetic({ sessions: 20 });
    const req = requestTable(w, 64);
    for (const temperature of [0, 0.5]) {
      const kv = new KvRouter({ overlapWeight: 1, overlapCredit: 1, temperature }, req, 2, new Rng(3));
      kv.addSlot();
      const e = engines([0, 0, 0]);
      const el = Uint8Array.from([0, 1, 0]);
      for (let r = 0; r < 10; r++) {
        const s = kv.route(r, e, 0, el);
        expect(s).toBe(1);
        kv.onRouted(r, s);
      }
      el[2] = 1;
      kv.resetSlot(2);
      // Slot 1 carries ten requests' blocks; the fresh slot 2 is cheaper.
      expect(kv.route(10, e, 0, el)).toBe(2);
    }
  });
});
