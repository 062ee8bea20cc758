import { dirname, isAbsolute, resolve } from 'node:path';
import { type SimulationConfig, SimulationConfigSchema } from '../config/schema.ts';
import { CatalogError } from '../hardware/catalog.ts';
import { tensorParallelProblem } from '../hardware/models.ts';
import { checkPlannerAgainstCluster, PlannerConfigSchema } from '../sim/planner/config.ts';
import { parseSlos, type Slo } from '../sweep/objective.ts';
import { asMapping, fileProblem } from './config-files.ts';
import { UsageError, zodMessage } from './errors.ts';
import { readStructuredFile } from './files.ts';
import { applyFlags, flagNames, parseFlags } from './flags.ts';
import { loadCatalog } from './hardware.ts';
import { checkSimulateConflicts } from './simulate-checks.ts';
import { SIMULATE_FLAGS } from './simulate-flags.ts';
import { ConfigSources } from './sources.ts';

/**
 * `servetune simulate`'s configuration: a config file (`--config`) and flags merged (flags win), checked for
 * contradictions and ignored settings, names looked up in the catalog, then validated by the schema. Every
 * refusal names what the user typed.
 */
export const SIMULATE_EXAMPLE = 'config/examples/simulate.yaml';
export const PLANNER_EXAMPLE = 'config/examples/planner.yaml';

/** Config-file fields holding paths: relative ones are read from the config file's directory. */
const PATH_FIELDS = ['workload.trace', 'hardware.gpusFile', 'hardware.modelsFile'];

export interface SimulateInvocation {
  config: SimulationConfig;
  /** The SLOs as given (`--slo`), reported against the run. */
  slos: Slo[];
  json?: string;
  quiet: boolean;
  help: boolean;
  /** Files the run reads (an output path must not be one of them). */
  inputs: string[];
}

/** Builds the validated configuration from a config file and flags. */
export async function resolveSimulateConfig(argv: string[]): Promise<SimulateInvocation> {
  const flags = parseFlags(argv, SIMULATE_FLAGS);
  if (flags.values.get('help'))
    return { config: undefined as never, slos: [], quiet: false, help: true, inputs: [] };
  if (flags.positionals.length > 0) throw new UsageError(`unexpected argument '${flags.positionals[0]}'`);
  const configPath = flags.values.get('config') as string | undefined;
  let raw: Record<string, unknown> = {};
  if (configPath) {
    raw = asMapping(configPath, await readStructuredFile(configPath), SIMULATE_EXAMPLE);
    raw = relativeToFile(raw, configPath);
    // Unknown keys first: a misplaced `trace:` must not surface as "no workload".
    const keys = SimulationConfigSchema.safeParse(raw);
    const unknown = keys.success ? undefined : keys.error.issues.find((i) => i.code === 'unrecognized_keys');
    if (unknown && !keys.success) {
      throw new UsageError(
        fileProblem(
          configPath,
          SimulationConfigSchema,
          { ...keys.error, issues: [unknown] },
          SIMULATE_EXAMPLE,
        ),
      );
    }
  }
  const fromFlags: Record<string, unknown> = {};
  applyFlags(fromFlags, flags, SIMULATE_FLAGS);
  const plannerPath = flags.values.get('planner') as string | undefined;
  if (plannerPath && configPath && raw.planner !== undefined) {
    // Merging two Planner configurations field by field would run one that neither file describes.
    throw new UsageError(
      `--planner ${plannerPath} conflicts with ${configPath}: field 'planner': both configure the Planner; keep one`,
    );
  }
  if (plannerPath) {
    const loaded = asMapping(plannerPath, await readStructuredFile(plannerPath), PLANNER_EXAMPLE);
    const planner = PlannerConfigSchema.safeParse(loaded);
    if (!planner.success)
      throw new UsageError(fileProblem(plannerPath, PlannerConfigSchema, planner.error, PLANNER_EXAMPLE));
    fromFlags.planner = loaded;
  }
  const slos = sloFlag(flags.values.get('slo') as string | undefined, fromFlags);
  // --disagg (or any disaggregation flag) turns disaggregation on, one worker per role unless given.
  if (flags.values.get('disagg') || fromFlags.disaggregation) {
    const d = (fromFlags.disaggregation ?? {}) as Record<string, Record<string, unknown>>;
    const fileD = (raw.disaggregation ?? {}) as Record<string, Record<string, unknown>>;
    d.prefill = { workers: fileD.prefill?.workers ?? 1, ...(d.prefill ?? {}) };
    d.decode = { workers: fileD.decode?.workers ?? 1, ...(d.decode ?? {}) };
    fromFlags.disaggregation = d;
  }
  // A flag that picks a workload source replaces the file's source.
  const merged = deepMerge(raw, fromFlags);
  const wl = merged.workload as Record<string, unknown> | undefined;
  const flagWl = fromFlags.workload as Record<string, unknown> | undefined;
  if (wl && flagWl?.trace !== undefined && flagWl.synthetic === undefined) delete wl.synthetic;
  if (wl && flagWl?.synthetic !== undefined && flagWl.trace === undefined) delete wl.trace;
  // Naming a GPU or model selects the hardware timing model unless another one was asked for.
  const hw = merged.hardware as Record<string, unknown> | undefined;
  const timingSection = merged.timing as Record<string, unknown> | undefined;
  if ((hw?.gpu !== undefined || hw?.model !== undefined) && timingSection?.model === undefined) {
    merged.timing = { ...timingSection, model: 'hardware' };
  }
  const sources = new ConfigSources(
    flags,
    SIMULATE_FLAGS,
    configPath ? { path: configPath, doc: raw } : undefined,
  );
  checkSimulateConflicts(merged, sources);
  if (merged.workload === undefined) {
    throw new UsageError(
      `no workload: give --trace FILE, or synthetic flags (--request-count, --input-tokens, ...)${
        configPath ? `, or a workload section in ${configPath} (see ${SIMULATE_EXAMPLE})` : ''
      }`,
    );
  }
  if ((merged.timing as Record<string, unknown> | undefined)?.model === 'hardware')
    await checkHardwareNames(merged, sources);
  const parsed = SimulationConfigSchema.safeParse(merged);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const path = issue.path.map(String).join('.');
    const fromFile = configPath !== undefined && sources.flag(path) === undefined;
    throw new UsageError(
      fromFile
        ? fileProblem(configPath, SimulationConfigSchema, parsed.error, SIMULATE_EXAMPLE)
        : zodMessage('configuration', parsed.error, flagNames(SIMULATE_FLAGS)),
    );
  }
  const c = parsed.data;
  if (c.timing.model === 'hardware') await checkShards(c, sources);
  if (c.planner) {
    const d = c.disaggregation;
    const problem = checkPlannerAgainstCluster(
      c.planner,
      d
        ? [
            { role: 'prefill', workers: d.prefill.workers, gpusPerWorker: d.prefill.tensorParallelSize },
            { role: 'decode', workers: d.decode.workers, gpusPerWorker: d.decode.tensorParallelSize },
          ]
        : [{ role: 'aggregated', workers: c.workers, gpusPerWorker: c.tensorParallelSize }],
    );
    if (problem) {
      const where = plannerPath ?? configPath ?? 'configuration';
      const field = plannerPath ? problem.field : `planner.${problem.field}`;
      throw new UsageError(`${where}: field '${field}': ${problem.message}`);
    }
  }
  const inputs = [
    configPath,
    plannerPath,
    c.workload.trace,
    c.hardware?.gpusFile,
    c.hardware?.modelsFile,
  ].filter((p): p is string => p !== undefined);
  return {
    config: c,
    slos,
    json: flags.values.get('json') as string | undefined,
    quiet: Boolean(flags.values.get('quiet')),
    help: false,
    inputs,
  };
}

/**
 * `--slo`, in the grammar `servetune sweep` uses (`ttft_p90=2000ms,e2e_p99=30s`): each SLO is reported against
 * the run, and its bound also counts a request toward goodput. A `--sla-*-ms` flag on the same metric is a
 * conflict.
 */
function sloFlag(text: string | undefined, fromFlags: Record<string, unknown>): Slo[] {
  if (text === undefined) return [];
  let slos: Slo[];
  try {
    slos = parseSlos(text);
  } catch (e) {
    throw new UsageError(`--slo: ${(e as Error).message}`);
  }
  const single = (fromFlags.slo ?? {}) as Record<string, number>;
  const flagOf: Record<string, string> = {
    ttftMs: '--sla-ttft-ms',
    itlMs: '--sla-itl-ms',
    e2eMs: '--sla-e2e-ms',
  };
  const bounds: Record<string, number> = {};
  for (const s of slos) {
    const key = s.metric === 'ttft' ? 'ttftMs' : s.metric === 'e2e' ? 'e2eMs' : 'itlMs';
    if (single[key] !== undefined) {
      throw new UsageError(
        `--slo ${text} conflicts with ${flagOf[key]} ${single[key]}: both bound ${s.metric}; give one`,
      );
    }
    bounds[key] = Math.min(bounds[key] ?? Number.POSITIVE_INFINITY, s.maxMs);
  }
  fromFlags.slo = { ...single, ...bounds };
  return slos;
}

/** The GPU and model must be catalogued; an unknown GPU is named before a missing model. */
async function checkHardwareNames(merged: Record<string, unknown>, sources: ConfigSources): Promise<void> {
  const hw = (merged.hardware ?? {}) as Record<string, unknown>;
  const catalog = await loadCatalog({
    gpusFile: typeof hw.gpusFile === 'string' ? hw.gpusFile : undefined,
    modelsFile: typeof hw.modelsFile === 'string' ? hw.modelsFile : undefined,
  });
  const named = (path: string) => sources.describe(path) ?? `field '${path}'`;
  for (const [k, find] of [
    ['gpu', (n: string) => catalog.gpu(n)],
    ['model', (n: string) => catalog.model(n)],
  ] as const) {
    if (typeof hw[k] !== 'string') continue;
    try {
      find(hw[k] as string);
    } catch (e) {
      if (e instanceof CatalogError) throw new UsageError(`${named(`hardware.${k}`)}: ${e.message}`);
      throw e;
    }
  }
  for (const [have, need] of [
    ['gpu', 'model'],
    ['model', 'gpu'],
  ] as const) {
    if (hw[have] !== undefined && hw[need] === undefined) {
      throw new UsageError(
        `${named(`hardware.${have}`)} needs --${need} too: hardware timing prices a model on a GPU (see servetune catalog)`,
      );
    }
  }
  if (hw.gpu === undefined && hw.model === undefined) {
    const timing = sources.describe('timing.model') ?? "timing.model 'hardware'";
    throw new UsageError(`${timing} needs --gpu and --model (see servetune catalog)`);
  }
}

/** Every pool's TP must shard the model as vLLM requires; expert parallelism needs experts. */
async function checkShards(c: SimulationConfig, sources: ConfigSources): Promise<void> {
  const hw = c.hardware;
  if (!hw?.model) return;
  const catalog = await loadCatalog({ gpusFile: hw.gpusFile, modelsFile: hw.modelsFile });
  const model = catalog.model(hw.model);
  const model_ = sources.describe('hardware.model') ?? `model ${hw.model}`;
  const d = c.disaggregation;
  const pools: [string, number][] = d
    ? [
        ['disaggregation.prefill.tensorParallelSize', d.prefill.tensorParallelSize],
        ['disaggregation.decode.tensorParallelSize', d.decode.tensorParallelSize],
      ]
    : [['tensorParallelSize', c.tensorParallelSize]];
  for (const [path, tp] of pools) {
    const problem = tensorParallelProblem(model, tp);
    if (problem) {
      const tp_ = sources.describe(path) ?? `tensor-parallel size ${tp} (the default)`;
      throw new UsageError(`${tp_} conflicts with ${model_}: ${problem}`);
    }
  }
  if (hw.expertParallel && !model.moe) {
    const ep = sources.describe('hardware.expertParallel') ?? '--expert-parallel';
    throw new UsageError(`${ep} conflicts with ${model_}: ${model.name} has no experts to split`);
  }
}

/** Relative paths inside a config file are read from the file's directory, wherever the command runs. */
function relativeToFile(raw: Record<string, unknown>, file: string): Record<string, unknown> {
  const out = structuredClone(raw);
  for (const path of PATH_FIELDS) {
    const parts = path.split('.');
    let node: unknown = out;
    for (const p of parts.slice(0, -1)) node = (node as Record<string, unknown> | undefined)?.[p];
    if (typeof node !== 'object' || node === null) continue;
    const obj = node as Record<string, unknown>;
    const last = parts[parts.length - 1];
    if (typeof obj[last] === 'string' && !isAbsolute(obj[last] as string)) {
      obj[last] = resolve(dirname(file), obj[last] as string);
    }
  }
  return out;
}

function deepMerge(a: Record<string, unknown>, b: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...a };
  for (const [k, v] of Object.entries(b)) {
    const cur = out[k];
    out[k] =
      typeof v === 'object' &&
      v !== null &&
      !Array.isArray(v) &&
      typeof cur === 'object' &&
      cur !== null &&
      !Array.isArray(cur)
        ? deepMerge(cur as Record<string, unknown>, v as Record<string, unknown>)
        : v;
  }
  return out;
}
