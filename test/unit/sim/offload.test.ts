import { describe, expect, it } from 'vitest';
import { KeyLru } from '../../../src/sim/kv/key-lru.ts';
import { conversationSample, mooncake, run } from '../../support/sim.ts';

const prefill = (t: number) => 4.209989e-7 * t * t + 0.01518344 * t + 16.50142;
const ns = (ms: number) => Math.round(ms * 1e6) / 1e6;

describe('KeyLru (a lower KV tier)', () => {
  it('keeps the newest keys up to capacity and evicts the oldest', () => {
    const lru = new KeyLru(3);
    expect([1, 2, 3].map((k) => lru.insert(k))).toEqual([-1, -1, -1]);
    expect(lru.insert(2)).toBe(-1); // refresh
    expect(lru.insert(4)).toBe(1);
    expect(lru.toArray()).toEqual([3, 2, 4]);
    expect(lru.has(1)).toBe(false);
    expect(lru.remove(2)).toBe(true);
    expect(lru.toArray()).toEqual([3, 4]);
    for (let k = 10; k < 1000; k++) lru.insert(k);
    expect(lru.toArray()).toEqual([997, 998, 999]);
  });
});

describe('KV offload tiers', () => {
  // A: 20 blocks of 64 tokens. B: unrelated, big enough to evict A from a 40-block GPU cache. C: A's prompt again.
  const rows = [
    { timestamp: 0, input_length: 1280, output_length: 2, hash_ids: [1, 2, 3] },
    { timestamp: 1000, input_length: 2300, output_length: 2, hash_ids: [10, 11, 12, 13, 14] },
    { timestamp: 2000, input_length: 1280, output_length: 2, hash_ids: [1, 2, 3] },
  ];
  const base = { engine: { blockSize: 64, numGpuBlocks: 40, kvBytesPerToken: 100_000 } };

  it.each(['write-through', 'on-evict'] as const)(
    'onboards a prefix the GPU evicted from host memory instead of recomputing it, after the transfer delay (%s)',
    (offloadPolicy) => {
      const without = run(mooncake(rows), base);
      const withHost = run(mooncake(rows), {
        engine: { ...base.engine, g2Blocks: 1000, g2Gbps: 10, offloadPolicy },
      });
      // Without the host tier, only 4 of A's blocks survive B on the GPU. With it (A's prompt blocks written
      // through when computed, or written back when B evicts them), the 15 evicted ones come back from host
      // memory (the last of the 20 is always recomputed): 15 x 64 tokens x 100 kB = 96 MB over 10 GB/s =
      // 9.6 ms, after which C is admitted (the engine is idle) with 19 blocks reused.
      expect(without.result.records.reusedBest[2]).toBe(4 * 64);
      const c = withHost.result.records;
      expect(c.reusedBest[2]).toBe(19 * 64);
      expect(c.firstAdmitMs[2] - c.arrivalMs[2]).toBeCloseTo(9.6, 6);
      expect(c.firstTokenMs[2] - c.firstAdmitMs[2]).toBeCloseTo(ns(prefill(64)), 6);
      expect(withHost.report.kv_tiers?.g2_hit_ratio).toBeCloseTo((15 * 64) / (1280 * 2 + 2300), 9);
      expect(withHost.report.kv_tiers?.onboard_ms.max).toBeCloseTo(9.6, 6);
      expect(withHost.report.ttft_ms.mean).toBeLessThan(without.report.ttft_ms.mean);
    },
  );

  it('stages disk hits through host memory (disk link, then host link)', () => {
    // A 10-block host tier spills A's oldest blocks to disk by the time C arrives.
    const r = run(mooncake(rows), {
      engine: {
        ...base.engine,
        g2Blocks: 10,
        g2Gbps: 10,
        g3Blocks: 1000,
        g3Gbps: 5,
        offloadPolicy: 'on-evict',
      },
    });
    const c = r.result.records;
    expect(c.reusedBest[2]).toBe(19 * 64);
    // 5 blocks come from disk (6.4 MB each at 5 GB/s: 6.4 ms), then all 15 over the host link (9.6 ms).
    expect(r.report.kv_tiers?.g3_hit_ratio).toBeCloseTo((5 * 64) / (1280 * 2 + 2300), 9);
    expect(c.firstAdmitMs[2] - c.arrivalMs[2]).toBeCloseTo(6.4 + 9.6, 6);
  });

  it('write-through: the disk tier keeps a copy of every stored block and onboards what host memory lost', () => {
    // The 10 host blocks hold B's newest blocks; the disk has all of A's. C's 15 blocks past its 4 GPU hits
    // come from disk (15 x 6.4 MB at 5 GB/s: 19.2 ms), then over the host link (9.6 ms).
    const r = run(mooncake(rows), {
      engine: {
        ...base.engine,
        g2Blocks: 10,
        g2Gbps: 10,
        g3Blocks: 1000,
        g3Gbps: 5,
        offloadPolicy: 'write-through',
      },
    });
    const c = r.result.records;
    expect(c.reusedBest[2]).toBe(19 * 64);
    expect(r.report.kv_tiers?.g3_hit_ratio).toBeCloseTo((15 * 64) / (1280 * 2 + 2300), 9);
    expect(c.firstAdmitMs[2] - c.arrivalMs[2]).toBeCloseTo(19.2 + 9.6, 6);
  });

  it('write-through: a host tier smaller than the GPU cache only shadows the newest prompts', () => {
    // Written through, the 10 host blocks hold the newest prompt blocks (B's), which the GPU has too: C finds
    // only the 4 blocks of A left on the GPU. Written back on eviction, they hold 10 of A's evicted blocks.
    const engine = { ...base.engine, g2Blocks: 10, g2Gbps: 10 };
    const through = run(mooncake(rows), { engine: { ...engine, offloadPolicy: 'write-through' } });
    const back = run(mooncake(rows), { engine: { ...engine, offloadPolicy: 'on-evict' } });
    expect(through.result.records.reusedBest[2]).toBe(4 * 64);
    expect(through.report.kv_tiers?.g2_hit_ratio).toBe(0);
    expect(back.result.records.reusedBest[2]).toBeGreaterThan(4 * 64);
  });

  it('write-through: a prefix lookup refreshes the host copies of its GPU hits', () => {
    // A (20 prompt blocks), X, A again, Y, Z (10 blocks each) on a 25-block GPU with a 40-block host tier.
    // The second A hits the GPU only, but its lookup makes A's host copies newer than X's, so Z pushes X
    // out of host memory and the last A finds all 19 of its blocks (GPU or host). Without the second A,
    // Z pushes out A's first 10 blocks and the last A has no prefix left anywhere.
    const blocks = (from: number, n: number) => Array.from({ length: n }, (_, i) => from + i);
    const a = { input_length: 1280, output_length: 2, hash_ids: [1, 2, 3] };
    const x = (h: number) => ({ input_length: 640, output_length: 2, hash_ids: blocks(h, 2) });
    const at = (seq: object[]) => mooncake(seq.map((r, i) => ({ timestamp: i * 1000, ...r })));
    const engine = {
      ...base.engine,
      numGpuBlocks: 25,
      g2Blocks: 40,
      g2Gbps: 10,
      offloadPolicy: 'write-through' as const,
    };
    const again = run(at([a, x(20), a, x(30), x(40), a]), { engine }).result.records;
    const once = run(at([a, x(20), x(30), x(40), a]), { engine }).result.records;
    expect(again.reusedBest[2]).toBe(19 * 64);
    expect(again.reusedBest[5]).toBe(19 * 64);
    expect(once.reusedBest[4]).toBe(0);
  });

  it('lowers mean TTFT on a workload with prefix reuse and GPU-cache pressure', () => {
    const w = conversationSample(500);
    const engine = { blockSize: 64, numGpuBlocks: 3000, kvBytesPerToken: 131072 };
    const off = run(w, { workers: 2, engine }).report;
    const host = run(w, { workers: 2, engine: { ...engine, g2Blocks: 30000 } }).report;
    expect(host.prefix_cache_reused_ratio).toBeGreaterThan(off.prefix_cache_reused_ratio);
    expect(host.ttft_ms.mean).toBeLessThan(off.ttft_ms.mean);
    expect(host.completed_requests).toBe(w.size);
  });

  it('gives the same per-request timelines with and without coalesced decode runs', () => {
    const w = conversationSample(300);
    const cfg = {
      workers: 2,
      router: { mode: 'kv' },
      engine: { blockSize: 64, numGpuBlocks: 2500, g2Blocks: 8000, g3Blocks: 20000 },
    };
    const a = run(w, { ...cfg, coalesceDecode: false }).result.records;
    const b = run(w, { ...cfg, coalesceDecode: true }).result.records;
    expect(Array.from(b.firstAdmitMs)).toEqual(Array.from(a.firstAdmitMs));
    expect(Array.from(b.firstTokenMs)).toEqual(Array.from(a.firstTokenMs));
    expect(Array.from(b.lastTokenMs)).toEqual(Array.from(a.lastTokenMs));
    expect(Array.from(b.reusedBest)).toEqual(Array.from(a.reusedBest));
  });
});
