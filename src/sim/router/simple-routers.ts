import type { Engine } from '../engine/engine.ts';
import type { Rng } from '../random.ts';
import { countEligible, nthEligible, type Router } from './router.ts';

/** Round-robin over engines in arrival order (over the eligible ones when the pool changes). */
export class RoundRobinRouter implements Router {
  readonly name = 'round-robin';
  readonly reads = 'none';
  private counter = 0;

  private readonly order: number[] = [];

  route(_r: number, engines: readonly Engine[], _now?: number, eligible?: Uint8Array | null): number {
    const n = engines.length;
    if (!eligible) return this.counter++ % n;
    // Over a changing pool (a planner's), the cursor is a position in the list of eligible workers in the
    // order they were created, as in the reference: a worker that joins goes to the end of the list.
    const order = this.order;
    order.length = 0;
    for (let e = 0; e < n; e++) if (eligible[e] !== 0) order.push(e);
    if (order.length === 0) return -1;
    order.sort((a, b) => engines[a].index - engines[b].index);
    const k = this.counter % order.length;
    this.counter = k + 1;
    return order[k];
  }
}

/** Uniformly random engine (seeded). */
export class RandomRouter implements Router {
  readonly name = 'random';
  readonly reads = 'none';
  private readonly rng: Rng;
  constructor(rng: Rng) {
    this.rng = rng;
  }
  route(_r: number, engines: readonly Engine[], _now?: number, eligible?: Uint8Array | null): number {
    if (!eligible) return this.rng.int(engines.length);
    return nthEligible(eligible, engines.length, this.rng.int(countEligible(eligible, engines.length)));
  }
}

/** Engine with the fewest requests in flight (waiting + running); ties go to the lowest index. */
export class LeastLoadedRouter implements Router {
  readonly name = 'least-loaded';
  readonly reads = 'engines';
  route(_r: number, engines: readonly Engine[], _now?: number, eligible?: Uint8Array | null): number {
    let best = -1;
    let bestLoad = Number.POSITIVE_INFINITY;
    for (let e = 0; e < engines.length; e++) {
      if (eligible && eligible[e] === 0) continue;
      const load = engines[e].runningCount + engines[e].waitingCount;
      if (load < bestLoad) {
        bestLoad = load;
        best = e;
      }
    }
    return best;
  }
}
