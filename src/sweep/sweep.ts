import type { Workload } from '../sim/workload/workload.ts';
import { hardwareFits, type SimulationBase } from './evaluate.ts';
import {
  type CandidateMetrics,
  compareScored,
  OBJECTIVES,
  type Objective,
  type Percentile,
  type Scored,
  type Slo,
  type SloMetric,
  sloKey,
  sloValue,
} from './objective.ts';
import {
  coordinateSearch,
  type Evaluation,
  EvaluationLog,
  gridSearch,
  halvingSearch,
  type OptimizerName,
} from './optimizers.ts';
import { paretoFrontier } from './pareto.ts';
import { defaultThreads, EvaluationPool } from './pool.ts';
import {
  type Candidate,
  candidateGpus,
  candidateLabel,
  enumerateCandidates,
  type GpuBudget,
  type LabelOptions,
  type Pruned,
  type SearchSpace,
  type WorkerParallelism,
} from './space.ts';

export interface SweepRequest {
  workload: Workload;
  space: SearchSpace;
  budget: GpuBudget[];
  objective: Objective;
  slos: Slo[];
  optimizer?: OptimizerName;
  /** How to replay the workload (timing model, arrival mode, seed); defaults: polynomial, trace replay. */
  simulation?: Partial<Omit<SimulationBase, 'slos' | 'prices'>>;
  /** Latency axis of the frontier; defaults to the first SLO, else TTFT p90. */
  latency?: { metric: SloMetric; percentile: Percentile };
  /** Vetoes shapes that cannot run (e.g. the model does not fit); returns the reason or null. */
  fits?: (
    gpuType: string,
    tp: number,
    engine: Candidate['engine'],
    parallel?: WorkerParallelism,
  ) => string | null;
}

export interface SweepOptions {
  threads?: number;
  /** V8 limits of each evaluation thread (a thread over them fails its candidate and is replaced). */
  resourceLimits?: import('node:worker_threads').ResourceLimits;
  signal?: AbortSignal;
  onProgress?: (p: { done: number; planned: number; phase: string }) => void;
}

export interface CandidateResult {
  id: number;
  label: string;
  candidate: Candidate;
  gpus: number;
  /** Share of the workload the numbers below come from (1 = all of it; 0 = not evaluated). */
  fraction: number;
  metrics: CandidateMetrics | null;
  feasible: boolean;
  violation: number;
  score: number;
  /** 1-based rank among candidates evaluated on the whole workload; null otherwise. */
  rank: number | null;
  error?: string;
}

/** How a sweep priced its candidates, and which of their dimensions that pricing cannot tell apart. */
export interface SweepTiming {
  model: 'hardware' | 'polynomial' | 'fixed';
  /** The served model hardware timing priced (hardware only). */
  servedModel?: string;
  /** Candidate dimensions the timing model ignores: latencies do not depend on them. */
  ignores: ('gpuType' | 'tensorParallel')[];
}

export interface SweepResult {
  objective: Objective;
  timing: SweepTiming;
  slos: Slo[];
  optimizer: OptimizerName;
  budget: GpuBudget[];
  latencyAxis: { metric: SloMetric; percentile: Percentile };
  candidates: CandidateResult[];
  pruned: Pruned[];
  /**
   * Candidate ids on the Pareto frontiers of the candidates that meet the SLOs (a miss is no operating point
   * to trade against), best latency (resp. best per-user speed) first.
   */
  frontier: { latency: number[]; userSpeed: number[] };
  recommended: CandidateResult | null;
  explanation: string[];
  stats: {
    enumerated: number;
    evaluations: number;
    fullEvaluations: number;
    threads: number;
    wall_s: number;
    partial: boolean;
  };
}

/** How a sweep replays its workload for every candidate (also used to re-score chosen candidates). */
export function simulationBase(
  request: Pick<SweepRequest, 'budget' | 'workload' | 'simulation' | 'slos'>,
): SimulationBase {
  const prices: Record<string, number> = {};
  for (const b of request.budget) prices[b.type] = b.pricePerHour ?? 1;
  return {
    timing: { model: 'polynomial', prefillMs: 10, decodeMs: 5 },
    traceBlockSize: request.workload.traceBlockSize,
    arrivalSpeedupRatio: 1,
    seed: 0,
    ...request.simulation,
    prices,
    slos: request.slos,
  };
}

/**
 * Runs a sweep: enumerates the space within the budget, evaluates candidates with the chosen optimiser on
 * worker threads, ranks them, maps the Pareto frontiers and recommends the best feasible candidate, with the
 * reasons. Results do not depend on the thread count. An aborted sweep returns what it has (`stats.partial`).
 */
export async function runSweep(request: SweepRequest, options: SweepOptions = {}): Promise<SweepResult> {
  const t0 = performance.now();
  const optimizer = request.optimizer ?? 'grid';
  const base = simulationBase(request);
  const fits =
    request.fits ??
    (base.hardware ? hardwareFits({ ...base, hardware: base.hardware }, request.workload) : undefined);
  const timing: SweepTiming = base.hardware
    ? { model: 'hardware', servedModel: base.hardware.model, ignores: [] }
    : { model: base.timing.model, ignores: ['gpuType', 'tensorParallel'] };
  const labels = labelOptions(request, timing);
  const { candidates, pruned } = enumerateCandidates(request.space, request.budget, fits, labels);
  const threads = Math.min(options.threads ?? defaultThreads(), Math.max(1, candidates.length));
  const pool = new EvaluationPool(
    request.workload,
    base,
    options.threads === 0 ? 0 : threads,
    options.resourceLimits,
  );
  const log = new EvaluationLog({
    pool,
    objective: request.objective,
    slos: request.slos,
    signal: options.signal,
    onEvaluated: (done, planned, phase) => options.onProgress?.({ done, planned, phase }),
  });
  try {
    if (optimizer === 'grid') await gridSearch(candidates, log);
    else if (optimizer === 'coordinate') await coordinateSearch(candidates, log);
    else await halvingSearch(candidates, log);
  } finally {
    await pool.close();
  }

  const latencyAxis =
    request.latency ??
    (request.slos[0]
      ? { metric: request.slos[0].metric, percentile: request.slos[0].percentile }
      : { metric: 'ttft' as const, percentile: 'p90' as const });
  const results: CandidateResult[] = candidates.map((c) => {
    const e: Evaluation | undefined = log.byId.get(c.id);
    return {
      id: c.id,
      label: candidateLabel(c, labels),
      candidate: c,
      gpus: candidateGpus(c),
      fraction: e?.fraction ?? 0,
      metrics: e?.metrics ?? null,
      feasible: e?.feasible ?? false,
      violation: e?.violation ?? Number.POSITIVE_INFINITY,
      score: e?.score ?? Number.NEGATIVE_INFINITY,
      rank: null,
      ...(e?.error ? { error: e.error } : {}),
    };
  });
  const full = results.filter((r) => r.fraction >= 1 && r.metrics !== null && !r.error);
  full
    .sort((a, b) => compareScored(a as Scored, b as Scored))
    .forEach((r, i) => {
      r.rank = i + 1;
    });
  const recommended = full.length > 0 && full[0].feasible ? full[0] : null;
  const meets = full.filter((r) => r.feasible);
  const latency = paretoFrontier(
    meets.map((r) => ({
      id: r.id,
      x: (r.metrics as CandidateMetrics)[latencyAxis.metric][latencyAxis.percentile],
      y: (r.metrics as CandidateMetrics).throughput_per_gpu,
    })),
    'lower',
    'higher',
  ).map((p) => p.id);
  const userSpeed = paretoFrontier(
    meets.map((r) => ({
      id: r.id,
      x: (r.metrics as CandidateMetrics).user_tok_s,
      y: (r.metrics as CandidateMetrics).throughput_per_gpu,
    })),
    'higher',
    'higher',
  ).map((p) => p.id);
  const aborted = options.signal?.aborted ?? false;
  return {
    objective: request.objective,
    timing,
    slos: request.slos,
    optimizer,
    budget: request.budget,
    latencyAxis,
    candidates: results,
    pruned,
    frontier: { latency, userSpeed },
    recommended,
    explanation: explain(request, full, recommended),
    stats: {
      enumerated: candidates.length,
      evaluations: pool.evaluations,
      fullEvaluations: full.length,
      threads: pool.threads,
      wall_s: (performance.now() - t0) / 1000,
      partial: aborted,
    },
  };
}

/** What priced the candidates, in one line (for the terminal table and the HTML report). */
export function describeTiming(t: SweepTiming): string {
  return t.model === 'hardware'
    ? `timing: hardware, ${t.servedModel} priced on each candidate's GPU type and tensor-parallel size`
    : `timing: ${t.model} (hardware-agnostic: latencies do not depend on GPU type or TP, so candidates differ ` +
        'only in workers, router and engine knobs)';
}

/**
 * Labels leave out a dimension the timing model ignores when the space holds one value of it (one GPU type,
 * TP 1 everywhere): naming it would suggest it was compared. Several values keep it, so labels stay distinct.
 */
function labelOptions(request: SweepRequest, timing: SweepTiming): LabelOptions {
  const s = request.space;
  const onlyTp1 = [
    ...(s.topologies.includes('aggregated') ? s.tensorParallel : []),
    ...(s.topologies.includes('disaggregated')
      ? [...s.disaggregated.prefillTensorParallel, ...s.disaggregated.decodeTensorParallel]
      : []),
  ].every((tp) => tp === 1);
  return {
    gpuType: !(timing.ignores.includes('gpuType') && request.budget.length === 1),
    tensorParallel: !(timing.ignores.includes('tensorParallel') && onlyTp1),
  };
}

function fmt(v: number, unit = ''): string {
  if (!Number.isFinite(v)) return String(v);
  const a = Math.abs(v);
  const s = a >= 100 ? v.toFixed(0) : a >= 10 ? v.toFixed(1) : v.toFixed(2);
  return `${s}${unit}`;
}

function sloLine(m: CandidateMetrics, s: Slo): string {
  const x = sloValue(m, s);
  return x <= s.maxMs
    ? `${sloKey(s)} ${fmt(x, ' ms')} <= ${fmt(s.maxMs, ' ms')} (${fmt((1 - x / s.maxMs) * 100, '%')} headroom)`
    : `${sloKey(s)} ${fmt(x, ' ms')} > ${fmt(s.maxMs, ' ms')} (misses by ${fmt((x / s.maxMs - 1) * 100, '%')})`;
}

/** Why the recommendation won: objective, SLO margins, the runner-up and the nearest cheaper alternative. */
function explain(request: SweepRequest, ranked: CandidateResult[], rec: CandidateResult | null): string[] {
  const obj = OBJECTIVES[request.objective];
  if (ranked.length === 0) return ['No candidate was evaluated on the whole workload.'];
  if (rec === null) {
    const best = ranked[0];
    const m = best.metrics as CandidateMetrics;
    return [
      `No candidate meets every SLO within the budget. Closest: ${best.label} (${best.gpus} GPUs).`,
      ...request.slos.map((s) => sloLine(m, s)),
      m.completed < m.requests ? `It finished ${m.completed} of ${m.requests} requests.` : '',
      'Consider a larger GPU budget, looser SLOs, or a wider search space.',
    ].filter((l) => l !== '');
  }
  const m = rec.metrics as CandidateMetrics;
  const lines = [
    `Recommended: ${rec.label} using ${rec.gpus} GPU${rec.gpus === 1 ? '' : 's'}; ${obj.label} = ${fmt(Math.abs(rec.score))} (${obj.better} is better), ${fmt(m.throughput_per_gpu)} output tok/s per GPU.`,
  ];
  if (request.slos.length > 0)
    lines.push(`Meets every SLO: ${request.slos.map((s) => sloLine(m, s)).join('; ')}.`);
  const feasible = ranked.filter((r) => r.feasible);
  const runnerUp = feasible[1];
  if (runnerUp) {
    const gap = rec.score !== 0 ? ((rec.score - runnerUp.score) / Math.abs(rec.score)) * 100 : 0;
    lines.push(
      `Runner-up: ${runnerUp.label} (${runnerUp.gpus} GPUs), ${fmt(Math.abs(gap), '%')} behind on the objective.`,
    );
  }
  const cheaper = ranked
    .filter((r) => !r.feasible && r.gpus < rec.gpus)
    .sort((a, b) => b.gpus - a.gpus || a.violation - b.violation)[0];
  if (cheaper && request.slos.length > 0) {
    const cm = cheaper.metrics as CandidateMetrics;
    const misses = request.slos.filter((s) => sloValue(cm, s) > s.maxMs).map((s) => sloLine(cm, s));
    lines.push(`With fewer GPUs, ${cheaper.label} (${cheaper.gpus} GPUs) misses: ${misses.join('; ')}.`);
  }
  lines.push(
    `${feasible.length} of ${ranked.length} candidates evaluated on the whole workload meet the SLOs.`,
  );
  return lines;
}
