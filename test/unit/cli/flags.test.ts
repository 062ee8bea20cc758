import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { flagsFromSchema } from '../../../src/cli/flags.ts';
import { fieldAt } from '../../../src/cli/schema-fields.ts';
import { SIMULATE_FLAGS } from '../../../src/cli/simulate-flags.ts';
import { SimulationConfigSchema } from '../../../src/config/schema.ts';
import { SearchSpaceSchema } from '../../../src/sweep/space.ts';
import { cli } from '../../support/cli.ts';
import { FIXTURES } from '../../support/sim.ts';

const dir = mkdtempSync(join(tmpdir(), 'servetune-flags-'));

describe('flags derived from the configuration schema', () => {
  it('every flag with a path names a schema field, and its help shows that field default', () => {
    for (const f of SIMULATE_FLAGS) {
      if (f.path === null) continue;
      const field = fieldAt(SimulationConfigSchema, f.path);
      expect(field, `--${f.name}`).toBeDefined();
      const d = field?.default;
      if (d !== undefined && typeof d !== 'object' && f.kind !== 'negate' && f.kind !== 'boolean') {
        expect(f.help, `--${f.name}`).toMatch(new RegExp(`\\(default ${String(d).replace('.', '\\.')}\\)$`));
      }
    }
    const seqs = SIMULATE_FLAGS.find((f) => f.name === 'max-num-seqs');
    expect(seqs).toMatchObject({ kind: 'int', help: 'running requests per worker (default 256)' });
    // Enum values come from the schema: the help lists them, the parser accepts only them.
    const policy = SIMULATE_FLAGS.find((f) => f.name === 'offload-policy');
    expect(Object.values(policy?.values ?? {}).sort()).toEqual(['on-evict', 'write-through']);
  });

  it('sweep --help shows the search-space defaults from its schema', async () => {
    const r = await cli('sweep', '--help');
    const tp = fieldAt(SearchSpaceSchema, 'tensorParallel')?.default as number[];
    expect(r.out).toMatch(
      new RegExp(`--tp LIST +tensor-parallel sizes, e\\.g\\. 1,2,4 \\(default ${tp.join(',')}\\)`),
    );
    expect(r.out).toMatch(/--model VALUE +model served \(required unless --timing polynomial\)/);
  });

  it('refuses a table that drifted from the schema', () => {
    const schema = SimulationConfigSchema;
    expect(() => flagsFromSchema([{ name: 'x', path: 'engine.noSuchField' }], schema)).toThrow(
      /no field 'engine.noSuchField'/,
    );
    expect(() =>
      flagsFromSchema([{ name: 'x', path: 'workers', kind: 'string', help: 'h' }], schema),
    ).toThrow(/kind string does not fit field workers/);
    expect(() =>
      flagsFromSchema([{ name: 'x', path: 'engine.engine', values: { tgi: 'tgi' } }], schema),
    ).toThrow(/'tgi' is not a value of engine.engine/);
  });

  it('rejects a value outside the schema enum at the flag, naming the allowed ones', async () => {
    const r = await cli(
      'simulate',
      '--trace',
      `${FIXTURES}traces/conversation-sample.jsonl`,
      '--offload-policy',
      'lazy',
    );
    expect(r.code).toBe(2);
    expect(r.err).toBe(
      "servetune simulate: --offload-policy: unknown value 'lazy' (expected one of write-through, on-evict)\n",
    );
  });
});

describe('odd flag values get one clear line', () => {
  const trace = `${FIXTURES}traces/conversation-sample.jsonl`;
  const planner = join(dir, 'empty.yaml');
  writeFileSync(planner, '');
  const big = join(dir, 'big.yaml');
  writeFileSync(big, `# ${'x'.repeat(4 * 2 ** 20 - 2)}\n`);
  const fifo = join(dir, 'fifo.yaml');
  execFileSync('mkfifo', [fifo]);
  const cases: [string, string[], string][] = [
    [
      'a negative value not attached',
      ['--seed', '-1'],
      "--seed: a value starting with '-' goes after '=': --seed=-1",
    ],
    ['a hexadecimal number', ['--workers', '0x10'], "--workers: expected a number, got '0x10'"],
    ['an empty output path', ['--json', ''], '--json: empty value'],
    ['an empty config path', ['--config='], '--config: empty value'],
    ['a directory as config', ['--config', dir], `${dir}: is a directory, not a file`],
    [
      'an empty planner file',
      ['--planner', planner],
      `${planner}: expected a mapping of settings, got an empty file (see config/examples/planner.yaml)`,
    ],
    [
      'a config file too big to be settings',
      ['--config', big],
      `${big}: 4,194,305 bytes; a settings file may have at most 4,194,304`,
    ],
    ['a FIFO as config (never opened, so nothing blocks)', ['--config', fifo], `${fifo}: not a regular file`],
  ];
  it.each(cases)('%s', async (_name, argv, message) => {
    const r = await cli('simulate', '--trace', trace, ...argv);
    expect(r.code).toBe(2);
    expect(r.err).toBe(`servetune simulate: ${message}\n`);
  });

  it('a negative value attached with = is read', async () => {
    const r = await cli('simulate', '--trace', trace, '--seed=-1', '--quiet', '--max-sim-time', '1');
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
  });
});

describe('one SLO grammar for simulate and sweep', () => {
  it('simulate --slo takes percentiles as sweep does, reports each against the run and counts goodput', async () => {
    const json = join(dir, 'slo.json');
    const r = await cli(
      'simulate',
      ...['--trace', `${FIXTURES}traces/conversation-sample.jsonl`, '--workers', '4'],
      ...['--slo', 'ttft_p90=2000ms,e2e_p99=1s', '--json', json],
    );
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/SLO ttft_p90 <= 2,000 ms\s+[\d,.]+ ms \((met|missed by [\d,.]+ %)\)/);
    expect(r.out).toMatch(/SLO e2e_p99 <= 1,000 ms\s+[\d,.]+ ms \(missed by [\d,.]+ %\)/);
    const doc = JSON.parse(readFileSync(json, 'utf8'));
    expect(doc.slos).toHaveLength(2);
    expect(doc.slos[0]).toMatchObject({ slo: 'ttft_p90', maxMs: 2000, value: doc.report.ttft_ms.p90 });
    expect(doc.slos[0].met).toBe(doc.report.ttft_ms.p90 <= 2000);
    expect(doc.slos[1]).toMatchObject({ slo: 'e2e_p99', met: false, value: doc.report.e2e_ms.p99 });
    // Each bound also counts a request toward goodput.
    expect(doc.config.slo).toEqual({ ttftMs: 2000, e2eMs: 1000 });
    expect(doc.report.goodput.fraction).toBeLessThan(1);
  });

  it('refuses what neither command reads, with the same message', async () => {
    const trace = `${FIXTURES}traces/conversation-sample.jsonl`;
    const sim = await cli('simulate', '--trace', trace, '--slo', 'latency=2s');
    const sweep = await cli(
      'sweep',
      '--trace',
      trace,
      '--gpus',
      'h100:2',
      '--timing',
      'polynomial',
      '--slo',
      'latency=2s',
    );
    expect(sim.code).toBe(2);
    expect(sweep.code).toBe(2);
    const message = "--slo: cannot read 'latency=2s' (expected e.g. ttft_p90=2000ms)";
    expect(sim.err).toBe(`servetune simulate: ${message}\n`);
    expect(sweep.err).toBe(`servetune sweep: ${message}\n`);
  });
});
