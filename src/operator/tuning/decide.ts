import type {
  DeploymentTuning,
  DeploymentTuningSpec,
  DeploymentTuningStatus,
  TuningRecommendation,
} from '../../api/index.ts';
import {
  type CONTROLLER_DEFAULTS,
  type DriftCheckResult,
  type FinishedSweep,
  MAX_REQUEUE_MS,
} from './context.ts';
import type { ObservedTarget, Unusable } from './observe.ts';
import { recommendationName } from './recommendations.ts';
import {
  confirmDue,
  crashesOfDeadSweep,
  delayUntil,
  driftCheckIn,
  frequentScheduleWarning,
  plannedSlot,
  soonerSlot,
} from './slots.ts';
import { summarizeConditions } from './status.ts';

/**
 * The decide step of a DeploymentTuning reconcile, as a pure function of what was observed and the clock:
 * the ordered plan of status edits, Events and actions, then either the requeue delay or a request to observe
 * again. Where the controller must see its own writes or a fresh read before going on (a slot due by the
 * cache is confirmed by a fresh read; the status after a drift check is re-read), decide asks for that
 * observation with a continuation, and the coordinator calls it again with what was read: the writes keep
 * their order, and every branch is unit-tested without an API server (`test/unit/operator/tuning-decide.test.ts`).
 */

/** How long to wait before looking again at a tuning whose target is missing or unreadable. */
export const TARGET_RETRY_MS = 10 * 60_000;

/** What observe found for the object of a reconcile (read from the informer's cache, cloned). */
export type ObservedTuning =
  | { state: 'gone' }
  | { state: 'deleting' }
  | { state: 'invalid'; dt: DeploymentTuning; problem: Unusable }
  | { state: 'valid'; dt: DeploymentTuning; spec: DeploymentTuningSpec; target: ObservedTarget | Unusable };

/** This key's background work, as observe found it. */
export interface InFlightView {
  running: boolean;
  finished: FinishedSweep | undefined;
  checking: boolean;
  checked: DriftCheckResult | undefined;
}

/** Where decide goes on after a fresh observation, and what that observation reads. */
export type Continuation =
  /** Read the object; requeue for its next slot (after a sweep's outcome was written). */
  | { resume: 'requeueForNext' }
  /** Read the object (its status after a drift check was written); go on to the schedule. */
  | { resume: 'scheduleAfterDrift' }
  /** Read the object; confirm that `slot`, due by the cache, is due (`dt`: the object decided on so far). */
  | { resume: 'confirmDue'; dt: DeploymentTuning; slot: string; target: ObservedTarget }
  /** Look for the recommendation of the confirmed slot (by name): adopt it, or start the slot's sweep. */
  | {
      resume: 'startDue';
      dt: DeploymentTuning;
      slot: string;
      target: ObservedTarget;
      fresh: DeploymentTuning;
      recommendation: string;
    };

/** A continuation with what its observation read (undefined: the object or the recommendation is gone). */
export type Reobserved =
  | { resume: 'requeueForNext' | 'scheduleAfterDrift'; fresh: DeploymentTuning | undefined }
  | (Extract<Continuation, { resume: 'confirmDue' }> & { fresh: DeploymentTuning | undefined })
  | (Extract<Continuation, { resume: 'startDue' }> & { existing: TuningRecommendation | undefined });

export interface TuningObservation {
  key: string;
  tuning: ObservedTuning;
  inFlight: InFlightView;
  /** Set in later rounds of the same reconcile. */
  again?: Reobserved;
}

/** A status edit, applied to a fresh read of the status by `applyStatusEdit`. */
export type StatusEdit =
  /** A changed spec brought a sooner slot. */
  | { kind: 'moveSlot'; slot: string }
  /** Keep the planned slot (unless one is set) and summarise Ready, with an override (suspended). */
  | { kind: 'schedule'; slot: string; generation: number; ready?: { reason: string; message: string } }
  /** The slot's earlier sweep died with the operator: count it. */
  | { kind: 'countCrash'; crashes: number };

export type TuningStep =
  /** The object is gone: stop its background work, drop its outcomes and metrics. */
  | { kind: 'forget' }
  /** Degraded=True with this reason (and a Warning Event when it changed). */
  | { kind: 'degrade'; reason: string; message: string }
  /** An Event about the object. */
  | { kind: 'event'; type: 'Normal' | 'Warning'; reason: string; action: string; message: string }
  | { kind: 'status'; edit: StatusEdit }
  /** Write a finished sweep's outcome (recommendation, status, Events), then drop it and any drift result. */
  | { kind: 'completeSweep'; dt: DeploymentTuning; sweep: FinishedSweep }
  /** Write a drift check's outcome (dropped first: a failed write does not repeat it). */
  | { kind: 'applyDriftCheck'; dt: DeploymentTuning; check: DriftCheckResult }
  /** Finish the due slot from the recommendation a previous run of the operator created for it. */
  | {
      kind: 'adoptRecommendation';
      dt: DeploymentTuning;
      recommendation: TuningRecommendation;
      generation: number;
    }
  /** Record the slot as Failed after `crashes` crashes in a row. */
  | { kind: 'giveUpSlot'; dt: DeploymentTuning; crashes: number; why: string }
  | { kind: 'startSweep'; dt: DeploymentTuning; slot: string; target: ObservedTarget }
  | { kind: 'startDriftCheck'; dt: DeploymentTuning; servedModel: string | undefined };

export interface TuningPlan {
  /** In order; each is done before the next. */
  steps: TuningStep[];
  /** Afterwards: observe again and decide from there, or end the reconcile (looking again after, if set). */
  next: { observe: Continuation } | { requeueAfterMs?: number };
}

export type TuningLimits = typeof CONTROLLER_DEFAULTS;

/** Why a sweep that was running when the operator stopped is counted as a crash. */
export const DIED_WITH_OPERATOR =
  'the operator stopped while running it (killed, out of memory, or leadership moved)';

export function decideTuning(obs: TuningObservation, now: Date, limits: TuningLimits): TuningPlan {
  const t = obs.tuning;
  if (t.state === 'gone' || t.state === 'deleting') return { steps: [{ kind: 'forget' }], next: {} };
  if (t.state === 'invalid') return { steps: [{ kind: 'degrade', ...t.problem }], next: {} };
  const again = obs.again;
  if (again) return goOn(obs, t, again, now, limits);

  const steps: TuningStep[] = [];
  const warning = frequentScheduleWarning(t.dt, t.spec, now, limits.minScheduleIntervalMs);
  if (warning)
    steps.push({
      kind: 'event',
      type: 'Warning',
      reason: 'ScheduleTooFrequent',
      action: 'Reconcile',
      message: warning,
    });
  // Background work that finished is written first.
  const { finished, checked } = obs.inFlight;
  if (finished) {
    steps.push({ kind: 'completeSweep', dt: t.dt, sweep: finished });
    return { steps, next: { observe: { resume: 'requeueForNext' } } };
  }
  if (obs.inFlight.running) return { steps, next: {} };
  if (checked) {
    steps.push({ kind: 'applyDriftCheck', dt: t.dt, check: checked });
    return { steps, next: { observe: { resume: 'scheduleAfterDrift' } } };
  }
  return schedule(t, t.dt, obs.inFlight, now, limits, steps);
}

type ValidTuning = Extract<ObservedTuning, { state: 'valid' }>;

/** A later round: go on from where the previous one asked to observe again. */
function goOn(
  obs: TuningObservation,
  t: ValidTuning,
  again: Reobserved,
  now: Date,
  limits: TuningLimits,
): TuningPlan {
  switch (again.resume) {
    case 'requeueForNext': {
      const next = again.fresh?.status?.nextSweepTime;
      return { steps: [], next: next ? { requeueAfterMs: delayUntil(next, now) } : {} };
    }
    case 'scheduleAfterDrift': {
      // The status (and metadata) the drift check left; the spec stays the one this reconcile checked.
      const dt = again.fresh ? { ...t.dt, metadata: again.fresh.metadata, status: again.fresh.status } : t.dt;
      return schedule(t, dt, obs.inFlight, now, limits, []);
    }
    case 'confirmDue': {
      if (!again.fresh) return { steps: [], next: {} };
      const due = confirmDue(again.fresh, again.slot, now);
      if ('waitMs' in due) return { steps: [], next: { requeueAfterMs: due.waitMs } };
      const { dt, target, fresh } = again;
      const recommendation = recommendationName(dt.metadata.name, due.slot);
      return {
        steps: [],
        next: { observe: { resume: 'startDue', dt, slot: due.slot, target, fresh, recommendation } },
      };
    }
    case 'startDue':
      return startDue(t, again, limits);
  }
}

/** The slot: degraded without a target, moved sooner by a changed spec, suspended, waiting, or due. */
function schedule(
  t: ValidTuning,
  dt: DeploymentTuning,
  inFlight: InFlightView,
  now: Date,
  limits: TuningLimits,
  steps: TuningStep[],
): TuningPlan {
  const { spec: s, target } = t;
  if (!('baseline' in target)) {
    steps.push({ kind: 'degrade', reason: target.reason, message: target.message });
    return { steps, next: { requeueAfterMs: TARGET_RETRY_MS } };
  }
  // The generation of the spec this reconcile acts on (the cached object's), even after a fresh read.
  const generation = t.dt.metadata.generation ?? 0;
  let slot = plannedSlot(dt, now);
  const sooner = soonerSlot(dt, s, slot, now, limits.minScheduleIntervalMs);
  if (sooner) {
    slot = sooner;
    steps.push({ kind: 'status', edit: { kind: 'moveSlot', slot } });
  }
  if (s.suspend) {
    const ready = { reason: 'Suspended', message: 'Sweeps are suspended.' };
    steps.push({ kind: 'status', edit: { kind: 'schedule', slot, generation, ready } });
    return { steps, next: {} };
  }
  const dueIn = Date.parse(slot) - now.getTime();
  if (dueIn > 0) {
    steps.push({ kind: 'status', edit: { kind: 'schedule', slot, generation } });
    const busy = inFlight.checking || inFlight.checked !== undefined;
    let checkIn = driftCheckIn(dt, s, busy, now) ?? MAX_REQUEUE_MS;
    if (checkIn <= 0) {
      steps.push({ kind: 'startDriftCheck', dt, servedModel: target.baseline.settings.model });
      checkIn = MAX_REQUEUE_MS;
    }
    return { steps, next: { requeueAfterMs: Math.min(dueIn, checkIn, MAX_REQUEUE_MS) } };
  }
  // Due by the cache; confirm with a fresh read.
  return { steps, next: { observe: { resume: 'confirmDue', dt, slot, target } } };
}

/** A confirmed due slot: finish it from its recommendation, give it up after crashes, or start its sweep. */
function startDue(
  t: ValidTuning,
  again: Extract<Reobserved, { resume: 'startDue' }>,
  limits: TuningLimits,
): TuningPlan {
  const { dt, slot, target, fresh, existing } = again;
  // The operator may have stopped after creating this slot's recommendation.
  if (existing) {
    const generation = t.dt.metadata.generation ?? 0;
    return {
      steps: [{ kind: 'adoptRecommendation', dt, recommendation: existing, generation }],
      next: { observe: { resume: 'requeueForNext' } },
    };
  }
  const steps: TuningStep[] = [];
  // A sweep of this slot that died with the operator counts as a crash; too many in a row give the slot up.
  const crashes = crashesOfDeadSweep(fresh);
  if (crashes !== undefined) {
    if (crashes >= limits.maxSweepCrashes)
      return {
        steps: [{ kind: 'giveUpSlot', dt, crashes, why: DIED_WITH_OPERATOR }],
        next: { observe: { resume: 'requeueForNext' } },
      };
    steps.push({ kind: 'status', edit: { kind: 'countCrash', crashes } });
  }
  steps.push({ kind: 'startSweep', dt, slot, target });
  return { steps, next: {} };
}

/** Applies a status edit to a status read fresh; conditions that change take `now`. */
export function applyStatusEdit(st: DeploymentTuningStatus, edit: StatusEdit, now: Date): void {
  switch (edit.kind) {
    case 'moveSlot':
      st.nextSweepTime = edit.slot;
      return;
    case 'schedule':
      st.nextSweepTime ??= edit.slot;
      summarizeConditions(st, edit.generation, now, edit.ready);
      return;
    case 'countCrash':
      st.sweepCrashes = edit.crashes;
      return;
  }
}
