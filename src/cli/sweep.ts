import { writeFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { EngineConfigSchema, TimingConfigSchema, WorkloadConfigSchema } from '../config/schema.ts';
import { Catalog, CatalogError } from '../hardware/catalog.ts';
import { HardwareConfigSchema } from '../hardware/config.ts';
import { type ModelSpec, tensorParallelProblem } from '../hardware/models.ts';
import { PlannerConfigSchema } from '../sim/planner/config.ts';
import { summarizeWorkload } from '../sim/workload/workload.ts';
import type { HardwareBase } from '../sweep/evaluate.ts';
import {
  type CandidateMetrics,
  OBJECTIVES,
  type Objective,
  parseSlos,
  type Slo,
  sloKey,
} from '../sweep/objective.ts';
import type { OptimizerName } from '../sweep/optimizers.ts';
import { renderSweepHtml } from '../sweep/report-html.ts';
import { type GpuBudget, type SearchSpace, SearchSpaceSchema, SpaceTooLarge } from '../sweep/space.ts';
import { describeTiming, runSweep, type SweepResult } from '../sweep/sweep.ts';
import { asMapping, fileProblem } from './config-files.ts';
import { UsageError, zodMessage } from './errors.ts';
import { checkOutputPath, readStructuredFile, writeJson } from './files.ts';
import { applyFlags, type FlagSpec, parseFlags, renderHelp } from './flags.ts';
import { addCatalogFiles } from './hardware.ts';
import { Progress } from './progress.ts';
import { fieldAt } from './schema-fields.ts';
import { loadWorkload } from './simulate.ts';
import { checkSimulateConflicts } from './simulate-checks.ts';
import { PLANNER_EXAMPLE } from './simulate-config.ts';
import { ROUTERS, SIMULATE_FLAGS } from './simulate-flags.ts';
import { ConfigSources } from './sources.ts';
import { formatNumber, renderTable } from './table.ts';

const WORKLOAD_FLAGS = SIMULATE_FLAGS.filter((f) => f.path?.startsWith('workload.'));

/** ` (default ...)` from the search-space schema, so the help cannot drift from it. */
function spaceDefault(path: string): string {
  const d = fieldAt(SearchSpaceSchema, path)?.default;
  return d === undefined ? '' : ` (default ${Array.isArray(d) ? d.join(',') : String(d)})`;
}

export const SWEEP_FLAGS: FlagSpec[] = [
  ...WORKLOAD_FLAGS,
  {
    name: 'gpus',
    path: null,
    kind: 'string',
    metavar: 'LIST',
    help: 'GPU budget by type, e.g. h100:16,a100:8 (optional @price/hour)',
  },
  {
    name: 'model',
    path: null,
    kind: 'string',
    help: 'model served (required unless --timing polynomial): prices each candidate on its GPU type and TP',
  },
  { name: 'dtype', path: null, kind: 'string', help: "weight precision, e.g. fp8 (the model's)" },
  { name: 'kv-dtype', path: null, kind: 'string', help: "KV-cache precision (the model's)" },
  {
    name: 'gpus-file',
    path: null,
    kind: 'string',
    metavar: 'FILE',
    help: 'extra GPUs for the catalog (YAML/JSON)',
  },
  {
    name: 'models-file',
    path: null,
    kind: 'string',
    metavar: 'FILE',
    help: 'extra models for the catalog (YAML/JSON)',
  },
  {
    name: 'slo',
    path: null,
    kind: 'string',
    metavar: 'LIST',
    help: 'constraints, e.g. ttft_p90=2000ms,itl_p90=50ms,e2e_p99=30s',
  },
  {
    name: 'objective',
    path: null,
    kind: 'string',
    values: Object.fromEntries(Object.keys(OBJECTIVES).map((k) => [k, k])),
    help: `${Object.keys(OBJECTIVES).join(', ')} (throughput_per_gpu)`,
  },
  {
    name: 'space',
    path: null,
    kind: 'string',
    metavar: 'FILE',
    help: 'search space (YAML/JSON); flags below override it',
  },
  {
    name: 'topologies',
    path: null,
    kind: 'string',
    metavar: 'LIST',
    help: `aggregated (agg), disaggregated (disagg)${spaceDefault('topologies')}`,
  },
  {
    name: 'tp',
    path: null,
    kind: 'string',
    metavar: 'LIST',
    help: `tensor-parallel sizes, e.g. 1,2,4${spaceDefault('tensorParallel')}`,
  },
  {
    name: 'workers',
    path: null,
    kind: 'string',
    metavar: 'LIST',
    help: `worker counts, e.g. 2,4,8 or 'all'${spaceDefault('workers')}`,
  },
  {
    name: 'routers',
    path: null,
    kind: 'string',
    metavar: 'LIST',
    help: `router modes, e.g. round-robin,kv${spaceDefault('router.modes')}`,
  },
  {
    name: 'planner',
    path: null,
    kind: 'string',
    metavar: 'FILE',
    help: 'run candidates under the Planner (planner file; the space file may list planner dimensions)',
  },
  {
    name: 'optimizer',
    path: null,
    kind: 'string',
    values: { grid: 'grid', coordinate: 'coordinate', halving: 'halving' },
    help: 'grid, coordinate, halving (grid)',
  },
  {
    name: 'latency',
    path: null,
    kind: 'string',
    metavar: 'METRIC',
    help: 'frontier latency axis, e.g. ttft_p90 (default: first SLO)',
  },
  { name: 'threads', path: null, kind: 'int', help: 'worker threads (all cores)' },
  { name: 'seed', path: null, kind: 'int', help: 'simulation seed (0)' },
  {
    name: 'timing',
    path: null,
    kind: 'string',
    values: { polynomial: 'polynomial', hardware: 'hardware' },
    help: 'hardware (with --model) or polynomial (hardware-agnostic: one GPU type at TP 1, opted into here)',
  },
  { name: 'top', path: null, kind: 'int', help: 'rows of the ranking to print (10)' },
  {
    name: 'json',
    path: null,
    kind: 'string',
    metavar: 'FILE',
    help: 'write every candidate and the result as JSON',
  },
  { name: 'html', path: null, kind: 'string', metavar: 'FILE', help: 'write a self-contained HTML report' },
  { name: 'quiet', path: null, kind: 'boolean', help: 'no progress or table' },
  { name: 'help', aliases: ['h'], path: null, kind: 'boolean', help: 'show this help' },
];

const SPACE_EXAMPLE = 'config/examples/space.yaml';

/** Search-space fields the flags set, for messages about a value given by flag. */
const SPACE_FLAG_NAMES = new Map([
  ['topologies', '--topologies'],
  ['tensorParallel', '--tp'],
  ['workers', '--workers'],
  ['router.modes', '--routers'],
]);

const USAGE = `Usage: servetune sweep (--trace FILE | synthetic flags) --gpus h100:16 --slo ttft_p90=2000ms [options]

Searches deployments (GPU type, tensor parallelism, worker count, router, engine knobs, Planner settings) for
the workload, ranks them against the objective under the SLOs, maps the Pareto frontier and recommends one.`;

/** Parses `h100:16,a100:8@2.5`. */
export function parseGpuBudget(text: string): GpuBudget[] {
  const out: GpuBudget[] = [];
  for (const raw of text.split(',')) {
    const part = raw.trim();
    const m = /^([a-z0-9][a-z0-9._-]*)\s*:\s*(\d+)(?:\s*@\s*([0-9]*\.?[0-9]+))?$/i.exec(part);
    if (!m) throw new UsageError(`--gpus: cannot read '${part}' (expected TYPE:COUNT, e.g. h100:16)`);
    const count = Number(m[2]);
    if (count < 1) throw new UsageError(`--gpus: '${part}' needs at least one GPU`);
    if (out.some((b) => b.type === m[1].toLowerCase()))
      throw new UsageError(`--gpus: '${m[1]}' is listed twice`);
    out.push({ type: m[1].toLowerCase(), count, ...(m[3] ? { pricePerHour: Number(m[3]) } : {}) });
  }
  return out;
}

function intList(flag: string, text: string): number[] {
  return text.split(',').map((p) => {
    const v = Number(p.trim());
    if (!Number.isInteger(v) || v < 1)
      throw new UsageError(`--${flag}: '${p.trim()}' is not a positive integer`);
    return v;
  });
}

export async function sweepCommand(
  argv: string[],
  out: NodeJS.WritableStream,
  err: NodeJS.WritableStream,
): Promise<number> {
  const flags = parseFlags(argv, SWEEP_FLAGS);
  const v = flags.values;
  if (v.get('help')) {
    out.write(renderHelp(USAGE, SWEEP_FLAGS));
    return 0;
  }
  if (flags.positionals.length > 0) throw new UsageError(`unexpected argument '${flags.positionals[0]}'`);

  // Workload.
  const wl: Record<string, unknown> = {};
  applyFlags(wl, flags, WORKLOAD_FLAGS);
  if (wl.workload !== undefined) checkSimulateConflicts(wl, new ConfigSources(flags, SWEEP_FLAGS));
  const workloadCfg = WorkloadConfigSchema.safeParse(wl.workload ?? {});
  if (!workloadCfg.success) {
    if (wl.workload === undefined) throw new UsageError('no workload: give --trace FILE, or synthetic flags');
    throw new UsageError(
      zodMessage(
        'workload',
        workloadCfg.error,
        new Map(WORKLOAD_FLAGS.map((f) => [String(f.path).replace('workload.', ''), `--${f.name}`])),
      ),
    );
  }

  // Budget, objective, SLOs.
  const gpus = v.get('gpus') as string | undefined;
  if (!gpus) throw new UsageError('--gpus is required, e.g. --gpus h100:16');
  const budget = parseGpuBudget(gpus);
  const objective = (v.get('objective') as Objective | undefined) ?? 'throughput_per_gpu';
  const unpriced = budget.filter((b) => b.pricePerHour === undefined).map((b) => b.type);
  if (objective === 'cost' && unpriced.length > 0) {
    throw new UsageError(
      `--objective cost needs a price per GPU-hour for every type in --gpus (${unpriced.join(', ')} has none), e.g. --gpus ${unpriced[0]}:${budget[0].count}@2.49`,
    );
  }
  let slos: Slo[] = [];
  const sloText = v.get('slo') as string | undefined;
  if (sloText) {
    try {
      slos = parseSlos(sloText);
    } catch (e) {
      throw new UsageError(`--slo: ${(e as Error).message}`);
    }
  }
  let latency: { metric: Slo['metric']; percentile: Slo['percentile'] } | undefined;
  const latencyText = v.get('latency') as string | undefined;
  if (latencyText) {
    try {
      const [s] = parseSlos(`${latencyText}=1`);
      latency = { metric: s.metric, percentile: s.percentile };
    } catch {
      throw new UsageError(`--latency: cannot read '${latencyText}' (expected e.g. ttft_p90)`);
    }
  }

  // The catalog: GPU types are checked even when the timing model ignores them (a typo must not pass).
  const gpusFile = v.get('gpus-file') as string | undefined;
  const modelsFile = v.get('models-file') as string | undefined;
  const files: Pick<HardwareBase, 'extraGpus' | 'extraModels'> = {};
  if (gpusFile) files.extraGpus = { where: gpusFile, doc: await readStructuredFile(gpusFile) };
  if (modelsFile) files.extraModels = { where: modelsFile, doc: await readStructuredFile(modelsFile) };
  const catalog = Catalog.builtin();
  addCatalogFiles(catalog, { gpus: files.extraGpus, models: files.extraModels });
  checkBudgetGpus(budget, catalog, gpusFile);

  // Timing: hardware (needs --model) prices each candidate on its GPU type and TP; a hardware-agnostic
  // model is an explicit choice (--timing polynomial) and then cannot compare GPU types or TP sizes.
  const model = v.get('model') as string | undefined;
  const timingFlag = v.get('timing') as 'polynomial' | 'hardware' | undefined;
  if (timingFlag === 'polynomial' && model !== undefined) {
    throw new UsageError(
      `--timing polynomial conflicts with --model ${model}: the polynomial model ignores the model; drop one`,
    );
  }
  if (model === undefined && timingFlag !== 'polynomial') {
    throw new UsageError(
      timingFlag === 'hardware'
        ? '--timing hardware needs --model (see servetune catalog)'
        : '--model is required: a sweep prices each candidate on its GPU type and tensor-parallel size for ' +
            'the model served (see servetune catalog for the known models). To sweep worker counts, routers ' +
            'and engine knobs with the hardware-agnostic polynomial timing model instead, give --timing polynomial.',
    );
  }
  for (const f of ['dtype', 'kv-dtype', 'models-file'] as const) {
    if (model === undefined && v.has(f)) throw new UsageError(`--${f} needs --model (hardware timing)`);
  }

  // Search space: file, then flag overrides.
  const spacePath = v.get('space') as string | undefined;
  let rawSpace: Record<string, unknown> = {};
  if (spacePath) {
    rawSpace = asMapping(spacePath, await readStructuredFile(spacePath), SPACE_EXAMPLE);
    // The file alone first: its own mistakes are reported against it, with the shape it should have.
    const own = SearchSpaceSchema.safeParse(rawSpace);
    if (!own.success)
      throw new UsageError(fileProblem(spacePath, SearchSpaceSchema, own.error, SPACE_EXAMPLE));
  }
  if (v.has('topologies')) {
    const short: Record<string, string> = { agg: 'aggregated', disagg: 'disaggregated' };
    rawSpace.topologies = (v.get('topologies') as string).split(',').map((t) => short[t.trim()] ?? t.trim());
  }
  if (v.has('tp')) rawSpace.tensorParallel = intList('tp', v.get('tp') as string);
  if (v.has('workers'))
    rawSpace.workers = v.get('workers') === 'all' ? 'all' : intList('workers', v.get('workers') as string);
  if (v.has('routers')) {
    const modes = (v.get('routers') as string).split(',').map((m) => {
      const mode = ROUTERS[m.trim()];
      if (mode === undefined) {
        const known = [...new Set(Object.values(ROUTERS))].join(', ');
        throw new UsageError(`--routers: unknown router '${m.trim()}' (expected one of ${known})`);
      }
      return mode;
    });
    rawSpace.router = { ...((rawSpace.router as object) ?? {}), modes };
  }
  const plannerPath = v.get('planner') as string | undefined;
  if (plannerPath) {
    const loaded = asMapping(plannerPath, await readStructuredFile(plannerPath), PLANNER_EXAMPLE);
    const check = PlannerConfigSchema.safeParse(loaded);
    if (!check.success)
      throw new UsageError(fileProblem(plannerPath, PlannerConfigSchema, check.error, PLANNER_EXAMPLE));
    const fromSpace = rawSpace.planner as Record<string, unknown> | undefined;
    if (fromSpace?.base !== undefined) {
      throw new UsageError(
        `--planner ${plannerPath} conflicts with ${spacePath}: field 'planner.base': both give the Planner's base settings; keep one`,
      );
    }
    rawSpace.planner = { ...(fromSpace ?? {}), base: loaded };
  }
  const parsedSpace = SearchSpaceSchema.safeParse(rawSpace);
  if (!parsedSpace.success)
    throw new UsageError(zodMessage('search space', parsedSpace.error, SPACE_FLAG_NAMES));
  let space: SearchSpace = parsedSpace.data;
  const tpSource = (field: string) =>
    field === 'tensorParallel' && v.has('tp') ? `--tp ${v.get('tp')}` : `${spacePath}: field '${field}'`;

  let hardware: HardwareBase | undefined;
  if (model === undefined) {
    space = hardwareAgnosticSpace(space, rawSpace, budget, tpSource);
  } else {
    const dtype = v.get('dtype') as string | undefined;
    const kvDtype = v.get('kv-dtype') as string | undefined;
    const hw = HardwareConfigSchema.safeParse({
      model,
      ...(dtype ? { dtype } : {}),
      ...(kvDtype ? { kvDtype } : {}),
    });
    if (!hw.success)
      throw new UsageError(
        zodMessage(
          'hardware',
          hw.error,
          new Map([
            ['dtype', '--dtype'],
            ['kvDtype', '--kv-dtype'],
          ]),
        ),
      );
    hardware = {
      model,
      ...(hw.data.dtype ? { dtype: hw.data.dtype } : {}),
      ...(hw.data.kvDtype ? { kvDtype: hw.data.kvDtype } : {}),
      ...files,
    };
    let spec: ModelSpec;
    try {
      spec = catalog.model(model);
    } catch (e) {
      if (e instanceof CatalogError) throw new UsageError(`--model: ${e.message}`);
      throw e;
    }
    checkTensorParallel(rawSpace, spec, model, tpSource);
  }

  // Before the run: a bad output path must not lose a long sweep's report.
  const json = v.get('json') as string | undefined;
  const html = v.get('html') as string | undefined;
  if (json !== undefined && html !== undefined && resolve(json) === resolve(html)) {
    throw new UsageError(`--json ${json} conflicts with --html ${html}: give each report its own file`);
  }
  const inputs = [workloadCfg.data.trace, spacePath, plannerPath, gpusFile, modelsFile].filter(
    (p): p is string => p !== undefined,
  );
  if (json !== undefined) await checkOutputPath('--json', json, inputs);
  if (html !== undefined) await checkOutputPath('--html', html, inputs);

  const workload = await loadWorkload({
    workload: workloadCfg.data,
    engine: EngineConfigSchema.parse({ blockSize: space.engine.blockSize[0] }),
  });

  const quiet = Boolean(v.get('quiet'));
  const progress = new Progress(err, quiet);
  const controller = new AbortController();
  const onSigint = () => {
    if (controller.signal.aborted) process.exit(130);
    err.write('\nservetune sweep: stopping after the simulations in flight (Ctrl-C again to quit now)\n');
    controller.abort();
  };
  process.on('SIGINT', onSigint);
  let result: SweepResult;
  try {
    result = await runSweep(
      {
        workload,
        space,
        budget,
        objective,
        slos,
        optimizer: (v.get('optimizer') as OptimizerName | undefined) ?? 'grid',
        latency,
        simulation: {
          timing: TimingConfigSchema.parse({ model: 'polynomial' }),
          ...(hardware ? { hardware } : {}),
          traceBlockSize: workloadCfg.data.traceBlockSize,
          arrivalSpeedupRatio: workloadCfg.data.arrivalSpeedupRatio,
          ...(workloadCfg.data.concurrency !== undefined
            ? { concurrency: workloadCfg.data.concurrency }
            : {}),
          seed: (v.get('seed') as number | undefined) ?? 0,
        },
      },
      {
        threads: v.get('threads') as number | undefined,
        signal: controller.signal,
        onProgress: (p) => progress.update(p.done, p.planned, p.phase),
      },
    );
  } catch (e) {
    if (e instanceof SpaceTooLarge) throw new UsageError(e.message);
    throw e;
  } finally {
    process.off('SIGINT', onSigint);
    progress.done();
  }
  if (result.stats.enumerated === 0) {
    const shown = result.pruned.slice(0, 5).map((p) => `${p.label}: ${p.reason}`);
    const more = result.pruned.length > 5 ? `; and ${result.pruned.length - 5} more` : '';
    throw new UsageError(
      `no candidate to run: every one was left out (${shown.join('; ') || 'the space is empty'}${more})`,
    );
  }

  const source = workloadCfg.data.trace ?? 'synthetic workload';
  if (json) {
    await writeJson(json, {
      workload: { source, ...summarizeWorkload(workload) },
      model: model ?? null,
      space,
      ...result,
    });
  }
  if (html) {
    try {
      await writeFile(
        html,
        renderSweepHtml(result, {
          title: 'servetune sweep',
          workload: `${source} (${workload.size} requests)`,
        }),
      );
    } catch (e) {
      throw new UsageError(`${html}: cannot write (${(e as Error).message})`);
    }
  }
  if (!quiet) out.write(`${renderSweepSummary(result, Number(v.get('top') ?? 10))}\n`);
  return result.stats.partial ? 130 : 0;
}

/** Every GPU type of the budget must be known, and listed once (aliases of one GPU count as the same). */
function checkBudgetGpus(budget: GpuBudget[], catalog: Catalog, gpusFile: string | undefined): void {
  const seen = new Map<string, string>();
  for (const b of budget) {
    const gpu = catalog.findGpu(b.type);
    if (!gpu) {
      throw new UsageError(
        `--gpus: unknown GPU type '${b.type}' (known: ${catalog.gpus.map((g) => g.id).join(', ')}` +
          `${gpusFile ? '' : '; describe others with --gpus-file'})`,
      );
    }
    const other = seen.get(gpu.id);
    if (other !== undefined) {
      throw new UsageError(
        `--gpus: '${other}' and '${b.type}' are the same GPU (${gpu.spec.name}); list it once`,
      );
    }
    seen.set(gpu.id, b.type);
  }
}

/**
 * A hardware-agnostic timing model prices a pass the same on every GPU type and TP size: comparing them would
 * only compare GPU counts. The space keeps one GPU type and TP 1; asking for more is a conflict.
 */
function hardwareAgnosticSpace(
  space: SearchSpace,
  raw: Record<string, unknown>,
  budget: GpuBudget[],
  tpSource: (field: string) => string,
): SearchSpace {
  if (budget.length > 1) {
    throw new UsageError(
      `--gpus lists ${budget.length} GPU types, but --timing polynomial cannot tell GPU types apart: give one type, or --model MODEL to price each`,
    );
  }
  const rawDisagg = (raw.disaggregated ?? {}) as Record<string, unknown>;
  const lists: [string, unknown][] = [
    ['tensorParallel', raw.tensorParallel],
    ['disaggregated.prefillTensorParallel', rawDisagg.prefillTensorParallel],
    ['disaggregated.decodeTensorParallel', rawDisagg.decodeTensorParallel],
  ];
  for (const [field, given] of lists) {
    if (Array.isArray(given) && given.some((tp) => tp !== 1)) {
      throw new UsageError(
        `${tpSource(field)} conflicts with --timing polynomial, which cannot tell tensor-parallel sizes apart: give --model MODEL to price them`,
      );
    }
  }
  return {
    ...space,
    tensorParallel: [1],
    disaggregated: { ...space.disaggregated, prefillTensorParallel: [1], decodeTensorParallel: [1] },
  };
}

/** TP sizes the user listed must shard the model (vLLM refuses the others); defaults are pruned instead. */
function checkTensorParallel(
  raw: Record<string, unknown>,
  spec: ModelSpec,
  model: string,
  tpSource: (field: string) => string,
): void {
  const rawDisagg = (raw.disaggregated ?? {}) as Record<string, unknown>;
  const lists: [string, unknown][] = [
    ['tensorParallel', raw.tensorParallel],
    ['disaggregated.prefillTensorParallel', rawDisagg.prefillTensorParallel],
    ['disaggregated.decodeTensorParallel', rawDisagg.decodeTensorParallel],
  ];
  for (const [field, given] of lists) {
    if (!Array.isArray(given)) continue;
    for (const tp of given as number[]) {
      const problem = tensorParallelProblem(spec, tp);
      if (problem) throw new UsageError(`${tpSource(field)} conflicts with --model ${model}: ${problem}`);
    }
  }
}

export function renderSweepSummary(r: SweepResult, top: number): string {
  const lines: string[] = [];
  const frontier = new Set(r.frontier.latency);
  const ax = r.latencyAxis;
  const full = r.candidates
    .filter((c) => c.rank !== null)
    .sort((a, b) => (a.rank as number) - (b.rank as number));
  // The frontier's latency axis gets its own column unless it is one of the fixed ones.
  const axisColumn = !(ax.percentile === 'p90' && (ax.metric === 'ttft' || ax.metric === 'itl'));
  const rows = full.slice(0, top).map((c) => {
    const m = c.metrics as CandidateMetrics;
    return [
      c.rank as number,
      `${c.label}${r.recommended?.id === c.id ? '  <- recommended' : ''}`,
      c.gpus,
      m.throughput_per_gpu,
      ...(axisColumn ? [m[ax.metric][ax.percentile]] : []),
      m.ttft.p90,
      m.itl.p90,
      m.user_tok_s,
      c.feasible ? 'yes' : `no (+${formatNumber(c.violation * 100)}%)`,
      frontier.has(c.id) ? 'yes' : '',
    ];
  });
  lines.push(
    `servetune sweep: ${r.stats.enumerated} candidates (${r.pruned.length} left out), ${r.stats.evaluations} simulations in ${formatNumber(r.stats.wall_s)} s on ${r.stats.threads} thread(s), optimiser ${r.optimizer}${r.stats.partial ? ' — STOPPED EARLY, partial results' : ''}`,
  );
  lines.push(
    `objective: ${OBJECTIVES[r.objective].label}; SLOs: ${r.slos.map((s) => `${sloKey(s)} <= ${formatNumber(s.maxMs)} ms`).join(', ') || 'none'}`,
  );
  lines.push(describeTiming(r.timing));
  lines.push('');
  lines.push(
    renderTable(
      [
        'rank',
        'candidate',
        'GPUs',
        'tok/s/GPU',
        ...(axisColumn ? [`${ax.metric}_${ax.percentile} ms`] : []),
        'TTFT p90 ms',
        'ITL p90 ms',
        'tok/s/user',
        'meets SLOs',
        'frontier',
      ],
      rows,
    ),
  );
  if (full.length > top) lines.push(`... ${full.length - top} more ranked candidates (see --json / --html)`);
  lines.push('');
  lines.push(...r.explanation);
  return lines.join('\n');
}
