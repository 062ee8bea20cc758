import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { afterEach, describe, expect, it } from 'vitest';
import {
  RequestTraceWriter,
  requestEndRecord,
  segmentName,
  sequenceHashes,
} from '../../../src/twin/request-trace.ts';

const dirs: string[] = [];
function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'twin-trace-'));
  dirs.push(d);
  return d;
}
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function readLines(file: string): { timestamp: number; event: Record<string, unknown> }[] {
  return gunzipSync(readFileSync(file))
    .toString()
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l));
}

const entry = (i: number) => ({
  requestId: `req-${i}`,
  model: 'Qwen/Qwen3-8B',
  inputTokens: 100,
  outputTokens: 10,
  cachedTokens: 64,
  receivedUnixMs: 1_700_000_000_000 + i,
  ttftMs: 50,
  totalTimeMs: 250.4,
  avgItlMs: 22.2,
  prefillWorkerId: 3,
  decodeWorkerId: 3,
  traceBlockSize: 64,
  blockIds: [11, 22],
});

describe('request trace records', () => {
  it("have Dynamo's schema and fields", () => {
    const r = requestEndRecord(entry(0)) as { request: Record<string, unknown> } & Record<string, unknown>;
    expect(r).toMatchObject({
      schema: 'dynamo.request.trace.v1',
      event_type: 'request_end',
      event_time_unix_ms: 1_700_000_000_250,
    });
    expect(r.request).toMatchObject({
      request_id: 'req-0',
      model: 'Qwen/Qwen3-8B',
      input_tokens: 100,
      output_tokens: 10,
      cached_tokens: 64,
      request_received_ms: 1_700_000_000_000,
      ttft_ms: 50,
      total_time_ms: 250.4,
      avg_itl_ms: 22.2,
      worker: { prefill_worker_id: 3, prefill_dp_rank: 0, decode_worker_id: 3, decode_dp_rank: 0 },
      replay: { trace_block_size: 64, input_length: 100 },
    });
    expect((r.request.replay as { input_sequence_hashes: number[] }).input_sequence_hashes).toHaveLength(2);
  });

  it('chain hashes: equal prefixes give equal leading hashes, equal content at another position does not', () => {
    const a = sequenceHashes([1, 2, 3, 4]);
    const b = sequenceHashes([1, 2, 9]);
    expect(b.slice(0, 2)).toEqual(a.slice(0, 2));
    expect(b[2]).not.toBe(a[2]);
    const c = sequenceHashes([5, 5]);
    expect(c[0]).not.toBe(c[1]);
    for (const h of [...a, ...b, ...c]) expect(Number.isSafeInteger(h) && h >= 0).toBe(true);
    expect(sequenceHashes([2 ** 40 + 7])[0]).not.toBe(sequenceHashes([7])[0]);
  });
});

describe('RequestTraceWriter', () => {
  it('writes gzip members of {timestamp, event} lines and rolls segments by lines', async () => {
    const dir = tempDir();
    const w = new RequestTraceWriter({ path: join(dir, 'dynamo-request-trace'), rollLines: 3 });
    for (let i = 0; i < 4; i++) w.write(requestEndRecord(entry(i)));
    await w.flush();
    for (let i = 4; i < 7; i++) w.write(requestEndRecord(entry(i)));
    await w.close();
    expect(readdirSync(dir).sort()).toEqual([
      'dynamo-request-trace.000000.jsonl.gz',
      'dynamo-request-trace.000001.jsonl.gz',
      'dynamo-request-trace.000002.jsonl.gz',
    ]);
    const seg1 = readLines(join(dir, segmentName('dynamo-request-trace', 1)));
    // Segment 1 was written by two flushes: two gzip members, read as one stream.
    expect(seg1.map((l) => (l.event.request as { request_id: string }).request_id)).toEqual([
      'req-3',
      'req-4',
      'req-5',
    ]);
    expect(typeof seg1[0].timestamp).toBe('number');
    expect(w.written).toBe(7);
  });

  it('starts after the highest existing segment and never overwrites one', async () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'dynamo-request-trace.000004.jsonl.gz'), 'old');
    writeFileSync(join(dir, 'other.000009.jsonl.gz'), 'unrelated');
    const w = new RequestTraceWriter({ path: join(dir, 'dynamo-request-trace.jsonl.gz') });
    w.write({ n: 1 });
    await w.close();
    expect(readFileSync(join(dir, 'dynamo-request-trace.000004.jsonl.gz'), 'utf8')).toBe('old');
    expect(readLines(join(dir, 'dynamo-request-trace.000005.jsonl.gz'))[0].event).toEqual({ n: 1 });
  });

  it('keeps at most maxSegments segments', async () => {
    const dir = tempDir();
    const w = new RequestTraceWriter({ path: join(dir, 't'), rollLines: 1, maxSegments: 2 });
    for (let i = 0; i < 5; i++) {
      w.write({ i });
      await w.flush();
    }
    await w.close();
    expect(readdirSync(dir).sort()).toEqual(['t.000003.jsonl.gz', 't.000004.jsonl.gz']);
  });

  it('drops (and counts) records when writes lag beyond the pending bound', async () => {
    const dir = tempDir();
    const w = new RequestTraceWriter({ path: join(dir, 't'), maxPendingBytes: 200 });
    for (let i = 0; i < 10; i++) w.write({ padding: 'x'.repeat(50), i });
    await w.close();
    expect(w.dropped).toBeGreaterThan(0);
    expect(w.written + w.dropped).toBe(10);
  });

  it('reports a directory it cannot write and keeps going', async () => {
    const errors: Error[] = [];
    const w = new RequestTraceWriter({ path: '/proc/no-such-dir/t', onError: (e) => errors.push(e) });
    w.write({ a: 1 });
    await w.close();
    expect(errors).toHaveLength(1);
    expect(w.failures).toBe(1);
  });
});
