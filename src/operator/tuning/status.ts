import type { DeploymentTuningStatus } from '../../api/index.ts';
import { getCondition, setCondition } from '../conditions.ts';

/** Pure edits of a DeploymentTuning's status: the Ready summary, the initial conditions, the history. */

/** Degraded reasons about the object or its target (cleared once a reconcile finds them fixed). */
const CONFIG_REASONS = new Set(['InvalidSpec', 'InvalidSchedule', 'TargetNotFound', 'TargetUnreadable']);

/** Conditions a DeploymentTuning shows from its first reconcile, until something sets them. */
const INITIAL_CONDITIONS = [
  { type: 'Sweeping', status: 'False', reason: 'Idle', message: 'No sweep has run yet.' },
  {
    type: 'RecommendationAvailable',
    status: 'Unknown',
    reason: 'NoSweepYet',
    message: 'No sweep has completed yet.',
  },
  { type: 'Degraded', status: 'False', reason: 'AsExpected', message: 'Nothing is wrong.' },
] as const;

/** One line, at most `max` characters: zod and network messages must not reach a condition as a dump. */
export function oneLine(text: string, max = 1024): string {
  const flat = text.replace(/\s+/g, ' ').trim();
  return flat.length > max ? `${flat.slice(0, max - 1)}…` : flat;
}

/** Newest first, at most ten, one entry per time and outcome. */
export function pushHistory(
  st: DeploymentTuningStatus,
  entry: NonNullable<DeploymentTuningStatus['history']>[number],
): void {
  st.history = [
    entry,
    ...(st.history ?? []).filter((h) => h.time !== entry.time || h.outcome !== entry.outcome),
  ].slice(0, 10);
}

/** Ready summarises: not degraded and schedulable. Conditions that change take `now` as their transition time. */
export function summarizeConditions(
  st: DeploymentTuningStatus,
  generation: number,
  now: Date,
  override?: { reason: string; message: string },
  configOk = true,
): void {
  const degraded = getCondition(st.conditions, 'Degraded');
  st.observedGeneration = generation;
  if (configOk && degraded?.status === 'True' && CONFIG_REASONS.has(degraded.reason)) {
    st.conditions = setCondition(
      st.conditions,
      {
        type: 'Degraded',
        status: 'False',
        reason: 'AsExpected',
        message: 'Nothing is wrong.',
        observedGeneration: generation,
      },
      now,
    );
  }
  for (const initial of INITIAL_CONDITIONS) {
    if (!getCondition(st.conditions, initial.type))
      st.conditions = setCondition(st.conditions, { ...initial, observedGeneration: generation }, now);
  }
  const isDegraded = getCondition(st.conditions, 'Degraded')?.status === 'True';
  const d = getCondition(st.conditions, 'Degraded');
  st.conditions = setCondition(
    st.conditions,
    {
      type: 'Ready',
      status: isDegraded ? 'False' : 'True',
      reason: override?.reason ?? (isDegraded ? d!.reason : 'Scheduled'),
      message:
        override?.message ??
        (isDegraded ? d!.message : `Next sweep at ${st.nextSweepTime ?? 'once the target is found'}.`),
      observedGeneration: generation,
    },
    now,
  );
  for (const c of st.conditions ?? []) c.observedGeneration = generation;
}
