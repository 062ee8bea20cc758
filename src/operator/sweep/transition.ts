import type { ServingSettings } from '../../api/index.ts';
import { Catalog } from '../../hardware/catalog.ts';
import { weightBytesPerGpu } from '../../hardware/models.ts';
import type { TransitionSimResult } from '../../sweep/transition-sim.ts';
import { ENGINE_DEFAULTS } from '../engine-defaults.ts';

/**
 * What a change costs while it happens, so that the decision weighs it against the gain: new workers start
 * cold (the model load), and make-before-break holds their GPUs while the old ones still serve; a change of a
 * role's template (TP, engine knobs) restarts every worker of the role. The payback time is the transition's
 * GPU-hours over what the change gains per hour (GPUs saved, or the objective's gain as GPU capacity), so
 * a change that repays itself only after days is not worth it for a workload that drifts hourly.
 */

export interface TransitionCost {
  workersStarting: number;
  coldStartSeconds: number;
  extraGpuHours: number;
  stages: number;
  gainPerHour: number;
  paybackHours: number;
  /** The transition replayed on the simulator (src/sweep/transition-sim.ts), when it could be. */
  simulated?: Omit<TransitionSimResult, 'supported'>;
  /** Why it could not be (the analytic figures above are all there is). */
  notSimulated?: string;
}

/** Container start plus reading the weights of one GPU's shard at ~2 GB/s (a conservative storage read). */
const BASE_START_S = 45;
const LOAD_BYTES_PER_S = 2e9;

export function coldStartSeconds(model: string | undefined, tp: number): number {
  const spec = model ? Catalog.builtin().findModel(model) : undefined;
  if (!spec) return 180;
  return Math.round(BASE_START_S + weightBytesPerGpu(spec, tp, spec.weightDtype) / LOAD_BYTES_PER_S);
}

const roles = ['aggregated', 'prefill', 'decode'] as const;

export function transitionCost(
  baseline: ServingSettings,
  proposal: ServingSettings,
  opts: { gainPercent: number; coldStartSeconds?: number; maxGpusChanging: number },
): TransitionCost {
  let starting = 0;
  let startingGpus = 0;
  let slowest = 0;
  for (const r of roles) {
    const b = baseline[r];
    const p = proposal[r];
    if (!p) continue;
    const restart = !b || b.tensorParallel !== p.tensorParallel || engineChanged(baseline, proposal);
    const n = restart ? p.workers : Math.max(0, p.workers - b.workers);
    starting += n;
    startingGpus += n * p.gpusPerWorker;
    if (n > 0)
      slowest = Math.max(
        slowest,
        opts.coldStartSeconds ?? coldStartSeconds(proposal.model, p.tensorParallel),
      );
  }
  const extraGpuHours = (startingGpus * slowest) / 3600;
  const saved = baseline.gpus - proposal.gpus;
  const gainPerHour = Math.max(saved, (proposal.gpus * Math.max(0, opts.gainPercent)) / 100);
  const changing = Math.abs(saved) + startingGpus;
  return {
    workersStarting: starting,
    coldStartSeconds: slowest,
    extraGpuHours: round(extraGpuHours),
    stages: Math.max(1, Math.ceil(changing / Math.max(1, opts.maxGpusChanging))),
    gainPerHour: round(gainPerHour),
    paybackHours: gainPerHour > 0 ? round(extraGpuHours / gainPerHour) : extraGpuHours > 0 ? 1e6 : 0,
  };
}

function engineChanged(a: ServingSettings, b: ServingSettings): boolean {
  const d = ENGINE_DEFAULTS;
  const e = (s: ServingSettings) =>
    JSON.stringify([
      s.engine?.backend ?? d.backend,
      s.engine?.maxNumSeqs ?? d.maxNumSeqs,
      s.engine?.maxNumBatchedTokens ?? d.maxNumBatchedTokens,
      s.engine?.blockSize ?? d.blockSize,
    ]);
  return e(a) !== e(b);
}

const round = (x: number) => Number(x.toFixed(3));

/** One sentence or two on the simulated transition, for the explanation. */
export function describeSimulatedTransition(t: TransitionCost): string {
  if (t.notSimulated)
    return `The transition was not simulated (${t.notSimulated}); its cost is the analytic estimate.`;
  const s = t.simulated;
  if (!s) return '';
  const pct = (x: number) => `${(x * 100).toFixed(0)}%`;
  return [
    `Simulated transition (made ${s.changeAtSeconds} s into the window, its busiest stretch): ${s.durationSeconds} s until the last new worker was ready and the last old one drained (${s.workersStarted} started, ${s.workersDrained} drained);`,
    `the ${s.requests} requests arriving meanwhile had p90 TTFT ${s.ttftP90Ms.transition} ms (${s.ttftP90Ms.steady} ms steady) and ITL ${s.itlP90Ms.transition} ms (${s.itlP90Ms.steady} ms), ${s.queuedLonger} queued longer (up to ${s.maxExtraQueueMs} ms more);`,
    `prefix hit rate of new workers in their first minutes ${pct(s.prefixHitRate.transition)} against ${pct(s.prefixHitRate.steady)} steady.`,
    ...(s.sloMissSeconds ? [`For ${s.sloMissSeconds} s the p90 TTFT or ITL was over twice its SLO.`] : []),
  ].join(' ');
}
