import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { main } from '../../../src/cli/main.ts';
import { FIXTURES } from '../../support/sim.ts';

async function cli(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  const out = new PassThrough();
  const err = new PassThrough();
  let o = '';
  let e = '';
  out.on('data', (d) => {
    o += d;
  });
  err.on('data', (d) => {
    e += d;
  });
  const code = await main(argv, out, err);
  return { code, out: o, err: e };
}

const sample = `${FIXTURES}traces/conversation-sample.jsonl`;

describe('servetune simulate', () => {
  it('replays the bundled trace, prints a summary and writes the JSON report', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'servetune-'));
    const json = join(dir, 'report.json');
    const r = await cli(
      'simulate',
      '--trace',
      sample,
      '--workers',
      '4',
      '--block-size',
      '512',
      '--json',
      json,
    );
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/TTFT\s+[\d,.]+/);
    expect(r.out).toMatch(/completed requests\s+2,000/);
    const { report } = JSON.parse(readFileSync(json, 'utf8'));
    for (const k of [
      'completed_requests',
      'simulated_duration_s',
      'wall_s',
      'output_throughput_tok_s',
      'request_throughput_rps',
      'prefix_cache_reused_ratio',
      'gpu_hours',
      'preemptions',
    ]) {
      expect(report, k).toHaveProperty(k);
    }
    for (const k of ['ttft_ms', 'tpot_ms', 'itl_ms', 'e2e_ms']) {
      for (const s of ['mean', 'p50', 'p90', 'p99']) expect(typeof report[k][s], `${k}.${s}`).toBe('number');
    }
    expect(report.completed_requests).toBe(2000);
    expect(report.gpu_hours).toBeCloseTo((4 * report.simulated_duration_s) / 3600, 9);
  });

  it('takes the same settings from a config file, with flags overriding it', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'servetune-'));
    const cfg = join(dir, 'sim.yaml');
    writeFileSync(cfg, `workers: 2\nengine:\n  blockSize: 512\nworkload:\n  trace: ${sample}\n`);
    const json = join(dir, 'r.json');
    const r = await cli('simulate', '--config', cfg, '--workers', '3', '--json', json, '--quiet');
    expect(r.code).toBe(0);
    expect(r.out).toBe('');
    const { config } = JSON.parse(readFileSync(json, 'utf8'));
    expect(config.workers).toBe(3);
    expect(config.engine.blockSize).toBe(512);
  });

  it('runs synthetic traffic', async () => {
    const r = await cli(
      'simulate',
      '--request-count',
      '50',
      '--input-tokens',
      '1000',
      '--output-tokens',
      '20',
      '--request-rate',
      '5',
      '--slo',
      'ttft=500ms,itl=50ms',
    );
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/goodput/);
  });

  it('simulates the SGLang scheduler with --engine sglang', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'servetune-'));
    const json = join(dir, 'report.json');
    const r = await cli(
      'simulate',
      '--trace',
      sample,
      '--workers',
      '2',
      '--engine',
      'sglang',
      '--page-size',
      '32',
      '--schedule-policy',
      'lpm',
      '--chunked-prefill-size',
      '4096',
      '--json',
      json,
    );
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/2 x SGLang worker\(s\).*page 32/);
    expect(r.out).toMatch(/completed requests\s+2,000/);
    const { config, report } = JSON.parse(readFileSync(json, 'utf8'));
    expect(config.engine).toMatchObject({
      engine: 'sglang',
      blockSize: 32,
      schedulePolicy: 'lpm',
      chunkedPrefillSize: 4096,
    });
    expect(report.completed_requests).toBe(2000);
  });

  const bad: [string, string[], RegExp][] = [
    ['unknown engine', ['--trace', sample, '--engine', 'tgi'], /--engine: unknown value 'tgi'/],

    [
      'missing trace file',
      ['--trace', '/nope/x.jsonl'],
      /^servetune simulate: \/nope\/x\.jsonl: file not found\n$/,
    ],
    ['unknown flag', ['--trace', sample, '--wrkers', '2'], /unknown option '--wrkers'/],
    [
      'non-numeric value',
      ['--trace', sample, '--workers', 'many'],
      /--workers: expected a number, got 'many'/,
    ],
    [
      'non-integer value',
      ['--trace', sample, '--block-size', '6.5'],
      /--block-size: expected an integer, got '6.5'/,
    ],
    ['negative value', ['--trace', sample, '--workers=-1'], /--workers: must be positive/],
    ['bad router', ['--trace', sample, '--router', 'fastest'], /--router: unknown value 'fastest'/],
    ['bad SLO', ['--trace', sample, '--slo', 'ttft=fast'], /--slo: cannot read 'ttft=fast'/],
    ['no workload', [], /no workload/],
    [
      'synthetic without a rate',
      ['--request-count', '5', '--input-tokens', '10', '--output-tokens', '2'],
      /requestRate/,
    ],
  ];
  for (const [name, argv, pattern] of bad) {
    it(`exits 2 with one clear line on ${name}`, async () => {
      const r = await cli('simulate', ...argv);
      expect(r.code).toBe(2);
      expect(r.err).toMatch(pattern);
      expect(r.err).not.toMatch(/\n\s+at /); // no stack trace
    });
  }

  it('names the line and field of a malformed trace', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'servetune-'));
    const t = join(dir, 'bad.jsonl');
    writeFileSync(
      t,
      '{"timestamp":0,"input_length":10,"output_length":2,"hash_ids":[1]}\n{"timestamp":1,"input_length":-4,"output_length":2,"hash_ids":[1]}\n',
    );
    const r = await cli('simulate', '--trace', t);
    expect(r.code).toBe(2);
    expect(r.err).toBe(`servetune simulate: ${t}:2: field 'input_length': must not be negative, got -4\n`);
  });

  it('names the config file and field of a bad config', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'servetune-'));
    const cfg = join(dir, 'c.yaml');
    writeFileSync(cfg, `workers: 2\nengine:\n  blockSize: 0\nworkload:\n  trace: ${sample}\n`);
    const r = await cli('simulate', '--config', cfg);
    expect(r.code).toBe(2);
    expect(r.err).toContain(`${cfg}: field 'engine.blockSize': must be positive`);
    writeFileSync(cfg, 'workers: [1\n');
    const r2 = await cli('simulate', '--config', cfg);
    expect(r2.code).toBe(2);
    expect(r2.err).toMatch(/c\.yaml(:\d+)?: not valid YAML\/JSON/);
  });
});
