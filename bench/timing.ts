/**
 * Validates the hardware timing model against measured end-to-end serving benchmarks: every aggregated vLLM
 * row of ../shared/data/timing/silicon_e2e.json (AIConfigurator) whose GPU and model are catalogued is
 * replayed as a closed loop at its concurrency with its ISL/OSL, TP and dtype, and the simulated median TTFT
 * and mean TPOT are compared with the measured ones. Prints tables per GPU and per setup, what was left out
 * and why, the roofline tier's error on a subsample, and the cost of one timing-model call; ends with one
 * JSON line. Usage: npm run bench:timing [-- --data DIR --gpu ID --sample K --verbose]
 */
import { existsSync, readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { renderTable } from '../src/cli/table.ts';
import { Catalog } from '../src/hardware/catalog.ts';
import { hardwareModel } from '../src/hardware/setup.ts';
import {
  absPctErr,
  type CaseResult,
  caseFromRow,
  type E2eCase,
  infeasibleReason,
  median,
  rowsFromTable,
  simulateCase,
} from '../src/hardware/validate.ts';
import { emptyPassShape } from '../src/sim/timing/timing-model.ts';

const { values } = parseArgs({
  options: {
    data: { type: 'string' },
    gpu: { type: 'string' },
    sample: { type: 'string', default: '1' },
    'roofline-sample': { type: 'string', default: '4' },
    verbose: { type: 'boolean', default: false },
  },
});
// ../shared next to the repository (a worktree one level deeper also finds it).
const data =
  values.data ??
  ['../shared/data/timing', '../../shared/data/timing'].find((d) => existsSync(d)) ??
  '../shared/data/timing';
const file = `${data}/silicon_e2e.json`;
if (!existsSync(file)) {
  console.error(`bench:timing: ${file} not found (the benchmark reads ../shared/data)`);
  process.exit(2);
}
const catalog = Catalog.builtin();
const rows = rowsFromTable(JSON.parse(readFileSync(file, 'utf8')));
let cases: E2eCase[] = [];
const excluded = new Map<string, number>();
for (const r of rows) {
  const c = caseFromRow(r, catalog);
  // Covered rows that no faithful model of the stated setup can reproduce are left out by rule, and counted.
  const why = 'case' in c ? infeasibleReason(c.case, catalog) : c.excluded;
  if (why === undefined && 'case' in c) cases.push(c.case);
  else if (why !== undefined) excluded.set(why, (excluded.get(why) ?? 0) + 1);
}
if (values.gpu) cases = cases.filter((c) => c.gpu === values.gpu);
const every = Number(values.sample);
cases = cases.filter((_, i) => i % every === 0);

/** Repeated measurements of one setup are simulated once. */
const setupKey = (c: E2eCase) =>
  JSON.stringify([c.gpu, c.model, c.dtype, c.kvDtype, c.tp, c.expertParallel, c.isl, c.osl, c.concurrency]);
function runAll(list: E2eCase[], tier: 'auto' | 'roofline'): Map<string, CaseResult> {
  const out = new Map<string, CaseResult>();
  for (const c of list) {
    const k = setupKey(c);
    if (!out.has(k)) out.set(k, simulateCase(c, catalog, { tier }));
  }
  return out;
}

const t0 = performance.now();
const results = runAll(cases, 'auto');
const wallMain = (performance.now() - t0) / 1000;

interface Scored {
  c: E2eCase;
  r: CaseResult;
  tpotErr: number;
  ttftErr: number;
}
const scored: Scored[] = [];
const rejected: { c: E2eCase; reason: string }[] = [];
for (const c of cases) {
  const r = results.get(setupKey(c))!;
  if (r.rejected) rejected.push({ c, reason: r.rejected });
  else scored.push({ c, r, tpotErr: absPctErr(r.tpotMs, c.tpotMs), ttftErr: absPctErr(r.ttftMs, c.ttftMs) });
}

const pct = (v: number) => `${v.toFixed(1)}%`;
const ratio = (xs: number[]) => `x${median(xs).toFixed(2)}`;
function summaryRow(name: string, g: Scored[]): string[] {
  const tiers = [...new Set(g.map((s) => s.r.tier))].join('/');
  return [
    name,
    tiers,
    String(g.length),
    pct(median(g.map((s) => s.tpotErr))),
    pct(median(g.map((s) => s.ttftErr))),
    ratio(g.map((s) => s.r.tpotMs / s.c.tpotMs)),
    ratio(g.map((s) => s.r.ttftMs / s.c.ttftMs)),
  ];
}
const groupBy = (key: (s: Scored) => string) => {
  const m = new Map<string, Scored[]>();
  for (const s of scored) {
    const k = key(s);
    if (!m.has(k)) m.set(k, []);
    m.get(k)!.push(s);
  }
  return [...m].sort(([a], [b]) => a.localeCompare(b));
};
const header = ['', 'tier', 'cases', 'TPOT |err|', 'TTFT |err|', 'TPOT sim/meas', 'TTFT sim/meas'];

console.log(
  'Hardware timing vs measured vLLM serving benchmarks (AIConfigurator silicon_e2e, aggregated rows)',
);
console.log(
  'median absolute % error of mean TPOT and median TTFT; ratios are medians of simulated / measured\n',
);
const byGpu = groupBy((s) => s.c.gpu);
console.log(
  renderTable(
    header.map((h, i) => (i === 0 ? 'gpu' : h)),
    [...byGpu.map(([k, g]) => summaryRow(k, g)), summaryRow('overall', scored)],
    [2],
  ),
);
console.log('');
console.log(
  renderTable(
    header.map((h, i) => (i === 0 ? 'gpu / model / dtype' : h)),
    groupBy((s) => `${s.c.gpu} ${s.c.model} ${s.c.dtype}`).map(([k, g]) => summaryRow(k, g)),
    [2],
  ),
);
if (values.verbose) {
  console.log('');
  console.log(
    renderTable(
      ['case', 'version', 'TTFT sim', 'TTFT meas', 'TPOT sim', 'TPOT meas'],
      scored.map((s) => [
        `${s.c.gpu} ${s.c.model} ${s.c.dtype} tp${s.c.tp}${s.c.expertParallel ? 'ep' : ''} ${s.c.isl}/${s.c.osl} c${s.c.concurrency}`,
        s.c.version,
        s.r.ttftMs,
        s.c.ttftMs,
        s.r.tpotMs,
        s.c.tpotMs,
      ]),
    ),
  );
}

console.log('\nLeft out');
const left = [...excluded].sort((a, b) => b[1] - a[1]);
console.log(
  renderTable(
    ['rows', 'reason'],
    left.map(([k, v]) => [v, k]),
  ),
);
if (rejected.length > 0) {
  console.log(`\n${rejected.length} covered rows rejected by the memory model (setup does not fit):`);
  for (const r of rejected.slice(0, 5)) console.log(`  ${r.c.gpu} ${r.c.model} tp${r.c.tp}: ${r.reason}`);
}

// The roofline tier on a subsample of the same cases, for its error bar.
const roofEvery = Number(values['roofline-sample']);
const roofCases = cases.filter((_, i) => i % roofEvery === 0);
const roof = runAll(roofCases, 'roofline');
const roofScored = roofCases.flatMap((c) => {
  const r = roof.get(setupKey(c))!;
  return r.rejected ? [] : [{ tpot: absPctErr(r.tpotMs, c.tpotMs), ttft: absPctErr(r.ttftMs, c.ttftMs) }];
});
console.log(
  `\nRoofline tier (specs + fitted efficiencies, no tables) on every ${roofEvery}th case: ${roofScored.length} cases, ` +
    `TPOT ${pct(median(roofScored.map((s) => s.tpot)))}, TTFT ${pct(median(roofScored.map((s) => s.ttft)))}`,
);

// Cost of one timing-model call, the way the coalesced decode path calls it (one reused shape).
const { timing } = hardwareModel({
  gpu: catalog.gpu('h100_sxm'),
  model: catalog.model('llama-3.1-70b'),
  tp: 4,
  weightDtype: 'fp8',
  kvDtype: 'bf16',
});
const shape = emptyPassShape();
shape.kvCapacityTokens = 1 << 20;
const N = 5_000_000;
let sink = 0;
for (let pass = 0; pass < 2; pass++) {
  const t = performance.now();
  for (let i = 0; i < N; i++) {
    shape.decodeRequests = 1 + (i & 255);
    shape.decodeContextTokens = shape.decodeRequests * (1000 + (i & 4095));
    sink += timing.decodeMs(shape);
  }
  const ns = ((performance.now() - t) * 1e6) / N;
  if (pass === 1)
    console.log(
      `\ndecodeMs: ${ns.toFixed(0)} ns per call (${N.toLocaleString()} calls, varying batch and context)`,
    );
}
shape.decodeRequests = 0;
const tp = performance.now();
for (let i = 0; i < N / 5; i++) {
  shape.prefillRequests = 1 + (i & 3);
  shape.prefillNewTokens = 256 + (i & 8191);
  shape.prefillCachedTokens = i & 16383;
  shape.prefillAttentionPairs =
    shape.prefillNewTokens * (shape.prefillCachedTokens + shape.prefillNewTokens / 2);
  sink += timing.prefillMs(shape);
}
const nsPrefill = ((performance.now() - tp) * 1e6) / (N / 5);
console.log(`prefillMs: ${nsPrefill.toFixed(0)} ns per call${sink < 0 ? '' : ''}`);
console.log(`simulated ${results.size} distinct setups for ${cases.length} rows in ${wallMain.toFixed(1)} s`);

const perGpu = Object.fromEntries(
  byGpu.map(([k, g]) => [
    k,
    {
      cases: g.length,
      tpot: Number(median(g.map((s) => s.tpotErr)).toFixed(2)),
      ttft: Number(median(g.map((s) => s.ttftErr)).toFixed(2)),
    },
  ]),
);
console.log(
  JSON.stringify({
    median_abs_pct_err_tpot: Number(median(scored.map((s) => s.tpotErr)).toFixed(2)),
    median_abs_pct_err_ttft: Number(median(scored.map((s) => s.ttftErr)).toFixed(2)),
    cases: scored.length,
    per_gpu: perGpu,
    rejected: rejected.length,
    excluded: cases.length === 0 ? 0 : [...excluded.values()].reduce((a, b) => a + b, 0),
  }),
);
