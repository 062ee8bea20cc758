import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { cli } from '../../support/cli.ts';
import { FIXTURES } from '../../support/sim.ts';

const sample = `${FIXTURES}traces/conversation-sample.jsonl`;
const row = (o: object) =>
  JSON.stringify({ timestamp: 0, input_length: 100, output_length: 5, hash_ids: [1], ...o });

describe('servetune simulate: reading traces', () => {
  it('reads a gzip-compressed trace to the same report as the plain one', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'servetune-'));
    const gz = join(dir, 'sample.jsonl.gz');
    writeFileSync(gz, gzipSync(readFileSync(sample)));
    const reports = [];
    for (const trace of [sample, gz]) {
      const json = join(dir, 'r.json');
      const r = await cli(
        'simulate',
        '--trace',
        trace,
        '--workers',
        '2',
        '--block-size',
        '512',
        '--json',
        json,
      );
      expect(r.code, r.err).toBe(0);
      const { report } = JSON.parse(readFileSync(json, 'utf8'));
      reports.push({ ...report, wall_s: 0, simulator: { ...report.simulator, events_per_s: 0 } });
    }
    expect(reports[1]).toEqual(reports[0]);
  });

  it('refuses a directory without request-trace segments or an absurd row with one message and exit 2', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'servetune-'));
    const d = await cli('simulate', '--trace', dir, '--workers', '1');
    expect(d.code).toBe(2);
    expect(d.err.trim()).toBe(
      `servetune simulate: ${dir}: is a directory without request-trace segments (PREFIX.NNNNNN.jsonl.gz, as Dynamo writes them); give a trace file or such a directory`,
    );
    const p = join(dir, 't.jsonl');
    writeFileSync(p, `${row({})}\n${row({ output_length: 1e12 })}\n`);
    const big = await cli('simulate', '--trace', p, '--workers', '1');
    expect(big.code).toBe(2);
    expect(big.err).toMatch(
      new RegExp(`${p}:2: field 'output_length': 1000000000000 is outside \\[0, \\d+\\] tokens`),
    );
    expect(big.err).not.toMatch(/\bat .*\.ts:\d+/); // no stack trace
  });

  it('says under the summary what it noticed in the trace, with counts and first lines', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'servetune-'));
    const p = join(dir, 't.jsonl');
    writeFileSync(
      p,
      [
        row({ timestamp: 10 }),
        row({ timestamp: 5, hash_ids: undefined }),
        row({ timestamp: 5, hash_ids: [1, 2, 3] }),
        row({ timestamp: 10 }),
      ].join('\n'),
    );
    const r = await cli('simulate', '--trace', p, '--workers', '1');
    expect(r.code, r.err).toBe(0);
    expect(r.out).toContain('trace: 1 rows without hash_ids (first: line 2)');
    expect(r.out).toContain('trace: 1 rows with more hash_ids than input_length covers (first: line 3)');
    expect(r.out).toContain('trace: 2 requests timestamped before a row above them (first: line 2)');
    expect(r.out).toContain(
      'trace: 1 requests with the same timestamp as the latest row above them (first: line 4)',
    );
  });

  it('takes a forced format and names the known ones for an unknown one', async () => {
    const ok = await cli(
      'simulate',
      '--trace',
      sample,
      '--trace-format',
      'mooncake',
      '--workers',
      '1',
      '--quiet',
    );
    expect(ok.code, ok.err).toBe(0);
    const bad = await cli('simulate', '--trace', sample, '--trace-format', 'csv', '--workers', '1');
    expect(bad.code).toBe(2);
    expect(bad.err).toMatch(
      /unknown trace format 'csv' \(known: dynamo, agentic_mooncake, mooncake, mooncake-delta, applied_compute_agentic, azure/,
    );
  });
});

describe('servetune simulate: bounds, costs and outcomes', () => {
  it('bounds what a run may ask for at validation, naming the flag', async () => {
    const synth = ['--input-tokens', '100', '--output-tokens', '10', '--request-rate', '1'];
    for (const [args, message] of [
      [['--workers', '100000', '--request-count', '5', ...synth], /--workers: must be at most 10,000/],
      [['--request-count', '1e9', ...synth], /--request-count: must be at most 100,000,000/],
      [
        ['--request-count', '5', '--input-tokens', '1e12', '--output-tokens', '10', '--request-rate', '1'],
        /--input-tokens: must be at most 196,608/,
      ],
      [
        ['--request-count', '5', '--input-tokens', '10', '--output-tokens', '1e12', '--request-rate', '1'],
        /--output-tokens: must be at most 196,608/,
      ],
    ] as const) {
      const r = await cli('simulate', ...args);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.err).toMatch(message);
      expect(r.err.trim().split('\n')).toHaveLength(1);
    }
  });

  it('refuses a run that cannot fit in memory before building anything, saying what to lower', async () => {
    const r = await cli(
      'simulate',
      '--request-count',
      '100000000',
      '--input-tokens',
      '100000',
      '--output-tokens',
      '300',
      '--request-rate',
      '1',
    );
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/this run needs about [\d.]+ GB of memory \(.*the requests held in memory/);
    expect(r.err).toMatch(/lower --request-count/);
  });

  it('counts requests with no output and says what they are left out of; names rejected requests by line', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'servetune-'));
    const p = join(dir, 't.jsonl');
    writeFileSync(
      p,
      [
        row({ timestamp: 0, output_length: 0 }),
        row({ timestamp: 1 }),
        row({ timestamp: 2, input_length: 100_000, hash_ids: Array.from({ length: 196 }, (_, i) => i + 10) }),
        row({ timestamp: 3, output_length: 0 }),
      ].join('\n'),
    );
    const json = join(dir, 'r.json');
    const r = await cli(
      'simulate',
      '--trace',
      p,
      '--workers',
      '1',
      '--num-gpu-blocks',
      '1000',
      '--json',
      json,
    );
    expect(r.code, r.err).toBe(0);
    const { report } = JSON.parse(readFileSync(json, 'utf8'));
    expect(report.completed_requests).toBe(3);
    expect(report.zero_output_requests).toBe(2);
    expect(report.e2e_ms.count).toBe(3);
    expect(report.ttft_ms.count).toBe(1);
    expect(r.out).toContain(
      'no output: 2 completed requests asked for no tokens (output_length 0): counted in end-to-end and queue times, left out of TTFT, TPOT and ITL',
    );
    expect(r.out).toMatch(/rejected: 1 requests, prompt larger than the KV cache \(first: line 3\)/);
  });

  it('rejects up front, with its trace line and reason, an SGLang request that can never fit its worker', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'servetune-'));
    const p = join(dir, 't.jsonl');
    const big = (ts: number, first: number) =>
      row({
        timestamp: ts,
        input_length: 60_000,
        output_length: 10,
        hash_ids: Array.from({ length: 118 }, (_, i) => first + i),
      });
    writeFileSync(
      p,
      [big(0, 1000), row({ timestamp: 1 }), big(2, 2000), row({ timestamp: 3, hash_ids: [7] })].join('\n'),
    );
    const json = join(dir, 'r.json');
    const r = await cli(
      'simulate',
      '--trace',
      p,
      '--engine',
      'sglang',
      '--workers',
      '1',
      '--num-gpu-blocks',
      '500',
      '--json',
      json,
    );
    expect(r.code, r.err).toBe(0);
    const { report } = JSON.parse(readFileSync(json, 'utf8'));
    expect(report.completed_requests).toBe(2);
    expect(report.rejected_requests).toBe(2);
    expect(report.incomplete_requests).toBe(0);
    expect(r.out).toMatch(
      /rejected: 2 requests, prompt plus output larger than the KV cache \(first: line 1, line 3\)/,
    );
  });
});
