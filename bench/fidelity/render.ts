/** Renders docs/fidelity.md and its two SVG charts from docs/fidelity.json. */
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { analysis, explain, METHOD, PENDING } from './analysis.ts';
import { CLOSED_LOOP, KV_BYTES_PER_TOKEN, KV_TRANSFER_GBPS } from './cases.ts';
import {
  type CaseResult,
  type CaseSummary,
  METRICS,
  type MetricKey,
  type ResultsFile,
  summarize,
  TOLERANCE,
} from './results.ts';
import { type DiffSeries, diffChart, wallChart } from './svg.ts';

const GROUPS = [
  ['aggregated', 'Aggregated vLLM'],
  ['closed-loop', 'Closed loop (synthetic requests)'],
  ['disaggregated', 'Disaggregated prefill/decode (vLLM)'],
  ['sglang', 'SGLang'],
  ['offload', 'KV offload tiers (vLLM, host memory and disk)'],
  ['planner', 'Planner'],
  ['trtllm', 'TensorRT-LLM'],
  ['data-parallel', 'Attention-data-parallel ranks (--dp-size)'],
  ['mtp', 'MTP speculative decoding'],
  ['agentic', 'Agentic traces (request DAGs)'],
] as const;

const SERIES: Record<MetricKey, DiffSeries> = {
  ttft_mean: { label: 'mean TTFT', color: '#1a5fb4', shape: 'circle' },
  ttft_p90: { label: 'p90 TTFT', color: '#62a0ea', shape: 'triangle' },
  tpot_mean: { label: 'mean TPOT', color: '#26a269', shape: 'square' },
  e2e_mean: { label: 'mean E2E', color: '#c64600', shape: 'diamond' },
  output_tok_s: { label: 'output tok/s', color: '#813d9c', shape: 'cross' },
  prefix_reuse: { label: 'prefix reuse', color: '#865e3c', shape: 'bar' },
};

const pct = (d: number, digits = 2): string => {
  if (!Number.isFinite(d)) return '∞';
  const t = Math.abs(d * 100).toFixed(digits);
  return Number(t) === 0 ? `${(0).toFixed(digits)}%` : `${d > 0 ? '+' : '−'}${t}%`;
};

const worstAbs = (xs: { s: CaseSummary }[]): number =>
  Math.max(0, ...xs.map(({ s }) => Math.abs(s.worst.diff)));

const relDiff = (a: number | undefined, b: number | undefined): string =>
  a === undefined || b === undefined ? 'n/a' : pct((a - b) / b);

const list = (xs: { c: CaseResult }[]): string => xs.map(({ c }) => `\`${c.id}\``).join(', ');

/** The "Result" bullets: agreement per group against the 3 % target, and speed against the 2x target. */
function resultBullets(cases: { c: CaseResult; s: CaseSummary }[]): string[] {
  const group = (g: string) => cases.filter(({ c }) => c.group === g);
  const outOf = (xs: typeof cases) =>
    xs.filter(({ s }) => Object.values(s.metrics).some((m) => m.verdict === 'out'));
  const agg = group('aggregated');
  const det = agg.filter(({ c }) => !c.random);
  const kv = agg.filter(({ c }) => c.random);
  const aggOut = outOf(agg);
  const others = cases.filter(({ c }) => c.group !== 'aggregated' && c.group !== 'planner');
  const othersOut = outOf(others);
  const planner = group('planner');
  const big = cases.filter(({ c }) => c.requests >= 1000);
  const slowSim = big.filter(({ s }) => s.wall.speedSim < 2);
  const slowProc = big.filter(({ s }) => s.wall.speedProcess < 2);
  const tol = `${TOLERANCE * 100}%`;
  const out: string[] = [];
  out.push(
    `- **Aggregated (target: every metric within ${tol}).** ${agg.length} cases: ${
      aggOut.length === 0
        ? `**met** — every metric of every case is within ${tol}`
        : `not met in ${list(aggOut)}`
    }. The ${det.length} round-robin cases agree to ${worstAbs(det).toExponential(0)} relative (deterministic on both sides); the ${kv.length} KV-router cases to ${pct(worstAbs(kv))} at worst (their figures move from run to run with the reference's random tie-breaks).`,
  );
  if (others.length)
    out.push(
      `- **Closed loop, disaggregated, SGLang, KV offload, TRT-LLM, DP, MTP, agentic.** ${others.length} cases, worst metric ${pct(worstAbs(others))}${
        othersOut.length ? `; beyond ${tol}: ${list(othersOut)}` : `: all within ${tol}`
      } (the shared-link case differs by design, see below).`,
    );
  if (planner.length)
    out.push(
      `- **Planner.** ${planner.length} cases; ${
        outOf(planner).length
          ? `**beyond ${tol}**: ${outOf(planner)
              .map(({ c, s }) => `\`${c.id}\` (${SERIES[s.worst.key].label} ${pct(s.worst.diff)})`)
              .join(', ')} (see Planner below)`
          : `all within ${tol}, worst metric ${pct(worstAbs(planner))}; ${planner
              .map(
                ({ c }) =>
                  `\`${c.id}\` ${c.servetune[0]?.scaling_events ?? '?'} scaling events vs ${c.reference[0]?.scaling_events ?? '?'}, GPU-hours ${relDiff(c.servetune[0]?.gpu_hours, c.reference[0]?.gpu_hours)}`,
              )
              .join('; ')}`
      }.`,
    );
  const range = (xs: number[]) => `${Math.min(...xs).toFixed(1)}x to ${Math.max(...xs).toFixed(1)}x`;
  out.push(
    `- **Speed (target: servetune at least 2x faster on every case of 1,000+ requests).** Simulation wall time: ${range(
      big.map(({ s }) => s.wall.speedSim),
    )} faster on the ${big.length} such cases; ${
      slowSim.length
        ? `**below 2x on ${slowSim.length}**: ${slowSim.map(({ c, s }) => `\`${c.id}\` ${s.wall.speedSim.toFixed(1)}x`).join(', ')}`
        : '**met** on all'
    }. Whole process (interpreter start, imports, trace loading, report): ${range(big.map(({ s }) => s.wall.speedProcess))}${
      slowProc.length ? `, below 2x on ${slowProc.length}` : ''
    }. See "Speed" below for why the small cases are the slow ones.`,
  );
  return out;
}

const num = (v: number): string => {
  if (!Number.isFinite(v)) return String(v);
  const a = Math.abs(v);
  if (a === 0) return '0';
  if (a < 1) return v.toFixed(4);
  if (a < 100) return v.toFixed(3);
  if (a < 10000) return v.toFixed(1);
  return Math.round(v).toLocaleString('en-US');
};

const secs = (s: number): string => (s < 1 ? s.toFixed(3) : s < 10 ? s.toFixed(2) : s.toFixed(1));

const range = (r: [number, number]): string => (r[0] === r[1] ? num(r[0]) : `${num(r[0])}–${num(r[1])}`);

/** Source files named at most in the note below (the rest are counted). */
const SHOWN_FILES = 12;

/** Which source files differ between the commits cases ran at (so a reader can judge what it affects). */
function srcChanges(commits: string[]): string {
  const ids = commits.map((c) => c.split(' ')[0]);
  const files = new Set<string>();
  for (let i = 1; i < ids.length; i++) {
    const p = spawnSync('git', ['diff', '--name-only', ids[0], ids[i], '--', 'src'], { encoding: 'utf8' });
    if (p.status !== 0) return '';
    for (const f of p.stdout.split('\n').filter(Boolean)) files.add(f);
  }
  return files.size
    ? ` (source files changed between them: ${[...files]
        .slice(0, SHOWN_FILES)
        .map((f) => `\`${f}\``)
        .join(', ')}${files.size > SHOWN_FILES ? ` and ${files.size - SHOWN_FILES} more` : ''})`
    : '';
}

/** Cases in the order of the summary table: by group, then as listed. */
function ordered(file: ResultsFile): { c: CaseResult; s: CaseSummary }[] {
  const rank = new Map<string, number>(GROUPS.map(([g], i) => [g, i]));
  return file.cases
    .map((c, i) => ({ c, s: summarize(c), i }))
    .sort((a, b) => (rank.get(a.c.group) ?? 99) - (rank.get(b.c.group) ?? 99) || a.i - b.i)
    .map(({ c, s }) => ({ c, s }));
}

export function renderMarkdown(file: ResultsFile): string {
  const cases = ordered(file);
  const L: string[] = [];
  const loads = cases.flatMap(({ s }) => s.load);
  const byCommit = new Map<string, string[]>();
  for (const c of file.cases) {
    const k = c.commit ?? file.servetune.commit;
    byCommit.set(k, [...(byCommit.get(k) ?? []), c.id]);
  }
  const commits =
    byCommit.size === 1
      ? `commit ${[...byCommit.keys()][0]}`
      : [...byCommit.entries()]
          .map(
            ([k, ids]) =>
              `commit ${k} (${ids.length} case${ids.length > 1 ? 's' : ''}: ${ids.slice(0, 3).join(', ')}${ids.length > 3 ? ', ...' : ''})`,
          )
          .join('; ') + srcChanges([...byCommit.keys()]);
  const ref = file.reference;

  L.push(
    '# Fidelity: servetune side by side with the reference simulator',
    '',
    '<!-- Generated by bench/compare-reference.ts from docs/fidelity.json; edit bench/fidelity/*.ts, not this file. -->',
    '',
    `servetune and NVIDIA's own simulator — the offline replay of \`ai-dynamo\` ${ref['ai-dynamo']} (Python package ` +
      `registry), whose Rust extension embeds the \`aisimulate-core\` 0.13.0 engine (the engine of \`aisimulate\` ` +
      `${ref.aisimulate}) — run on the same traces with the same settings. Every figure below is a median of ` +
      `${file.runs} runs per side, servetune and reference runs alternating, and can be regenerated with one command.`,
    '',
    '## Result',
    '',
    ...resultBullets(cases),
    '',
    '## Reproduce',
    '',
    '```sh',
    `npm run compare:reference                       # every case, 3 runs per side (${Number.isFinite(file.minutes) ? `${Math.round(file.minutes)} minutes here` : 'under an hour'})`,
    "npm run compare:reference -- --cases '^conv-w8' --runs 5   # a subset; its figures replace the old ones",
    'npm run compare:reference -- --list             # the cases',
    'npm run compare:reference -- --render-only      # rewrite this page from docs/fidelity.json',
    '```',
    '',
    `This page was generated by \`${file.command}\` on ${file.generated.slice(0, 10)} (some cases may come from`,
    'earlier invocations; each run carries its own timestamp in `docs/fidelity.json`).',
    '',
    `- **Reference:** \`ai-dynamo\` ${ref['ai-dynamo']} + \`ai-dynamo-runtime\` ${ref['ai-dynamo-runtime']}, \`aisimulate\` ${ref.aisimulate} (Python ${ref.python}), installed by \`hack/reference/install-reference.sh\` into \`\${SERVETUNE_CACHE_DIR:-$HOME/.cache/servetune}/reference-venv\`, driven by \`hack/reference/replay-driver.py\`.`,
    `- **servetune:** ${commits}, Node ${file.servetune.node}.`,
    `- **Machine:** ${file.machine.cpu}, ${file.machine.cpus} vCPUs, ${file.machine.memory_gib} GiB, ${file.machine.os}; shared with other work: the 1-minute load average during the runs was ${Math.min(...loads).toFixed(1)}–${Math.max(...loads).toFixed(1)}, so wall times are noisy (both sides equally: runs alternate).`,
    '- **Raw figures:** `docs/fidelity.json` (every run of both sides, with its seed, walls and load average).',
    '',
    '## Summary',
    '',
    `Worst metric: the largest relative difference of the six metrics, servetune median against reference median. Speed: reference wall / servetune wall; "sim" compares servetune's simulation time (report \`wall_s\`) with the reference's own timer (summary \`wall_time_ms\`), "process" each side's whole process.`,
    '',
    '| case | requests | worst metric | sim wall s (servetune / reference) | speed sim | process wall s (servetune / reference) | speed process |',
    '|---|--:|---|--:|--:|--:|--:|',
  );
  for (const [group, title] of GROUPS) {
    const rows = cases.filter(({ c }) => c.group === group);
    if (!rows.length) continue;
    L.push(`| **${title}** | | | | | | |`);
    for (const { c, s } of rows) {
      const w = s.metrics[s.worst.key];
      const flag = w.verdict === 'out' ? ' ⚠' : w.verdict === 'spread' ? ' (within run spread)' : '';
      L.push(
        `| \`${c.id}\` | ${c.requests.toLocaleString('en-US')} | ${SERIES[s.worst.key].label} ${pct(s.worst.diff)}${flag} | ${secs(s.wall.servetune.sim)} / ${secs(s.wall.reference.sim)} | **${s.wall.speedSim.toFixed(1)}x** | ${secs(s.wall.servetune.process)} / ${secs(s.wall.reference.process)} | ${s.wall.speedProcess.toFixed(1)}x |`,
      );
    }
  }
  L.push(
    '',
    '![Relative difference per metric and case](fidelity-diff.svg)',
    '',
    '![Wall time per case, both simulators](fidelity-wall.svg)',
    '',
    '## All figures',
    '',
    "Medians over the runs; for KV-router cases (random on the reference side, one seed per run on servetune's) the range over the runs follows in brackets. Each cell: servetune / reference (difference).",
    '',
  );
  for (const [group, title] of GROUPS) {
    const rows = cases.filter(({ c }) => c.group === group);
    if (!rows.length) continue;
    L.push(
      `### ${title}`,
      '',
      `| case | ${METRICS.map((m) => `${m.label}${m.unit ? ` (${m.unit})` : ''}`).join(' | ')} |`,
      `|---|${METRICS.map(() => '--:').join('|')}|`,
    );
    for (const { c, s } of rows) {
      const cells = METRICS.map(({ key }) => {
        const m = s.metrics[key];
        const spread = c.random ? ` [${range(m.servetuneRange)} / ${range(m.referenceRange)}]` : '';
        const mark = m.verdict === 'out' ? ' ⚠' : '';
        return `${num(m.servetune)} / ${num(m.reference)} (${pct(m.diff)}${mark})${spread}`;
      });
      L.push(`| \`${c.id}\` | ${cells.join(' | ')} |`);
    }
    L.push('');
  }
  L.push('### Settings', '');
  L.push(
    `- Traces: \`../shared/data/traces/mooncake_conversation.jsonl\` (12,031 requests, 59 min) and \`mooncake_synthetic.jsonl\` (3,993 requests, 17 min), \`trace_block_size\` 512; polynomial timing (both sides' default); engine defaults (16,384 KV blocks, 256 sequences, 8,192 batched tokens, chunked prefill and prefix caching on) except the block size.`,
    `- \`conv-*\` / \`synth-*\`: the conversation / synthetic trace; \`wN\` workers; \`rr\` round robin, \`kv\` KV router (default weights); \`bsN\` KV block size. With one worker there is no routing decision, so only round robin runs.`,
    `- \`closed-cN-*\`: ${CLOSED_LOOP.requests.toLocaleString('en-US')} synthetic requests of ${CLOSED_LOOP.inputTokens} prompt and ${CLOSED_LOOP.outputTokens} output tokens (no shared prefixes), N in flight (\`--concurrency N\` / \`replay_concurrency=N\`), ${CLOSED_LOOP.workers} workers, block ${CLOSED_LOOP.blockSize}.`,
    `- \`disagg-*\`: 2 prefill + 6 decode workers, block 512; the KV transfer set on both sides to ${KV_BYTES_PER_TOKEN.toLocaleString('en-US')} bytes per token over ${KV_TRANSFER_GBPS} GB/s (\`--kv-bytes-per-token --kv-transfer-gbps\` / \`kv_transfer_bytes_per_token\`, \`kv_transfer_bandwidth\` in both engines' args).`,
    '- `sglang-*`: `--engine sglang --page-size 64` / `{"backend": "sglang", "block_size": 64}` (the reference\'s default page is 1 token).',
    '- `trtllm-*`: `--engine trtllm` / `{"backend": "trtllm"}`, both sides\' default block (32 tokens); the disaggregated one as `disagg-*`.',
    '- `dpN-*`: `--dp-size N` / top-level `dp_size` of the engine arguments: N attention-data-parallel ranks per worker.',
    '- `mtp-*`: `--nextn K --nextn-accept-rates R` / `aic_nextn`, `aic_nextn_accept_rates`; acceptance is sampled (seeded differently on each side), so these cases are compared as random ones.',
    "- `agentic-*`: the conversation trace as Dynamo `agentic_mooncake` version 2 rows (bench/fidelity/derived.ts): a session's first row at its timestamp, each later row waiting for the row it continues to complete, plus the gap between their timestamps.",
    "- Each case's exact flags and reference arguments are in `docs/fidelity.json` (`settings`).",
    '',
  );
  // Differences beyond the tolerance.
  L.push(`## Differences beyond ${TOLERANCE * 100}%`, '');
  const beyond = cases.flatMap(({ c, s }) =>
    METRICS.filter(({ key }) => s.metrics[key].verdict !== 'ok').map(({ key }) => ({ c, s, key })),
  );
  if (beyond.length === 0)
    L.push(`None: every metric of every case is within ${TOLERANCE * 100}% of the reference.`, '');
  else {
    L.push(
      '| case | metric | servetune | reference | difference | runs overlap | explanation |',
      '|---|---|--:|--:|--:|---|---|',
    );
    for (const { c, s, key } of beyond) {
      const m = s.metrics[key];
      L.push(
        `| \`${c.id}\` | ${SERIES[key].label} | ${num(m.servetune)} | ${num(m.reference)} | ${pct(m.diff)} | ${m.verdict === 'spread' ? 'yes' : 'no'} | ${explain(c.id, key) ?? '**not yet explained**'} |`,
      );
    }
    L.push('');
  }
  const byId = new Map(cases.map(({ c, s }) => [c.id, s]));
  L.push(
    analysis((id) => byId.get(id)),
    '',
    METHOD,
    '',
    PENDING,
    '',
  );
  return `${L.join('\n')}\n`;
}

function diffSvg(cases: { c: CaseResult; s: CaseSummary }[]): string {
  const limit = Math.min(
    0.1,
    Math.max(0.05, ...cases.flatMap(({ s }) => Object.values(s.metrics).map((m) => Math.abs(m.diff) * 1.1))),
  );
  return diffChart({
    title: 'servetune against the reference: relative difference of each metric (medians)',
    series: METRICS.map((m) => SERIES[m.key]),
    band: TOLERANCE,
    limit: Math.ceil(limit * 100) / 100,
    rows: cases.map(({ c, s }) => ({
      label: c.id,
      values: METRICS.map(({ key }) => (Number.isFinite(s.metrics[key].diff) ? s.metrics[key].diff : null)),
      spread: c.random
        ? METRICS.map(({ key }) => {
            const m = s.metrics[key];
            if (!m.reference) return null;
            return [
              (m.referenceRange[0] - m.reference) / m.reference,
              (m.referenceRange[1] - m.reference) / m.reference,
            ];
          })
        : undefined,
    })),
  });
}

export function renderAll(file: ResultsFile, jsonPath: string): void {
  const dir = dirname(jsonPath);
  const cases = ordered(file);
  const md = join(dir, 'fidelity.md');
  writeFileSync(md, renderMarkdown(file));
  writeFileSync(join(dir, 'fidelity-diff.svg'), diffSvg(cases));
  writeFileSync(
    join(dir, 'fidelity-wall.svg'),
    wallChart({
      title: 'Wall time per case: servetune and the reference (medians)',
      rows: cases.map(({ c, s }) => ({
        label: c.id,
        servetune: s.wall.servetune,
        reference: { sim: s.wall.reference.sim, process: s.wall.reference.process },
      })),
    }),
  );
  // The repository's formatter has the last word on layout (table alignment), so the page passes lint.
  spawnSync('biome', ['format', '--write', md, jsonPath], { stdio: 'ignore' });
}
