import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { cli } from '../../support/cli.ts';
import { FIXTURES } from '../../support/sim.ts';

const sample = `${FIXTURES}traces/conversation-sample.jsonl`;
const dir = mkdtempSync(join(tmpdir(), 'servetune-sweep-'));

describe('servetune sweep', () => {
  it('prints the ranking with the recommendation and writes JSON of every candidate', async () => {
    const json = join(dir, 'out.json');
    const r = await cli(
      'sweep',
      '--trace',
      sample,
      '--gpus',
      'h100:4',
      '--tp',
      '1,2',
      '--routers',
      'round-robin',
      '--slo',
      'ttft_p90=2000ms,itl_p90=50ms',
      '--threads',
      '0',
      '--json',
      json,
    );
    expect(r.err).toMatch(/progress: \d+\/\d+ evaluated/);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/<- recommended/);
    expect(r.out).toMatch(/^Recommended: h100 \dx TP\d round-robin/m);
    // The frontier axis (the first SLO, ttft_p90) is the fixed TTFT p90 column, not a second copy of it.
    expect(r.out).toMatch(/tok\/s\/GPU\s+TTFT p90 ms\s+ITL p90 ms/);
    expect(r.out).not.toMatch(/ttft_p90 ms/);
    const doc = JSON.parse(readFileSync(json, 'utf8'));
    expect(doc.candidates.length).toBe(doc.stats.enumerated);
    expect(doc.candidates.every((c: { metrics: unknown }) => c.metrics !== null)).toBe(true);
    expect(doc.recommended.feasible).toBe(true);
    expect(doc.workload.requests).toBe(2000);
  });

  const bad: [string, string[], RegExp][] = [
    ['missing budget', ['--trace', sample], /--gpus is required/],
    ['malformed budget', ['--trace', sample, '--gpus', 'h100=16'], /--gpus: cannot read 'h100=16'/],
    ['empty budget', ['--trace', sample, '--gpus', 'h100:0'], /--gpus: 'h100:0' needs at least one GPU/],
    [
      'bad SLO',
      ['--trace', sample, '--gpus', 'h100:2', '--slo', 'ttft_p90=soon'],
      /--slo: cannot read 'ttft_p90=soon'/,
    ],
    [
      'unknown SLO metric',
      ['--trace', sample, '--gpus', 'h100:2', '--slo', 'speed_p90=3ms'],
      /--slo: cannot read 'speed_p90=3ms'/,
    ],
    [
      'bad objective',
      ['--trace', sample, '--gpus', 'h100:2', '--objective', 'speed'],
      /--objective: unknown value 'speed'/,
    ],
    [
      'bad TP list',
      ['--trace', sample, '--gpus', 'h100:2', '--tp', '1,x'],
      /--tp: 'x' is not a positive integer/,
    ],
    ['bad router', ['--trace', sample, '--gpus', 'h100:2', '--routers', 'rr,magic'], /router\.modes\.\d/],
    ['missing trace', ['--trace', '/nope.jsonl', '--gpus', 'h100:2'], /\/nope\.jsonl: file not found/],
    [
      'hardware timing without a model',
      ['--trace', sample, '--gpus', 'h100:2', '--timing', 'hardware'],
      /--timing hardware needs --model/,
    ],
    [
      'unknown model',
      ['--trace', sample, '--gpus', 'h100:2', '--model', 'acme-1t'],
      /unknown model 'acme-1t'/,
    ],
  ];
  for (const [name, argv, pattern] of bad) {
    it(`exits 2 with one clear line on ${name}`, async () => {
      const r = await cli('sweep', ...argv);
      expect(r.code).toBe(2);
      expect(r.err).toMatch(pattern);
      expect(r.err.trim().split('\n').length).toBe(1);
    });
  }

  it('names the space file and field of a bad search space', async () => {
    const space = join(dir, 'space.yaml');
    writeFileSync(space, 'tensorParallel: [1, 2]\nrouter:\n  modes: [kv]\n  overlapWeights: [-1]\n');
    const r = await cli('sweep', '--trace', sample, '--gpus', 'h100:2', '--space', space);
    expect(r.code).toBe(2);
    expect(r.err).toContain(`${space}: field 'router.overlapWeights.0': must not be negative`);
    writeFileSync(space, 'tensorParallel: [1, 2]\nfoo: 1\n');
    const r2 = await cli('sweep', '--trace', sample, '--gpus', 'h100:2', '--space', space);
    expect(r2.code).toBe(2);
    expect(r2.err).toMatch(/space\.yaml: .*foo/);
  });

  it('sweeps Planner settings from a space file on top of a --planner file', async () => {
    const plan = join(dir, 'planner.yaml');
    writeFileSync(plan, 'optimization_target: sla\nenable_load_scaling: true\nttft_ms: 1500\nitl_ms: 40\n');
    const space = join(dir, 'planner-space.yaml');
    writeFileSync(
      space,
      'tensorParallel: [1]\nworkers: [2]\nrouter:\n  modes: [round-robin]\nplanner:\n  loadAdjustmentIntervalS: [5, 60]\n',
    );
    const json = join(dir, 'planner-out.json');
    const r = await cli(
      'sweep',
      ...['--trace', sample, '--gpus', 'h100:4', '--space', space, '--planner', plan],
      ...['--threads', '1', '--json', json, '--quiet'],
    );
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    const out = JSON.parse(readFileSync(json, 'utf8'));
    expect(out.candidates.map((c: { label: string }) => c.label)).toEqual([
      'h100 2x TP1 round-robin planner(li=5s)',
      'h100 2x TP1 round-robin planner(li=60s)',
    ]);
    expect(out.candidates[0].candidate.planner.settings).toMatchObject({ ttft_ms: 1500, max_gpu_budget: 4 });
    writeFileSync(plan, 'ttft_ms: 0\n');
    const bad = await cli('sweep', '--trace', sample, '--gpus', 'h100:4', '--planner', plan);
    expect(bad.code).toBe(2);
    expect(bad.err).toContain(`${plan}: field 'ttft_ms': must be positive`);
  });
});
