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
      '--model',
      'llama-3.1-8b',
      '--tp',
      '1,2',
      '--routers',
      'round-robin',
      '--slo',
      'ttft_p90=6000ms,itl_p90=50ms',
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
    expect(doc.timing).toEqual({ model: 'hardware', servedModel: 'llama-3.1-8b', ignores: [] });
    expect(r.out).toMatch(/^timing: hardware, llama-3\.1-8b priced on each candidate's GPU type/m);
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
      ['--trace', sample, '--gpus', 'h100:2', '--timing', 'polynomial', '--tp', '1,x'],
      /--tp: 'x' is not a positive integer/,
    ],
    [
      'bad router',
      ['--trace', sample, '--gpus', 'h100:2', '--timing', 'polynomial', '--routers', 'rr,magic'],
      /--routers: unknown router 'magic' \(expected one of round-robin, random, least-loaded, kv\)/,
    ],
    [
      'missing trace',
      ['--trace', '/nope.jsonl', '--gpus', 'h100:2', '--timing', 'polynomial'],
      /\/nope\.jsonl: file not found/,
    ],
    [
      'an unknown GPU type (the known ones listed)',
      ['--trace', sample, '--gpus', 'h900:8'],
      /--gpus: unknown GPU type 'h900' \(known: h100_sxm, h200_sxm, .*l4,/,
    ],
    [
      'an unknown GPU type with hardware-agnostic timing too',
      ['--trace', sample, '--gpus', 'h900:8', '--timing', 'polynomial'],
      /--gpus: unknown GPU type 'h900'/,
    ],
    [
      'one GPU listed under two names',
      ['--trace', sample, '--gpus', 'h100:4,h100_sxm:4', '--model', 'llama-3.1-8b'],
      /--gpus: 'h100' and 'h100_sxm' are the same GPU \(NVIDIA H100 SXM 80GB\)/,
    ],
    [
      'no model (a sweep over GPU types and TP must price them on hardware)',
      ['--trace', sample, '--gpus', 'h100:8'],
      /--model is required: .*give --timing polynomial/,
    ],
    [
      'a TP size that does not divide the attention heads',
      ['--trace', sample, '--gpus', 'h100:8', '--model', 'llama-3.1-8b', '--tp', '2,3'],
      /--tp 2,3 conflicts with --model llama-3\.1-8b: Llama-3\.1-8B has 32 attention heads, not divisible by tensor-parallel size 3 \(vLLM refuses it\)/,
    ],
    [
      'a budget whose every worker count would be a candidate',
      ['--trace', sample, '--gpus', 'h100:99999999999', '--timing', 'polynomial'],
      /the search space has more than 100,000 candidates \(99999999999 worker counts\): narrow it/,
    ],
    [
      'a space whose every candidate is left out',
      ['--trace', sample, '--gpus', 'h100:4', '--timing', 'polynomial', '--workers', '100'],
      /no candidate to run: every one was left out \(100x: 100 GPUs exceed the budget of 4\)/,
    ],
    [
      'a model that fits no GPU shape of the budget',
      ['--trace', sample, '--gpus', 'l4:1', '--model', 'llama-3.1-70b'],
      /no candidate to run: every one was left out \(l4 TP1: Llama-3\.1-70B \(bf16\) on 1 x NVIDIA L4 24GB does not fit/,
    ],
    [
      'a cost objective without prices',
      ['--trace', sample, '--gpus', 'h100:4,a100:4@1.2', '--model', 'llama-3.1-8b', '--objective', 'cost'],
      /--objective cost needs a price per GPU-hour for every type in --gpus \(h100 has none\), e\.g\. --gpus h100:4@2\.49/,
    ],
    [
      'hardware-agnostic timing over two GPU types',
      ['--trace', sample, '--gpus', 'h100:8,a100:8', '--timing', 'polynomial'],
      /--gpus lists 2 GPU types, but --timing polynomial cannot tell GPU types apart/,
    ],
    [
      'hardware-agnostic timing over TP sizes',
      ['--trace', sample, '--gpus', 'h100:8', '--timing', 'polynomial', '--tp', '1,2'],
      /--tp 1,2 conflicts with --timing polynomial, which cannot tell tensor-parallel sizes apart/,
    ],
    [
      'hardware-agnostic timing with a model',
      ['--trace', sample, '--gpus', 'h100:8', '--timing', 'polynomial', '--model', 'llama-3.1-8b'],
      /--timing polynomial conflicts with --model llama-3\.1-8b/,
    ],
    [
      'a precision without a model',
      ['--trace', sample, '--gpus', 'h100:8', '--timing', 'polynomial', '--dtype', 'fp8'],
      /--dtype needs --model/,
    ],
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
    const hw = ['--model', 'llama-3.1-8b'];
    const r = await cli('sweep', '--trace', sample, '--gpus', 'h100:2', ...hw, '--space', space);
    expect(r.code).toBe(2);
    expect(r.err).toContain(`${space}: field 'router.overlapWeights.0': must not be negative`);
    writeFileSync(space, 'tensorParallel: [1, 2]\nfoo: 1\n');
    const r2 = await cli('sweep', '--trace', sample, '--gpus', 'h100:2', ...hw, '--space', space);
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
      ...[
        '--trace',
        sample,
        '--gpus',
        'h100:4',
        '--timing',
        'polynomial',
        '--space',
        space,
        '--planner',
        plan,
      ],
      ...['--threads', '1', '--json', json, '--quiet'],
    );
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    const out = JSON.parse(readFileSync(json, 'utf8'));
    expect(out.candidates.map((c: { label: string }) => c.label)).toEqual([
      '2x round-robin planner(li=5s)',
      '2x round-robin planner(li=60s)',
    ]);
    expect(out.candidates[0].candidate.planner.settings).toMatchObject({ ttft_ms: 1500, max_gpu_budget: 4 });
    writeFileSync(plan, 'ttft_ms: 0\n');
    const bad = await cli(
      'sweep',
      '--trace',
      sample,
      '--gpus',
      'h100:4',
      '--timing',
      'polynomial',
      '--planner',
      plan,
    );
    expect(bad.code).toBe(2);
    expect(bad.err).toContain(`${plan}: field 'ttft_ms': must be positive`);
    const both = join(dir, 'planner-base-space.yaml');
    writeFileSync(both, 'planner:\n  base: { ttft_ms: 900 }\n');
    writeFileSync(plan, 'ttft_ms: 1500\n');
    const clash = await cli(
      'sweep',
      '--trace',
      sample,
      '--gpus',
      'h100:4',
      '--timing',
      'polynomial',
      '--space',
      both,
      '--planner',
      plan,
    );
    expect(clash.code).toBe(2);
    expect(clash.err).toBe(
      `servetune sweep: --planner ${plan} conflicts with ${both}: field 'planner.base': both give the Planner's base settings; keep one\n`,
    );
  });

  it('with hardware-agnostic timing (--timing polynomial) names it in the table, JSON and HTML, and drops GPU type and TP', async () => {
    const json = join(dir, 'agnostic.json');
    const html = join(dir, 'agnostic.html');
    const r = await cli(
      'sweep',
      ...['--trace', sample, '--gpus', 'h100:4', '--timing', 'polynomial', '--routers', 'round-robin'],
      ...['--topologies', 'aggregated,disaggregated', '--threads', '0', '--json', json, '--html', html],
    );
    expect(r.code).toBe(0);
    expect(r.out).toMatch(
      /^timing: polynomial \(hardware-agnostic: latencies do not depend on GPU type or TP/m,
    );
    expect(r.out).not.toMatch(/h100|TP\d/);
    const doc = JSON.parse(readFileSync(json, 'utf8'));
    expect(doc.timing).toEqual({ model: 'polynomial', ignores: ['gpuType', 'tensorParallel'] });
    const labels = doc.candidates.map((c: { label: string }) => c.label);
    expect(labels).toContain('4x round-robin');
    expect(labels).toContain('2P+2D round-robin');
    for (const l of labels) expect(l).not.toMatch(/h100|TP/);
    // Every candidate runs at TP 1: the dimension is dropped, not just hidden.
    for (const c of doc.candidates) expect(c.candidate.tensorParallel).toBe(1);
    const page = readFileSync(html, 'utf8');
    expect(page).toContain('timing: polynomial (hardware-agnostic');
    expect(page).not.toMatch(/h100 \d|TP\d/);
  });
});
