import { parseDuration, type ServingSettings } from '../../api/index.ts';
import { ENGINE_DEFAULTS } from '../engine-defaults.ts';
import { settingsDigest } from '../rollout/decide.ts';

/**
 * Whether a sweep's best candidate becomes a proposal: the stabilisation guardrails (minimum relative gain,
 * minimum interval between proposals), as a pure function of the sweep's outcome and the last proposal.
 */

export type ProposalOutcome = 'Proposed' | 'NoImprovement' | 'TooSoon' | 'NoFeasibleCandidate';

export interface ProposalInput {
  best: { settings: ServingSettings } | null;
  baseline: ServingSettings;
  baselineMeetsSlos: boolean;
  gainPercent: number | null;
  /** The gain with the prediction's uncertainty subtracted, when intervals were computed. */
  gainPercentLow?: number | null;
  objective: string;
  guardrails: { minImprovementPercent: number; minProposalInterval: string };
  lastProposalTime?: string;
  completedTime: string;
  /** Digests of settings that failed verification on this target (not proposed again until drift). */
  failedProposals?: string[];
  /** The sweep passed over its best candidate because it had failed verification here (why, in a sentence). */
  excluded?: string;
  /** A rollout in progress (its recommendation's name): a new proposal waits for it. */
  rolloutInProgress?: string;
}

export function decideProposal(i: ProposalInput): { outcome: ProposalOutcome; message: string } {
  if (!i.best && i.excluded) return { outcome: 'NoImprovement', message: i.excluded };
  if (!i.best) {
    return { outcome: 'NoFeasibleCandidate', message: 'No candidate met the SLOs within the GPU budget.' };
  }
  if (sameSettings(i.best.settings, i.baseline)) {
    return { outcome: 'NoImprovement', message: 'The current settings are already the best candidate.' };
  }
  if (i.failedProposals?.includes(settingsDigest(i.best.settings))) {
    return {
      outcome: 'NoImprovement',
      message:
        'The best candidate failed verification on this target before; it is not proposed again until the workload drifts.',
    };
  }
  if (i.rolloutInProgress) {
    return { outcome: 'TooSoon', message: `The rollout of ${i.rolloutInProgress} is in progress.` };
  }
  const gain = i.gainPercent ?? 0;
  // A baseline that misses its SLOs is worth fixing whatever the objective says.
  const fixesSlos = !i.baselineMeetsSlos;
  const min = i.guardrails.minImprovementPercent;
  if (!fixesSlos && gain < min) {
    return {
      outcome: 'NoImprovement',
      message: `Best candidate improves ${i.objective} by ${gain}%, below the ${min}% guardrail.`,
    };
  }
  // Better only if it is better across the uncertainty: its worst case must still clear the guardrail.
  if (!fixesSlos && i.gainPercentLow !== undefined && i.gainPercentLow !== null && i.gainPercentLow < min) {
    return {
      outcome: 'NoImprovement',
      message: `Best candidate improves ${i.objective} by ${gain}%, but only ${i.gainPercentLow}% across the prediction's uncertainty, below the ${min}% guardrail.`,
    };
  }
  const last = i.lastProposalTime;
  const interval = parseDuration(i.guardrails.minProposalInterval);
  if (last && Date.parse(i.completedTime) - Date.parse(last) < interval) {
    return {
      outcome: 'TooSoon',
      message: `A proposal was made at ${last}; the guardrail allows one per ${i.guardrails.minProposalInterval}.`,
    };
  }
  return {
    outcome: 'Proposed',
    message: fixesSlos
      ? `The baseline misses the SLOs; the proposal meets them (${gain}% ${i.objective}).`
      : `Predicted ${gain}% better ${i.objective}.`,
  };
}

/**
 * Same settings: engine and its knobs, GPU type, topology, workers and TP per role, router mode and its
 * knobs (KV weight and temperature), and the Planner. Unset knobs compare as their defaults.
 */
export function sameSettings(a: ServingSettings, b: ServingSettings): boolean {
  const norm = (s: ServingSettings) => {
    // Under the Planner the worker counts are its to move: its bounds stand for them.
    const planned = s.planner.enabled;
    const shape = (r?: { workers: number; tensorParallel: number }) =>
      r ? `${planned ? 'P' : r.workers}x${r.tensorParallel}` : '-';
    const e = {
      ...ENGINE_DEFAULTS,
      ...Object.fromEntries(Object.entries(s.engine ?? {}).filter(([, v]) => v !== undefined)),
    };
    const kv = s.router.mode === 'KV';
    return JSON.stringify([
      s.gpuType,
      s.topology,
      shape(s.aggregated),
      shape(s.prefill),
      shape(s.decode),
      s.router.mode,
      kv ? (s.router.overlapWeight ?? 1) : null,
      kv ? (s.router.temperature ?? 0) : null,
      s.planner.enabled,
      planned ? (s.planner.minEndpoint ?? null) : null,
      planned ? (s.planner.maxGpuBudget ?? null) : null,
      e.backend,
      e.maxNumSeqs,
      e.maxNumBatchedTokens,
      e.blockSize,
    ]);
  };
  return norm(a) === norm(b);
}
