import { Worker } from 'node:worker_threads';
import type {
  DeploymentTuningSpec,
  PredictedMetrics,
  ServingSettings,
  WorkloadSummary,
} from '../../api/index.ts';
import { prepareCluster } from '../../config/hardware.ts';
import type { PoolTimings } from '../../config/run.ts';
import { Catalog } from '../../hardware/catalog.ts';
import { candidateConfig, type SimulationBase, sweepCatalog } from '../../sweep/evaluate.ts';
import type { GpuBudget, SearchSpace, Candidate as SweepCandidate } from '../../sweep/space.ts';
import { runSweep, simulationBase } from '../../sweep/sweep.ts';
import { simulateCandidateTransition } from '../../sweep/transition-sim.ts';
import { type IntervalMetrics, pairedGain, predictionIntervals } from '../../sweep/uncertainty.ts';
import { type CalibrationResult, calibrate, observedBasis } from '../../telemetry/calibration/calibrate.ts';
import { warmupSpanMs, withWarmup } from '../../telemetry/calibration/warmup.ts';
import type { WorkloadProfile } from '../../telemetry/profile/profile.ts';
import { DEFAULT_INPUT_LIMITS, type TraceIssue } from '../../telemetry/trace/index.ts';
import { budgetGpus, settingsDigest } from '../rollout/decide.ts';
import {
  baselineSpace,
  gainPercent,
  plannerSummary,
  predictedMetrics,
  SIMULATOR_VERSION,
  settingsOf,
  sweepBudget,
  sweepObjective,
  sweepSlos,
  sweepSpace,
} from './mapping.ts';
import { describeSimulatedTransition, type TransitionCost, transitionCost } from './transition.ts';
import { type JobWindow, loadJobWindow, type WindowSource } from './window.ts';

/**
 * One sweep as a job: cut and summarise the trace window, score the baseline and every candidate with the
 * sweep library (the baseline as a one-point space, so both go through the same evaluator), compare. It runs
 * in a worker thread (the sweep adds its own pool), so reconciles of other objects never wait for it.
 */

export interface SweepJobInput {
  /** The trace's bytes or text (gzip or not), unless one of the telemetry sources below is given. */
  traceText?: string | Uint8Array;
  /** Force a trace format (default: detected from the content). */
  format?: string;
  /** Dynamo request traces in a directory (checked to lie under the trace roots before the job starts). */
  requestTrace?: { path: string; lookbackMs: number; endMs: number };
  /** A Prometheus window's profile, synthesised into a trace in the job (seeded: the same window, the same trace). */
  profile?: WorkloadProfile;
  /** Live calibration against what the deployment measured over the window, when the source says. */
  calibration?: { enabled: boolean; apply: boolean; maxCorrection: number };
  /** Caps on the (inflated) trace: bytes and rows read. */
  limits?: { maxBytes?: number; maxRows?: number };
  source: string;
  traceBlockSize: number;
  lookbackMs?: number;
  baseline: ServingSettings;
  spec: Pick<DeploymentTuningSpec, 'objective' | 'slos' | 'searchSpace'>;
  budget: Record<string, number>;
  /** Sweep worker threads (0 = in the job's own thread). */
  threads?: number;
  /** What the rollout needs priced: the disruption budget, a known cold start, the live calibration error. */
  rollout?: { maxGpusChanging: number | string; coldStartSeconds?: number; calibrationErrorPercent?: number };
  /**
   * Digests (`settingsDigest`) of settings that failed verification on this target: the best candidate not
   * among them is chosen, so the loop goes on improving instead of stalling on a change that did not hold.
   */
  exclude?: readonly string[];
  /**
   * V8 heap for the whole sweep, MiB, split between the job's thread and its evaluation threads. A thread
   * over its share fails (the job as SweepCrashed) instead of growing the operator until the kernel kills it.
   */
  memoryMb?: number;
}

export interface Candidate {
  settings: ServingSettings;
  metrics: PredictedMetrics;
}

export interface SweepJobResult {
  summary: WorkloadSummary;
  /** The window's profile: drift compares later windows with it. */
  profile: WorkloadProfile;
  /** Live calibration of the baseline against the deployment's measurements, and whether it was applied. */
  calibration?: CalibrationResult & { applied: boolean; windowS: number };
  issues: TraceIssue[];
  baseline: PredictedMetrics;
  best: Candidate | null;
  gainPercent: number | null;
  /** The gain's interval over sub-windows of the trace (paired: the same traffic for both). */
  gainPercentLow?: number | null;
  intervals?: { baseline: IntervalMetrics; proposal: IntervalMetrics };
  transition?: TransitionCost;
  /** Pareto frontier (lower latency against higher throughput per GPU), best latency first. */
  frontier: Candidate[];
  candidates: number;
  feasible: number;
  optimizer: string;
  explanation: string;
  /** Set when the sweep's best candidate had failed verification on this target (what was done instead). */
  excluded?: string;
  simulatorVersion: string;
}

/** Failure kinds the controller reports differently (SweepCrashed counts towards giving a slot up). */
export type SweepFailureKind = 'NoUsableData' | 'BaselineNotSimulatable' | 'SweepFailed' | 'SweepCrashed';

/** Each thread's share of a sweep's heap (never below what a thread needs to start and parse). */
export function threadHeapMb(memoryMb: number | undefined, threads: number): number | undefined {
  if (memoryMb === undefined) return undefined;
  return Math.max(128, Math.floor(memoryMb / (Math.max(0, threads) + 1)));
}

/**
 * How passes are timed. With the served model and the baseline's GPU in the catalog, every candidate is
 * priced on its own GPU type and tensor-parallel shape (KV sized from HBM); otherwise all candidates share a
 * generic cost model, so the comparison stays fair but absolute latencies are indicative only.
 */
export function simulationFor(
  model: string | undefined,
  baselineGpu: string,
): { simulation: Partial<SimulationBase>; note: string } {
  const catalog = Catalog.builtin();
  const spec = model ? catalog.findModel(model) : undefined;
  if (!spec) {
    return {
      simulation: {},
      note: model
        ? `Model '${model}' is not in the hardware catalog, so passes use a generic cost model.`
        : 'The served model is unknown, so passes use a generic cost model.',
    };
  }
  if (!catalog.findGpu(baselineGpu)) {
    return {
      simulation: {},
      note: `The target's GPU type '${baselineGpu}' is not in the hardware catalog, so passes use a generic cost model.`,
    };
  }
  return {
    simulation: { hardware: { model: spec.id } },
    note: `Passes are timed on each candidate's GPU type and tensor-parallel shape for ${spec.id}.`,
  };
}

export class SweepJobError extends Error {
  readonly kind: SweepFailureKind;
  constructor(kind: SweepFailureKind, message: string) {
    super(message);
    this.name = 'SweepJobError';
    this.kind = kind;
  }
}

/** Synthesised traces are seeded: the same Prometheus window always replays as the same trace. */
const SYNTHESIS = { seed: 1, blockSize: 64 };

function windowSource(input: SweepJobInput): WindowSource {
  if (input.requestTrace) return { kind: 'requestTrace', ...input.requestTrace };
  if (input.profile) return { kind: 'profile', profile: input.profile, ...SYNTHESIS };
  return {
    kind: 'trace',
    text: input.traceText ?? '',
    traceBlockSize: input.traceBlockSize,
    lookbackMs: input.lookbackMs,
    ...(input.format !== undefined && { format: input.format }),
  };
}

/** Calibrates the baseline candidate against the window's measurements. */
function calibrateBaseline(
  window: JobWindow,
  candidate: SweepCandidate,
  base: SimulationBase,
  c: NonNullable<SweepJobInput['calibration']>,
  maxRows: number | undefined,
): CalibrationResult {
  let config = candidateConfig(candidate, base);
  let timings: PoolTimings | undefined;
  if (base.hardware) {
    const prepared = prepareCluster(config, sweepCatalog(base.hardware), window.workload);
    config = prepared.config;
    timings = prepared.timings;
  }
  // The window replayed after a warm-up, measured from its start: what the deployment served just before it
  // when the source recorded it (request traces), else the window's own first part (counted against the row
  // bound).
  const warmed =
    window.warmup ??
    withWarmup(window.workload, {
      spanMs: warmupSpanMs(window.windowS * 1000),
      maxRows: maxRows ?? DEFAULT_INPUT_LIMITS.maxRows,
    });
  return calibrate({
    workload: warmed.workload,
    measureFromMs: warmed.measureFromMs,
    config,
    timings,
    observed: window.observed,
    // Measured as the source measured the deployment (Prometheus histograms, per-request records).
    basis: observedBasis(window.profile),
    windowS: window.windowS,
    bounds: { min: 1 / c.maxCorrection, max: c.maxCorrection },
  });
}

export async function runSweepJobInline(input: SweepJobInput): Promise<SweepJobResult> {
  let window: JobWindow;
  try {
    window = await loadJobWindow(windowSource(input), { source: input.source, limits: input.limits });
  } catch (e) {
    throw new SweepJobError('NoUsableData', (e as Error).message);
  }
  const objective = sweepObjective(input.spec.objective);
  const slos = sweepSlos(input.spec.slos);
  const model = input.baseline.model;
  const timing = simulationFor(model, input.baseline.gpuType);
  let baseline: PredictedMetrics | undefined;
  let baselineCandidate: SweepCandidate | undefined;
  let calibration: SweepJobResult['calibration'];
  try {
    const b = baselineSpace(
      input.baseline,
      input.budget[input.baseline.gpuType],
      input.rollout?.coldStartSeconds,
    );
    const evaluateBaseline = async () => {
      const r = await runSweep(
        {
          workload: window.workload,
          space: b.space,
          budget: b.budget,
          objective,
          slos,
          simulation: timing.simulation,
        },
        { threads: 0 },
      );
      const c = r.candidates[0];
      if (!c?.metrics) throw new Error(c?.error ?? 'the baseline could not be simulated');
      baseline = predictedMetrics(c.metrics, c.feasible, objective, c.score);
      baselineCandidate = c.candidate;
    };
    await evaluateBaseline();
    const cal = input.calibration;
    if (cal?.enabled && baselineCandidate && Object.keys(window.observed).length > 0) {
      const base = simulationBase({
        budget: b.budget,
        workload: window.workload,
        simulation: timing.simulation,
        slos,
      });
      const result = calibrateBaseline(window, baselineCandidate, base, cal, input.limits?.maxRows);
      // A fit that found nothing better than the model as it is (both factors 1) is not a correction.
      const f = result.correction?.factors;
      const identity = f?.prefill === 1 && f.decode === 1;
      const applied = cal.apply && result.correction !== null && !result.correction.bounded && !identity;
      calibration = { ...result, applied, windowS: window.windowS };
      if (applied && result.correction) {
        // Every candidate, the baseline included, is priced with the correction from here on.
        timing.simulation = { ...timing.simulation, timingScale: result.correction.factors };
        await evaluateBaseline();
      }
    }
  } catch (e) {
    throw new SweepJobError('BaselineNotSimulatable', `baseline: ${(e as Error).message}`);
  }
  if (baseline === undefined) throw new SweepJobError('BaselineNotSimulatable', 'baseline: not simulated');
  let space = sweepSpace(input.spec.searchSpace, input.baseline, input.rollout?.coldStartSeconds);
  let budget = sweepBudget(input.budget, input.spec.searchSpace.gpuTypes);
  const hardwareAware = timing.simulation.hardware !== undefined;
  if (!hardwareAware) {
    // A generic cost model cannot tell GPU types or tensor-parallel degrees apart: a change of either would be
    // priced as if it made no difference (or only cost more GPUs). Hold both at the baseline's.
    ({ space, budget } = holdHardware(space, budget, input.baseline));
  }
  if (budget.length === 0) {
    return {
      summary: window.summary,
      profile: window.profile,
      ...(calibration && { calibration }),
      issues: window.issues,
      baseline,
      best: null,
      gainPercent: null,
      frontier: [],
      candidates: 0,
      feasible: 0,
      optimizer: input.spec.searchSpace.optimizer.toLowerCase(),
      explanation: 'The GPU budget is empty: no GPUs of a known type are free and the target holds none.',
      simulatorVersion: SIMULATOR_VERSION,
    };
  }
  const r = await runSweep(
    {
      workload: window.workload,
      space,
      budget,
      objective,
      slos,
      simulation: timing.simulation,
      optimizer: input.spec.searchSpace.optimizer.toLowerCase() as 'grid' | 'coordinate' | 'halving',
    },
    {
      threads: input.threads ?? 1,
      ...(input.memoryMb !== undefined && {
        resourceLimits: { maxOldGenerationSizeMb: threadHeapMb(input.memoryMb, input.threads ?? 1) },
      }),
    },
  );
  const crashed = r.candidates.filter(
    (c) => c.error && /out of memory|worker exited|worker failed/.test(c.error),
  );
  if (crashed.length > 0 && r.candidates.every((c) => c.metrics === null)) {
    throw new SweepJobError(
      'SweepCrashed',
      `every candidate crashed its thread (first: ${crashed[0].error})`,
    );
  }
  const byId = new Map(r.candidates.map((c) => [c.id, c]));
  const asCandidate = (c: (typeof r.candidates)[number]): Candidate => ({
    settings: settingsOf(c.candidate, model),
    metrics: predictedMetrics(c.metrics!, c.feasible, objective, c.score),
  });
  const chosen = chooseBest(r.candidates, r.recommended, input.exclude ?? [], model);
  const best = chosen.best ? asCandidate(chosen.best) : null;
  const gain = best ? gainPercent(objective, baseline.objectiveValue, best.metrics.objectiveValue) : null;
  // The uncertainty of the comparison that matters: the baseline and the best, replayed on the same
  // sub-windows of the trace (and widened by the live calibration error when it is known).
  let intervals: SweepJobResult['intervals'];
  let gainPercentLow: number | null = null;
  let transition: TransitionCost | undefined;
  if (best && chosen.best && baselineCandidate) {
    const base = simulationBase({ budget, workload: window.workload, simulation: timing.simulation, slos });
    const [bi, pi] = predictionIntervals(
      window.workload,
      base,
      [baselineCandidate, chosen.best.candidate],
      objective,
      {
        windows: 4,
        widenPercent: input.rollout?.calibrationErrorPercent,
      },
    );
    intervals = { baseline: bi, proposal: pi };
    gainPercentLow = pairedGain(objective, bi.perWindow, pi.perWindow).low;
    if (input.rollout) {
      const maxGpusChanging = budgetGpus(input.rollout.maxGpusChanging, input.baseline.gpus);
      transition = transitionCost(input.baseline, best.settings, {
        gainPercent: gain ?? 0,
        coldStartSeconds: input.rollout.coldStartSeconds,
        maxGpusChanging,
      });
      transition = {
        ...transition,
        ...simulatedTransition(
          window,
          base,
          baselineCandidate,
          chosen.best.candidate,
          transition,
          maxGpusChanging,
        ),
      };
    }
  }
  const evaluated = r.candidates.filter((c) => c.metrics !== null && c.fraction >= 1);
  return {
    summary: window.summary,
    profile: window.profile,
    ...(calibration && { calibration }),
    issues: window.issues,
    baseline,
    best,
    gainPercent: gain,
    gainPercentLow,
    ...(intervals && { intervals }),
    ...(transition && { transition }),
    ...(chosen.note && { excluded: chosen.note }),
    frontier: r.frontier.latency.map((id) => asCandidate(byId.get(id)!)),
    candidates: evaluated.length,
    feasible: evaluated.filter((c) => c.feasible).length,
    optimizer: r.optimizer,
    explanation: [
      `Replayed ${window.summary.requests} requests (${window.summary.requestRate} req/s) from ${input.source}.`,
      timing.note,
      baseline.meetsSlos ? 'The baseline meets the SLOs.' : 'The baseline misses the SLOs.',
      // Before the sweep's own lines (which name its pick), so that a long explanation never cuts it off.
      ...(chosen.note ? [chosen.note] : []),
      ...r.explanation,
      ...(r.pruned.length > 0 ? [`${r.pruned.length} shapes were pruned before simulation.`] : []),
      ...(crashed.length > 0
        ? [`${crashed.length} candidates ran out of memory or crashed their thread and were left out.`]
        : []),
      ...(transition && (transition.simulated || transition.notSimulated)
        ? [describeSimulatedTransition(transition)]
        : []),
      ...(hardwareAware
        ? []
        : [
            `GPU type and tensor parallelism were held at the baseline's (${input.baseline.gpuType}), since the generic cost model cannot price them.`,
          ]),
    ].join(' '),
    simulatorVersion: SIMULATOR_VERSION,
  };
}

/**
 * The transition replayed on the simulator (one more replay of the window on the live simulation, plus one of
 * the proposal steady): new workers cold for the analytic cold start, as many starting at once as the
 * disruption budget's GPUs allow. A failure leaves the analytic cost alone.
 */
function simulatedTransition(
  window: JobWindow,
  base: SimulationBase,
  from: SweepCandidate,
  to: SweepCandidate,
  cost: TransitionCost,
  maxGpusChanging: number,
): Pick<TransitionCost, 'simulated' | 'notSimulated'> {
  const gpusPerWorker = Math.max(1, to.tensorParallel * (to.dataParallel ?? 1));
  try {
    const sim = simulateCandidateTransition(window.workload, base, from, to, {
      coldStartMs: cost.coldStartSeconds * 1000,
      maxSurge: Math.max(1, Math.floor(maxGpusChanging / gpusPerWorker)),
    });
    if (!sim.supported) return { notSimulated: sim.reason.slice(0, 256) };
    const { supported: _, ...simulated } = sim;
    return { simulated };
  } catch (e) {
    return { notSimulated: `the replay failed: ${(e as Error).message}`.slice(0, 256) };
  }
}

/** The space and budget restricted to the baseline's GPU type and tensor-parallel degrees. */
export function holdHardware(
  space: SearchSpace,
  budget: GpuBudget[],
  base: ServingSettings,
): { space: SearchSpace; budget: GpuBudget[] } {
  const tp = (r?: { tensorParallel: number }) => (r ? [r.tensorParallel] : undefined);
  return {
    space: {
      ...space,
      tensorParallel: tp(base.aggregated) ?? tp(base.decode) ?? space.tensorParallel,
      disaggregated: {
        ...space.disaggregated,
        prefillTensorParallel:
          tp(base.prefill) ?? tp(base.aggregated) ?? space.disaggregated.prefillTensorParallel,
        decodeTensorParallel:
          tp(base.decode) ?? tp(base.aggregated) ?? space.disaggregated.decodeTensorParallel,
      },
    },
    // An unknown baseline GPU: one type only, so that no type change can be proposed on a generic model.
    budget: base.gpuType === 'unknown' ? budget.slice(0, 1) : budget.filter((b) => b.type === base.gpuType),
  };
}

export function summarize(s: ServingSettings): string {
  const role = (name: string, r?: { workers: number; tensorParallel: number }) =>
    r ? `${name} ${r.workers}x TP${r.tensorParallel}` : '';
  const roles =
    s.topology === 'Aggregated'
      ? role('agg', s.aggregated)
      : `${role('prefill', s.prefill)} + ${role('decode', s.decode)}`;
  const router =
    s.router.mode === 'KV' && s.router.overlapWeight !== undefined
      ? `KV(w=${s.router.overlapWeight})`
      : s.router.mode;
  const gpus = s.gpuType === 'unknown' ? `${s.gpus} GPUs` : `${s.gpus} ${s.gpuType} GPUs`;
  return `${gpus}, ${roles}, router ${router}${s.planner.enabled ? `, ${plannerSummary(s.planner)}` : ''}`;
}

/** Runs the job in a worker thread; aborting terminates the worker. */
export function runSweepJob(input: SweepJobInput, signal?: AbortSignal): Promise<SweepJobResult> {
  return new Promise((resolve, reject) => {
    const heap = threadHeapMb(input.memoryMb, input.threads ?? 1);
    const worker = new Worker(new URL('./worker.ts', import.meta.url), {
      workerData: input,
      ...(heap !== undefined && { resourceLimits: { maxOldGenerationSizeMb: heap } }),
    });
    let settled = false;
    const finish = (fn: () => void) => {
      if (settled) return;
      settled = true;
      signal?.removeEventListener('abort', onAbort);
      fn();
    };
    const onAbort = () => {
      void worker.terminate();
      finish(() => reject(new SweepJobError('SweepFailed', 'sweep cancelled')));
    };
    signal?.addEventListener('abort', onAbort);
    worker.once(
      'message',
      (m: { ok: true; result: SweepJobResult } | { ok: false; kind: SweepFailureKind; message: string }) => {
        finish(() => (m.ok ? resolve(m.result) : reject(new SweepJobError(m.kind, m.message))));
        void worker.terminate();
      },
    );
    worker.once('error', (e) =>
      finish(() =>
        reject(
          (e as NodeJS.ErrnoException).code === 'ERR_WORKER_OUT_OF_MEMORY'
            ? new SweepJobError(
                'SweepCrashed',
                `the sweep ran out of memory (its limit is ${heap} MiB per thread)`,
              )
            : new SweepJobError('SweepCrashed', `the sweep's thread failed: ${e.message}`),
        ),
      ),
    );
    worker.once('exit', (code) =>
      finish(() => reject(new SweepJobError('SweepCrashed', `the sweep's thread exited with code ${code}`))),
    );
  });
}

/**
 * The sweep's recommendation unless its settings already failed verification on this target; then the
 * best-ranked candidate meeting the SLOs that has not (null when none is left), with a sentence saying so.
 */
export function chooseBest<
  C extends { rank: number | null; feasible: boolean; label: string; candidate: SweepCandidate },
>(
  candidates: readonly C[],
  recommended: C | null,
  exclude: readonly string[],
  model: string | undefined,
): { best: C | null; note?: string } {
  if (!recommended || exclude.length === 0) return { best: recommended };
  const failed = (c: C) => exclude.includes(settingsDigest(settingsOf(c.candidate, model)));
  if (!failed(recommended)) return { best: recommended };
  const next =
    candidates
      .filter((c) => c.feasible && c.rank !== null && !failed(c))
      .sort((a, b) => (a.rank as number) - (b.rank as number))[0] ?? null;
  return {
    best: next,
    note: next
      ? `${recommended.label} failed verification on this target before and is not proposed again until the workload drifts; the best of the rest is ${next.label}.`
      : `${recommended.label} failed verification on this target before; no other candidate meets the SLOs.`,
  };
}
