import type { DeploymentTuning, DeploymentTuningSpec, DeploymentTuningStatus } from '../../api/index.ts';
import { getCondition, nowIso } from '../conditions.ts';
import { formatInterval, nextSweep, shortestInterval } from '../schedule.ts';
import { nextDriftCheck } from '../telemetry/drift.ts';
import { MAX_REQUEUE_MS } from './context.ts';

/**
 * What is due, as pure functions of the object and the clock: the schedule slot (planned, moved sooner by a
 * changed spec, or confirmed by a fresh read), the next drift check, when to look again, and whether a slot's
 * earlier sweep died with the operator. `decide.ts` puts them together; whether a finished sweep becomes a
 * proposal is `policy.ts`.
 */

/** The slot after `now` under the schedule, at least the minimum interval after the last sweep. */
export function nextSlot(
  s: DeploymentTuningSpec,
  st: Pick<DeploymentTuningStatus, 'lastSweepTime'> | undefined,
  now: Date,
  minIntervalMs: number,
): Date {
  const last = st?.lastSweepTime ? Date.parse(st.lastSweepTime) : undefined;
  return nextSweep(s.schedule, now, last, minIntervalMs);
}

/** The slot status plans (the first sweep runs at creation). */
export function plannedSlot(dt: DeploymentTuning, now: Date): string {
  return dt.status?.nextSweepTime ?? dt.metadata.creationTimestamp ?? nowIso(now);
}

/**
 * A changed spec may bring a sooner schedule: the slot planned under the old one must not hold it back.
 * Returns the sooner slot, if there is one.
 */
export function soonerSlot(
  dt: DeploymentTuning,
  s: DeploymentTuningSpec,
  slot: string,
  now: Date,
  minIntervalMs: number,
): string | undefined {
  const generation = dt.metadata.generation ?? 0;
  if (!dt.status?.nextSweepTime || (dt.status.observedGeneration ?? 0) >= generation) return undefined;
  const sooner = nowIso(nextSlot(s, dt.status, now, minIntervalMs));
  return Date.parse(sooner) < Date.parse(slot) ? sooner : undefined;
}

/**
 * A due slot checked against a fresh read: our last status write may not have reached the cache yet, and a
 * stale slot would start a second sweep for it. Either the slot to sweep now or how long to wait.
 */
export function confirmDue(
  fresh: DeploymentTuning,
  slot: string,
  now: Date,
): { slot: string } | { waitMs: number } {
  if (fresh.status?.nextSweepTime && fresh.status.nextSweepTime !== slot) {
    const wait = Date.parse(fresh.status.nextSweepTime) - now.getTime();
    if (wait > 0) return { waitMs: Math.min(wait, MAX_REQUEUE_MS) };
    return { slot: fresh.status.nextSweepTime };
  }
  return { slot };
}

/**
 * A sweep this slot already started, that no replica is running now, died with the operator (an OOM kill,
 * a node lost). Returns the crashes in a row counting it, or undefined when nothing died.
 */
export function crashesOfDeadSweep(fresh: DeploymentTuning): number | undefined {
  if (!fresh.status?.sweepStartedTime || getCondition(fresh.status.conditions, 'Sweeping')?.status !== 'True')
    return undefined;
  return (fresh.status.sweepCrashes ?? 0) + 1;
}

/** How long until `next` (an ISO time), bounded to [0, MAX_REQUEUE_MS]. */
export function delayUntil(next: string, now: Date): number {
  return Math.min(Math.max(0, Date.parse(next) - now.getTime()), MAX_REQUEUE_MS);
}

/**
 * The warning to give once per spec generation when the schedule fires more often than the operator
 * sweeps; undefined when there is nothing to say.
 */
export function frequentScheduleWarning(
  dt: DeploymentTuning,
  s: DeploymentTuningSpec,
  now: Date,
  minIntervalMs: number,
): string | undefined {
  const generation = dt.metadata.generation ?? 0;
  if ((dt.status?.observedGeneration ?? -1) === generation) return undefined;
  const every = shortestInterval(s.schedule, now);
  if (every >= minIntervalMs) return undefined;
  return `spec.schedule fires every ${formatInterval(every)}; this operator sweeps one object at most every ${formatInterval(minIntervalMs)}, so it follows the schedule at that interval.`;
}

/**
 * How long until the next drift check (0 or less: start one now), or undefined when none is to come: drift
 * disabled, no baseline from a finished sweep yet, or a check running or waiting to be written.
 */
export function driftCheckIn(
  dt: DeploymentTuning,
  s: DeploymentTuningSpec,
  checkBusy: boolean,
  now: Date,
): number | undefined {
  if (!s.drift.enabled || !dt.status?.drift?.baseline || checkBusy) return undefined;
  return nextDriftCheck(dt.status.drift, s.drift) - now.getTime();
}
