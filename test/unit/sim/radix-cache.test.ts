import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { RequestTable } from '../../../src/sim/engine/request-table.ts';
import { RadixCache } from '../../../src/sim/kv/radix-cache.ts';
import { mooncake, requestTable } from '../../support/sim.ts';

const ROOT = RadixCache.ROOT;

/**
 * Requests over 512-token hash blocks, pages of 16 tokens: r0 = [1,2] (64 pages), r1 = [1,3] (shares r0's first
 * 32 pages), r2 = [1,2,4] (shares all 64 of r0's), r3 = [5] (shares nothing).
 */
function table(): RequestTable {
  const w = mooncake([
    { timestamp: 0, input_length: 1024, output_length: 40, hash_ids: [1, 2] },
    { timestamp: 0, input_length: 1024, output_length: 40, hash_ids: [1, 3] },
    { timestamp: 0, input_length: 1536, output_length: 40, hash_ids: [1, 2, 4] },
    { timestamp: 0, input_length: 512, output_length: 40, hash_ids: [5] },
  ]);
  return requestTable(w, 16);
}

/** What the SGLang engine does to cache a request's first `pages` pages below its locked node. */
function cacheUpTo(cache: RadixCache, r: number, node: number, from: number, pages: number): number {
  const next = cache.insert(r, node, from, pages);
  if (next !== node) cache.lock(next);
  cache.freePages += cache.duplicates;
  if (next !== node) cache.unlock(node);
  return next;
}

describe('radix cache', () => {
  it('counts locks along the path and never evicts a node in use', () => {
    const cache = new RadixCache(200, table());
    cache.freePages -= 64;
    const a = cacheUpTo(cache, 0, ROOT, 0, 64);
    cache.check();
    expect(cache.lockOf(a)).toBe(1);
    expect(cache.protectedPages).toBe(64);
    expect(cache.evictablePages).toBe(0);
    // r1 matches r0's first 32 pages: the edge splits and the shared prefix is locked twice.
    const p = cache.matchAndLock(1, 63);
    cache.check();
    expect(cache.depthOf(p)).toBe(32);
    expect(cache.lockOf(p)).toBe(2);
    expect(cache.lockOf(a)).toBe(1);
    expect(cache.parentOf(a)).toBe(p);
    // Everything is in use: nothing can be evicted.
    expect(cache.evict(1000)).toBe(0);
    expect(cache.cachedPages).toBe(64);
    // r0 leaves: its private suffix becomes an evictable leaf, trimmed from the tail first.
    cache.unlock(a);
    expect(cache.evictablePages).toBe(32);
    expect(cache.evict(10)).toBe(10);
    cache.check();
    expect(cache.pagesOf(a)).toBe(22);
    expect(cache.hasKey(table().blockKey(0, 53))).toBe(true);
    expect(cache.hasKey(table().blockKey(0, 54))).toBe(false);
    expect(cache.evict(1000)).toBe(22);
    cache.check();
    // The prefix r1 holds survives.
    expect(cache.matchPages(1, 64)).toBe(32);
    expect(cache.matchPages(0, 64)).toBe(32);
    cache.unlock(p);
    expect(cache.evictablePages).toBe(32);
    expect(cache.protectedPages).toBe(0);
    expect(cache.evict(1000)).toBe(32);
    expect(cache.cachedPages).toBe(0);
    expect(cache.freePages).toBe(200 - 64 + 64);
    cache.check();
  });

  it('evicts least recently used leaves first; unlocking keeps the last access time', () => {
    const req = table();
    const cache = new RadixCache(400, req);
    const a = cacheUpTo(cache, 0, ROOT, 0, 64); // r0: 64 pages
    const d = cacheUpTo(cache, 3, ROOT, 0, 32); // r3: 32 pages, inserted later
    const b = cacheUpTo(cache, 2, cache.matchAndLock(2, 64), 64, 96); // r2 extends r0's path
    cache.unlock(b);
    cache.unlock(d);
    cache.unlock(a); // unlocked last, but accessed before d and b
    cache.check();
    // Leaves: d (r3) and b (r2's suffix below r0's pages; a is now internal).
    expect(cache.lruOrder()).toEqual([d, b]);
    // A match ending inside an edge splits it without touching it (the reference's rule): d stays oldest.
    const d1 = cache.matchAndLock(3, 31);
    cache.unlock(d1);
    cache.check();
    expect(cache.lruOrder()[0]).toBe(d);
    // A match through the whole edge touches it: b becomes the oldest.
    const d2 = cache.matchAndLock(3, 32);
    expect(d2).toBe(d);
    cache.unlock(d2);
    cache.check();
    expect(cache.lruOrder()[0]).toBe(b);
    // Evicting b's 32 pages makes its parent a leaf again (evictable all along: internal unlocked pages count).
    expect(cache.evictablePages).toBe(64 + 32 + 32);
    expect(cache.evict(32)).toBe(32);
    cache.check();
    expect(cache.lruOrder()).toContain(cache.nodeOfKey(req.blockKey(0, 63)));
    expect(cache.evictablePages).toBe(96);
  });

  it('inserting an already cached prefix reports duplicates and reuses the nodes', () => {
    const cache = new RadixCache(400, table());
    const a = cacheUpTo(cache, 0, ROOT, 0, 64);
    // r2 computed the same 64 pages concurrently (no match at its admission): they are duplicates.
    const n = cache.insert(2, ROOT, 0, 70);
    expect(cache.duplicates).toBe(64);
    expect(cache.parentOf(n)).toBe(a);
    expect(cache.pagesOf(n)).toBe(6);
    cache.check();
  });

  it('keeps its invariants under random admissions, growth, retractions, completions and evictions', () => {
    const op = fc.oneof(
      fc.record({ kind: fc.constant('admit' as const), r: fc.nat(3), pages: fc.nat(96) }),
      fc.record({ kind: fc.constant('grow' as const), r: fc.nat(3), pages: fc.nat(40) }),
      fc.record({ kind: fc.constant('release' as const), r: fc.nat(3), keep: fc.boolean() }),
      fc.record({ kind: fc.constant('evict' as const), pages: fc.nat(120) }),
    );
    fc.assert(
      fc.property(fc.array(op, { maxLength: 60 }), (ops) => {
        const req = table();
        const total = 300;
        const cache = new RadixCache(total, req);
        const node = [-1, -1, -1, -1];
        const cached = [0, 0, 0, 0];
        const owned = [0, 0, 0, 0]; // private pages
        const limit = [64, 64, 96, 32].map((p) => p + 4); // prompt plus a few generated pages
        for (const o of ops) {
          if (o.kind === 'admit' && node[o.r] < 0) {
            const n = cache.matchAndLock(o.r, Math.min(o.pages, limit[o.r]));
            const have = cache.depthOf(n);
            const want = Math.min(limit[o.r], have + 1 + (o.pages % 8));
            const fresh = want - have;
            if (fresh > cache.freePages + cache.evictablePages) {
              cache.unlock(n);
              continue;
            }
            if (fresh > cache.freePages) cache.evict(fresh - cache.freePages);
            cache.freePages -= fresh;
            node[o.r] = cacheUpTo(cache, o.r, n, have, want);
            cached[o.r] = want;
          } else if (o.kind === 'grow' && node[o.r] >= 0) {
            const want = Math.min(limit[o.r], cached[o.r] + 1 + (o.pages % 4));
            const fresh = want - cached[o.r];
            if (fresh > cache.freePages) continue;
            cache.freePages -= fresh;
            node[o.r] = cacheUpTo(cache, o.r, node[o.r], cached[o.r], want);
            cached[o.r] = want;
            owned[o.r] = 0;
          } else if (o.kind === 'release' && node[o.r] >= 0) {
            cache.freePages += owned[o.r];
            cache.unlock(node[o.r]);
            node[o.r] = -1;
            cached[o.r] = 0;
          } else if (o.kind === 'evict') {
            const before = cache.freePages;
            const got = cache.evict(o.pages);
            expect(cache.freePages - before).toBe(got);
            expect(got).toBe(Math.min(o.pages, got + cache.evictablePages));
          }
          cache.check();
          // Pages of requests in flight are never evicted, and every page is accounted for once.
          let held = 0;
          for (let r = 0; r < 4; r++) {
            if (node[r] < 0) continue;
            expect(cache.depthOf(node[r])).toBe(cached[r]);
            expect(cache.matchPages(r, cached[r])).toBe(cached[r]);
            held += owned[r];
          }
          expect(cache.freePages + cache.cachedPages + held).toBe(total);
        }
      }),
      { numRuns: 150, seed: 7 },
    );
  });
});
