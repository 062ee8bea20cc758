import { describe, expect, it } from 'vitest';
import type { SglangEngine } from '../../../src/sim/engine/sglang-engine.ts';
import { conversationSample, mooncake, run } from '../../support/sim.ts';

/** SGLang engine with fixed timing (prefill pass 10 ms, decode pass 5 ms) unless overridden. */
function sglang(rows: object[], engine: Record<string, unknown> = {}, extra: Record<string, unknown> = {}) {
  const w = mooncake(rows);
  const out = run(w, {
    engine: { engine: 'sglang', blockSize: 64, ...engine },
    timing: { model: 'fixed', prefillMs: 10, decodeMs: 5 },
    ...extra,
  });
  return { ...out, w, c: out.result.records, engines: [...out.result.engines] as SglangEngine[] };
}

const row = (ts: number, isl: number, osl: number, ids: number[]) => ({
  timestamp: ts,
  input_length: isl,
  output_length: osl,
  hash_ids: ids,
});

/** Every request completed with its full output (or was rejected), and no engine holds KV for one. */
function expectDrained(out: ReturnType<typeof sglang>): void {
  const { w, c, engines } = out;
  for (const e of engines) expect(e.holdsNothing()).toBe(true);
  for (let r = 0; r < w.size; r++) {
    if (out.result.records.status[r] === 4) continue; // rejected: larger than the pool
    expect(c.tokens[r], `request ${r} tokens`).toBe(w.outputLength[r]);
    expect(Number.isNaN(c.terminalMs[r]), `request ${r} terminal`).toBe(false);
  }
  for (const e of engines) {
    e.cache.check();
    expect(e.cache.protectedPages).toBe(0);
    expect(e.cache.freePages + e.cache.evictablePages).toBe(e.cache.totalPages);
    expect(e.runningCount + e.waitingCount).toBe(0);
  }
}

describe('SGLang engine', () => {
  it('admits by new_token_ratio: a waiting request enters once the decaying reserve leaves room', () => {
    // Pool: 24 pages of 64 = 1536 tokens. A (256 + 1000 out) prefills at 0-10 and holds 5 pages (its first
    // output token starts page 5). B (256 + 300 out) needs 256 + min(300, clip 4096) = 556 tokens below
    //   free x 64 - remaining(A) x ratio = 19 x 64 - (1000 - g) x ratio,
    // where the ratio starts at 0.7 and loses (0.7 - 0.098) / 600 after every decode pass. Before the k-th
    // decode pass A has g = k tokens: k = 24 gives 1216 - 976 x 0.677 = 555.3 (wait); k = 25 gives
    // 1216 - 975 x 0.6759 = 556.98 (admit), at 10 + 24 x 5 = 130 ms. The reference agrees (ratio_hand_case).
    const out = sglang(
      [row(0, 256, 1000, [1, 2, 3, 4]), row(1, 256, 300, [5, 6, 7, 8])],
      { numGpuBlocks: 24 },
      { workload: { trace: 'inline', traceBlockSize: 64 } },
    );
    expect(out.c.firstAdmitMs[1]).toBe(130);
    expect(out.c.firstTokenMs[1]).toBe(140);
    expectDrained(out);
  });

  it('max_prefill_tokens defers a request to the next prefill pass (it does not chunk it)', () => {
    // A charges 640 of the 1024-token prefill budget; B's 640 no longer fit: B prefills alone next pass,
    // and A's decode waits for that pass.
    const out = sglang([row(0, 600, 3, [1, 2]), row(0, 600, 3, [3, 4])], {
      maxPrefillTokens: 1024,
    });
    const { c } = out;
    expect([c.firstTokenMs[0], c.secondTokenMs[0], c.lastTokenMs[0]]).toEqual([10, 25, 30]);
    expect([c.firstAdmitMs[1], c.firstTokenMs[1], c.lastTokenMs[1]]).toEqual([10, 20, 30]);
    expect(out.report.committed_prefill_tokens).toBe(1200);
    expectDrained(out);
  });

  it('chunks long prompts at page boundaries; chunk passes pause decode', () => {
    // Chunks of 256: B's 600-token prompt takes passes 10-20, 20-30 (256 each) and 30-40 (88). A, decoding
    // since 10, gets no token until the decode pass 40-45.
    const out = sglang([row(0, 100, 10, [1, 2]), row(1, 600, 2, [3, 4])], { chunkedPrefillSize: 256 });
    const { c } = out;
    expect(c.firstAdmitMs[1]).toBe(10);
    expect(c.firstTokenMs[1]).toBe(40);
    expect(c.firstTokenMs[0]).toBe(10);
    expect(c.secondTokenMs[0]).toBe(45);
    expect(out.report.committed_prefill_tokens).toBe(700);
    expectDrained(out);
  });

  it('a prefill pass stalls the running requests: the inter-token gap includes it', () => {
    // A decodes from 10 (tokens at 10, 15); B arrives at 12 and prefills at 15-25; A's next token is at 30.
    const out = sglang([row(0, 100, 5, [1, 2]), row(12, 100, 3, [3, 4])]);
    const { c } = out;
    expect(c.firstTokenMs[1]).toBe(25);
    expect(c.secondTokenMs[0]).toBe(15);
    expect(c.lastTokenMs[0]).toBe(40);
    // A's gaps: 5 (decode), 15 (prefill of B + decode), 5, 5.
    expect(out.result.collector.itl.max).toBe(15);
    expectDrained(out);
  });

  it('retracts the request with the fewest output tokens under KV pressure, and loses nothing', () => {
    // 20 pages of 16 tokens; reserves clipped to 8 tokens let B in beside A, but both cannot finish together.
    // B, admitted later, has fewer output tokens when the pool runs out: it is retracted (its cached prefix
    // kept), requeued and finishes after A.
    const out = sglang(
      [row(0, 64, 200, [1]), row(100, 64, 200, [2])],
      { blockSize: 16, numGpuBlocks: 20, clipMaxNewTokens: 8 },
      { workload: { trace: 'inline', traceBlockSize: 64 } },
    );
    const pre = out.result.records.preemptions;
    expect(pre[0]).toBe(0);
    expect(pre[1]).toBeGreaterThan(0);
    expect(out.report.preemptions).toBe(pre[1]);
    expect(out.c.admissions[1]).toBe(1 + pre[1]);
    expect(out.c.lastTokenMs[1]).toBeGreaterThan(out.c.lastTokenMs[0]);
    expectDrained(out);
  });

  it('drains heavy retraction without loss on the conversation sample', () => {
    const w = conversationSample(150);
    const out = run(w, {
      workers: 2,
      engine: { engine: 'sglang', blockSize: 32, numGpuBlocks: 1500, scheduleConservativeness: 0.3 },
    });
    expect(out.report.preemptions).toBeGreaterThan(0);
    expect(out.report.completed_requests).toBeGreaterThan(140);
    expectDrained({ ...out, w, c: out.result.records, engines: [...out.result.engines] as SglangEngine[] });
  });

  it('rejects a request that can never fit instead of stalling (the reference aborts the replay)', () => {
    const out = sglang([row(0, 3000, 5, [1, 2, 3, 4, 5, 6]), row(0, 100, 5, [7, 8])], { numGpuBlocks: 20 });
    expect(out.result.records.status[0]).toBe(4);
    expect(out.c.tokens[1]).toBe(5);
    expect(out.report.completed_requests).toBe(1);
    // A first chunk above max_prefill_tokens is never admitted either (the budget does not chunk).
    const small = sglang([row(0, 600, 3, [1, 2]), row(0, 200, 3, [3])], { maxPrefillTokens: 256 });
    expect(Array.from(small.result.records.status)).toEqual([4, 3]);
  });

  it('is deterministic (KV router with random ties)', () => {
    const w = conversationSample(400);
    const cfg = { workers: 3, router: { mode: 'kv' }, seed: 5, engine: { engine: 'sglang', blockSize: 64 } };
    const a = run(w, cfg).result.records;
    const b = run(w, cfg).result.records;
    for (const f of ['firstAdmitMs', 'firstTokenMs', 'lastTokenMs', 'terminalMs'] as const)
      expect(Array.from(b[f])).toEqual(Array.from(a[f]));
    expect(Array.from(b.reusedBest)).toEqual(Array.from(a.reusedBest));
  });
  it('disaggregated: prefill workers hold KV until the handoff; every engine drains', () => {
    const w = conversationSample(300);
    const out = run(w, {
      engine: { engine: 'sglang', blockSize: 64 },
      router: { mode: 'kv' },
      disaggregation: {
        prefill: { workers: 2 },
        decode: { workers: 2, engine: { numGpuBlocks: 1200 } },
        conditional: true,
      },
    });
    expect(out.result.transfers?.count).toBeGreaterThan(0);
    expectDrained({ ...out, w, c: out.result.records, engines: [...out.result.engines] as SglangEngine[] });
  });
});
