import type { EngineRole } from '../engine/engine.ts';
import type { RequestTable } from '../engine/request-table.ts';
import type { Rng } from '../random.ts';
import { KvRouter } from './kv-router.ts';
import type { Router } from './router.ts';
import { LeastLoadedRouter, RandomRouter, RoundRobinRouter } from './simple-routers.ts';

/** The router a run asks for (one for every pool; `poolRouterSpec` adapts it to each pool's role). */
export type RouterSpec =
  | { kind: 'round-robin' }
  | { kind: 'random' }
  | { kind: 'least-loaded' }
  | {
      kind: 'kv';
      overlapWeight: number;
      overlapCredit: number;
      temperature: number;
      trackActiveBlocks?: boolean;
      assumeKvReuse?: boolean;
    };

/**
 * The router of a pool of `role` workers when the run asks for `requested`, as Dynamo configures its KV
 * router per pool: a disaggregated prefill pool's router has no decode term (its workers hold no decode KV),
 * and a decode pool is balanced by the blocks in flight alone (no prefill term, no credit for cached or
 * shared blocks). State-blind routers (round robin, random, least loaded) are the same for every pool, as in
 * the reference's disaggregated replay, which picks decode workers round robin when not KV-routed.
 *
 * Conditional disaggregation is a KV-router feature in Dynamo (it reads the chosen decode worker's cached
 * prefix from the router's indexer), so it needs `requested.kind === 'kv'` (checked by the simulation and
 * the configuration schema); its decode pool keeps the load-only scoring above and reads the cache only for
 * the local-prefill decision. Newer Dynamo routers also credit cached blocks when scoring a conditional
 * decode pool; the reference simulator the fidelity cases compare against has no conditional cases.
 */
export function poolRouterSpec(role: EngineRole, requested: RouterSpec): RouterSpec {
  if (requested.kind !== 'kv' || role === 'aggregated') return requested;
  if (role === 'prefill') return { ...requested, trackActiveBlocks: false };
  return { kind: 'kv', overlapWeight: 0, overlapCredit: 0, temperature: 0, assumeKvReuse: false };
}

export function makeRouter(spec: RouterSpec, req: RequestTable, workers: number, rng: Rng): Router {
  switch (spec.kind) {
    case 'round-robin':
      return new RoundRobinRouter();
    case 'random':
      return new RandomRouter(rng);
    case 'least-loaded':
      return new LeastLoadedRouter();
    case 'kv':
      return new KvRouter(
        {
          overlapWeight: spec.overlapWeight,
          overlapCredit: spec.overlapCredit,
          temperature: spec.temperature,
          trackActiveBlocks: spec.trackActiveBlocks,
          assumeKvReuse: spec.assumeKvReuse,
        },
        req,
        workers,
        rng,
      );
  }
}
