import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseMooncake, readMooncakeFile, TraceError } from '../../../src/telemetry/mooncake-trace.ts';

const row = (o: object) => JSON.stringify(o);

function errorOf(text: string): string {
  try {
    parseMooncake(text, { source: 'trace.jsonl' });
  } catch (e) {
    expect(e).toBeInstanceOf(TraceError);
    return (e as Error).message;
  }
  throw new Error('expected a TraceError');
}

describe('Mooncake trace loader', () => {
  it('reads rows, aliases and defaults, in arrival then file order', () => {
    const { workload: w } = parseMooncake(
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
    const { workload: w } = parseMooncake(
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
    expect(
      errorOf(`${row({ timestamp: 0, input_length: 10, output_length: 1, hash_ids: [1] })}\n{not json`),
    ).toMatch(/^trace\.jsonl:2: not valid JSON/);
    expect(errorOf(row({ timestamp: 0, input_length: -3, output_length: 1, hash_ids: [1] }))).toBe(
      "trace.jsonl:1: field 'input_length': must not be negative, got -3",
    );
    expect(errorOf(row({ timestamp: 0, input_length: 10.5, output_length: 1, hash_ids: [1] }))).toBe(
      "trace.jsonl:1: field 'input_length': must be an integer, got 10.5",
    );
    expect(errorOf(row({ timestamp: 0, input_length: 10, hash_ids: [1] }))).toBe(
      "trace.jsonl:1: field 'output_length': is required",
    );
    expect(errorOf(row({ timestamp: 0, input_length: 10, output_length: -1, hash_ids: [1] }))).toMatch(
      /field 'output_length': must not be negative/,
    );
    expect(errorOf(row({ timestamp: 0, input_length: 1100, output_length: 1, hash_ids: [1, 2] }))).toBe(
      "trace.jsonl:1: field 'input_length': 1100 exceeds the 1024 tokens its 2 hash_ids cover (512 tokens each)",
    );
    expect(errorOf(row({ timestamp: 'x', input_length: 10, output_length: 1, hash_ids: [1] }))).toMatch(
      /^trace\.jsonl:1: field 'timestamp': /,
    );
    expect(errorOf(row({ input_length: 10, output_length: 1, hash_ids: [1] }))).toBe(
      "trace.jsonl:1: field 'timestamp': is required",
    );
    expect(errorOf(row({ timestamp: 0, input_length: 10, output_length: 1, hash_ids: [1, -2] }))).toMatch(
      /field 'hash_ids': must hold non-negative integers/,
    );
    expect(errorOf('[1,2]')).toBe('trace.jsonl:1: expected a JSON object');
    expect(errorOf('\n\n')).toMatch(/no usable requests/);
  });

  it('in lenient mode skips and counts bad lines', () => {
    const r = parseMooncake(
      [
        row({ timestamp: 0, input_length: 10, output_length: 1, hash_ids: [1] }),
        '{bad',
        row({ timestamp: 1 }),
      ].join('\n'),
      { source: 't', lenient: true },
    );
    expect(r.workload.size).toBe(1);
    expect(r.badLines).toBe(2);
    expect(r.issues.map((i) => i.line)).toEqual([2, 3]);
  });

  it('reports a missing file by path', async () => {
    await expect(readMooncakeFile('/nonexistent/trace.jsonl')).rejects.toThrow(
      '/nonexistent/trace.jsonl: file not found',
    );
  });

  it('streams a file from disk', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'servetune-'));
    const p = join(dir, 'x.jsonl');
    writeFileSync(p, `${row({ timestamp: 0, input_length: 600, output_length: 2, hash_ids: [1, 2] })}\n`);
    const r = await readMooncakeFile(p);
    expect(r.workload.size).toBe(1);
    expect(r.lines).toBe(1);
  });
});
