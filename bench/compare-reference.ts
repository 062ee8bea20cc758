/**
 * Runs servetune and the reference simulator (NVIDIA Dynamo's offline replay, ai-dynamo 1.6.1 with the
 * aisimulate-core 0.13.0 engine) on the same inputs and settings, alternating runs, and writes
 * docs/fidelity.json (every run's figures), docs/fidelity.md and its SVG charts.
 *
 *   npm run compare:reference [-- --cases REGEX[,REGEX...] --runs N --list --render-only --fresh
 *                                 --python PATH --traces DIR]
 *
 * The reference is installed on first use into ${SERVETUNE_CACHE_DIR:-$HOME/.cache/servetune}/reference-venv
 * by hack/reference/install-reference.sh (pinned; reused when present); --python (or
 * SERVETUNE_REFERENCE_PYTHON) uses an existing interpreter instead. Each run is a fresh process on both
 * sides: `node bin/servetune.js simulate ... --json` and `python hack/reference/replay-driver.py CASE`.
 * Cases re-run with --cases replace their old figures in docs/fidelity.json; the others are kept
 * (--fresh drops them).
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, homedir, loadavg, release, tmpdir, totalmem, type } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { buildCases, type Case } from './fidelity/cases.ts';
import { writeDerivedTraces } from './fidelity/derived.ts';
import { renderAll } from './fidelity/render.ts';
import type { CaseResult, Metrics, ResultsFile, RunRecord } from './fidelity/results.ts';

const root = resolve(import.meta.dirname, '..');
/** ../shared/data/traces from the repository, or from the nearest ancestor that has it (git worktrees). */
const defaultTraces = (): string => {
  for (let dir = root; ; dir = dirname(dir)) {
    const candidate = resolve(dir, '../shared/data/traces');
    if (existsSync(candidate) || dir === dirname(dir)) return candidate;
  }
};
const { values } = parseArgs({
  options: {
    cases: { type: 'string' },
    runs: { type: 'string', default: '3' },
    list: { type: 'boolean', default: false },
    'render-only': { type: 'boolean', default: false },
    fresh: { type: 'boolean', default: false },
    python: { type: 'string' },
    traces: { type: 'string', default: defaultTraces() },
    out: { type: 'string', default: resolve(root, 'docs/fidelity.json') },
  },
});

const fail = (msg: string): never => {
  console.error(`compare-reference: ${msg}`);
  process.exit(2);
};

// Traces derived from the recorded ones (agentic), rewritten on each run (deterministic, a few seconds).
const derivedDir = join(
  process.env.SERVETUNE_CACHE_DIR ?? join(homedir(), '.cache/servetune'),
  'fidelity-traces',
);
const all = buildCases(values.traces, derivedDir);
const patterns = (values.cases ?? '')
  .split(',')
  .filter(Boolean)
  .map((p) => new RegExp(p));
const selected = patterns.length ? all.filter((c) => patterns.some((p) => p.test(c.id))) : all;
if (values.list) {
  for (const c of all) console.log(`${selected.includes(c) ? '*' : ' '} ${c.id.padEnd(34)} ${c.label}`);
  process.exit(0);
}
const outJson = values.out;
const previous: ResultsFile | null = existsSync(outJson) ? JSON.parse(readFileSync(outJson, 'utf8')) : null;
if (values['render-only']) {
  if (!previous) fail(`no results at ${outJson}`);
  else renderAll(previous, outJson);
  process.exit(0);
}
if (selected.length === 0) fail(`no case matches --cases ${values.cases} (see --list)`);
const runs = Number(values.runs);
if (!Number.isInteger(runs) || runs < 1) fail('--runs must be a positive integer');
for (const t of ['mooncake_conversation.jsonl', 'mooncake_synthetic.jsonl']) {
  if (!existsSync(join(values.traces, t))) fail(`trace not found: ${join(values.traces, t)} (--traces DIR)`);
}

function run(cmd: string, args: string[], cwd = root): { stdout: string; seconds: number } {
  const t0 = performance.now();
  const p = spawnSync(cmd, args, {
    cwd,
    encoding: 'utf8',
    maxBuffer: 1 << 28,
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  const seconds = (performance.now() - t0) / 1000;
  if (p.status !== 0) {
    fail(`${cmd} ${args.join(' ')} failed (${p.status ?? p.signal}):\n${p.stderr.slice(-3000)}`);
  }
  return { stdout: p.stdout, seconds };
}

function referencePython(): string {
  const given = values.python ?? process.env.SERVETUNE_REFERENCE_PYTHON;
  if (given) return given;
  const out = run('bash', [join(root, 'hack/reference/install-reference.sh')])
    .stdout.trim()
    .split('\n');
  return out[out.length - 1];
}

if (selected.some((c) => c.group === 'agentic')) writeDerivedTraces(values.traces, derivedDir);
const python = referencePython();
const driver = join(root, 'hack/reference/replay-driver.py');
const versions = JSON.parse(run(python, [driver, '--versions']).stdout);
const work = mkdtempSync(join(tmpdir(), 'servetune-fidelity-'));
const commit = (() => {
  const head = spawnSync('git', ['rev-parse', '--short', 'HEAD'], {
    cwd: root,
    encoding: 'utf8',
  }).stdout.trim();
  const dirty = spawnSync('git', ['status', '--porcelain', '--', 'src'], {
    cwd: root,
    encoding: 'utf8',
  }).stdout;
  return dirty.trim() ? `${head} (src modified)` : head;
})();

function runServetune(c: Case, seed: number): RunRecord {
  const json = join(work, `${c.id}.json`);
  const load1 = loadavg()[0];
  const started = new Date().toISOString();
  const { seconds } = run(process.execPath, [
    'bin/servetune.js',
    'simulate',
    ...c.servetune,
    '--seed',
    String(seed),
    '--json',
    json,
    '--quiet',
  ]);
  const r = JSON.parse(readFileSync(json, 'utf8')).report;
  const metrics: Metrics = {
    ttft_mean: r.ttft_ms.mean,
    ttft_p90: r.ttft_ms.p90,
    tpot_mean: r.tpot_ms.mean,
    e2e_mean: r.e2e_ms.mean,
    output_tok_s: r.output_throughput_tok_s,
    prefix_reuse: r.prefix_cache_reused_ratio,
  };
  return {
    seed,
    metrics,
    completed: r.completed_requests,
    duration_s: r.simulated_duration_s,
    sim_wall_s: r.wall_s,
    process_wall_s: seconds,
    gpu_hours: r.gpu_hours,
    ...(r.scaling_events ? { scaling_events: r.scaling_events.total } : {}),
    load1,
    started,
  };
}

function runReference(c: Case): RunRecord {
  const load1 = loadavg()[0];
  const started = new Date().toISOString();
  const file = join(work, `${c.id}.case.json`);
  writeFileSync(file, JSON.stringify(c.reference));
  // In the scratch directory: the reference's Planner writes its reports into the working directory.
  const { stdout, seconds } = run(python, [driver, file], work);
  const out = JSON.parse(stdout);
  const s = out.summary;
  const metrics: Metrics = {
    ttft_mean: s.mean_ttft_ms,
    ttft_p90: s.p90_ttft_ms,
    tpot_mean: s.mean_tpot_ms,
    e2e_mean: s.mean_e2e_latency_ms,
    output_tok_s: s.output_throughput_tok_s,
    prefix_reuse: s.prefix_cache_reused_ratio,
  };
  return {
    metrics,
    completed: s.completed_requests,
    duration_s: s.duration_ms / 1000,
    sim_wall_s: s.wall_time_ms / 1000,
    process_wall_s: seconds,
    call_wall_s: out.call_wall_ms / 1000,
    gpu_hours: s.gpu_hours,
    ...(out.planner ? { scaling_events: out.planner.scale_to.length } : {}),
    load1,
    started,
  };
}

const results: CaseResult[] = [];
const t0 = performance.now();
try {
  for (const [k, c] of selected.entries()) {
    const result: CaseResult = {
      id: c.id,
      commit,
      group: c.group,
      label: c.label,
      requests: c.requests,
      random: c.random,
      settings: { servetune: c.servetune, reference: c.reference },
      servetune: [],
      reference: [],
    };
    for (let i = 0; i < runs; i++) {
      // Alternate which side goes first, so slow phases of a shared host hit both.
      const order = (i + k) % 2 === 0 ? ['servetune', 'reference'] : ['reference', 'servetune'];
      for (const side of order) {
        if (side === 'servetune') result.servetune.push(runServetune(c, i));
        else result.reference.push(runReference(c));
      }
      const st = result.servetune[i];
      const ref = result.reference[i];
      console.error(
        `[${k + 1}/${selected.length}] ${c.id} run ${i + 1}/${runs}: mean TTFT ${st.metrics.ttft_mean.toFixed(3)} vs ${ref.metrics.ttft_mean.toFixed(3)} ms; ` +
          `wall ${st.sim_wall_s.toFixed(2)}/${st.process_wall_s.toFixed(2)} s vs ${ref.sim_wall_s.toFixed(2)}/${ref.process_wall_s.toFixed(2)} s; ` +
          `load ${loadavg()[0].toFixed(1)} (${((performance.now() - t0) / 60000).toFixed(1)} min)`,
      );
    }
    results.push(result);
  }
} finally {
  rmSync(work, { recursive: true, force: true });
}

const cpu = cpus();
const merged =
  values.fresh || !previous ? [] : previous.cases.filter((c) => !results.some((r) => r.id === c.id));
const order = new Map(all.map((c, i) => [c.id, i]));
const file: ResultsFile = {
  generated: new Date().toISOString(),
  command: `npm run compare:reference${process.argv.length > 2 ? ` -- ${process.argv.slice(2).join(' ')}` : ''}`,
  runs,
  // The time of a whole run (every case); a partial run keeps the last whole run's.
  minutes:
    selected.length === all.length
      ? Math.round((performance.now() - t0) / 6000) / 10
      : (previous?.minutes ?? Number.NaN),
  reference: versions,
  servetune: { commit, node: process.version },
  machine: {
    cpu: cpu[0]?.model ?? 'unknown',
    cpus: cpu.length,
    memory_gib: Math.round(totalmem() / 2 ** 30),
    os: `${type()} ${release()}`,
  },
  cases: [...merged, ...results].sort((a, b) => (order.get(a.id) ?? 1e9) - (order.get(b.id) ?? 1e9)),
};
writeFileSync(outJson, `${JSON.stringify(file, null, 2)}\n`);
renderAll(file, outJson);
console.error(`compare-reference: wrote ${outJson}, fidelity.md and its charts next to it`);
