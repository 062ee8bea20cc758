import { describe, expect, it } from 'vitest';
import type { Engine } from '../../../src/sim/engine/engine.ts';
import { Rng } from '../../../src/sim/random.ts';
import { KvRouter, type KvRouterConfig } from '../../../src/sim/router/kv-router.ts';
import { mooncake, requestTable } from '../../support/sim.ts';

// Engines the router only counts (no KV event logs: nothing is cached in its view).
const engines = [{ kvEvents: null }, { kvEvents: null }] as unknown as Engine[];
const ids = (from: number, n: number) => Array.from({ length: n }, (_, i) => from + i);
// A: 8 blocks of 512; B: A's 8 blocks and 2 more; C: 10 unrelated blocks.
const w = mooncake([
  { timestamp: 0, input_length: 4096, output_length: 10, hash_ids: ids(1, 8) },
  { timestamp: 0, input_length: 5120, output_length: 10, hash_ids: ids(1, 10) },
  { timestamp: 0, input_length: 5120, output_length: 10, hash_ids: ids(100, 10) },
]);
const req = requestTable(w, 512);

/** Engines chosen for request r over 16 seeds, after A was routed to engine 0 and its prefill finished. */
function choices(config: Partial<KvRouterConfig>, r: number): Set<number> {
  const out = new Set<number>();
  for (let seed = 0; seed < 16; seed++) {
    const router = new KvRouter(
      { overlapWeight: 1, overlapCredit: 1, temperature: 0, ...config },
      req,
      2,
      new Rng(seed),
    );
    router.route(0, engines, 0);
    router.onRouted(0, 0);
    router.onFirstToken(0, 0);
    out.add(router.route(r, engines, 0));
  }
  return out;
}

describe('KV router decode term (blocks in flight)', () => {
  it('counts shared blocks once by default: B costs 8 + 2 on A’s engine, 10 on the other (a tie)', () => {
    expect(choices({}, 1)).toEqual(new Set([0, 1]));
  });

  it('counts every request’s blocks without assumeKvReuse (Dynamo’s disaggregated decode pool): 18 against 10', () => {
    expect(choices({ overlapWeight: 0, overlapCredit: 0, assumeKvReuse: false }, 1)).toEqual(new Set([1]));
  });

  it('scores the prefill term alone without trackActiveBlocks (Dynamo’s disaggregated prefill pool)', () => {
    // Tracked, unrelated C costs 8 + 10 on A's engine and 10 on the other; untracked, both cost the same.
    expect(choices({}, 2)).toEqual(new Set([1]));
    expect(choices({ trackActiveBlocks: false }, 2)).toEqual(new Set([0, 1]));
  });
});
