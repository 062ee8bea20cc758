import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import type { Workload } from '../../../src/sim/workload/workload.ts';
import {
  describeTraceNotes,
  LARGEST_CATALOGUED_CONTEXT,
  parseTrace,
  readTrace,
  TraceError,
  TraceReader,
  traceFormatNames,
} from '../../../src/telemetry/trace/index.ts';

const row = (o: object) => JSON.stringify(o);
const ok = (o: object = {}) => row({ timestamp: 0, input_length: 10, output_length: 1, hash_ids: [1], ...o });
const SAMPLE = new URL('../../fixtures/traces/conversation-sample.jsonl', import.meta.url);

function errorOf(text: string, opts: object = {}): string {
  try {
    parseTrace(text, { source: 'trace.jsonl', ...opts });
  } catch (e) {
    expect(e).toBeInstanceOf(TraceError);
    return (e as Error).message;
  }
  throw new Error('expected a TraceError');
}

async function readError(path: string, opts: object = {}): Promise<string> {
  try {
    await readTrace(path, opts);
  } catch (e) {
    expect(e).toBeInstanceOf(TraceError);
    return (e as Error).message;
  }
  throw new Error('expected a TraceError');
}

const tmp = () => mkdtempSync(join(tmpdir(), 'servetune-trace-'));

/** The columns of a workload as plain arrays, to compare two reads. */
const columns = (w: Workload) => ({
  size: w.size,
  arrival: Array.from(w.arrivalMs),
  input: Array.from(w.inputLength),
  output: Array.from(w.outputLength),
  offsets: Array.from(w.hashOffsets),
  hashes: Array.from(w.hashIds),
  next: Array.from(w.nextTurn),
  delay: Array.from(w.delayMs),
  session: Array.from(w.session),
  line: Array.from(w.sourceLine ?? []),
});

describe('trace reader: Mooncake rows', () => {
  it('reads rows, aliases and defaults, in arrival then file order', () => {
    const { workload: w } = parseTrace(
      [
        row({ timestamp: 1000, input_length: 700, output_length: 5, hash_ids: [1, 2] }),
        row({ created_time: 1500, input_tokens: 500, output_tokens: 3, hash_ids: [1] }),
        row({ timestamp: 1200, output_length: 4, hash_ids: [3, 4, 5] }),
        row({ timestamp: 1000, input_length: 10, output_length: 0, hash_ids: [9], extra: 'ignored' }),
      ].join('\n'),
      { source: 't' },
    );
    expect(w.size).toBe(4);
    // Sorted by arrival (equal times keep file order) and shifted so the first arrival is 0.
    expect(Array.from(w.arrivalMs)).toEqual([0, 0, 200, 500]);
    expect(Array.from(w.inputLength)).toEqual([700, 10, 1536, 500]);
    expect(Array.from(w.outputLength)).toEqual([5, 0, 4, 3]);
    expect(w.sourceLine ? Array.from(w.sourceLine) : []).toEqual([1, 4, 3, 2]);
  });

  it('links session turns and infers think time from timestamps when no delay is given', () => {
    const { workload: w } = parseTrace(
      [
        row({ session_id: 'a', timestamp: 0, input_length: 100, output_length: 2, hash_ids: [1] }),
        row({ session_id: 'b', timestamp: 50, input_length: 100, output_length: 2, hash_ids: [2] }),
        row({ session_id: 'a', timestamp: 400, input_length: 600, output_length: 2, hash_ids: [1, 7] }),
        row({ session_id: 'a', delay: 30, input_length: 700, output_length: 2, hash_ids: [1, 7, 8] }),
      ].join('\n'),
      { source: 't' },
    );
    expect(w.size).toBe(4);
    expect(w.nextTurn[0]).toBe(2);
    expect(w.nextTurn[2]).toBe(3);
    expect(w.nextTurn[1]).toBe(-1);
    expect(Number.isNaN(w.arrivalMs[2])).toBe(true);
    expect(w.delayMs[2]).toBe(400);
    expect(w.delayMs[3]).toBe(30);
  });

  it('names the file, line and field of bad input', () => {
    expect(errorOf(`${ok()}\n{not json`)).toMatch(/^trace\.jsonl:2: not valid JSON/);
    expect(errorOf(ok({ input_length: -3 }))).toBe(
      "trace.jsonl:1: field 'input_length': must not be negative, got -3",
    );
    expect(errorOf(ok({ input_length: 10.5 }))).toBe(
      "trace.jsonl:1: field 'input_length': must be an integer, got 10.5",
    );
    expect(errorOf(row({ timestamp: 0, input_length: 10, hash_ids: [1] }))).toBe(
      "trace.jsonl:1: field 'output_length': is required",
    );
    expect(errorOf(ok({ output_length: -1 }))).toMatch(/field 'output_length': must not be negative/);
    expect(errorOf(ok({ input_length: 1100, hash_ids: [1, 2] }))).toBe(
      "trace.jsonl:1: field 'input_length': 1100 exceeds the 1024 tokens its 2 hash_ids cover (512 tokens each)",
    );
    expect(errorOf(ok({ timestamp: 'x' }))).toMatch(/^trace\.jsonl:1: field 'timestamp': /);
    expect(errorOf(row({ input_length: 10, output_length: 1, hash_ids: [1] }))).toBe(
      "trace.jsonl:1: field 'timestamp': is required",
    );
    expect(errorOf(ok({ hash_ids: [1, -2] }))).toMatch(/field 'hash_ids': must hold non-negative integers/);
    expect(errorOf(`${ok()}\n[1,2]`)).toBe('trace.jsonl:2: expected a JSON object');
    expect(errorOf('\n\n')).toMatch(/no usable requests/);
    expect(errorOf(row({ session_id: 's', delay: 5, input_length: 10, output_length: 1 }))).toBe(
      "trace.jsonl:1: field 'delay': is only valid on follow-up turns",
    );
  });

  it('bounds every number at parse, naming the field (no RangeError, no allocation from the value)', () => {
    const max = LARGEST_CATALOGUED_CONTEXT;
    expect(errorOf(ok({ output_length: 1e12 }))).toBe(
      `trace.jsonl:1: field 'output_length': 1000000000000 is outside [0, ${max}] tokens`,
    );
    expect(errorOf(ok({ output_tokens: 1e12, output_length: undefined }))).toMatch(
      /field 'output_tokens': 1000000000000 is outside/,
    );
    expect(errorOf(ok({ input_length: 1e12, hash_ids: undefined }))).toMatch(
      /field 'input_length': 1000000000000 is outside \[1, \d+\] tokens \(the largest context of any catalogued model\)/,
    );
    // 1e400 parses to Infinity.
    expect(errorOf('{"timestamp": 1e400, "input_length": 10, "output_length": 1}')).toBe(
      `trace.jsonl:1: field 'timestamp': "Infinity" is outside [0, 10000000000000] ms`,
    );
    expect(errorOf(ok({ timestamp: 1e15 }))).toMatch(/field 'timestamp': 1000000000000000 is outside/);
    expect(
      errorOf(
        [
          row({ session_id: 's', timestamp: 0, input_length: 10, output_length: 1 }),
          row({ session_id: 's', delay: 1e11, input_length: 10, output_length: 1 }),
        ].join('\n'),
      ),
    ).toMatch(/^trace\.jsonl:2: field 'delay': 100000000000 is outside \[0, 10000000000\] ms/);
    const many = Array.from({ length: Math.ceil(max / 512) + 1 }, (_, i) => i);
    expect(errorOf(ok({ input_length: undefined, hash_ids: many }))).toMatch(
      /field 'hash_ids': \d+ ids cover \d+ tokens, more than the \d+-token prompt limit/,
    );
    expect(errorOf(ok({ hash_ids: [1e20] }))).toMatch(/field 'hash_ids': must hold integers in \[0, 2\^53\)/);
    expect(errorOf(ok({ session_id: 'x'.repeat(2000) }))).toMatch(/field 'session_id': longer than 1024/);
    // A larger bound (a custom model with a longer context) is accepted when the caller says so.
    const w = parseTrace(ok({ input_length: 300_000, hash_ids: undefined }), {
      source: 't',
      bounds: { maxPromptTokens: 1_000_000 },
    }).workload;
    expect(w.inputLength[0]).toBe(300_000);
  });

  it('in lenient mode skips and counts bad lines', () => {
    const r = parseTrace([ok(), '{bad', row({ timestamp: 1 }), ok({ output_length: 1e12 })].join('\n'), {
      source: 't',
      lenient: true,
    });
    expect(r.workload.size).toBe(1);
    expect(r.badLines).toBe(3);
    expect(r.issues.map((i) => i.line)).toEqual([2, 3, 4]);
    expect(describeTraceNotes(r.summary).at(-1)).toMatch(
      /^3 bad rows skipped \(first: line 2: not valid JSON/,
    );
  });

  it('counts missing and extra hash_ids and unsorted or repeated timestamps, with their first line', () => {
    const r = parseTrace(
      [
        ok({ timestamp: 10 }),
        ok({ timestamp: 10, hash_ids: undefined }),
        ok({ timestamp: 5, hash_ids: [1, 2, 3] }),
        ok({ timestamp: 20, input_length: 600, hash_ids: [4, 5, 6, 7] }),
        ok({ timestamp: 20, hash_ids: [] }),
      ].join('\n'),
      { source: 't' },
    );
    const s = r.summary;
    expect(s.missingHashIds).toEqual({ count: 2, firstLine: 2, firstSource: 't' });
    expect(s.extraHashIds).toEqual({ count: 2, firstLine: 3, firstSource: 't' });
    expect(s.unsortedTimestamps).toEqual({ count: 1, firstLine: 3, firstSource: 't' });
    expect(s.duplicateTimestamps).toEqual({ count: 2, firstLine: 2, firstSource: 't' });
    // Extra ids are dropped: 600 tokens need 2 ids of 512.
    const w = r.workload;
    const at = Array.from(w.sourceLine ?? []).indexOf(4);
    expect(w.hashOffsets[at + 1] - w.hashOffsets[at]).toBe(2);
    // Unsorted rows are replayed in timestamp order.
    expect(Array.from(w.sourceLine ?? [])).toEqual([3, 1, 2, 4, 5]);
    expect(describeTraceNotes(s)).toEqual([
      '2 rows without hash_ids (first: line 2): their prompts share no prefix with any other request',
      '2 rows with more hash_ids than input_length covers (first: line 3): the extra ids are ignored',
      '1 requests timestamped before a row above them (first: line 3): replayed in timestamp order',
      '2 requests with the same timestamp as the latest row above them (first: line 2): they arrive together, in file order',
    ]);
  });

  it('accepts CRLF line ends and a byte-order mark', () => {
    const r = parseTrace(`\uFEFF${ok()}\r\n${ok({ timestamp: 3 })}\r\n`, { source: 't' });
    expect(r.workload.size).toBe(2);
    expect(r.lines).toBe(2);
  });
});

describe('trace reader: formats', () => {
  it('detects the format from the first row, or takes a forced one', () => {
    expect(parseTrace(ok(), { source: 't' }).summary.format).toBe('mooncake');
    expect(parseTrace(ok(), { source: 't', format: 'mooncake' }).summary.format).toBe('mooncake');
    expect(traceFormatNames()).toContain('mooncake');
    expect(errorOf(ok(), { format: 'parquet' })).toBe(
      `trace.jsonl: unknown trace format 'parquet' (known: ${traceFormatNames().join(', ')})`,
    );
    expect(errorOf('time,prompt,output\n1,2,3')).toMatch(
      /^trace\.jsonl:1: cannot tell the trace format from this row \(known formats: dynamo, agentic_mooncake, mooncake, mooncake-delta, applied_compute_agentic, azure; name one to force it\)/,
    );
  });
});

describe('trace reader: files, streams and limits', () => {
  it('reads a file incrementally to the same workload as the whole text', async () => {
    const text = readFileSync(SAMPLE, 'utf8');
    const whole = parseTrace(text, { source: 's' });
    const streamed = await readTrace(SAMPLE.pathname);
    expect(columns(streamed.workload)).toEqual(columns(whole.workload));
    expect(streamed.summary.bytes).toBe(Buffer.byteLength(text));
    expect(streamed.summary.compressed).toBe(false);
  });

  it('cuts lines correctly across any chunk boundary, multi-byte characters included', async () => {
    const text = [
      row({ session_id: 'é🙂', timestamp: 0, input_length: 10, output_length: 1, hash_ids: [1] }),
      row({ session_id: 'é🙂', delay: 2, input_length: 600, output_length: 1, hash_ids: [1, 2] }),
      ok({ timestamp: 7 }),
    ].join('\n');
    const bytes = Buffer.from(text);
    const whole = parseTrace(text, { source: 's' });
    for (const size of [1, 2, 3, 7, 64]) {
      async function* chunks() {
        for (let i = 0; i < bytes.length; i += size) yield bytes.subarray(i, i + size);
      }
      const r = await readTrace({ stream: chunks(), source: 'stdin' });
      expect(columns(r.workload), `chunks of ${size}`).toEqual(columns(whole.workload));
      expect(r.summary.sessions).toBe(1);
    }
  });

  it('reads gzip transparently: by .gz name or by magic bytes, from files, streams and memory', async () => {
    const text = readFileSync(SAMPLE, 'utf8');
    const whole = columns(parseTrace(text, { source: 's' }).workload);
    const dir = tmp();
    const gz = gzipSync(text);
    writeFileSync(join(dir, 'a.jsonl.gz'), gz);
    writeFileSync(join(dir, 'b.jsonl'), gz); // compressed under a plain name
    for (const name of ['a.jsonl.gz', 'b.jsonl']) {
      const r = await readTrace(join(dir, name));
      expect(r.summary.compressed).toBe(true);
      expect(r.summary.bytes).toBe(Buffer.byteLength(text));
      expect(columns(r.workload)).toEqual(whole);
    }
    async function* chunks() {
      for (let i = 0; i < gz.length; i += 1000) yield gz.subarray(i, i + 1000);
    }
    expect(columns((await readTrace({ stream: chunks(), source: 'stdin' })).workload)).toEqual(whole);
    expect(columns(parseTrace(gz, { source: 'mem' }).workload)).toEqual(whole);
    // Multi-member gzip (concatenated files) reads as one text.
    const half = text.indexOf('\n', text.length / 2) + 1;
    writeFileSync(
      join(dir, 'c.gz'),
      Buffer.concat([gzipSync(text.slice(0, half)), gzipSync(text.slice(half))]),
    );
    expect(columns((await readTrace(join(dir, 'c.gz'))).workload)).toEqual(whole);
  });

  it('reports a corrupt gzip stream by file instead of a zlib stack', async () => {
    const dir = tmp();
    const gz = gzipSync(readFileSync(SAMPLE));
    const p = join(dir, 'bad.gz');
    writeFileSync(p, gz.subarray(0, 5000)); // truncated
    expect(await readError(p)).toMatch(
      new RegExp(`^${p}(:\\d+)?: not a valid gzip stream \\(unexpected end of file\\)`),
    );
  });

  it('refuses a missing file, a directory and a FIFO by path, without hanging', async () => {
    expect(await readError('/nonexistent/trace.jsonl')).toBe('/nonexistent/trace.jsonl: file not found');
    const dir = tmp();
    expect(await readError(dir)).toBe(
      `${dir}: is a directory without request-trace segments (PREFIX.NNNNNN.jsonl.gz, as Dynamo writes them); give a trace file or such a directory`,
    );
    const fifo = join(dir, 'pipe');
    execFileSync('mkfifo', [fifo]);
    expect(await readError(fifo)).toMatch(new RegExp(`^${fifo}: is a FIFO, not a regular file`));
    mkdirSync(join(dir, 'd.jsonl'));
    expect(await readError(join(dir, 'd.jsonl'))).toMatch(/is a directory/);
  });

  it('enforces the byte, row and line-length limits', async () => {
    const dir = tmp();
    const p = join(dir, 't.jsonl');
    writeFileSync(p, `${ok()}\n${ok({ timestamp: 1 })}\n${ok({ timestamp: 2 })}\n`);
    expect(await readError(p, { limits: { maxBytes: 100 } })).toMatch(
      /t\.jsonl(:\d+)?: larger than 100 bytes \(the size limit of this reader\)/,
    );
    expect(await readError(p, { limits: { maxRows: 2 } })).toBe(
      `${p}:3: more than 2 rows (the row limit of this reader)`,
    );
    const long = ok({ pad: 'x'.repeat(5000) });
    writeFileSync(p, `${ok()}\n${long}\n${ok({ timestamp: 1 })}\n`);
    expect(await readError(p, { limits: { maxLineChars: 1000 } })).toBe(
      `${p}:2: longer than 1000 characters`,
    );
    const lenient = await readTrace(p, { lenient: true, limits: { maxLineChars: 1000 } });
    expect(lenient.workload.size).toBe(2);
    expect(lenient.badLines).toBe(1);
    // The same limits apply to text in memory.
    expect(() => parseTrace(`${ok()}\n${long}`, { source: 'm', limits: { maxLineChars: 1000 } })).toThrow(
      'm:2: longer than 1000 characters',
    );
    const bomb = gzipSync(Buffer.alloc(5_000_000, 32));
    expect(() => parseTrace(bomb, { source: 'z', limits: { maxBytes: 1_000_000 } })).toThrow(
      /^z: inflates to more than 1000000 bytes/,
    );
  });

  it('hands out requests a chunk at a time with a live summary', async () => {
    const lines = Array.from({ length: 5000 }, (_, i) => ok({ timestamp: i }));
    const bytes = Buffer.from(lines.join('\n'));
    async function* chunks() {
      for (let i = 0; i < bytes.length; i += 4096) yield bytes.subarray(i, i + 4096);
    }
    const reader = new TraceReader({ stream: chunks(), source: 's' });
    let batches = 0;
    let total = 0;
    for await (const b of reader.batches()) {
      batches++;
      total += b.length;
      expect(reader.summary.requests).toBe(total);
    }
    expect(total).toBe(5000);
    expect(batches).toBeGreaterThan(10);
    expect(reader.summary.lines).toBe(5000);
  });
});
