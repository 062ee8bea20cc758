import { describe, expect, it } from 'vitest';
import { blockKey, layoutBlocks } from '../../../src/sim/workload/blocks.ts';
import { WorkloadBuilder } from '../../../src/sim/workload/workload.ts';

function workload(rows: { input: number; hashes: number[] }[], tb = 512) {
  const b = new WorkloadBuilder(tb);
  rows.forEach((r, i) => {
    b.add({ arrivalMs: i, inputLength: r.input, outputLength: 10, hashIds: r.hashes });
  });
  return b.build();
}

describe('layoutBlocks', () => {
  it('gives equal keys exactly as far as hash-id prefixes agree (engine block divides trace block)', () => {
    const w = workload([
      { input: 1536, hashes: [7, 8, 9] },
      { input: 1536, hashes: [7, 8, 4] },
      { input: 1024, hashes: [8, 7] },
    ]);
    const l = layoutBlocks(w, 64);
    expect(l.promptBlocks[0]).toBe(24);
    const k = (i: number, j: number) => blockKey(l, i, j);
    for (let j = 0; j < 16; j++) expect(k(0, j)).toBe(k(1, j));
    for (let j = 16; j < 24; j++) expect(k(0, j)).not.toBe(k(1, j));
    // Same hash id at a different position is different content-in-context.
    expect(k(2, 0)).not.toBe(k(0, 8));
    // Blocks within one hash id have distinct chained keys.
    expect(new Set(Array.from({ length: 8 }, (_, j) => k(0, j))).size).toBe(8);
  });

  it('handles engine blocks that straddle hash ids', () => {
    const w = workload([
      { input: 1536, hashes: [1, 2, 3] },
      { input: 1536, hashes: [1, 2, 9] },
    ]);
    const l = layoutBlocks(w, 384); // 512 % 384 != 0
    expect(l.promptBlocks[0]).toBe(4);
    // Block 2 covers tokens 768..1151 = hash ids 1 (idx 1) and 2 (idx 2): differs between the requests.
    expect(blockKey(l, 0, 0)).toBe(blockKey(l, 1, 0));
    expect(blockKey(l, 0, 1)).toBe(blockKey(l, 1, 1));
    expect(blockKey(l, 0, 2)).not.toBe(blockKey(l, 1, 2));
  });

  it('only keys full blocks and gives generated blocks private keys', () => {
    const w = workload([
      { input: 100, hashes: [1] },
      { input: 100, hashes: [1] },
    ]);
    const l = layoutBlocks(w, 64);
    expect(l.promptBlocks[0]).toBe(1);
    expect(blockKey(l, 0, 0)).toBe(blockKey(l, 1, 0));
    expect(blockKey(l, 0, 1)).not.toBe(blockKey(l, 1, 1));
    expect(blockKey(l, 0, 1)).toBeGreaterThanOrEqual(l.keys.length > 0 ? Math.max(...l.keys) + 1 : 0);
  });
});
