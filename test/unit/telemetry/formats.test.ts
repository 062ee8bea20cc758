import { mkdtempSync, readFileSync, rmSync, truncateSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterEach, describe, expect, it } from 'vitest';
import { parseAzureTimestamp } from '../../../src/telemetry/trace/formats/azure.ts';
import {
  describeTraceNotes,
  parseTrace,
  readTrace,
  TraceError,
  TraceReader,
  traceFormatNames,
} from '../../../src/telemetry/trace/index.ts';
import { listSegments } from '../../../src/telemetry/trace/segments.ts';
import {
  RequestTraceWriter,
  requestEndRecord,
  segmentName,
  sequenceHashes,
} from '../../../src/twin/request-trace.ts';

const dirs: string[] = [];
const tmp = () => {
  const d = mkdtempSync(join(tmpdir(), 'servetune-formats-'));
  dirs.push(d);
  return d;
};
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

const T0 = 1_763_000_000_000;

/** A request_end record as Dynamo's frontend writes it (hashes: u64 values, beyond 2^53). */
function dynamoRecord(o: {
  id: string;
  at: number;
  input: number;
  output: number;
  block?: number;
  hashes?: number[];
  ttft?: number;
  wrap?: boolean;
}): string {
  const block = o.block ?? 16;
  const hashes = o.hashes ?? Array.from({ length: Math.ceil(o.input / block) }, (_, i) => 2 ** 63 + i * 4096);
  const event = {
    schema: 'dynamo.request.trace.v1',
    event_type: 'request_end',
    event_time_unix_ms: o.at + 500,
    request: {
      request_id: o.id,
      model: 'qwen/qwen3-8b',
      input_tokens: o.input,
      output_tokens: o.output,
      request_received_ms: o.at,
      ...(o.ttft !== undefined && { ttft_ms: o.ttft }),
      total_time_ms: 500,
      replay: { trace_block_size: block, input_length: o.input, input_sequence_hashes: hashes },
    },
  };
  return JSON.stringify(o.wrap === false ? event : { timestamp: o.at - T0, event });
}

function errorOf(text: string, opts: object = {}): string {
  try {
    parseTrace(text, { source: 't', ...opts });
  } catch (e) {
    expect(e).toBeInstanceOf(TraceError);
    return (e as Error).message;
  }
  throw new Error('expected a TraceError');
}

describe('Dynamo request traces', () => {
  it('are detected, keep the block size and the prefix structure the hashes carry', () => {
    const shared = [2 ** 63 + 1, 2 ** 63 + 2 ** 20, 2 ** 62];
    const text = [
      dynamoRecord({ id: 'a', at: T0 + 1000, input: 40, output: 7, hashes: shared, ttft: 12.5 }),
      // Ends first, arrived first: file order is end order.
      dynamoRecord({
        id: 'b',
        at: T0,
        input: 33,
        output: 3,
        hashes: [shared[0], shared[1], 17],
        wrap: false,
      }),
      JSON.stringify({
        schema: 'dynamo.request.trace.v1',
        event_type: 'request_payload',
        event_time_unix_ms: T0,
        payload: {},
      }),
      dynamoRecord({ id: 'c', at: T0 + 2000, input: 16, output: 1, hashes: [99] }),
    ].join('\n');
    const { workload: w, summary } = parseTrace(text, { source: 't', traceBlockSize: 512 });
    expect(summary.format).toBe('dynamo');
    // The rows' block size wins over the caller's (512 is the configuration default, not a statement).
    expect(summary.traceBlockSize).toBe(16);
    expect(w.traceBlockSize).toBe(16);
    expect(summary.requests).toBe(3);
    expect(Array.from(w.arrivalMs)).toEqual([0, 1000, 2000]);
    expect(Array.from(w.inputLength)).toEqual([33, 40, 16]);
    expect(Array.from(w.outputLength)).toEqual([3, 7, 1]);
    const ids = (i: number) => Array.from(w.hashIds.slice(w.hashOffsets[i], w.hashOffsets[i + 1]));
    // b shares its first two blocks with a, not the third; c shares nothing.
    expect(ids(0).slice(0, 2)).toEqual(ids(1).slice(0, 2));
    expect(ids(0)[2]).not.toBe(ids(1)[2]);
    expect(ids(2).some((h) => ids(1).includes(h) || ids(0).includes(h))).toBe(false);
    expect(summary.unsortedTimestamps.count).toBe(1);
  });

  it('hands observed latencies to streaming readers', async () => {
    const reader = new TraceReader({
      text: dynamoRecord({ id: 'a', at: T0, input: 20, output: 2, ttft: 42 }),
      source: 't',
    });
    const got = [];
    for await (const b of reader.batches()) got.push(...b);
    expect(got[0].observed).toEqual({ ttftMs: 42, itlMs: Number.NaN, e2eMs: 500, cachedTokens: Number.NaN });
  });

  it('names the field of a bad record', () => {
    const rec = (patch: (r: Record<string, unknown>) => void) => {
      const r = JSON.parse(dynamoRecord({ id: 'a', at: T0, input: 20, output: 2, wrap: false }));
      patch(r);
      return JSON.stringify(r);
    };
    expect(
      errorOf(
        rec((r) => (r.schema = 'dynamo.request.trace.v2')),
        { format: 'dynamo' },
      ),
    ).toBe(
      `t:1: field 'schema': "dynamo.request.trace.v2" is not a Dynamo request-trace schema this reader knows (dynamo.request.trace.v1)`,
    );
    expect(errorOf(rec((r) => (r.event_type = 'request_start')))).toMatch(
      /t:1: field 'event_type': "request_start" is not a request-trace event/,
    );
    expect(errorOf(rec((r) => delete (r.request as Record<string, unknown>).request_received_ms))).toBe(
      "t:1: field 'request.request_received_ms': is required (the arrival time)",
    );
    expect(
      errorOf(rec((r) => ((r.request as { replay: { input_length: number } }).replay.input_length = 40))),
    ).toBe(
      "t:1: field 'request.replay.input_sequence_hashes': input_length 40 in blocks of 16 needs exactly 3 hashes, got 2",
    );
    expect(errorOf(rec((r) => delete (r.request as Record<string, unknown>).replay))).toMatch(
      /field 'request.replay': is required/,
    );
    expect(errorOf(rec((r) => ((r.request as Record<string, unknown>).output_tokens = 1e9)))).toMatch(
      /field 'request.output_tokens': 1000000000 is outside \[0, \d+\] tokens/,
    );
    expect(errorOf(rec((r) => ((r.request as Record<string, unknown>).ttft_ms = -1)))).toMatch(
      /field 'request.ttft_ms': must be a number in \[0, 10000000000\], got -1/,
    );
  });

  it('refuses a duplicate request id and a second block size, naming the line', () => {
    const a = dynamoRecord({ id: 'a', at: T0, input: 20, output: 2 });
    expect(errorOf([a, a].join('\n'))).toBe(
      "t:2: field 'request.request_id': 'a' was already read (duplicate record)",
    );
    const other = dynamoRecord({ id: 'b', at: T0, input: 20, output: 2, block: 64 });
    expect(errorOf([a, other].join('\n'))).toBe(
      "t:2: field 'request.replay.trace_block_size': is 64, but earlier rows use 16 (one block size per trace)",
    );
    // Lenient: the bad rows are counted and the rest is used.
    const r = parseTrace([a, a, other].join('\n'), { source: 't', lenient: true });
    expect(r.summary.requests).toBe(1);
    expect(r.summary.badLines).toBe(2);
  });

  it("reads what the twin's writer wrote (the same format on both sides)", async () => {
    const dir = tmp();
    const writer = new RequestTraceWriter({ path: join(dir, 'dynamo-request-trace'), rollLines: 3 });
    for (let i = 0; i < 8; i++)
      writer.write(
        requestEndRecord({
          requestId: `r${i}`,
          model: 'm',
          inputTokens: 100 + i,
          outputTokens: 5,
          receivedUnixMs: T0 + i * 100,
          totalTimeMs: 50,
          traceBlockSize: 32,
          blockIds: i % 2 === 0 ? [1, 2, 3, 4] : [1, 2, 9, 10],
        }),
      );
    await writer.close();
    const { workload: w, summary } = await readTrace(dir);
    expect(summary.format).toBe('dynamo');
    expect(summary.files).toBe(3);
    expect(w.size).toBe(8);
    expect(Array.from(w.inputLength)).toEqual([100, 101, 102, 103, 104, 105, 106, 107]);
    // Requests 0 and 1 share their first two blocks (content ids 1, 2 chained), not the third.
    const ids = (i: number) => Array.from(w.hashIds.slice(w.hashOffsets[i], w.hashOffsets[i + 1]));
    expect(ids(1).slice(0, 2)).toEqual(ids(0).slice(0, 2));
    expect(ids(1)[2]).not.toBe(ids(0)[2]);
    expect(ids(2)).toEqual(ids(0));
    expect(sequenceHashes([1, 2]).length).toBe(2);
  });
});

describe('request-trace directories', () => {
  function writeSegments(dir: string, prefix: string, segments: string[][], gzip = true): string[] {
    return segments.map((lines, i) => {
      const path = join(dir, segmentName(prefix, i).replace(/\.gz$/, gzip ? '.gz' : ''));
      const text = `${lines.join('\n')}\n`;
      // One gzip member per line, as the sink appends one per flush.
      writeFileSync(path, gzip ? Buffer.concat(lines.map((l) => gzipSync(`${l}\n`))) : text);
      return path;
    });
  }

  it('read every segment of every prefix in one pass; messages name the segment and its line', async () => {
    const dir = tmp();
    writeSegments(dir, 'fe-a', [
      [dynamoRecord({ id: 'a1', at: T0, input: 20, output: 2 })],
      [dynamoRecord({ id: 'a2', at: T0 + 10, input: 20, output: 2 }), '{"event":'],
    ]);
    writeSegments(dir, 'fe-b', [[dynamoRecord({ id: 'b1', at: T0 + 5, input: 20, output: 2 })]]);
    writeFileSync(join(dir, 'README'), 'not a segment');
    const strict = await readTrace(dir).catch((e) => e as Error);
    expect((strict as Error).message).toBe(
      `${join(dir, 'fe-a.000001.jsonl.gz')}:2: not valid JSON (Unexpected end of JSON input)`,
    );
    const { workload, summary } = await readTrace(dir, { lenient: true });
    expect(workload.size).toBe(3);
    expect(summary.files).toBe(3);
    expect(summary.lines).toBe(4);
    expect(describeTraceNotes(summary).join('\n')).toContain(
      `1 bad rows skipped (first: ${join(dir, 'fe-a.000001.jsonl.gz')}:2: not valid JSON`,
    );
    // A prefix path selects its own segments.
    expect((await readTrace(join(dir, 'fe-b'))).workload.size).toBe(1);
  });

  it('tolerate a last segment cut mid gzip member or mid line', async () => {
    const dir = tmp();
    const [, second] = writeSegments(dir, 'p', [
      [dynamoRecord({ id: 'a', at: T0, input: 20, output: 2 })],
      [
        dynamoRecord({ id: 'b', at: T0 + 1, input: 20, output: 2 }),
        dynamoRecord({ id: 'c', at: T0 + 2, input: 20, output: 2 }),
      ],
    ]);
    // Cut the second segment inside its second member.
    const size = readFileSync(second).length;
    truncateSync(second, size - 20);
    const { workload, summary } = await readTrace(dir);
    expect(workload.size).toBe(2);
    expect(summary.truncatedFiles).toEqual({ count: 1, first: second });
    expect(describeTraceNotes(summary)[0]).toMatch(/^1 of 2 files end mid gzip member/);
    // Plain JSONL segments: a last line without its newline was being written.
    const plain = tmp();
    const [p0] = writeSegments(
      plain,
      'p',
      [[dynamoRecord({ id: 'a', at: T0, input: 20, output: 2 })]],
      false,
    );
    writeFileSync(p0, `${readFileSync(p0, 'utf8')}{"timestamp": 3, "eve`);
    const r = await readTrace(plain);
    expect(r.workload.size).toBe(1);
    expect(r.summary.truncatedFiles.count).toBe(1);
    // A plain trace file keeps reading its last line without a newline.
    const file = join(plain, 'x.jsonl');
    writeFileSync(file, dynamoRecord({ id: 'a', at: T0, input: 20, output: 2 }));
    expect((await readTrace(file)).workload.size).toBe(1);
  });

  it('select segments by the lookback window', async () => {
    const dir = tmp();
    const paths = writeSegments(dir, 'p', [
      [dynamoRecord({ id: 'old', at: T0 - 3_600_000, input: 20, output: 2 })],
      [dynamoRecord({ id: 'new', at: T0, input: 20, output: 2 })],
    ]);
    utimesSync(paths[0], (T0 - 3_600_000) / 1000, (T0 - 3_600_000) / 1000);
    utimesSync(paths[1], T0 / 1000 + 1, T0 / 1000 + 1);
    const listing = await listSegments(dir, { lookbackMs: 600_000, endMs: T0 + 1000 });
    expect(listing?.segments.map((s) => s.path)).toEqual([paths[1]]);
    expect(listing?.older).toBe(1);
    const r = await readTrace(dir, {
      segments: { lookbackMs: 600_000, endMs: T0 + 1000 },
      windowMs: { from: T0 + 1000 - 600_000, to: T0 + 1001 },
    });
    expect(r.workload.size).toBe(1);
    expect(r.summary.files).toBe(1);
    await expect(readTrace(dir, { segments: { lookbackMs: 1000, endMs: T0 + 3_600_000 } })).rejects.toThrow(
      'no segment was written within the window (2 older segments left out)',
    );
    // Without an end, the newest segment anchors the window (with a margin): both are within 2h + 10 min.
    expect((await listSegments(dir, { lookbackMs: 3_600_000 }))?.segments.length).toBe(2);
  });

  it('say so when a directory holds no segments', async () => {
    const dir = tmp();
    writeFileSync(join(dir, 'notes.txt'), 'x');
    await expect(readTrace(dir)).rejects.toThrow(
      `${dir}: is a directory without request-trace segments (PREFIX.NNNNNN.jsonl.gz, as Dynamo writes them)`,
    );
    await expect(readTrace(join(dir, 'nope'))).rejects.toThrow(`${join(dir, 'nope')}: file not found`);
  });
});

describe('Azure LLM inference CSV', () => {
  const AZURE = [
    'TIMESTAMP,ContextTokens,GeneratedTokens',
    '2023-11-16 18:17:03.9799600,4808,10',
    '2023-11-16 18:17:04.0319600,3180,8',
    '2023-11-16 18:17:05.0000000,110,27',
  ].join('\n');

  it('is detected and read with arrivals relative to the first row, sharing nothing', () => {
    const { workload: w, summary } = parseTrace(AZURE, { source: 'a.csv' });
    expect(summary.format).toBe('azure');
    expect(w.size).toBe(3);
    expect(Array.from(w.arrivalMs).map((x) => Math.round(x * 1000) / 1000)).toEqual([0, 52, 1020.04]);
    expect(Array.from(w.inputLength)).toEqual([4808, 3180, 110]);
    expect(Array.from(w.outputLength)).toEqual([10, 8, 27]);
    expect(new Set(w.hashIds).size).toBe(w.hashIds.length);
    expect(summary.missingHashIds.count).toBe(3);
    expect(traceFormatNames()).toEqual([
      'dynamo',
      'agentic_mooncake',
      'mooncake',
      'mooncake-delta',
      'applied_compute_agentic',
      'azure',
    ]);
  });

  it('takes columns in any order and quoted, gzip too', async () => {
    const text = ['"GeneratedTokens","TIMESTAMP","ContextTokens"', '"5","2024-05-10 00:00:00.5","77"'].join(
      '\r\n',
    );
    const { workload: w } = parseTrace(gzipSync(text), { source: 'a.csv.gz' });
    expect(Array.from(w.inputLength)).toEqual([77]);
    expect(Array.from(w.outputLength)).toEqual([5]);
  });

  it('names the column and line of a bad row', () => {
    const bad = (row: string) => errorOf(`TIMESTAMP,ContextTokens,GeneratedTokens\n${row}`);
    expect(bad('yesterday,1,1')).toBe(
      "t:2: field 'TIMESTAMP': 'yesterday' is not a time such as 2023-11-16 18:17:03.9799600 (UTC)",
    );
    expect(bad('2023-11-16 18:17:03,-4,1')).toBe(
      "t:2: field 'ContextTokens': must be a non-negative integer, got '-4'",
    );
    expect(bad('2023-11-16 18:17:03,0,1')).toBe("t:2: field 'ContextTokens': must be at least 1");
    expect(bad('2023-11-16 18:17:03,5,1,9')).toBe('t:2: has 4 columns; the header has 3');
    expect(bad('2023-11-16 18:17:03,5,99999999999')).toMatch(
      /t:2: field 'GeneratedTokens': 99999999999 is outside \[0, \d+\] tokens/,
    );
    expect(bad('2023-11-16 18:17:03,5,1\n2023-11-16 18:17:02,5,1')).toBe(
      "t:3: field 'TIMESTAMP': '2023-11-16 18:17:02' is before the first row's time (arrivals count from it)",
    );
    expect(errorOf('TIMESTAMP,ContextTokens,GeneratedTokens', { format: 'azure' })).toBe(
      't:1: no usable requests in the trace',
    );
    expect(errorOf('TIMESTAMP,Tokens\n1,2', { format: 'azure' })).toBe(
      't:1: the header must name the columns TIMESTAMP,ContextTokens,GeneratedTokens; missing ContextTokens, GeneratedTokens',
    );
  });

  it('parses timestamps to the sub-millisecond and refuses impossible dates', () => {
    expect(parseAzureTimestamp('2023-11-16 18:17:03.9799600')).toBeCloseTo(
      Date.UTC(2023, 10, 16, 18, 17, 3) + 979.96,
      6,
    );
    expect(parseAzureTimestamp('2023-11-16T18:17:03Z')).toBe(Date.UTC(2023, 10, 16, 18, 17, 3));
    expect(parseAzureTimestamp('2023-13-16 18:17:03')).toBeNaN();
    expect(parseAzureTimestamp('2023-11-16 25:17:03')).toBeNaN();
  });
});
