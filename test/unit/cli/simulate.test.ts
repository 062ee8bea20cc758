import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { cli } from '../../support/cli.ts';
import { FIXTURES } from '../../support/sim.ts';

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

  it('says when the timing model cannot tell tensor-parallel sizes apart', async () => {
    const synthetic = [
      '--request-count',
      '10',
      '--input-tokens',
      '100',
      '--output-tokens',
      '5',
      '--concurrency',
      '2',
    ];
    const tp2 = await cli('simulate', ...synthetic, '--tp', '2');
    expect(tp2.code).toBe(0);
    expect(tp2.out).toMatch(
      /^note: timing polynomial does not depend on tensor parallelism: TP only multiplies the GPUs counted/m,
    );
    const tp1 = await cli('simulate', ...synthetic);
    expect(tp1.out).not.toMatch(/^note: /m);
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

  it('runs the Planner from a reference-style planner file and reports scaling', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'servetune-'));
    const plan = join(dir, 'planner.yaml');
    writeFileSync(
      plan,
      [
        'mode: agg',
        'optimization_target: sla',
        'enable_load_scaling: true',
        'ttft: 2000',
        'itl_ms: 50',
        'load_adjustment_interval: 10',
        'prefill_engine_num_gpu: 1',
        'decode_engine_num_gpu: 1',
        'environment: kubernetes',
        '',
      ].join('\n'),
    );
    const json = join(dir, 'r.json');
    const r = await cli(
      'simulate',
      ...['--trace', sample, '--workers', '2', '--block-size', '512'],
      ...['--planner', plan, '--startup-time', '20', '--json', json],
    );
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/scaling events \(up \/ down\)\s+\d+ \/ \d+/);
    expect(r.out).toMatch(/GPU-hours held \(starting \/ active \/ draining\)/);
    const { config, report } = JSON.parse(readFileSync(json, 'utf8'));
    expect(config.planner.ttft_ms).toBe(2000);
    expect(config.planner.load_adjustment_interval_seconds).toBe(10);
    expect(config.startupTimeS).toBe(20);
    expect(report.completed_requests).toBe(2000);
    expect(report.scaling_events.total).toBe(report.scaling_events.up + report.scaling_events.down);
    expect(report.scaling_events.total).toBeGreaterThan(0);
    expect(report.replicas_over_time.t_s.length).toBeGreaterThan(1);
    expect(report.planner.gpu_hours_held).toBeCloseTo(report.gpu_hours, 12);
  });

  it('names the planner file and field of a bad planner setting', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'servetune-'));
    const plan = join(dir, 'p.json');
    for (const [body, pattern] of [
      ['{"ttft_ms": -5}', /p\.json: field 'ttft_ms': must be positive/],
      ['{"optimization_target": "cheapest"}', /p\.json: field 'optimization_target'/],
      ['{"fpm_sample_bucket_size": 12}', /p\.json: field 'fpm_sample_bucket_size': must be a perfect square/],
      ['{"mode": "disagg"}', /p\.json: field 'mode': 'disagg' does not match the simulated cluster/],
      ['{"max_gpu_budget": 1}', /p\.json: field 'max_gpu_budget': the cluster starts with 2 GPUs/],
      ['{"optimization_target": "load"}', /p\.json: field 'decode_scale_up_kv_rate': required/],
      ['{"ttft_msec": 3}', /p\.json: .*ttft_msec/],
    ] as const) {
      writeFileSync(plan, body);
      const r = await cli('simulate', '--trace', sample, '--workers', '2', '--planner', plan);
      expect(r.code, body).toBe(2);
      expect(r.err, body).toMatch(pattern);
    }
    const r = await cli('simulate', '--trace', sample, '--planner', join(dir, 'none.yaml'));
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/none\.yaml: file not found/);
  });

  const bad: [string, string[], RegExp][] = [
    ['unknown engine', ['--trace', sample, '--engine', 'tgi'], /--engine: unknown value 'tgi'/],

    ['negative simulated time', ['--trace', sample, '--max-sim-time=-3'], /--max-sim-time: must be positive/],
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
