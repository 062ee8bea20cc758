import { describe, expect, it } from 'vitest';
import { Rng } from '../../../src/sim/random.ts';
import { PairInterner } from '../../../src/sim/workload/pair-interner.ts';

/** Pairs drawn so that contents recur under their first parent, under other parents, and out of range. */
function pairs(seed: number, n: number, space: number): [number, number][] {
  const rng = new Rng(seed);
  const out: [number, number][] = [];
  let node = -1;
  for (let i = 0; i < n; i++) {
    if (rng.next() < 0.1) node = -1; // a new prompt
    const r = rng.next();
    const content =
      r < 0.05 ? -2 : r < 0.1 ? space + Math.floor(rng.next() * 50) : Math.floor(rng.next() * space);
    const parent = rng.next() < 0.3 ? Math.floor(rng.next() * 200) - 1 : node;
    out.push([parent, content]);
    node = Math.floor(rng.next() * 300);
  }
  return out;
}

describe('PairInterner', () => {
  it('gives the same ids with and without the per-content fast path, and the ids a Map would', () => {
    for (const seed of [1, 2, 3]) {
      const space = 400;
      const input = pairs(seed, 20_000, space);
      const plain = new PairInterner(8);
      const fast = new PairInterner(8, space);
      const map = new Map<string, number>();
      for (const [p, c] of input) {
        const key = `${p},${c}`;
        let want = map.get(key);
        if (want === undefined) {
          want = map.size;
          map.set(key, want);
        }
        expect(plain.intern(p, c)).toBe(want);
        expect(fast.intern(p, c)).toBe(want);
      }
      expect(fast.size).toBe(map.size);
      expect(plain.size).toBe(map.size);
    }
  });
});
