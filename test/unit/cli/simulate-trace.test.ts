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
    expect(bad.err).toMatch(/unknown trace format 'csv' \(known: dynamo, mooncake, azure/);
  });
});
