import type { Engine } from '../engine/engine.ts';
import type { Rng } from '../random.ts';
import type { Router } from './router.ts';

/** Round-robin over engines in arrival order. */
export class RoundRobinRouter implements Router {
  readonly name = 'round-robin';
  readonly reads = 'none';
  private counter = 0;
  private readonly engines: number;
  constructor(engines: number) {
    this.engines = engines;
  }

  route(): number {
    const e = this.counter % this.engines;
    this.counter++;
    return e;
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
  route(_r: number, engines: readonly Engine[]): number {
    return this.rng.int(engines.length);
  }
}

/** Engine with the fewest requests in flight (waiting + running); ties go to the lowest index. */
export class LeastLoadedRouter implements Router {
  readonly name = 'least-loaded';
  readonly reads = 'engines';
  route(_r: number, engines: readonly Engine[]): number {
    let best = 0;
    let bestLoad = Number.POSITIVE_INFINITY;
    for (let e = 0; e < engines.length; e++) {
      const load = engines[e].runningCount + engines[e].waitingCount;
      if (load < bestLoad) {
        bestLoad = load;
        best = e;
      }
    }
    return best;
  }
}
