import { chmodSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { cli } from '../../support/cli.ts';
import { FIXTURES } from '../../support/sim.ts';

/**
 * Settings that contradict each other, or that the requested run would silently ignore, are refused with
 * exit 2 and one line naming both settings as the user gave them.
 */
const sample = `${FIXTURES}traces/conversation-sample.jsonl`;
const dir = mkdtempSync(join(tmpdir(), 'servetune-conflicts-'));
const synthetic = ['--request-count', '20', '--input-tokens', '100', '--output-tokens', '10'];
const closed = [...synthetic, '--concurrency', '2'];

const cases: [string, string[], RegExp][] = [
  [
    '--disagg with --workers',
    ['--trace', sample, '--disagg', '--workers', '8'],
    /^--workers 8 conflicts with --disagg: disaggregated serving sizes each role; use --prefill-workers/,
  ],
  [
    'a disaggregation flag with --tp',
    ['--trace', sample, '--prefill-workers', '2', '--tp', '2'],
    /^--tp 2 conflicts with --prefill-workers 2: .*--prefill-tp and --decode-tp/,
  ],
  [
    '--trace with a synthetic flag',
    ['--trace', sample, '--request-count', '5'],
    /^--request-count 5 conflicts with --trace .*conversation-sample\.jsonl: a trace replays its own requests/,
  ],
  [
    '--trace-block-size with synthetic traffic',
    [...closed, '--trace-block-size', '16'],
    /^--trace-block-size 16 conflicts with --request-count 20: it describes the hash ids of a trace/,
  ],
  [
    '--concurrency with --request-rate',
    [...closed, '--request-rate', '5'],
    /^--request-rate 5 conflicts with --concurrency 2/,
  ],
  [
    '--concurrency with --arrival',
    [...closed, '--arrival', 'gamma'],
    /^--arrival gamma conflicts with --concurrency 2/,
  ],
  [
    '--concurrency with --arrival-speedup-ratio',
    ['--trace', sample, '--concurrency', '4', '--arrival-speedup-ratio', '2'],
    /^--arrival-speedup-ratio 2 conflicts with --concurrency 4: a closed loop ignores arrival times/,
  ],
  [
    '--request-rate with burst arrivals',
    [...synthetic, '--arrival', 'burst', '--request-rate', '5'],
    /^--request-rate 5 conflicts with --arrival burst/,
  ],
  [
    '--burstiness without gamma arrivals',
    [...synthetic, '--request-rate', '5', '--burstiness', '0.5'],
    /^--burstiness 0\.5 needs --arrival gamma/,
  ],
  [
    '--num-prefix-groups without a shared prefix',
    [...closed, '--num-prefix-groups', '4'],
    /^--num-prefix-groups 4 needs --shared-prefix-ratio above 0/,
  ],
  [
    '--shared-prefix-ratio without prefix groups',
    [...closed, '--shared-prefix-ratio', '0.5'],
    /^--shared-prefix-ratio 0\.5 needs --num-prefix-groups 1 or more/,
  ],
  [
    '--inter-turn-delay-ms with one turn',
    [...closed, '--inter-turn-delay-ms', '100'],
    /^--inter-turn-delay-ms 100 needs --turns-per-session 2 or more/,
  ],
  [
    'an SGLang knob on vLLM',
    [...closed, '--schedule-policy', 'lpm'],
    /^--schedule-policy lpm needs --engine sglang/,
  ],
  [
    'an SGLang knob with --engine vllm given',
    [...closed, '--engine', 'vllm', '--max-prefill-tokens', '4096'],
    /^--max-prefill-tokens 4096 conflicts with --engine vllm/,
  ],
  [
    'a vLLM knob on SGLang',
    [...closed, '--engine', 'sglang', '--max-num-batched-tokens', '4096'],
    /^--max-num-batched-tokens 4096 conflicts with --engine sglang/,
  ],
  [
    'chunked prefill off on SGLang',
    [...closed, '--engine', 'sglang', '--no-chunked-prefill'],
    /^--no-chunked-prefill conflicts with --engine sglang/,
  ],
  [
    'KV offload on SGLang',
    [...closed, '--engine', 'sglang', '--g2-blocks', '1000'],
    /^--g2-blocks 1000 conflicts with --engine sglang: KV offload tiers are modelled for vLLM only/,
  ],
  [
    'an offload knob without the host tier',
    [...closed, '--g2-gbps', '10'],
    /^--g2-gbps 10 needs --g2-blocks N/,
  ],
  [
    'KV offload without prefix caching',
    [...closed, '--g2-blocks', '1000', '--no-prefix-caching'],
    /^--g2-blocks 1000 conflicts with --no-prefix-caching/,
  ],
  [
    'KV bytes per token with neither disaggregation nor offload',
    [...closed, '--kv-bytes-per-token', '1000'],
    /^--kv-bytes-per-token 1000 needs --disagg or --g2-blocks N/,
  ],
  [
    'a KV router knob without the KV router',
    [...closed, '--overlap-weight', '2'],
    /^--overlap-weight 2 needs --router kv/,
  ],
  [
    'a KV router knob with another router',
    [...closed, '--router', 'rr', '--router-temperature', '0.5'],
    /^--router-temperature 0\.5 conflicts with --router round-robin/,
  ],
  [
    '--gpu with --timing polynomial',
    [...closed, '--timing', 'polynomial', '--gpu', 'h100', '--model', 'llama-3.1-8b'],
    /^--gpu h100 conflicts with --timing polynomial/,
  ],
  [
    'a hardware setting without hardware timing',
    [...closed, '--dtype', 'fp8'],
    /^--dtype fp8 needs --gpu and --model/,
  ],
  [
    '--startup-time without a planner',
    [...closed, '--startup-time', '30'],
    /^--startup-time 30 needs --planner FILE/,
  ],
  [
    '--slo and --sla-ttft-ms on the same metric',
    [...closed, '--slo', 'ttft_p90=100ms', '--sla-ttft-ms', '50'],
    /^--slo ttft_p90=100ms conflicts with --sla-ttft-ms 50: both bound ttft/,
  ],
  [
    'a flag given twice',
    ['--trace', sample, '--workers', '2', '--workers', '4'],
    /^--workers 2 conflicts with --workers 4/,
  ],
  [
    'a flag given under two of its names',
    ['--trace', sample, '--workers', '2', '--num-workers', '4'],
    /^--workers 2 conflicts with --num-workers 4: give --workers once/,
  ],
  [
    'an unknown GPU (named before the missing model)',
    [...closed, '--gpu', 'h900'],
    /^--gpu h900: unknown GPU 'h900' \(known: h100_sxm, /,
  ],
  ['a GPU without a model', [...closed, '--gpu', 'h100'], /^--gpu h100 needs --model too/],
  [
    'a TP the attention heads do not divide',
    [...closed, '--gpu', 'h100', '--model', 'llama-3.1-8b', '--tp', '3'],
    /^--tp 3 conflicts with --model llama-3\.1-8b: Llama-3\.1-8B has 32 attention heads, not divisible by tensor-parallel size 3 \(vLLM refuses it\)/,
  ],
  [
    'a decode TP the heads do not divide',
    [...closed, '--gpu', 'h100', '--model', 'llama-3.1-8b', '--disagg', '--decode-tp', '6'],
    /^--decode-tp 6 conflicts with --model llama-3\.1-8b: .*32 attention heads/,
  ],
  [
    'expert parallelism on a dense model',
    [...closed, '--gpu', 'h100', '--model', 'llama-3.1-8b', '--expert-parallel'],
    /^--expert-parallel conflicts with --model llama-3\.1-8b: Llama-3\.1-8B has no experts/,
  ],
];

describe('servetune simulate refuses conflicting and ignored settings', () => {
  it.each(cases)('%s', async (_name, argv, pattern) => {
    const r = await cli('simulate', ...argv);
    expect(r.code).toBe(2);
    expect(r.out).toBe('');
    const line = r.err.trim();
    expect(line.split('\n')).toHaveLength(1);
    expect(line.replace(/^servetune simulate: /, '')).toMatch(pattern);
  });

  it('names config-file fields as the file and field, and flags as flags', async () => {
    const cfg = join(dir, 'disagg.yaml');
    writeFileSync(cfg, 'workers: 4\ndisaggregation:\n  prefill: { workers: 1 }\n  decode: { workers: 1 }\n');
    const r = await cli('simulate', '--config', cfg, '--trace', sample);
    expect(r.code).toBe(2);
    expect(r.err).toBe(
      `servetune simulate: ${cfg}: field 'workers' conflicts with ${cfg}: field 'disaggregation': disaggregated serving sizes each role; use --prefill-workers and --decode-workers\n`,
    );
    writeFileSync(cfg, 'router: { overlapWeight: 2 }\n');
    const needs = await cli('simulate', '--config', cfg, '--trace', sample);
    expect(needs.err).toBe(
      `servetune simulate: ${cfg}: field 'router.overlapWeight' needs router.mode: kv: it is a setting of the KV router's cost\n`,
    );
  });

  it('a --planner file and a planner section in the config file are not merged', async () => {
    const cfg = join(dir, 'with-planner.yaml');
    writeFileSync(cfg, 'planner: { optimization_target: load }\n');
    const plan = join(dir, 'plan-flag.yaml');
    writeFileSync(plan, 'optimization_target: sla\n');
    const r = await cli('simulate', '--config', cfg, '--trace', sample, '--planner', plan);
    expect(r.code).toBe(2);
    expect(r.err).toBe(
      `servetune simulate: --planner ${plan} conflicts with ${cfg}: field 'planner': both configure the Planner; keep one\n`,
    );
  });

  it('a flag picking the workload source replaces the file one instead of conflicting with it', async () => {
    const cfg = join(dir, 'synthetic.yaml');
    writeFileSync(
      cfg,
      'workload:\n  concurrency: 2\n  synthetic: { requests: 5, inputTokens: 10, outputTokens: 2 }\n',
    );
    const r = await cli('simulate', '--config', cfg, '--trace', sample, '--quiet', '--max-sim-time', '1');
    // The file's closed loop still applies to the trace: that is a choice, not a conflict.
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
  });
});

describe('output paths are checked before the run', () => {
  const outputCases: [string, () => string, RegExp][] = [
    ['a missing directory', () => join(dir, 'nope', 'r.json'), /directory .*nope does not exist/],
    ['a directory', () => dir, /is a directory; give a file name/],
    ['an input of the run', () => sample, /is also an input of this run .*writing it would destroy it/],
  ];
  it.each(outputCases)('simulate --json into %s', async (_name, path, pattern) => {
    const r = await cli('simulate', '--trace', sample, '--json', path());
    expect(r.code).toBe(2);
    expect(r.err).toMatch(pattern);
    expect(r.out).toBe('');
  });

  // Root may write anywhere, so only another user can see the refusal.
  it.skipIf(process.getuid?.() === 0)('simulate --json into a read-only directory', async () => {
    const ro = join(dir, 'ro');
    mkdirSync(ro, { recursive: true });
    chmodSync(ro, 0o500);
    const r = await cli('simulate', '--trace', sample, '--json', join(ro, 'r.json'));
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/cannot be written \(permission denied\)/);
  });

  it('catalog --out over an input file is refused before anything is written', async () => {
    const gpus = join(dir, 'gpus.yaml');
    writeFileSync(gpus, 'gpus: []\n');
    const r = await cli('catalog', '--gpus-file', gpus, '--out', gpus);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/^servetune catalog: --out .*gpus\.yaml: is also an input of this run/);
    expect(readFileSync(gpus, 'utf8')).toBe('gpus: []\n');
  });

  it('sweep: --html into a missing directory, and --json and --html on one file', async () => {
    const base = ['sweep', '--trace', sample, '--gpus', 'h100:2', '--timing', 'polynomial', '--threads', '0'];
    const r = await cli(...base, '--html', join(dir, 'missing', 'r.html'));
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/^servetune sweep: --html .*missing\/r\.html: directory .* does not exist\n$/);
    expect(r.err).not.toMatch(/progress/); // refused before any candidate ran
    const same = join(dir, 'both');
    const both = await cli(...base, '--json', same, '--html', same);
    expect(both.code).toBe(2);
    expect(both.err).toMatch(/--json .*both conflicts with --html .*both: give each report its own file/);
  });
});

describe('config files', () => {
  it('an unknown top-level key is named, with the key it probably meant and the expected shape', async () => {
    const cfg = join(dir, 'top.yaml');
    writeFileSync(cfg, `trace: ${sample}\nworkers: 2\n`);
    const r = await cli('simulate', '--config', cfg);
    expect(r.code).toBe(2);
    const [first, expected, ...shape] = r.err.trim().split('\n');
    expect(first).toBe(`servetune simulate: ${cfg}: unknown key 'trace' (did you mean 'workload.trace'?)`);
    expect(expected).toBe('expected at the top level (commented example: config/examples/simulate.yaml):');
    expect(shape).toContain('  workers: integer (default 1)');
    expect(shape.some((l) => l.startsWith('  workload: mapping'))).toBe(true);
    expect(r.err).not.toMatch(/no workload/);
  });

  it('a nested unknown key shows the shape of its own level', async () => {
    const cfg = join(dir, 'nested.yaml');
    writeFileSync(cfg, `engine:\n  maxSeqs: 8\nworkload:\n  trace: ${sample}\n`);
    const r = await cli('simulate', '--config', cfg);
    expect(r.code).toBe(2);
    const lines = r.err.trim().split('\n');
    expect(lines[0]).toBe(`servetune simulate: ${cfg}: unknown key 'engine.maxSeqs'`);
    expect(lines[1]).toMatch(/^expected under 'engine'/);
    expect(lines).toContain('  maxNumSeqs: integer (default 256) - Running-request cap per worker.');
  });

  it('relative paths in a config file are read from its directory', async () => {
    const sub = join(dir, 'sub');
    mkdirSync(sub, { recursive: true });
    writeFileSync(join(sub, 'rel.yaml'), `workload:\n  trace: ${join('..', '..', 'nowhere.jsonl')}\n`);
    const r = await cli('simulate', '--config', join(sub, 'rel.yaml'));
    expect(r.code).toBe(2);
    expect(r.err).toContain(`${join(dir, '..', 'nowhere.jsonl')}: file not found`);
  });

  it('a sweep space file and a planner file are checked the same way', async () => {
    const space = join(dir, 'space.yaml');
    writeFileSync(space, 'tensorParallel: [1]\nrouters: [kv]\n');
    const r = await cli(
      'sweep',
      '--trace',
      sample,
      '--gpus',
      'h100:2',
      '--timing',
      'polynomial',
      '--space',
      space,
    );
    expect(r.code).toBe(2);
    expect(r.err).toMatch(new RegExp(`^servetune sweep: ${space}: unknown key 'routers'\\n`));
    expect(r.err).toContain('commented example: config/examples/space.yaml');
    const plan = join(dir, 'plan.yaml');
    writeFileSync(plan, 'optimisation_target: sla\n');
    const p = await cli('simulate', '--trace', sample, '--planner', plan);
    expect(p.code).toBe(2);
    expect(p.err).toMatch(new RegExp(`^servetune simulate: ${plan}: unknown key 'optimisation_target'`));
    expect(p.err).toContain('  optimization_target: throughput | latency | load | sla (default throughput)');
  });
});
