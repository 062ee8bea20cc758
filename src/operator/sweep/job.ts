import { Worker } from 'node:worker_threads';
import type {
  DeploymentTuningSpec,
  PredictedMetrics,
  ServingSettings,
  WorkloadSummary,
} from '../../api/index.ts';
import type { TraceIssue } from '../../telemetry/mooncake-trace.ts';
import { evaluateSettings, gainPercent, SIMULATOR_VERSION } from './evaluate.ts';
import { type Candidate, searchCandidates } from './search.ts';
import { loadTraceWindow } from './trace-window.ts';

/**
 * One sweep as a job: cut and summarise the trace window, simulate the baseline, search the candidates,
 * compare. It runs in a worker thread so that reconciles of other objects never wait for a simulation.
 */

export interface SweepJobInput {
  traceText: string;
  source: string;
  traceBlockSize: number;
  lookbackMs?: number;
  baseline: ServingSettings;
  spec: Pick<DeploymentTuningSpec, 'objective' | 'slos' | 'searchSpace'>;
  budget: Record<string, number>;
}

export interface SweepJobResult {
  summary: WorkloadSummary;
  issues: TraceIssue[];
  baseline: PredictedMetrics;
  best: Candidate | null;
  gainPercent: number | null;
  frontier: Candidate[];
  candidates: number;
  feasible: number;
  optimizer: string;
  explanation: string;
  simulatorVersion: string;
}

/** Failure kinds the controller reports differently. */
export type SweepFailureKind = 'NoUsableData' | 'BaselineNotSimulatable' | 'SweepFailed';

export class SweepJobError extends Error {
  readonly kind: SweepFailureKind;
  constructor(kind: SweepFailureKind, message: string) {
    super(message);
    this.name = 'SweepJobError';
    this.kind = kind;
  }
}

export function runSweepJobInline(input: SweepJobInput): SweepJobResult {
  let window: ReturnType<typeof loadTraceWindow>;
  try {
    window = loadTraceWindow(input.traceText, {
      source: input.source,
      traceBlockSize: input.traceBlockSize,
      lookbackMs: input.lookbackMs,
    });
  } catch (e) {
    throw new SweepJobError('NoUsableData', (e as Error).message);
  }
  let baseline: PredictedMetrics;
  try {
    baseline = evaluateSettings(input.baseline, window.workload, input.spec.slos, input.spec.objective);
  } catch (e) {
    throw new SweepJobError('BaselineNotSimulatable', `baseline: ${(e as Error).message}`);
  }
  const outcome = searchCandidates(window.workload, input.baseline, input.spec, input.budget);
  const best = outcome.best;
  const gain = best
    ? gainPercent(input.spec.objective, baseline.objectiveValue, best.metrics.objectiveValue)
    : null;
  const lines = [
    `Replayed ${window.summary.requests} requests (${window.summary.requestRate} req/s) from ${input.source}.`,
    `Simulated ${outcome.candidates} candidates with the ${outcome.optimizer} optimiser; ${outcome.feasible} met the SLOs within the GPU budget.`,
    baseline.meetsSlos ? 'The baseline meets the SLOs.' : 'The baseline misses the SLOs.',
    best
      ? `Best: ${summarize(best.settings)}, objective ${input.spec.objective} ${best.metrics.objectiveValue} vs ${baseline.objectiveValue} (${gain}%).`
      : 'No candidate met the SLOs within the budget.',
    ...outcome.notes,
  ];
  return {
    summary: window.summary,
    issues: window.issues,
    baseline,
    best,
    gainPercent: gain,
    frontier: outcome.frontier,
    candidates: outcome.candidates,
    feasible: outcome.feasible,
    optimizer: outcome.optimizer,
    explanation: lines.join(' '),
    simulatorVersion: SIMULATOR_VERSION,
  };
}

export function summarize(s: ServingSettings): string {
  const role = (name: string, r?: { workers: number; tensorParallel: number }) =>
    r ? `${name} ${r.workers}x TP${r.tensorParallel}` : '';
  const roles =
    s.topology === 'Aggregated'
      ? role('agg', s.aggregated)
      : `${role('prefill', s.prefill)} + ${role('decode', s.decode)}`;
  return `${s.gpus} ${s.gpuType} GPUs, ${roles}, router ${s.router.mode}${s.planner.enabled ? ', planner' : ''}`;
}

/** Runs the job in a worker thread; aborting terminates the worker. */
export function runSweepJob(input: SweepJobInput, signal?: AbortSignal): Promise<SweepJobResult> {
  return new Promise((resolve, reject) => {
    const worker = new Worker(new URL('./worker.ts', import.meta.url), { workerData: input });
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
    worker.once('error', (e) => finish(() => reject(new SweepJobError('SweepFailed', e.message))));
    worker.once('exit', (code) =>
      finish(() => reject(new SweepJobError('SweepFailed', `sweep worker exited with code ${code}`))),
    );
  });
}
