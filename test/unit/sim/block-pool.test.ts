import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { BlockPool } from '../../../src/sim/kv/block-pool.ts';

describe('BlockPool', () => {
  it('caches promoted blocks and reuses them after release', () => {
    const pool = new BlockPool(4);
    expect(pool.allocate(2)).toBe(true);
    const a = pool.promote(10);
    const b = pool.promote(11);
    expect(pool.activeBlocks).toBe(2);
    pool.unpin(b);
    pool.unpin(a);
    expect(pool.activeBlocks).toBe(0);
    expect(pool.inactiveBlocks).toBe(2);
    // Released last-to-first: 11 is older than 10, so it is evicted first.
    expect(pool.inactiveKeys()).toEqual([11, 10]);
    const hit = pool.slotOf(10);
    expect(hit).toBeGreaterThanOrEqual(0);
    pool.pin(hit);
    expect(pool.activeBlocks).toBe(1);
    pool.assertInvariants();
  });

  it('evicts the least recently released inactive blocks when allocating', () => {
    const pool = new BlockPool(3);
    pool.allocate(3);
    const slots = [pool.promote(1), pool.promote(2), pool.promote(3)];
    for (const s of slots) pool.unpin(s);
    expect(pool.allocate(2)).toBe(true);
    expect(pool.slotOf(1)).toBe(-1);
    expect(pool.slotOf(2)).toBe(-1);
    expect(pool.slotOf(3)).toBeGreaterThanOrEqual(0);
    expect(pool.evictions).toBe(2);
    pool.assertInvariants();
  });

  it('refuses allocations beyond free plus evictable capacity without changing state', () => {
    const pool = new BlockPool(2);
    pool.allocate(1);
    pool.promote(7); // active
    expect(pool.allocate(2)).toBe(false);
    expect(pool.activeBlocks).toBe(1);
    expect(pool.allocate(1)).toBe(true);
    pool.assertInvariants();
  });

  it('collapses a promotion onto an existing copy of the same key', () => {
    const pool = new BlockPool(4);
    pool.allocate(2);
    const s1 = pool.promote(5);
    const s2 = pool.promote(5);
    expect(s2).toBe(s1);
    expect(pool.refOf(s1)).toBe(2);
    expect(pool.activeBlocks).toBe(1);
    expect(pool.freeBlocks).toBe(3);
    pool.assertInvariants();
  });

  it('keeps its invariants under random operation sequences', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.integer({ min: 0, max: 3 }), fc.integer({ min: 0, max: 40 })), {
          maxLength: 300,
        }),
        (ops) => {
          const pool = new BlockPool(16);
          const held: number[] = [];
          let priv = 0;
          for (const [op, arg] of ops) {
            if (op === 0) {
              const n = (arg % 3) + 1;
              if (pool.allocate(n)) priv += n;
            } else if (op === 1 && priv > 0) {
              held.push(pool.promote(arg));
              priv--;
            } else if (op === 2 && held.length > 0) {
              pool.unpin(held.splice(arg % held.length, 1)[0]);
            } else if (op === 3) {
              const s = pool.slotOf(arg);
              if (s >= 0 && pool.canAllocate(pool.refOf(s) === 0 ? 1 : 0)) {
                pool.pin(s);
                held.push(s);
              }
            }
            pool.assertInvariants();
            expect(pool.activeBlocks).toBe(new Set(held).size + priv);
          }
        },
      ),
      { numRuns: 200 },
    );
  });
});
