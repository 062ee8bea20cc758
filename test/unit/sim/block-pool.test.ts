import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { BlockPool } from '../../../src/sim/kv/block-pool.ts';

function cached(pool: BlockPool, key: number): number {
  const s = pool.allocate();
  pool.cache(s, key);
  return s;
}

describe('BlockPool', () => {
  it('caches computed blocks and reuses them after release, oldest release evicted first', () => {
    const pool = new BlockPool(4);
    const a = cached(pool, 10);
    const b = cached(pool, 11);
    expect(pool.activeBlocks).toBe(2);
    pool.release(b); // released last-to-first: 11 first, so it is the older inactive block
    pool.release(a);
    expect(pool.activeBlocks).toBe(0);
    expect(pool.inactiveBlocks).toBe(2);
    expect(pool.inactiveKeys()).toEqual([11, 10]);
    const hit = pool.slotOf(10);
    expect(hit).toBe(a);
    pool.pin(hit);
    expect(pool.activeBlocks).toBe(1);
    pool.assertInvariants();
  });

  it('evicts the least recently released inactive copy only when nothing is free', () => {
    const pool = new BlockPool(3);
    const slots = [cached(pool, 1), cached(pool, 2), cached(pool, 3)];
    for (const s of slots) pool.release(s);
    pool.allocate();
    expect(pool.slotOf(1)).toBe(-1);
    expect(pool.slotOf(2)).toBeGreaterThanOrEqual(0);
    pool.allocate();
    expect(pool.slotOf(2)).toBe(-1);
    expect(pool.slotOf(3)).toBeGreaterThanOrEqual(0);
    expect(pool.evictions).toBe(2);
    pool.assertInvariants();
  });

  it('frees a private copy at once on release', () => {
    const pool = new BlockPool(2);
    const s = pool.allocate();
    expect(pool.freeBlocks).toBe(1);
    pool.release(s);
    expect(pool.freeBlocks).toBe(2);
    expect(pool.inactiveBlocks).toBe(0);
  });

  it('keeps duplicate copies of a key, each holding capacity, with the first as primary', () => {
    const pool = new BlockPool(4);
    const first = cached(pool, 5);
    const second = cached(pool, 5);
    expect(second).not.toBe(first);
    expect(pool.slotOf(5)).toBe(first);
    expect(pool.activeBlocks).toBe(2);
    pool.release(first);
    pool.release(second);
    // Evicting the primary promotes the duplicate; the key stays cached until its last copy goes.
    const events: [number, boolean][] = [];
    pool.onKeyEvent = (k, stored) => events.push([k, stored]);
    pool.allocate();
    pool.allocate();
    pool.allocate(); // first eviction (the primary)
    expect(pool.slotOf(5)).toBe(second);
    expect(events).toEqual([]);
    pool.allocate(); // second eviction
    expect(pool.slotOf(5)).toBe(-1);
    expect(events).toEqual([[5, false]]);
    pool.assertInvariants();
  });

  it('keeps its invariants under random operation sequences, hashed and direct-indexed alike', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.integer({ min: 0, max: 3 }), fc.integer({ min: 0, max: 30 })), {
          maxLength: 300,
        }),
        (ops) => {
          // The hashed table and the direct-indexed one (keys 0..30) must behave identically.
          const pool = new BlockPool(12);
          const direct = new BlockPool(12, true);
          const events: string[] = [];
          const directEvents: string[] = [];
          pool.onKeyEvent = (k, stored) => events.push(`${k}:${stored}`);
          direct.onKeyEvent = (k, stored) => directEvents.push(`${k}:${stored}`);
          const held: number[] = []; // one entry per reference
          const priv = new Set<number>();
          for (const [op, arg] of ops) {
            if (op === 0 && pool.activeBlocks < pool.capacity) {
              const s = pool.allocate();
              expect(direct.allocate()).toBe(s);
              held.push(s);
              priv.add(s);
            } else if (op === 1 && priv.size > 0) {
              const s = [...priv][arg % priv.size];
              priv.delete(s);
              pool.cache(s, arg);
              direct.cache(s, arg);
            } else if (op === 2 && held.length > 0) {
              const s = held.splice(arg % held.length, 1)[0];
              priv.delete(s);
              pool.release(s);
              direct.release(s);
            } else if (op === 3) {
              const s = pool.slotOf(arg);
              expect(direct.slotOf(arg)).toBe(s);
              if (s >= 0) {
                pool.pin(s);
                direct.pin(s);
                held.push(s);
              }
            }
            pool.assertInvariants();
            direct.assertInvariants();
            expect(pool.activeBlocks).toBe(new Set(held).size);
            expect(direct.inactiveKeys()).toEqual(pool.inactiveKeys());
            expect(direct.cachedKeys()).toBe(pool.cachedKeys());
          }
          expect(directEvents).toEqual(events);
          expect(direct.evictions).toBe(pool.evictions);
        },
      ),
      { numRuns: 300 },
    );
  });
});
