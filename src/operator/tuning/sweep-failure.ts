import type { DeploymentTuning, DeploymentTuningSpec } from '../../api/index.ts';
import { nowIso, setCondition } from '../conditions.ts';
import { refOf } from '../kube/events.ts';
import type { FinishedSweep, TuningContext } from './context.ts';
import { nextSlot } from './slots.ts';
import { oneLine, pushHistory, summarizeConditions } from './status.ts';
import { updateStatus } from './status-write.ts';

/**
 * A sweep that failed: retried soon (or at the next slot if sooner) with the previous recommendation kept,
 * unless it crashed too often in a row, when the slot is given up and the next one follows the schedule
 * (a trace that kills the operator must not make it crash for ever).
 */

/** Sweep failures that count as crashes (the sweep's process or thread died, rather than an input problem). */
const CRASH_REASONS = new Set(['SweepCrashed']);

/** Writes a failed sweep's outcome: status (retry time, crash count, history, conditions) and a Warning. */
export async function failSweep(
  ctx: TuningContext,
  key: string,
  dt: DeploymentTuning,
  s: DeploymentTuningSpec,
  f: FinishedSweep & { error: NonNullable<FinishedSweep['error']> },
): Promise<void> {
  const { o } = ctx;
  const generation = dt.metadata.generation ?? 0;
  const crashed = CRASH_REASONS.has(f.error.reason);
  const crashes = crashed ? (dt.status?.sweepCrashes ?? 0) + 1 : 0;
  if (crashed && crashes >= ctx.limits.maxSweepCrashes) {
    await giveUpCrashedSlot(ctx, key, dt, s, crashes, f.error.message);
    return;
  }
  o.metrics.sweeps.inc({ outcome: 'Failed' });
  const retryAt = new Date(
    Math.min(
      nextSlot(s, { lastSweepTime: f.completedTime }, ctx.now(), ctx.limits.minScheduleIntervalMs).getTime(),
      ctx.now().getTime() + o.failureRetryMs,
    ),
  );
  await updateStatus(o.client, key, (st) => {
    st.lastSweepTime = f.completedTime;
    st.nextSweepTime = nowIso(retryAt);
    st.sweepStartedTime = undefined;
    st.sweepCrashes = crashed ? crashes : undefined;
    if (f.inventory) st.gpuInventory = f.inventory;
    pushHistory(st, {
      time: f.completedTime,
      reason: f.reason,
      outcome: 'Failed',
      message: oneLine(f.error.message),
    });
    // A drift-triggered sweep that failed is retried as one.
    if (f.reason !== 'WorkloadDrift') st.sweepReason = undefined;
    st.conditions = setCondition(
      st.conditions,
      {
        type: 'Sweeping',
        status: 'False',
        reason: 'SweepFailed',
        message: f.error.message,
        observedGeneration: generation,
      },
      ctx.now(),
    );
    st.conditions = setCondition(
      st.conditions,
      {
        type: 'Degraded',
        status: 'True',
        reason: f.error.reason,
        message: `${f.error.message} The previous recommendation is kept; retrying at ${nowIso(retryAt)}.`,
        observedGeneration: generation,
      },
      ctx.now(),
    );
    summarizeConditions(st, generation, ctx.now());
  });
  await o.recorder.emit(refOf(dt), 'Warning', f.error.reason, 'Sweep', f.error.message);
}

/** A slot whose sweep crashed too often is recorded as Failed; the next one follows the schedule. */
export async function giveUpCrashedSlot(
  ctx: TuningContext,
  key: string,
  dt: DeploymentTuning,
  s: DeploymentTuningSpec,
  crashes: number,
  last: string,
): Promise<void> {
  const { o } = ctx;
  const generation = dt.metadata.generation ?? 0;
  const now = ctx.now();
  const message = oneLine(
    `The sweep crashed ${crashes} times in a row (last: ${last}); this slot is given up. Check the trace and the search space; the next sweep follows the schedule.`,
  );
  o.metrics.sweeps.inc({ outcome: 'Failed' });
  await updateStatus(o.client, key, (st) => {
    st.lastSweepTime = nowIso(now);
    st.nextSweepTime = nowIso(
      nextSlot(s, { lastSweepTime: nowIso(now) }, now, ctx.limits.minScheduleIntervalMs),
    );
    st.sweepStartedTime = undefined;
    st.sweepCrashes = undefined;
    pushHistory(st, { time: nowIso(now), outcome: 'Failed', message });
    st.conditions = setCondition(
      st.conditions,
      {
        type: 'Sweeping',
        status: 'False',
        reason: 'SweepCrashed',
        message,
        observedGeneration: generation,
      },
      ctx.now(),
    );
    st.conditions = setCondition(
      st.conditions,
      {
        type: 'Degraded',
        status: 'True',
        reason: 'SweepCrashed',
        message,
        observedGeneration: generation,
      },
      ctx.now(),
    );
    summarizeConditions(st, generation, ctx.now());
  });
  await o.recorder.emit(refOf(dt), 'Warning', 'SweepCrashed', 'Sweep', message);
}
