/**
 * Fits the hardware timing model's calibration (src/hardware/data/calibration.json) on measured end-to-end
 * vLLM benchmarks (../shared/data/timing/silicon_e2e.json): per GPU with enough rows, the per-pass overhead
 * (stepMs, perSeqMs), the per-prefill-request cost, the prefill scale and the MoE scale that minimise
 * median |log(sim / measured)| of TPOT plus that of TTFT, by a pattern search over the simulator itself
 * (every evaluation replays the cases through the DES). GPUs without benchmarks take the component-wise
 * median of the fits; Blackwell and Hopper GPUs without their own take B200's and H200's.
 *
 * Usage: node hack/calibrate-timing.ts [--data DIR] [--per-gpu 60] [--rounds 3] [--gpu a,b] [--out FILE]
 *        node hack/calibrate-timing.ts --merge part1.json,part2.json [--out FILE]
 * One GPU takes 5-10 min on one core; run GPUs in parallel and merge. Deterministic for the same inputs.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import type { Calibration } from '../src/hardware/calibration.ts';
import { Catalog } from '../src/hardware/catalog.ts';
import {
  caseFromRow,
  type E2eCase,
  infeasibleReason,
  median,
  rowsFromTable,
  simulateCase,
} from '../src/hardware/validate.ts';

const { values } = parseArgs({
  options: {
    data: { type: 'string', default: '../shared/data/timing' },
    'per-gpu': { type: 'string', default: '60' },
    rounds: { type: 'string', default: '3' },
    out: { type: 'string', default: 'src/hardware/data/calibration.json' },
    gpu: { type: 'string' },
    merge: { type: 'string' },
  },
});

const catalog = Catalog.builtin();
const rows = values.merge
  ? []
  : rowsFromTable(JSON.parse(readFileSync(`${values.data}/silicon_e2e.json`, 'utf8')));
const byGpu = new Map<string, E2eCase[]>();
const seen = new Set<string>();
for (const r of rows) {
  const c = caseFromRow(r, catalog);
  if (!('case' in c)) continue;
  const k = c.case;
  // Rows no faithful model of their setup reproduces (see infeasibleReason) would bias the fit.
  if (infeasibleReason(k, catalog) !== undefined) continue;
  // Repeated measurements of one setup count once.
  const key = JSON.stringify([
    k.gpu,
    k.model,
    k.version,
    k.dtype,
    k.tp,
    k.expertParallel,
    k.isl,
    k.osl,
    k.concurrency,
  ]);
  if (seen.has(key)) continue;
  seen.add(key);
  if (!byGpu.has(k.gpu)) byGpu.set(k.gpu, []);
  byGpu.get(k.gpu)!.push(k);
}

/** An evenly spread, deterministic subsample. */
function sample(cases: E2eCase[], n: number): E2eCase[] {
  if (cases.length <= n) return cases;
  const step = cases.length / n;
  return Array.from({ length: n }, (_, i) => cases[Math.floor(i * step)]);
}

const cache = new Map<string, { ttft: number; tpot: number }>();
function score(cases: E2eCase[], cal: Calibration): { j: number; tpot: number; ttft: number } {
  const lt: number[] = [];
  const lf: number[] = [];
  for (const c of cases) {
    const key = JSON.stringify([c, cal]);
    let r = cache.get(key);
    if (!r) {
      const s = simulateCase(c, catalog, { calibration: cal, wavesPerSlot: 5 });
      r = s.rejected ? { ttft: Number.NaN, tpot: Number.NaN } : { ttft: s.ttftMs, tpot: s.tpotMs };
      cache.set(key, r);
    }
    if (Number.isNaN(r.tpot)) continue;
    lt.push(Math.abs(Math.log(r.tpot / c.tpotMs)));
    lf.push(Math.abs(Math.log(r.ttft / c.ttftMs)));
  }
  const tpot = median(lt);
  const ttft = median(lf);
  return { j: tpot + ttft, tpot, ttft };
}

type Key = keyof Calibration;
const STEPS: Record<Key, { kind: 'mul' | 'add'; step: number; min: number }> = {
  stepMs: { kind: 'add', step: 0.5, min: 0 },
  perSeqMs: { kind: 'add', step: 0.01, min: 0 },
  perPrefillMs: { kind: 'add', step: 4, min: 0 },
  prefillScale: { kind: 'add', step: 0.2, min: 0.8 },
  moeScale: { kind: 'add', step: 0.2, min: 0.8 },
};

function fitCalibration(
  name: string,
  cases: E2eCase[],
  start: Calibration,
): { cal: Calibration; stats: object } {
  const hasMoe = cases.some((c) => catalog.model(c.model).moe !== undefined);
  let cal = { ...start };
  let best = score(cases, cal);
  const steps = Object.fromEntries(Object.entries(STEPS).map(([k, v]) => [k, v.step])) as Record<Key, number>;
  const rounds = Number(values.rounds);
  for (let round = 0; round < rounds; round++) {
    for (const key of Object.keys(STEPS) as Key[]) {
      if (key === 'moeScale' && !hasMoe) continue;
      for (;;) {
        let improved = false;
        for (const dir of [1, -1]) {
          const v = Math.max(STEPS[key].min, cal[key] + dir * steps[key]);
          if (v === cal[key]) continue;
          const trial = { ...cal, [key]: Number(v.toFixed(4)) };
          const s = score(cases, trial);
          if (s.j < best.j - 1e-4) {
            cal = trial;
            best = s;
            improved = true;
            break;
          }
        }
        if (!improved) break;
      }
    }
    for (const k of Object.keys(steps) as Key[]) steps[k] /= 2;
    console.error(
      `${name} round ${round + 1}: ${JSON.stringify(cal)} tpot ${(best.tpot * 100).toFixed(1)}% ttft ${(best.ttft * 100).toFixed(1)}% (median |log err|)`,
    );
  }
  return {
    cal,
    stats: {
      cases: cases.length,
      medianAbsLogErrTpot: Number(best.tpot.toFixed(4)),
      medianAbsLogErrTtft: Number(best.ttft.toFixed(4)),
    },
  };
}

const START: Calibration = {
  stepMs: 0.5,
  perSeqMs: 0.005,
  perPrefillMs: 12,
  prefillScale: 1.2,
  moeScale: 1.2,
};

/** Component-wise median of the per-GPU fits: the default for GPUs without benchmarks. */
function medianCalibration(fits: Calibration[]): Calibration {
  const keys = Object.keys(START) as Key[];
  return Object.fromEntries(keys.map((k) => [k, median(fits.map((f) => f[k]))])) as Calibration;
}

const NOTE =
  'Fitted by hack/calibrate-timing.ts on the vLLM aggregated rows of AIConfigurator silicon_e2e (Apache-2.0 ' +
  'data): stepMs + perSeqMs x sequences per pass, perPrefillMs per prefill request, prefillScale on prefill ' +
  'kernels, moeScale on measured routed-expert kernels. default = component-wise median of the per-GPU fits.';

if (values.merge) {
  // Combine per-GPU outputs of parallel runs into the bundled file.
  const byGpuOut: Record<string, Calibration> = {};
  const fitOut: Record<string, object> = {};
  for (const f of values.merge.split(',')) {
    const doc = JSON.parse(readFileSync(f, 'utf8'));
    Object.assign(byGpuOut, doc.byGpu);
    Object.assign(fitOut, doc.fit);
  }
  const byArch: Record<string, Calibration> = {};
  if (byGpuOut.b200_sxm) byArch.blackwell = byGpuOut.b200_sxm;
  if (byGpuOut.h200_sxm) byArch.hopper = byGpuOut.h200_sxm;
  const doc = {
    note: NOTE,
    default: medianCalibration(Object.values(byGpuOut)),
    byGpu: byGpuOut,
    byArch,
    fit: fitOut,
  };
  writeFileSync(values.out, `${JSON.stringify(doc, null, 2)}\n`);
  console.error(`wrote ${values.out}`);
} else {
  const perGpu = Number(values['per-gpu']);
  const byGpuOut: Record<string, Calibration> = {};
  const fitOut: Record<string, object> = {};
  const gpus = [...byGpu.keys()].filter((g) => !values.gpu || values.gpu.split(',').includes(g)).sort();
  for (const g of gpus) {
    const cases = byGpu.get(g)!;
    if (cases.length < 20) continue;
    const r = fitCalibration(g, sample(cases, perGpu), START);
    byGpuOut[g] = r.cal;
    fitOut[g] = r.stats;
  }
  const doc = {
    note: NOTE,
    default: medianCalibration(Object.values(byGpuOut)),
    byGpu: byGpuOut,
    fit: fitOut,
  };
  writeFileSync(values.out, `${JSON.stringify(doc, null, 2)}\n`);
  console.error(`wrote ${values.out}`);
}
