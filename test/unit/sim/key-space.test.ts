import { describe, expect, it } from 'vitest';
import { type KeyHolder, KeySpace } from '../../../src/sim/kv/key-space.ts';
import { Rng } from '../../../src/sim/random.ts';

/** Prompts that share prefixes of varying length, with content ids up to 2^53. */
function prompts(seed: number, n: number, tb: number): { input: number; hashes: number[] }[] {
  const rng = new Rng(seed);
  const roots = Array.from({ length: 6 }, () => Array.from({ length: 12 }, () => rng.int(2 ** 31) * 2 ** 20));
  return Array.from({ length: n }, () => {
    const root = roots[rng.int(roots.length)];
    const shared = rng.int(root.length + 1);
    const len = 1 + rng.int(14);
    const hashes = Array.from({ length: len }, (_, i) => (i < shared ? root[i] : rng.int(1000)));
    return { input: (len - 1) * tb + 1 + rng.int(tb), hashes };
  });
}

/** Keys of every prompt block, by request. */
function keysOf(space: KeySpace, rows: { input: number; hashes: number[] }[]): number[][] {
  return rows.map((r) => {
    const out = new Int32Array(space.promptBlocks(r.input));
    space.promptKeys(r.hashes, 0, r.input, out, 0);
    return Array.from(out);
  });
}

/** True when two keyings of the same blocks agree on which blocks are equal. */
function sameEquality(a: number[][], b: number[][]): boolean {
  const fwd = new Map<number, number>();
  const back = new Map<number, number>();
  for (let i = 0; i < a.length; i++) {
    if (a[i].length !== b[i].length) return false;
    for (let j = 0; j < a[i].length; j++) {
      const x = a[i][j];
      const y = b[i][j];
      if ((fwd.get(x) ?? y) !== y || (back.get(y) ?? x) !== x) return false;
      fwd.set(x, y);
      back.set(y, x);
    }
  }
  return true;
}

/**
 * The reference: block j of a prompt holds the content of its first (j + 1) x bs tokens, i.e. its position and
 * the content ids covering them.
 */
function oracle(rows: { input: number; hashes: number[] }[], bs: number, tb: number): string[][] {
  return rows.map((r) =>
    Array.from(
      { length: Math.floor(r.input / bs) },
      (_, j) => `${j}|${r.hashes.slice(0, Math.floor(((j + 1) * bs - 1) / tb) + 1).join(',')}`,
    ),
  );
}

describe('KeySpace', () => {
  for (const [bs, tb] of [
    [64, 512],
    [512, 512],
    [384, 512],
    [1000, 512],
    [1, 16],
  ]) {
    it(`gives equal keys exactly to equal content-in-position (block ${bs}, trace block ${tb})`, () => {
      for (const seed of [1, 2]) {
        const rows = prompts(seed, 300, tb);
        // Content ids below 1000 indexed densely on the second seed, all hashed on the first.
        const space = new KeySpace(bs, tb, { contentSpace: seed === 2 ? 1000 : 0 });
        const live = keysOf(space, rows);
        const truth = oracle(rows, bs, tb).map((ks) => ks.map((k) => k.length)); // shape only
        expect(live.map((ks) => ks.length)).toEqual(truth.map((ks) => ks.length));
        const ids = new Map<string, number>();
        const named = oracle(rows, bs, tb).map((ks) =>
          ks.map((k) => {
            let id = ids.get(k);
            if (id === undefined) {
              id = ids.size;
              ids.set(k, id);
            }
            return id;
          }),
        );
        expect(sameEquality(named, live)).toBe(true);
        // Private keys never collide with prompt keys.
        const p = space.privateRange(5);
        expect(space.isPrompt(p)).toBe(false);
        expect(live.flat().every((k) => k < p && space.isPrompt(k))).toBe(true);
      }
    });
  }

  it('forgets unheld keys on compaction, keeps held ones (and their prefixes) equal, renames holders', () => {
    for (const [bs, contentSpace] of [
      [64, 0],
      [384, 0],
      [64, 1000],
    ]) {
      const tb = 512;
      const space = new KeySpace(bs, tb, { compactAbove: 0, contentSpace });
      const rows = prompts(7, 400, tb);
      const before = keysOf(space, rows);
      const priv = space.privateRange(3);
      // A holder keeping the blocks of every tenth request and one private key.
      const held = before.filter((_, i) => i % 10 === 0).map((ks) => ks.slice());
      const heldPrivate = [priv + 1];
      const holder: KeyHolder = {
        markKeys: (live) => {
          for (const ks of held) for (const k of ks) live[k] = 1;
          for (const k of heldPrivate) live[k] = 1;
        },
        remapKeys: (map) => {
          for (const ks of held) for (let j = 0; j < ks.length; j++) ks[j] = map[ks[j]];
          heldPrivate[0] = map[heldPrivate[0]];
        },
      };
      const sizeBefore = space.size;
      expect(space.wantsCompaction).toBe(true);
      space.compact([holder]);
      expect(space.size).toBeLessThan(sizeBefore / 3);
      expect(space.isPrompt(heldPrivate[0])).toBe(false);
      expect(held.flat().every((k) => k >= 0 && space.isPrompt(k))).toBe(true);
      // The same prompts interned again get the held keys back, and equality is as before.
      const again = keysOf(space, rows);
      for (let i = 0; i < rows.length; i += 10) expect(again[i]).toEqual(held[i / 10]);
      expect(sameEquality(before, again)).toBe(true);
      expect(space.compactions).toBe(1);
    }
  });

  it('stays bounded over an unbounded stream of new prompts when little is held', () => {
    const space = new KeySpace(64, 512, { compactAbove: 10_000 });
    const rng = new Rng(3);
    let held: number[] = [];
    const holder: KeyHolder = {
      markKeys: (live) => {
        for (const k of held) live[k] = 1;
      },
      remapKeys: (map) => {
        held = held.map((k) => map[k]);
      },
    };
    let maxSize = 0;
    for (let i = 0; i < 5000; i++) {
      const hashes = Array.from({ length: 8 }, () => rng.int(2 ** 40));
      const out = new Int32Array(64);
      space.promptKeys(hashes, 0, 4096, out, 0);
      held = Array.from(out.subarray(0, 16)); // the newest request's first blocks only
      if (space.wantsCompaction) space.compact([holder]);
      maxSize = Math.max(maxSize, space.size);
    }
    expect(space.compactions).toBeGreaterThan(10);
    expect(maxSize).toBeLessThan(25_000);
    expect(space.entryCount).toBeLessThan(3_000);
  });
});
