import type { Engine } from '../engine/engine.ts';
import type { Rng } from '../random.ts';
import { countEligible, nthEligible, type Router } from './router.ts';

/** Round-robin over engines in arrival order (over the eligible ones when the pool changes). */
export class RoundRobinRouter implements Router {
  readonly name = 'round-robin';
  readonly reads = 'none';
  private counter = 0;

  route(_r: number, engines: readonly Engine[], _now?: number, eligible?: Uint8Array | null): number {
    const n = engines.length;
    if (!eligible) return this.counter++ % n;
    // Next eligible slot at or after the cursor, so the order survives workers joining and leaving.
    for (let k = 0; k < n; k++) {
      const e = (this.counter + k) % n;
      if (eligible[e] !== 0) {
        this.counter = e + 1;
        return e;
      }
    }
    return -1;
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
