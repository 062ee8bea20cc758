import pkg from '../../../package.json' with { type: 'json' };
import type {
  SearchSpace as ApiSearchSpace,
  Slo as ApiSlo,
  Backend,
  DeploymentTuningSpec,
  PredictedMetrics,
  RouterMode,
  ServingSettings,
} from '../../api/index.ts';
import type { CandidateMetrics, Objective, Slo } from '../../sweep/objective.ts';
import { OBJECTIVES } from '../../sweep/objective.ts';
import {
  type Candidate,
  candidateGpus,
  type GpuBudget,
  type PlannerSpace,
  type SearchSpace,
} from '../../sweep/space.ts';
import { coldStartSeconds } from './transition.ts';

/**
 * Translation between the Kubernetes API (CamelCase enums, serving settings as a DGD describes them) and the
 * sweep library (candidates, snake_case objectives).
 */

export const SIMULATOR_VERSION = `servetune-sim/${pkg.version}`;

const OBJECTIVE: Record<DeploymentTuningSpec['objective'], Objective> = {
  ThroughputPerGPU: 'throughput_per_gpu',
  Goodput: 'goodput',
  GoodputPerGPU: 'goodput_per_gpu',
  RequestsPerGPUHour: 'requests_per_gpu_hour',
  Cost: 'cost',
};

const ROUTER_TO_SWEEP = {
  RoundRobin: 'round-robin',
  Random: 'random',
  LeastLoaded: 'least-loaded',
  KV: 'kv',
} as const satisfies Record<RouterMode, Candidate['router']['mode']>;

const ROUTER_FROM_SWEEP: Record<Candidate['router']['mode'], RouterMode> = {
  'round-robin': 'RoundRobin',
  random: 'Random',
  'least-loaded': 'LeastLoaded',
  kv: 'KV',
};

export const sweepObjective = (o: DeploymentTuningSpec['objective']): Objective => OBJECTIVE[o];

export function sweepSlos(slos: ApiSlo[]): Slo[] {
  return slos.map((s) => ({
    metric: s.metric.toLowerCase() as Slo['metric'],
    percentile: `p${s.percentile}` as Slo['percentile'],
    maxMs: s.maxMs,
  }));
}

export function sweepBudget(budget: Record<string, number>, gpuTypes?: string[]): GpuBudget[] {
  return Object.entries(budget)
    .filter(([type, count]) => count > 0 && (!gpuTypes || gpuTypes.includes(type)))
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([type, count]) => ({ type, count }));
}

const DEFAULT_ENGINE = { maxNumBatchedTokens: 8192, maxNumSeqs: 256, blockSize: 64 };

/** The sweep's search space for a DeploymentTuning's. */
export function sweepSpace(space: ApiSearchSpace, base: ServingSettings, coldStartS?: number): SearchSpace {
  const range = (r?: { min: number; max: number }) => (r ? { min: r.min, max: r.max } : ('all' as const));
  const planned = plannerSpace(base, 'sweep', coldStartS, space);
  if (planned) {
    // Under the Planner the replicas are its own: every candidate starts where the deployment is now, and the
    // Planner's bounds (min_endpoint, max_gpu_budget) are the knobs for replicas instead of the counts.
    return {
      ...sweepSpace(space, { ...base, planner: { enabled: false } }),
      workers: [1],
      disaggregated: {
        ...sweepSpace(space, { ...base, planner: { enabled: false } }).disaggregated,
        prefillWorkers: [1],
        decodeWorkers: [1],
        budgetEdge: false,
      },
      planner: planned,
    };
  }
  return {
    topologies: space.topologies.map((t) => (t === 'Aggregated' ? 'aggregated' : 'disaggregated')),
    tensorParallel: space.tensorParallel?.aggregated ?? [1, 2, 4, 8],
    dataParallel: space.dataParallel ?? [base.aggregated?.dataParallel ?? 1],
    expertParallel: [base.engine?.expertParallel ?? false],
    workers: range(space.workers?.aggregated),
    disaggregated: {
      prefillTensorParallel: space.tensorParallel?.prefill ?? [1, 2, 4],
      decodeTensorParallel: space.tensorParallel?.decode ?? [1, 2, 4],
      prefillWorkers: range(space.workers?.prefill),
      decodeWorkers: range(space.workers?.decode),
      budgetEdge: true,
      kvTransferGbps: [64],
      conditional: [false],
    },
    router: {
      modes: space.routers.map((r) => ROUTER_TO_SWEEP[r]),
      overlapWeights: space.kvOverlapWeights ?? [0.5, 1, 2],
      overlapCredits: [1],
      temperatures: [0],
    },
    engine: engineSpace(space, base),
  };
}

const BACKEND_TO_SWEEP = { vLLM: 'vllm', SGLang: 'sglang', TRTLLM: 'trtllm' } as const satisfies Record<
  Backend,
  Candidate['engine']['engine']
>;
const BACKEND_FROM_SWEEP: Record<Candidate['engine']['engine'], Backend> = {
  vllm: 'vLLM',
  sglang: 'SGLang',
  trtllm: 'TRTLLM',
};

function engineSpace(space: Partial<ApiSearchSpace>, base: ServingSettings): SearchSpace['engine'] {
  return {
    engines: (space.backends ?? [base.engine?.backend ?? 'vLLM']).map((b) => BACKEND_TO_SWEEP[b]),
    // Acceptance rates are not read from the target: the reference's defaults (0.85, 0.3) price MTP.
    nextn: space.speculativeDraftTokens ?? [base.engine?.speculative?.draftTokens ?? 0],
    maxNumBatchedTokens: space.maxNumBatchedTokens ?? [
      base.engine?.maxNumBatchedTokens ?? DEFAULT_ENGINE.maxNumBatchedTokens,
    ],
    maxNumSeqs: space.maxNumSeqs ?? [base.engine?.maxNumSeqs ?? DEFAULT_ENGINE.maxNumSeqs],
    blockSize: space.blockSizes ?? [base.engine?.blockSize ?? DEFAULT_ENGINE.blockSize],
  };
}

export class NotSimulatableError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'NotSimulatableError';
  }
}

/**
 * A one-point search space holding exactly the baseline, so it is scored by the same evaluator. Under the
 * Planner it runs with the deployment's configuration from its current replicas; a Planner without a GPU
 * ceiling (-1) gets `plannerGpus` (the tuning's budget for the type), else what it holds now.
 */
export function baselineSpace(
  base: ServingSettings,
  plannerGpus?: number,
  coldStartS?: number,
): { space: SearchSpace; budget: GpuBudget[] } {
  const planned = plannerSpace(base, 'baseline', coldStartS);
  if (planned) {
    const fixed = baselineSpace({ ...base, planner: { enabled: false } });
    const ceiling = base.planner.maxGpuBudget ?? -1;
    const gpus = Math.max(fixed.budget[0].count, ceiling >= 0 ? ceiling : (plannerGpus ?? 0));
    return {
      space: {
        ...fixed.space,
        ...(base.topology === 'Aggregated'
          ? { workers: [1] }
          : {
              disaggregated: {
                ...fixed.space.disaggregated,
                prefillWorkers: [1],
                decodeWorkers: [1],
              },
            }),
        planner: planned,
      },
      budget: [{ type: base.gpuType, count: gpus }],
    };
  }
  const router = {
    modes: [ROUTER_TO_SWEEP[base.router.mode]],
    overlapWeights: [base.router.overlapWeight ?? 1],
    overlapCredits: [1],
    temperatures: [base.router.temperature ?? 0],
  };
  const engine = engineSpace({}, base);
  if (base.topology === 'Disaggregated') {
    const p = base.prefill;
    const d = base.decode;
    if (!p || !d || p.workers < 1 || d.workers < 1) {
      throw new NotSimulatableError('the target needs at least one prefill and one decode worker');
    }
    return {
      space: {
        topologies: ['disaggregated'],
        tensorParallel: [1],
        dataParallel: [1],
        expertParallel: [false],
        workers: 'all',
        disaggregated: {
          prefillTensorParallel: [p.gpusPerWorker],
          decodeTensorParallel: [d.gpusPerWorker],
          prefillWorkers: [p.workers],
          decodeWorkers: [d.workers],
          budgetEdge: false,
          kvTransferGbps: [64],
          conditional: [false],
        },
        router,
        engine,
      },
      budget: [{ type: base.gpuType, count: p.workers * p.gpusPerWorker + d.workers * d.gpusPerWorker }],
    };
  }
  const a = base.aggregated;
  if (!a || a.workers < 1) throw new NotSimulatableError('the target has no workers');
  const dp = a.dataParallel ?? 1;
  return {
    space: {
      topologies: ['aggregated'],
      // A worker's GPUs are TP x DP; without ranks every GPU of the pod counts as tensor parallel.
      tensorParallel: [dp > 1 ? a.tensorParallel : a.gpusPerWorker],
      dataParallel: [dp],
      expertParallel: [base.engine?.expertParallel ?? false],
      workers: [a.workers],
      disaggregated: {
        prefillTensorParallel: [1],
        decodeTensorParallel: [1],
        prefillWorkers: 'all',
        decodeWorkers: 'all',
        budgetEdge: true,
        kvTransferGbps: [64],
        conditional: [false],
      },
      router,
      engine,
    },
    budget: [{ type: base.gpuType, count: a.workers * a.gpusPerWorker }],
  };
}

export function settingsOf(c: Candidate, model?: string): ServingSettings {
  const router: ServingSettings['router'] = { mode: ROUTER_FROM_SWEEP[c.router.mode] };
  if (c.router.mode === 'kv') {
    router.overlapWeight = c.router.overlapWeight;
    if (c.router.temperature > 0) router.temperature = c.router.temperature;
  }
  const role = (workers: number, tp: number, dp = 1) => ({
    workers,
    tensorParallel: tp,
    ...(dp > 1 && { dataParallel: dp }),
    gpusPerWorker: tp * dp,
  });
  const roles: Pick<ServingSettings, 'topology' | 'aggregated' | 'prefill' | 'decode'> = c.prefill
    ? {
        topology: 'Disaggregated',
        prefill: role(c.prefill.workers, c.prefill.tensorParallel),
        decode: role(c.workers, c.tensorParallel),
      }
    : { topology: 'Aggregated', aggregated: role(c.workers, c.tensorParallel, c.dataParallel) };
  return {
    ...(model && { model }),
    gpuType: c.gpuType,
    gpus: candidateGpus(c),
    ...roles,
    router,
    planner: c.planner ? plannerBounds(c.planner.settings) : { enabled: false },
    engine: {
      backend: BACKEND_FROM_SWEEP[c.engine.engine],
      maxNumSeqs: c.engine.maxNumSeqs,
      maxNumBatchedTokens: c.engine.maxNumBatchedTokens,
      blockSize: c.engine.blockSize,
      ...(c.expertParallel && { expertParallel: true }),
      ...((c.engine.nextn ?? 0) > 0 && { speculative: { method: 'mtp', draftTokens: c.engine.nextn ?? 1 } }),
    },
  };
}

/** The replica bounds a candidate's Planner runs with, as serving settings. */
function plannerBounds(settings: Record<string, unknown>): ServingSettings['planner'] {
  const min = settings.min_endpoint ?? 1;
  const max = settings.max_gpu_budget;
  return {
    enabled: true,
    ...(typeof min === 'number' && { minEndpoint: min }),
    ...(typeof max === 'number' && { maxGpuBudget: max }),
  };
}

/**
 * The Planner as sweep dimensions, for a target whose Planner configuration was read: its settings as the
 * base, its workers' cold start (a known one, else the catalog's for each worker size), where it starts (the current
 * replicas), and for the sweep the bound values to try: min_endpoint in {1, 2, the deployment's} (within
 * the tuning's worker ranges), max_gpu_budget in {the tuning's budget for the GPU type, the deployment's,
 * the GPUs it holds now}. The baseline runs its own bounds only.
 */
function plannerSpace(
  base: ServingSettings,
  use: 'baseline' | 'sweep',
  coldStartS: number | undefined,
  space?: Partial<ApiSearchSpace>,
): PlannerSpace | undefined {
  if (!base.planner.enabled || base.planner.config === undefined) return undefined;
  let given: Record<string, unknown>;
  try {
    given = JSON.parse(base.planner.config) as Record<string, unknown>;
  } catch {
    throw new NotSimulatableError("the Planner's recorded configuration is not JSON");
  }
  const roles = base.topology === 'Aggregated' ? (['aggregated'] as const) : (['prefill', 'decode'] as const);
  const start = Object.fromEntries(
    roles.map((r) => [r, base[r]?.workers ?? 1]).filter(([, n]) => (n as number) > 0),
  );
  const tp = (base.aggregated ?? base.decode)?.gpusPerWorker ?? 1;
  // Unless the spec gives one cold start, each worker size loads its own share of the weights.
  const shapes = new Set<number>([
    ...roles.map((r) => base[r]?.gpusPerWorker ?? 1),
    ...(use === 'sweep'
      ? [
          ...(space?.tensorParallel?.aggregated ?? [1, 2, 4, 8]),
          ...(space?.tensorParallel?.prefill ?? [1, 2, 4]),
          ...(space?.tensorParallel?.decode ?? [1, 2, 4]),
        ]
      : []),
  ]);
  const planner: PlannerSpace = {
    base: given,
    startupTimeS: [coldStartS ?? coldStartSeconds(base.model, tp)],
    ...(coldStartS === undefined && {
      startupTimeByWorkerGpus: Object.fromEntries(
        [...shapes].map((g) => [String(g), coldStartSeconds(base.model, g)]),
      ),
    }),
    start,
  };
  if (use === 'baseline') return planner;
  const min = base.planner.minEndpoint;
  if (min !== undefined) {
    // Within every scaled role's worker range of the search space, unless it is the deployment's own.
    const ranges = roles.map((r) => space?.workers?.[r]).filter((x) => x !== undefined);
    const inRanges = (v: number) => ranges.every((r) => v >= r.min && v <= r.max);
    planner.minEndpoint = [...new Set([1, 2, min])]
      .filter((v) => v === min || inRanges(v))
      .sort((a, b) => a - b);
  }
  const budget = base.planner.maxGpuBudget;
  planner.maxGpuBudget = [
    ...new Set([-1, ...(budget !== undefined && budget >= 0 ? [budget] : []), base.gpus]),
  ].filter((v) => v === -1 || v > 0);
  return planner;
}

/** The Planner and the bounds it runs with (the worker counts above are where it starts). */
export function plannerSummary(p: ServingSettings['planner']): string {
  const bounds = [
    ...(p.minEndpoint !== undefined ? [`min_endpoint ${p.minEndpoint}`] : []),
    ...(p.maxGpuBudget !== undefined ? [`max_gpu_budget ${p.maxGpuBudget}`] : []),
  ];
  return bounds.length > 0 ? `planner (${bounds.join(', ')})` : 'planner';
}

export function higherIsBetter(o: Objective): boolean {
  return OBJECTIVES[o].better === 'higher';
}

/** The objective in its own unit (the sweep's score negates minimised objectives). */
export function objectiveValue(o: Objective, score: number): number {
  return higherIsBetter(o) ? score : -score;
}

/** Relative improvement of `value` over `base` in percent, in the objective's direction. */
export function gainPercent(o: Objective, base: number, value: number): number {
  if (!Number.isFinite(base) || base === 0) return value === base ? 0 : 100;
  const g = ((higherIsBetter(o) ? value - base : base - value) / Math.abs(base)) * 100;
  return Number(g.toFixed(2));
}

const r3 = (x: number) => (Number.isFinite(x) ? Number(x.toFixed(3)) : 0);

export function predictedMetrics(
  m: CandidateMetrics,
  feasible: boolean,
  objective: Objective,
  score: number,
): PredictedMetrics {
  const pct = (d: CandidateMetrics['ttft']) => ({ p50: r3(d.p50), p90: r3(d.p90), p99: r3(d.p99) });
  const v = objectiveValue(objective, score);
  return {
    ttftMs: pct(m.ttft),
    itlMs: pct(m.itl),
    e2eMs: pct(m.e2e),
    requestThroughputRps: r3(m.request_rps),
    outputTokensPerSecond: r3(m.output_tok_s),
    outputTokensPerSecondPerGpu: r3(m.throughput_per_gpu),
    goodputFraction: m.request_rps > 0 ? Math.min(1, r3(m.goodput_rps / m.request_rps)) : 0,
    meetsSlos: feasible,
    objectiveValue: Number.isFinite(v) ? r3(v) : 1e12,
  };
}
