import { z } from 'zod';
import {
  checkPlannerAgainstCluster,
  type PlannerConfig,
  PlannerConfigSchema,
  PREDICTORS,
  replicaBounds,
  scaledRoles,
} from '../sim/planner/config.ts';

/**
 * The search space of a sweep: which deployments to consider for one workload. Every list is a set of
 * alternatives; a candidate picks one value from each. Designed for roles (aggregated now; prefill/decode
 * pools when disaggregation is enabled) so the same file format grows with the simulator.
 */
const positiveInt = z.number().int('must be an integer').positive('must be positive');
const nonNegative = z.number().nonnegative('must not be negative');

const intList = z.array(positiveInt).min(1, 'must list at least one value');

/** `'all'` = every count from 1 up to what the GPU budget allows; or an explicit list; or a range. */
const WorkerCountsSchema = z.union([
  z.literal('all'),
  intList,
  z
    .object({ min: positiveInt, max: positiveInt })
    .strict()
    .refine((r) => r.min <= r.max, 'min must not exceed max'),
]);

export const RouterSpaceSchema = z
  .object({
    modes: z
      .array(z.enum(['round-robin', 'random', 'least-loaded', 'kv']))
      .min(1)
      .default(['round-robin', 'kv']),
    overlapWeights: z.array(nonNegative).min(1).default([0.5, 1, 2]).describe('KV router prefill weights'),
    overlapCredits: z.array(nonNegative).min(1).default([1]),
    temperatures: z.array(nonNegative).min(1).default([0]),
  })
  .strict();

export const EngineSpaceSchema = z
  .object({
    engines: z
      .array(z.enum(['vllm', 'sglang', 'trtllm']))
      .min(1)
      .default(['vllm'])
      .describe('serving engine schedulers'),
    nextn: z
      .array(z.number().int().min(0).max(5))
      .min(1)
      .default([0])
      .describe('MTP draft tokens per forward to try (0 = no speculative decoding)'),
    nextnAcceptRates: z
      .array(z.number().min(0).max(1))
      .min(1)
      .max(5)
      .optional()
      .describe("MTP acceptance rates of the deployment's draft model (the reference's default otherwise)"),
    maxNumBatchedTokens: intList.default([8192]),
    maxNumSeqs: intList.default([256]),
    blockSize: intList.default([64]),
    numGpuBlocks: intList.optional().describe('KV blocks per worker; derived from GPU memory when omitted'),
  })
  .strict();

export const DisaggregatedSpaceSchema = z
  .object({
    prefillTensorParallel: intList.default([1, 2, 4]).describe('GPUs per prefill worker'),
    decodeTensorParallel: intList.default([1, 2, 4]).describe('GPUs per decode worker'),
    prefillWorkers: WorkerCountsSchema.default('all'),
    decodeWorkers: WorkerCountsSchema.default('all'),
    /** Keep only splits that leave no room for another worker of either role (the reference's "budget edge"). */
    budgetEdge: z.boolean().default(true),
    kvTransferGbps: z.array(z.number().positive()).min(1).default([64]),
    conditional: z.array(z.boolean()).min(1).default([false]),
  })
  .strict();

/**
 * Planner settings as dimensions: every candidate deployment is tried with each combination of the listed
 * values on top of `base` (a planner file, reference field names). The planner's GPU budget is the sweep's
 * budget for the candidate's GPU type (or the base's `max_gpu_budget`, if smaller); the candidate's worker
 * counts are where the planner starts.
 */
export const PlannerSpaceSchema = z
  .object({
    base: z
      .record(z.string(), z.unknown())
      .default({})
      .describe('planner settings every variant starts from'),
    targets: z
      .array(z.enum(['sla', 'throughput', 'latency', 'load']))
      .min(1)
      .optional(),
    loadAdjustmentIntervalS: z.array(z.number().positive()).min(1).optional(),
    throughputAdjustmentIntervalS: z.array(z.number().positive()).min(1).optional(),
    startupTimeS: z.array(nonNegative).min(1).default([0]),
    startupTimeByWorkerGpus: z
      .record(z.string().regex(/^[1-9][0-9]{0,2}$/, 'a GPU count per worker'), nonNegative)
      .optional()
      .refine((r) => r === undefined || Object.keys(r).length <= 64, 'at most 64 worker shapes')
      .describe(
        "cold start (s) per worker size in GPUs (TP x DP), instead of startupTimeS: a TP8 worker loads an eighth of a TP1 worker's weights per GPU; the slowest role's when disaggregated",
      ),
    predictors: z.array(z.enum(PREDICTORS)).min(1).optional(),
    ttftMs: z.array(z.number().positive()).min(1).optional(),
    itlMs: z.array(z.number().positive()).min(1).optional(),
    minEndpoint: z
      .array(z.number().int().positive())
      .min(1)
      .max(16)
      .optional()
      .describe("the Planner's min_endpoint values to try (its replica floor per role)"),
    maxGpuBudget: z
      .array(z.number().int().min(-1))
      .min(1)
      .max(16)
      .optional()
      .describe(
        "the Planner's max_gpu_budget values to try; -1 is the sweep's budget for the GPU type, and a value over it is pruned",
      ),
    start: z
      .object({
        aggregated: z.number().int().positive().optional(),
        prefill: z.number().int().positive().optional(),
        decode: z.number().int().positive().optional(),
      })
      .strict()
      .optional()
      .describe(
        "where the Planner starts each role (a deployment's current replicas), clamped into each variant's bounds as the Planner's first move would; absent: the candidate's own counts",
      ),
  })
  .strict()
  .superRefine((p, ctx) => {
    const base = PlannerConfigSchema.safeParse(p.base);
    if (!base.success) {
      const i = base.error.issues[0];
      ctx.addIssue({ code: 'custom', message: i.message, path: ['base', ...i.path.map(String)] });
    }
  });
export type PlannerSpace = z.infer<typeof PlannerSpaceSchema>;

export const SearchSpaceSchema = z
  .object({
    topologies: z
      .array(z.enum(['aggregated', 'disaggregated']))
      .min(1)
      .default(['aggregated']),
    tensorParallel: intList.default([1, 2, 4, 8]).describe('GPUs per aggregated worker'),
    dataParallel: intList
      .default([1])
      .describe('attention-data-parallel ranks per aggregated worker (a worker holds TP x DP GPUs)'),
    expertParallel: z
      .array(z.boolean())
      .min(1)
      .default([false])
      .describe("hardware timing: split MoE experts across the worker's GPUs (expert parallelism)"),
    workers: WorkerCountsSchema.default('all'),
    disaggregated: DisaggregatedSpaceSchema.default(DisaggregatedSpaceSchema.parse({})),
    router: RouterSpaceSchema.default(RouterSpaceSchema.parse({})),
    engine: EngineSpaceSchema.default(EngineSpaceSchema.parse({})),
    planner: PlannerSpaceSchema.optional().describe(
      'run each candidate under the Planner, with these settings',
    ),
  })
  .strict();

export type SearchSpace = z.infer<typeof SearchSpaceSchema>;

/** One GPU type the sweep may use, how many are available, and what one costs per hour. */
export interface GpuBudget {
  type: string;
  count: number;
  pricePerHour?: number;
}

/** One concrete deployment to evaluate. */
export interface Candidate {
  id: number;
  gpuType: string;
  topology: 'aggregated' | 'disaggregated';
  /** Aggregated: GPUs per worker and workers. Disaggregated: those of the decode pool. */
  tensorParallel: number;
  workers: number;
  /** Aggregated: attention-data-parallel ranks per worker (absent = 1), and MoE expert parallelism. */
  dataParallel?: number;
  expertParallel?: boolean;
  /** Disaggregated only: the prefill pool and the KV link. */
  prefill?: { tensorParallel: number; workers: number };
  disagg?: { kvTransferGbps: number; conditional: boolean };
  router: {
    mode: 'round-robin' | 'random' | 'least-loaded' | 'kv';
    overlapWeight: number;
    overlapCredit: number;
    temperature: number;
  };
  engine: {
    engine: 'vllm' | 'sglang' | 'trtllm';
    maxNumBatchedTokens: number;
    maxNumSeqs: number;
    blockSize: number;
    numGpuBlocks?: number;
    /** MTP draft tokens per forward (absent or 0: none) and acceptance rates. */
    nextn?: number;
    nextnAcceptRates?: number[];
  };
  /** Under the Planner: its settings (planner-file names) and the workers' cold start; the counts above are the start. */
  planner?: { settings: Record<string, unknown>; startupTimeS: number; label: string };
}

/** GPUs of one aggregated (or decode) worker: TP x DP. */
export function gpusPerWorker(c: Candidate): number {
  return c.tensorParallel * (c.dataParallel ?? 1);
}

export function candidateGpus(c: Candidate): number {
  return c.workers * gpusPerWorker(c) + (c.prefill ? c.prefill.workers * c.prefill.tensorParallel : 0);
}

/** The parallel shape of a candidate (GPU type, topology, TP per role), e.g. for grouping in a search. */
export function shapeKey(c: Candidate): string {
  const dp = c.dataParallel ?? 1;
  return c.prefill
    ? `${c.gpuType}/P${c.prefill.tensorParallel}/D${c.tensorParallel}`
    : `${c.gpuType}/TP${c.tensorParallel}${dp > 1 ? `/DP${dp}` : ''}${c.expertParallel ? '/EP' : ''}`;
}

/** How one aggregated worker is parallelised beyond its tensor-parallel size. */
export interface WorkerParallelism {
  dataParallel: number;
  expertParallel: boolean;
}

/** Worker counts of a candidate (per role). */
export function workersKey(c: Candidate): string {
  return c.prefill ? `${c.prefill.workers}+${c.workers}` : `${c.workers}`;
}

/**
 * Which dimensions a label names. A hardware-agnostic timing model cannot tell GPU types or TP sizes apart,
 * so a sweep priced by one leaves them out of its labels rather than imply they were compared.
 */
export interface LabelOptions {
  gpuType?: boolean;
  tensorParallel?: boolean;
}

/** The parallel shape part of a label: `h100 4x TP2`, `h100 P(TP1)+D(TP2)`, or less per `opts`. */
export function shapeLabel(
  gpuType: string,
  shape:
    | { workers?: number; tp: number; dp?: number; ep?: boolean }
    | { prefill: { workers?: number; tp: number }; decode: { workers?: number; tp: number } },
  opts: LabelOptions = {},
): string {
  const tp = (n: number) => (opts.tensorParallel === false ? '' : `TP${n}`);
  const parts: string[] = opts.gpuType === false ? [] : [gpuType];
  if ('prefill' in shape) {
    const role = (r: string, x: { workers?: number; tp: number }) =>
      `${x.workers ?? ''}${r}${tp(x.tp) ? `(${tp(x.tp)})` : ''}`;
    parts.push(`${role('P', shape.prefill)}+${role('D', shape.decode)}`);
  } else {
    if (shape.workers !== undefined) parts.push(`${shape.workers}x`);
    const dp = (shape.dp ?? 1) > 1 ? `DP${shape.dp}` : '';
    const worker = [tp(shape.tp), dp].filter((x) => x).join('x');
    if (worker) parts.push(worker);
    if (shape.ep) parts.push('EP');
  }
  return parts.join(' ');
}

/** Short human label, e.g. `h100 4x TP2 kv(w=1)`. */
export function candidateLabel(c: Candidate, opts: LabelOptions = {}): string {
  const r = c.router;
  const router =
    r.mode === 'kv'
      ? `kv(w=${r.overlapWeight}${r.overlapCredit !== 1 ? `,c=${r.overlapCredit}` : ''}${r.temperature > 0 ? `,T=${r.temperature}` : ''})`
      : r.mode;
  const e = c.engine;
  const knobs: string[] = [];
  if (e.engine !== 'vllm') knobs.push(e.engine);
  if (e.maxNumBatchedTokens !== 8192) knobs.push(`mbt=${e.maxNumBatchedTokens}`);
  if (e.maxNumSeqs !== 256) knobs.push(`seqs=${e.maxNumSeqs}`);
  if (e.blockSize !== 64) knobs.push(`bs=${e.blockSize}`);
  if ((e.nextn ?? 0) > 0) knobs.push(`mtp${e.nextn}`);
  if (c.planner) knobs.push(c.planner.label);
  if (c.prefill && c.disagg) {
    if (c.disagg.conditional) knobs.push('cond');
    if (c.disagg.kvTransferGbps !== 64) knobs.push(`link=${c.disagg.kvTransferGbps}GB/s`);
  }
  const shape = shapeLabel(
    c.gpuType,
    c.prefill
      ? {
          prefill: { workers: c.prefill.workers, tp: c.prefill.tensorParallel },
          decode: { workers: c.workers, tp: c.tensorParallel },
        }
      : { workers: c.workers, tp: c.tensorParallel, dp: c.dataParallel, ep: c.expertParallel },
    opts,
  );
  return [shape, router, ...knobs].join(' ');
}

/** Most candidates one sweep enumerates: beyond, the space is refused rather than exhaust memory. */
export const MAX_CANDIDATES = 100_000;

/** A search space with more than MAX_CANDIDATES candidates (say, `workers: all` over a huge budget). */
export class SpaceTooLarge extends Error {
  constructor(what: string) {
    super(
      `the search space has more than ${MAX_CANDIDATES.toLocaleString('en-US')} candidates (${what}): ` +
        'narrow it (explicit worker counts, fewer TP sizes, routers or engine values)',
    );
    this.name = 'SpaceTooLarge';
  }
}

/** Why a candidate was left out before running, with the candidate's description. */
export interface Pruned {
  label: string;
  reason: string;
}

export interface Enumeration {
  candidates: Candidate[];
  pruned: Pruned[];
}

/**
 * Expands a space into candidates within the GPU budget. `fits` may veto a (GPU type, TP, engine) shape, e.g.
 * when the model does not fit in memory; vetoed shapes are reported, not silently dropped.
 */
export function enumerateCandidates(
  space: SearchSpace,
  budget: GpuBudget[],
  fits: (
    gpuType: string,
    tp: number,
    engine: Candidate['engine'],
    parallel?: WorkerParallelism,
  ) => string | null = () => null,
  labels: LabelOptions = {},
): Enumeration {
  const candidates: Candidate[] = [];
  const pruned: Pruned[] = [];
  const routers = expandRouters(space.router);
  const engines = expandEngines(space.engine);
  const variants = space.planner ? plannerVariants(space.planner) : null;
  const push = (c: Omit<Candidate, 'id'>) => {
    if (candidates.length >= MAX_CANDIDATES) throw new SpaceTooLarge('counting as they are enumerated');
    if (variants === null) {
      candidates.push({ id: candidates.length, ...c });
      return;
    }
    const count = budget.find((b) => b.type === c.gpuType)?.count ?? Number.POSITIVE_INFINITY;
    for (const v of variants) {
      const planned = withPlanner(c, v, count, labels);
      if ('reason' in planned) pruned.push(planned);
      else candidates.push({ id: candidates.length, ...planned });
    }
  };
  for (const gpu of budget) {
    if (space.topologies.includes('aggregated')) {
      for (const tp of [...new Set(space.tensorParallel)].sort((a, b) => a - b)) {
        for (const dp of [...new Set(space.dataParallel)].sort((a, b) => a - b)) {
          for (const ep of [...new Set(space.expertParallel)]) {
            const worker = { tp, dp, ep };
            const perWorker = tp * dp;
            const maxWorkers = Math.floor(gpu.count / perWorker);
            if (maxWorkers < 1) {
              pruned.push({
                label: shapeLabel(gpu.type, worker, labels),
                reason: `needs ${perWorker} GPUs, budget has ${gpu.count}`,
              });
              continue;
            }
            if (dp > 1 && space.planner) {
              // As the reference: data-parallel ranks are not simulated under the Planner.
              pruned.push({
                label: shapeLabel(gpu.type, worker, labels),
                reason: 'data-parallel ranks under the Planner',
              });
              continue;
            }
            const parallel = { dataParallel: dp, expertParallel: ep };
            for (const engine of engines) {
              const veto = fits(gpu.type, tp, engine, parallel);
              if (veto !== null) {
                pruned.push({ label: shapeLabel(gpu.type, worker, labels), reason: veto });
                continue;
              }
              for (const workers of workerCounts(space.workers, maxWorkers)) {
                if (workers * perWorker > gpu.count) {
                  pruned.push({
                    label: shapeLabel(gpu.type, { workers, ...worker }, labels),
                    reason: `${workers * perWorker} GPUs exceed the budget of ${gpu.count}`,
                  });
                  continue;
                }
                for (const router of routers) {
                  // Routing is moot with one single-rank worker (unless the Planner adds more); keep a single
                  // router variant there.
                  if (workers === 1 && dp === 1 && !space.planner && router !== routers[0]) continue;
                  push({
                    gpuType: gpu.type,
                    topology: 'aggregated',
                    tensorParallel: tp,
                    workers,
                    ...(dp > 1 ? { dataParallel: dp } : {}),
                    ...(ep ? { expertParallel: true } : {}),
                    router,
                    engine,
                  });
                }
              }
            }
          }
        }
      }
    }
    if (space.topologies.includes('disaggregated'))
      enumerateDisaggregated(space, gpu, routers, engines, fits, push, pruned, labels);
  }
  return { candidates, pruned };
}

function enumerateDisaggregated(
  space: SearchSpace,
  gpu: GpuBudget,
  routers: Candidate['router'][],
  engines: Candidate['engine'][],
  fits: (gpuType: string, tp: number, engine: Candidate['engine']) => string | null,
  push: (c: Omit<Candidate, 'id'>) => void,
  pruned: Pruned[],
  labels: LabelOptions,
): void {
  const split = (ptp: number, dtp: number) =>
    shapeLabel(gpu.type, { prefill: { tp: ptp }, decode: { tp: dtp } }, labels);
  const d = space.disaggregated;
  const uniq = (xs: number[]) => [...new Set(xs)].sort((a, b) => a - b);
  // Conditional disaggregation is decided by Dynamo's KV router: it pairs with KV routing only.
  if (d.conditional.includes(true)) {
    for (const mode of new Set(routers.map((r) => r.mode))) {
      if (mode !== 'kv')
        pruned.push({
          label: `${gpu.type} conditional disaggregation with ${mode} routing`,
          reason: 'conditional disaggregation needs the KV router',
        });
    }
  }
  for (const ptp of uniq(d.prefillTensorParallel)) {
    for (const dtp of uniq(d.decodeTensorParallel)) {
      if (ptp + dtp > gpu.count) {
        pruned.push({
          label: split(ptp, dtp),
          reason: `needs ${ptp + dtp} GPUs, budget has ${gpu.count}`,
        });
        continue;
      }
      for (const engine of engines) {
        const veto = fits(gpu.type, ptp, engine) ?? fits(gpu.type, dtp, engine);
        if (veto !== null) {
          pruned.push({ label: split(ptp, dtp), reason: veto });
          continue;
        }
        for (const pw of workerCounts(d.prefillWorkers, Math.floor((gpu.count - dtp) / ptp))) {
          const left = gpu.count - pw * ptp;
          for (const dw of workerCounts(d.decodeWorkers, Math.floor(left / dtp))) {
            const spare = left - dw * dtp;
            if (spare < 0) continue; // an explicit worker count beyond the budget
            if (d.budgetEdge && (spare >= ptp || spare >= dtp)) continue; // another worker would still fit
            for (const kvTransferGbps of uniq(d.kvTransferGbps)) {
              for (const conditional of [...new Set(d.conditional)]) {
                for (const router of routers) {
                  if (conditional && router.mode !== 'kv') continue;
                  push({
                    gpuType: gpu.type,
                    topology: 'disaggregated',
                    tensorParallel: dtp,
                    workers: dw,
                    prefill: { tensorParallel: ptp, workers: pw },
                    disagg: { kvTransferGbps, conditional },
                    router,
                    engine,
                  });
                }
              }
            }
          }
        }
      }
    }
  }
}

interface PlannerVariant {
  settings: Record<string, unknown>;
  startupTimeS: number;
  /** Per worker size (GPUs), when known: overrides startupTimeS for a candidate of that shape. */
  startupByGpus?: Record<string, number>;
  label: string;
  /** max_gpu_budget is a swept value: over the sweep's budget it is pruned, not lowered to it. */
  budgetSwept: boolean;
  start?: PlannerSpace['start'];
}

/** Every combination of the planner dimensions, on top of the base settings. */
function plannerVariants(p: PlannerSpace): PlannerVariant[] {
  const dims: [string, string, unknown[] | undefined, (v: unknown) => string][] = [
    ['optimization_target', '', p.targets, (v) => String(v)],
    ['load_adjustment_interval_seconds', 'li', p.loadAdjustmentIntervalS, (v) => `${v}s`],
    ['throughput_adjustment_interval_seconds', 'ti', p.throughputAdjustmentIntervalS, (v) => `${v}s`],
    ['load_predictor', '', p.predictors, (v) => String(v)],
    ['ttft_ms', 'ttft', p.ttftMs, (v) => `${v}ms`],
    ['itl_ms', 'itl', p.itlMs, (v) => `${v}ms`],
    ['min_endpoint', 'min', p.minEndpoint, (v) => String(v)],
    ['max_gpu_budget', 'gpu_budget', p.maxGpuBudget, (v) => (v === -1 ? 'budget' : String(v))],
  ];
  let out: { settings: Record<string, unknown>; parts: string[] }[] = [
    { settings: { ...p.base }, parts: [] },
  ];
  for (const [key, short, values, fmt] of dims) {
    if (!values) continue;
    out = out.flatMap((o) =>
      [...new Set(values)].map((v) => ({
        settings: { ...o.settings, [key]: v },
        parts: [...o.parts, short ? `${short}=${fmt(v)}` : fmt(v)],
      })),
    );
  }
  const byShape = p.startupTimeByWorkerGpus;
  return out.flatMap((o) =>
    [...new Set(p.startupTimeS)].map((st) => ({
      settings: o.settings,
      startupTimeS: st,
      // Per-shape cold starts follow the candidate's own parallelism, which its label already names.
      label: `planner(${[...o.parts, ...(!byShape && (p.startupTimeS.length > 1 || st > 0) ? [`st=${st}s`] : [])].join(' ') || 'default'})`,
      budgetSwept: p.maxGpuBudget !== undefined,
      ...(byShape && { startupByGpus: byShape }),
      ...(p.start && { start: p.start }),
    })),
  );
}

/** A candidate under a planner variant, with the sweep's GPU budget; or why that combination cannot run. */
function withPlanner(
  c: Omit<Candidate, 'id'>,
  v: PlannerVariant,
  gpus: number,
  labels: LabelOptions,
): Omit<Candidate, 'id'> | Pruned {
  // The sweep's budget for this GPU type, unless the base settings ask for less.
  const declared = v.settings.max_gpu_budget;
  const ceiling = typeof declared === 'number' && declared >= 0 ? Math.min(declared, gpus) : gpus;
  const settings = { ...v.settings, max_gpu_budget: ceiling };
  // A swept budget of -1 ("the sweep's budget") is shown as the GPUs it stands for on this candidate's type.
  const shown = { ...v, label: v.label.replace(/\bgpu_budget=budget\b/, `gpu_budget=${ceiling}`) };
  let label = candidateLabel({ id: -1, ...c, planner: { ...shown, settings } }, labels);
  if (v.budgetSwept && typeof declared === 'number' && declared > gpus)
    return { label, reason: `planner: max_gpu_budget ${declared} exceeds the GPU budget of ${gpus}` };
  const parsed = PlannerConfigSchema.safeParse(settings);
  if (!parsed.success) {
    const i = parsed.error.issues[0];
    return { label, reason: `planner: field '${i.path.join('.')}': ${i.message}` };
  }
  if (v.start) {
    c = startWithin(c, parsed.data, v.start);
    label = candidateLabel({ id: -1, ...c, planner: { ...shown, settings } }, labels);
  }
  const pools = c.prefill
    ? [
        { role: 'prefill' as const, workers: c.prefill.workers, gpusPerWorker: c.prefill.tensorParallel },
        { role: 'decode' as const, workers: c.workers, gpusPerWorker: c.tensorParallel },
      ]
    : [{ role: 'aggregated' as const, workers: c.workers, gpusPerWorker: c.tensorParallel }];
  const problem = checkPlannerAgainstCluster(parsed.data, pools);
  if (problem) return { label, reason: `planner: field '${problem.field}': ${problem.message}` };
  const startupTimeS = v.startupByGpus
    ? Math.max(...pools.map((p) => v.startupByGpus?.[String(p.gpusPerWorker)] ?? v.startupTimeS))
    : v.startupTimeS;
  return { ...c, planner: { settings, startupTimeS, label: shown.label } };
}

/**
 * The candidate's worker counts from the Planner's start, moved into the variant's bounds as its first
 * decision would: each scaled role raised to min_endpoint and lowered to max_endpoint, then the largest role
 * above its floor trimmed until the GPU budget holds (a start that cannot fit is left to be pruned).
 */
function startWithin(
  c: Omit<Candidate, 'id'>,
  p: PlannerConfig,
  start: NonNullable<PlannerSpace['start']>,
): Omit<Candidate, 'id'> {
  const pools = c.prefill
    ? [
        { role: 'prefill' as const, n: start.prefill ?? c.prefill.workers, gpus: c.prefill.tensorParallel },
        { role: 'decode' as const, n: start.decode ?? c.workers, gpus: c.tensorParallel },
      ]
    : [{ role: 'aggregated' as const, n: start.aggregated ?? c.workers, gpus: c.tensorParallel }];
  const scaled = scaledRoles(p, pools.length === 2);
  for (const q of pools) {
    if (!scaled.includes(q.role)) continue;
    const { min, max } = replicaBounds(p, q.role);
    q.n = Math.min(Math.max(q.n, min), Math.max(min, max));
  }
  const ceiling = p.max_gpu_budget >= 0 ? p.max_gpu_budget : Number.POSITIVE_INFINITY;
  for (;;) {
    const total = pools.reduce((t, q) => t + q.n * q.gpus, 0);
    if (total <= ceiling) break;
    const trimmable = pools
      .filter((q) => scaled.includes(q.role) && q.n > replicaBounds(p, q.role).min)
      .sort((a, b) => b.n * b.gpus - a.n * a.gpus)[0];
    if (!trimmable) break;
    trimmable.n--;
  }
  if (!c.prefill) return { ...c, workers: pools[0].n };
  return { ...c, prefill: { ...c.prefill, workers: pools[0].n }, workers: pools[1].n };
}

function workerCounts(spec: SearchSpace['workers'], max: number): number[] {
  if (Array.isArray(spec)) return [...new Set(spec)].sort((a, b) => a - b);
  const from = spec === 'all' ? 1 : spec.min;
  const to = spec === 'all' ? max : Math.min(spec.max, max);
  if (to - from + 1 > MAX_CANDIDATES) throw new SpaceTooLarge(`${to - from + 1} worker counts`);
  const out: number[] = [];
  for (let w = from; w <= to; w++) out.push(w);
  return out;
}

function expandRouters(space: SearchSpace['router']): Candidate['router'][] {
  const out: Candidate['router'][] = [];
  for (const mode of [...new Set(space.modes)]) {
    if (mode !== 'kv') {
      out.push({ mode, overlapWeight: 1, overlapCredit: 1, temperature: 0 });
      continue;
    }
    for (const overlapWeight of [...new Set(space.overlapWeights)])
      for (const overlapCredit of [...new Set(space.overlapCredits)])
        for (const temperature of [...new Set(space.temperatures)])
          out.push({ mode, overlapWeight, overlapCredit, temperature });
  }
  return out;
}

function expandEngines(space: SearchSpace['engine']): Candidate['engine'][] {
  const out: Candidate['engine'][] = [];
  for (const engine of [...new Set(space.engines)])
    for (const maxNumBatchedTokens of [...new Set(space.maxNumBatchedTokens)])
      for (const maxNumSeqs of [...new Set(space.maxNumSeqs)])
        for (const blockSize of [...new Set(space.blockSize)])
          for (const numGpuBlocks of space.numGpuBlocks ? [...new Set(space.numGpuBlocks)] : [undefined])
            for (const nextn of [...new Set(space.nextn)])
              out.push({
                engine,
                maxNumBatchedTokens,
                maxNumSeqs,
                blockSize,
                ...(numGpuBlocks !== undefined ? { numGpuBlocks } : {}),
                ...(nextn > 0
                  ? {
                      nextn,
                      ...(space.nextnAcceptRates ? { nextnAcceptRates: space.nextnAcceptRates } : {}),
                    }
                  : {}),
              });
  return out;
}
