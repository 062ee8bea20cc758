import { beforeEach, describe, expect, it } from 'vitest';
import { toSimulationOptions } from '../../../src/config/run.ts';
import { config, conversationSample, mooncake, run, synthetic } from '../../support/sim.ts';

const prefill = (t: number) => 4.209989e-7 * t * t + 0.01518344 * t + 16.50142;
const decode = (kv: number, cap = 16384 * 64) => {
  const u = Math.min(1, kv / cap);
  return Math.max(1, -25.74 * u * u + 54.01 * u + 5.74);
};
const ns = (ms: number) => Math.round(ms * 1e6) / 1e6;

let engineKind = 'vllm';
const disagg = (over: Record<string, unknown> = {}) => ({
  engine: { engine: engineKind, blockSize: 64 },
  disaggregation: {
    prefill: { workers: 1 },
    decode: { workers: 1 },
    kvBytesPerToken: 100_000,
    kvTransferGbps: 10,
    ...over,
  },
});

for (const kind of ['vllm', 'sglang'])
  describe(`disaggregated prefill/decode (${kind})`, () => {
    beforeEach(() => {
      engineKind = kind;
    });
    it('charges prefill, then the KV transfer (tokens x bytes / bandwidth), then a decode step for the first token', () => {
      const w = mooncake([{ timestamp: 0, input_length: 1000, output_length: 3, hash_ids: [1, 2] }]);
      const { result, report } = run(w, disagg());
      const tr = result.transfers;
      const rec = result.records;
      if (!tr) throw new Error('no transfers');
      const p = ns(prefill(1000));
      // 1000 tokens x 100 kB = 100 MB over 10 GB/s = 10 ms.
      expect(rec.prefillDoneMs![0]).toBeCloseTo(p, 9);
      expect(rec.transferEndMs![0] - rec.transferStartMs![0]).toBeCloseTo(10, 9);
      const ttft = p + 10 + ns(decode(1000));
      expect(result.records.firstTokenMs[0]).toBeCloseTo(ttft, 9);
      expect(result.records.lastTokenMs[0]).toBeCloseTo(ttft + ns(decode(1001)) + ns(decode(1002)), 9);
      expect(report.kv_transfer?.count).toBe(1);
      expect(report.kv_transfer?.bytes).toBe(1e8);
      expect(report.gpus).toBe(2);
      expect(report.roles.prefill.workers).toBe(1);
      expect(report.roles.decode.workers).toBe(1);
    });

    it('shares a link between concurrent transfers from one prefill worker', () => {
      const w = mooncake([
        { timestamp: 0, input_length: 1000, output_length: 2, hash_ids: [1, 2] },
        { timestamp: 0, input_length: 1000, output_length: 2, hash_ids: [3, 4] },
      ]);
      const { result } = run(w, disagg({ decode: { workers: 2 } }));
      const tr = result.transfers;
      const rec = result.records;
      if (!tr) throw new Error('no transfers');
      // Both prefill in one pass, both transfers start together and each gets half the link: 20 ms.
      for (const r of [0, 1]) {
        expect(rec.transferStartMs![r]).toBeCloseTo(ns(prefill(2000)), 9);
        expect(rec.transferEndMs![r] - rec.transferStartMs![r]).toBeCloseTo(20, 6);
      }
    });

    it('gives every concurrent transfer the full bandwidth with per-transfer links (the reference model)', () => {
      const w = mooncake([
        { timestamp: 0, input_length: 1000, output_length: 2, hash_ids: [1, 2] },
        { timestamp: 0, input_length: 1000, output_length: 2, hash_ids: [3, 4] },
      ]);
      const { result } = run(w, disagg({ decode: { workers: 2 }, kvLink: 'per-transfer' }));
      const tr = result.transfers;
      const rec = result.records;
      if (!tr) throw new Error('no transfers');
      for (const r of [0, 1]) expect(rec.transferEndMs![r] - rec.transferStartMs![r]).toBeCloseTo(10, 6);
    });

    it('reserves KV on a busy decode worker when its pass in flight ends (vLLM: after the prefill; SGLang: before)', () => {
      // Fixed timing: prefill passes 10 ms, decode passes 5 ms; 100 kB/token over 10 GB/s.
      const w = mooncake([
        { timestamp: 0, input_length: 1000, output_length: 20, hash_ids: [1, 2] },
        { timestamp: 12, input_length: 100, output_length: 2, hash_ids: [3] },
        { timestamp: 27, input_length: 100, output_length: 2, hash_ids: [4] },
      ]);
      const { result } = run(w, { ...disagg(), timing: { model: 'fixed', prefillMs: 10, decodeMs: 5 } });
      const tr = result.transfers;
      const rec = result.records;
      if (!tr) throw new Error('no transfers');
      const first = result.records.firstTokenMs;
      // A: prefill 0-10, transfer 10-20 (idle decode worker: reserved at once), decode passes from 20.
      expect(rec.transferStartMs![0]).toBeCloseTo(10, 9);
      if (kind === 'vllm') {
        // B: prefill 12-22, lands in A's decode pass 20-25: reserved at 25, 1 ms transfer, next pass 30-35.
        expect(rec.prefillDoneMs![1]).toBeCloseTo(22, 9);
        expect(rec.transferStartMs![1]).toBeCloseTo(25, 9);
        expect(rec.transferEndMs![1]).toBeCloseTo(26, 9);
        expect(first[1]).toBeCloseTo(35, 9);
      } else {
        // B arrives at 12, the decode worker is idle (A is in transfer): reserved at once, prefill 12-22,
        // transfer 22-23, joins the pass 25-30.
        expect(rec.transferStartMs![1]).toBeCloseTo(22, 9);
        expect(first[1]).toBeCloseTo(30, 9);
        // C arrives at 27 inside A's pass 25-30: reserved at 30, then prefill 30-40, transfer 40-41, pass 45-50.
        expect(result.records.firstAdmitMs[2]).toBeCloseTo(30, 9);
        expect(rec.transferStartMs![2]).toBeCloseTo(40, 9);
        expect(first[2]).toBeCloseTo(50, 9);
      }
    });

    it('sizes transfers by engine.kvBytesPerToken (--kv-bytes-per-token) unless the disaggregation sets its own', () => {
      const w = mooncake([{ timestamp: 0, input_length: 1000, output_length: 2, hash_ids: [1, 2] }]);
      const base = { engine: { engine: engineKind, blockSize: 64, kvBytesPerToken: 262144 } };
      const pools = { prefill: { workers: 1 }, decode: { workers: 1 } };
      expect(run(w, { ...base, disaggregation: pools }).report.kv_transfer?.bytes).toBe(1000 * 262144);
      const own = { ...pools, kvBytesPerToken: 1000 };
      expect(run(w, { ...base, disaggregation: own }).report.kv_transfer?.bytes).toBe(1000 * 1000);
    });

    it('charges only the blocks the destination lacks in destination-missing mode', () => {
      const rows = [
        { timestamp: 0, input_length: 1024, output_length: 2, hash_ids: [1, 2] },
        { timestamp: 5000, input_length: 1024, output_length: 2, hash_ids: [1, 2] },
      ];
      const full = run(mooncake(rows), disagg()).report.kv_transfer;
      const missing = run(mooncake(rows), disagg({ transferMode: 'destination-missing' })).report.kv_transfer;
      expect(full?.bytes).toBe(2 * 1024 * 100_000);
      // vLLM: the second request finds 15 of its 16 blocks on the decode worker (the last is always
      // recomputed). SGLang's destination lease reuses every cached page of the prompt.
      expect(missing?.bytes).toBe(kind === 'vllm' ? (1024 + 64) * 100_000 : 1024 * 100_000);
    });

    it('never starts decoding a request before its KV has arrived, and loses nothing under KV pressure', () => {
      const w = conversationSample(400);
      for (const coalesce of [true, false]) {
        const { result, report } = run(w, {
          ...disagg({ prefill: { workers: 2 }, decode: { workers: 2, engine: { numGpuBlocks: 1500 } } }),
          router: { mode: 'kv' },
          coalesceDecode: coalesce,
        });
        const tr = result.transfers;
        const rec = result.records;
        if (!tr) throw new Error('no transfers');
        expect(report.completed_requests + report.rejected_requests).toBe(w.size);
        expect(tr.count + tr.localPrefills).toBe(report.completed_requests);
        for (let r = 0; r < w.size; r++) {
          if (Number.isNaN(rec.transferEndMs![r])) continue;
          expect(result.records.firstTokenMs[r]).toBeGreaterThan(rec.transferEndMs![r]);
          expect(rec.transferStartMs![r]).toBeGreaterThanOrEqual(rec.prefillDoneMs![r]);
        }
        // A decode pool this small makes prompts wait for KV on the decode side.
        expect(report.kv_transfer?.destination_wait_ms.max).toBeGreaterThan(0);
      }
    });

    it('gives the same per-request timelines with and without coalesced decode runs', () => {
      const w = synthetic({ sessions: 150, turnsPerSession: 2, interTurnDelayMs: 300 });
      const cfg = { ...disagg({ prefill: { workers: 2 }, decode: { workers: 3 } }), router: { mode: 'kv' } };
      const a = run(w, { ...cfg, coalesceDecode: false }).result;
      const b = run(w, { ...cfg, coalesceDecode: true }).result;
      expect(Array.from(b.records.firstTokenMs)).toEqual(Array.from(a.records.firstTokenMs));
      expect(Array.from(b.records.lastTokenMs)).toEqual(Array.from(a.records.lastTokenMs));
      expect(Array.from(b.records.transferEndMs!)).toEqual(Array.from(a.records.transferEndMs!));
    });

    it('keeps prefill on the decode worker for prompts mostly cached there (conditional disaggregation)', () => {
      // A long shared document, then short follow-ups over it: the follow-ups' uncached part is small.
      const doc = Array.from({ length: 8 }, (_, i) => i + 1);
      const rows = [{ timestamp: 0, input_length: 4096, output_length: 4, hash_ids: doc }];
      for (let i = 0; i < 6; i++)
        rows.push({
          timestamp: 2000 + i * 500,
          input_length: 4096 + 300,
          output_length: 4,
          hash_ids: [...doc, 100 + i],
        });
      const on = run(mooncake(rows), { ...disagg({ conditional: true }), router: { mode: 'kv' } });
      const off = run(mooncake(rows), { ...disagg(), router: { mode: 'kv' } });
      expect(on.report.kv_transfer?.local_prefills).toBe(6);
      expect(off.report.kv_transfer?.local_prefills).toBe(0);
      expect(on.report.completed_requests).toBe(7);
      // Skipping the transfer and reusing the decode worker's cache makes those first tokens come sooner.
      expect(on.report.ttft_ms.mean).toBeLessThan(off.report.ttft_ms.mean);
    });
  });

describe('pool engine overrides', () => {
  it('change only the settings they name', () => {
    const c = config({
      engine: { engine: 'sglang', blockSize: 32 },
      disaggregation: { prefill: { workers: 1 }, decode: { workers: 1, engine: { numGpuBlocks: 1200 } } },
    });
    expect(c.disaggregation?.decode.engine).toEqual({ numGpuBlocks: 1200 });
    const opts = toSimulationOptions(c);
    expect(opts.disaggregation?.decode.engine).toMatchObject({
      kind: 'sglang',
      blockSize: 32,
      numGpuBlocks: 1200,
    });
    expect(opts.disaggregation?.prefill.engine).toMatchObject({
      kind: 'sglang',
      blockSize: 32,
      numGpuBlocks: 16384,
    });
  });
});
