import { describe, expect, it } from 'vitest';
import { estimateRun, type RunShape } from '../../../src/sim/cost.ts';

const base: RunShape = {
  pools: [{ workers: 8, blocks: 16384, engine: 'vllm', lowerTierBlocks: 0 }],
  requests: 1_000_000,
  meanInput: 12_000,
  meanOutput: 350,
  blockSize: 512,
  traceBlockSize: 512,
  inMemory: false,
  concurrency: 0,
};

describe('run cost estimate', () => {
  it('grows with workers, KV blocks and requests, and far more for requests held in memory', () => {
    const e = estimateRun(base);
    expect(estimateRun({ ...base, pools: [{ ...base.pools[0], workers: 80 }] }).parts.workers).toBe(
      e.parts.workers * 10,
    );
    expect(estimateRun({ ...base, requests: 2_000_000 }).parts.records).toBe(e.parts.records * 2);
    const mem = estimateRun({ ...base, inMemory: true });
    expect(mem.parts.requests).toBeGreaterThan(0);
    expect(mem.bytes).toBeGreaterThan(e.bytes);
    // A streamed million-request replay fits well under a gigabyte.
    expect(e.bytes).toBeLessThan(2 ** 30);
    // --workers 100000 of 16,384 blocks: tens of gigabytes, refused on any usual machine.
    expect(estimateRun({ ...base, pools: [{ ...base.pools[0], workers: 100_000 }] }).bytes).toBeGreaterThan(
      40 * 2 ** 30,
    );
  });
});
