import { CronExpressionParser } from 'cron-parser';
import {
  type DeploymentTuningSpec,
  type OwnedFields,
  parseDuration,
  type RolloutState,
  type RolloutStatus,
  type ServingSettings,
  type Transition,
  type TuningRecommendationSpec,
  type TuningRecommendationStatus,
  type VerificationWindow,
} from '../../api/index.ts';
import { nowIso } from '../conditions.ts';
import { ownedDigest, type Plan } from '../target/dynamo-apply.ts';

/**
 * The rollout of one TuningRecommendation as a pure function: from what was observed (the recommendation and
 * its persisted state, its DeploymentTuning, the target, a verification sample, the clock) to the status to
 * write, the one action to take, the Events, and when to look again. Nothing here does I/O or reads a clock,
 * so every transition is unit-tested without an API server.
 *
 * The state is persisted before any action (Applying with the exact baseline and target values, RollingBack),
 * so an operator killed at any point resumes correctly: an apply or rollback of fixed values is idempotent.
 *
 *   Proposed -> Approved | Rejected | Expired | Superseded (the tuning controller supersedes)
 *   Approved -> Applying -> Applied -> Verifying -> Verified
 *   Applied | Verifying -> RollingBack -> RolledBack   (ready timeout, failed verification, a rollback request)
 *   any step -> Failed (with the reason; also when even the rollback cannot be applied)
 */

export const ACTIVE_STATES: readonly RolloutState[] = [
  'Approved',
  'Applying',
  'Applied',
  'Verifying',
  'RollingBack',
];
export const TERMINAL_STATES: readonly RolloutState[] = [
  'Rejected',
  'Expired',
  'Superseded',
  'Verified',
  'RolledBack',
  'Failed',
];

/** Actor recorded for what the operator decides on its own. */
export const OPERATOR_ACTOR = 'servetune';

export interface VerificationSample {
  start: string;
  end: string;
  /** undefined: no data (an empty result, NaN, Prometheus unreachable): the window is Inconclusive. */
  ttftP90Ms?: number;
  itlP90Ms?: number;
  requestRateRps?: number;
  requests?: number;
  errorRatio?: number;
  /**
   * Each SLO's percentile as measured (ms), keyed `${metric}:${percentile}` (e.g. `E2E:99`); a key missing for an
   * SLO means no data for it, which makes the window Inconclusive. The p90 TTFT/ITL above serve both.
   */
  slo?: Record<string, number>;
  /** Why no data, when there is none. */
  unavailable?: string;
}

export type ActionResult =
  | { ok: true; generation?: number }
  | { ok: false; conflict?: { managers: string[]; fields: string[] }; permanent: boolean; message: string };

export interface RolloutObservation {
  now: Date;
  rec: {
    name: string;
    creationTimestamp: string;
    spec: TuningRecommendationSpec;
    status: TuningRecommendationStatus | undefined;
  };
  /** The owning DeploymentTuning's spec (parsed) and status; undefined when it is gone. */
  tuning:
    | {
        spec: DeploymentTuningSpec;
        lastChangeTime?: string;
        lastRollbackTime?: string;
        /** Largest live calibration error of the simulator for this deployment, in percent, if known. */
        calibrationErrorPercent?: number;
        /** How long the workload is expected to stay as it is (hours), for the transition's payback. */
        horizonHours: number;
      }
    | undefined;
  target:
    | {
        /** Current values of the owned fields, and what the proposal would set (or why it cannot). */
        owned: OwnedFields;
        plan: Plan;
        /** Settings read from the target now (the proposal's baseline may be older). */
        settings: ServingSettings;
        generation: number;
        ready:
          | { status: 'True' | 'False' | 'Unknown'; observedGeneration?: number; message?: string }
          | undefined;
        /** GPUs the target holds now (for the disruption budget). */
        gpus: number;
      }
    | { missing: string };
  /** Another recommendation of the same target in an active state. */
  otherActive?: string;
  /** Whether the admission policy that makes reviews unforgeable is installed. */
  reviewPolicy: boolean;
  /** A verification window's measurements, when one was due and observe fetched it. */
  sample?: VerificationSample;
  /** The outcome of the action the previous decision asked for, in this same reconcile. */
  actionResult?: ActionResult;
}

export type RolloutAction =
  | { kind: 'apply'; owned: OwnedFields; force: boolean }
  | { kind: 'rollback'; owned: OwnedFields; force: boolean };

export interface RolloutEvent {
  type: 'Normal' | 'Warning';
  reason: string;
  message: string;
}

export interface TuningStatusChange {
  rollout: { recommendation: string; state: RolloutState; since: string };
  lastChangeTime?: string;
  lastRollbackTime?: string;
  failedProposal?: string;
}

export interface RolloutDecision {
  status?: TuningRecommendationStatus;
  action?: RolloutAction;
  events: RolloutEvent[];
  tuning?: TuningStatusChange;
  /** The state left (for the time-in-state metric) and the terminal outcome reached (for the counter). */
  left?: { state: RolloutState; seconds: number };
  outcome?: RolloutState;
  requeueAfterMs?: number;
}

const RETRY_MS = 30_000;

function transition(
  o: RolloutObservation,
  state: RolloutState,
  reason: string,
  message: string,
  actor?: string,
  rollout?: Partial<RolloutStatus>,
): RolloutDecision {
  const prev = o.rec.status;
  const time = nowIso(o.now);
  const t: Transition = { state, time, reason, message: message.slice(0, 1024), ...(actor && { actor }) };
  const all = [...(prev?.rollout?.transitions ?? []), t];
  // Bounded: the first 16 and the last 16 transitions.
  const transitions = all.length > 32 ? [...all.slice(0, 16), ...all.slice(-16)] : all;
  const status: TuningRecommendationStatus = {
    ...prev,
    state,
    stateTransitionTime: time,
    message: message.slice(0, 1024),
    rollout: { ...prev?.rollout, ...rollout, transitions },
  };
  const since = prev?.stateTransitionTime ?? o.rec.creationTimestamp;
  const terminal = TERMINAL_STATES.includes(state);
  const warn = ['Rejected', 'Expired', 'RollingBack', 'RolledBack', 'Failed'].includes(state);
  return {
    status,
    events: [{ type: warn ? 'Warning' : 'Normal', reason, message }],
    tuning: { rollout: { recommendation: o.rec.name, state, since: time } },
    left: prev?.state
      ? { state: prev.state, seconds: Math.max(0, (o.now.getTime() - Date.parse(since)) / 1000) }
      : undefined,
    ...(terminal && { outcome: state }),
  };
}

/** Holds the state with a message (only a changed message is written), and looks again later. */
function hold(
  o: RolloutObservation,
  message: string,
  requeueAfterMs: number,
  reason = 'Waiting',
): RolloutDecision {
  const prev = o.rec.status;
  if (prev?.message === message) return { events: [], requeueAfterMs };
  return {
    status: { ...prev, state: prev?.state ?? 'Proposed', message: message.slice(0, 1024) },
    events: [{ type: 'Normal', reason, message }],
    requeueAfterMs,
  };
}

/** GPUs a change moves: pods added or removed, and every pod of a component whose template changes. */
export function gpusChanging(from: OwnedFields, to: OwnedFields): number {
  let n = 0;
  for (const t of to.components) {
    const f = from.components.find((c) => c.name === t.name);
    if (!f) continue;
    // A component with neither GPUs nor replicas recorded (a frontend, the Planner) holds no GPUs.
    if (f.gpus === undefined && t.gpus === undefined && f.replicas === undefined && t.replicas === undefined)
      continue;
    const gpusBefore = Number(f.gpus ?? 1) || 1;
    const gpusAfter = Number(t.gpus ?? f.gpus ?? 1) || 1;
    const before = f.replicas ?? 1;
    const after = t.replicas ?? before;
    const template =
      JSON.stringify([f.args, f.gpus, f.env]) !==
      JSON.stringify([t.args ?? f.args, t.gpus ?? f.gpus, t.env ?? f.env]);
    n += template ? before * gpusBefore + after * gpusAfter : Math.abs(after - before) * gpusAfter;
  }
  return n;
}

/** The disruption budget in GPUs for a target holding `gpus`. */
export function budgetGpus(max: number | string, gpus: number): number {
  if (typeof max === 'number') return max;
  return Math.max(1, Math.floor((gpus * Number(max.slice(0, -1))) / 100));
}

/**
 * The next stage towards `to` within `budget` GPUs: replica changes are stepped (scale up before scaling
 * down, largest gap first); a template change that alone exceeds the budget cannot be staged in place.
 */
export function nextStage(
  from: OwnedFields,
  to: OwnedFields,
  budget: number,
): { owned: OwnedFields; final: boolean } | { unstageable: string } {
  if (gpusChanging(from, to) <= budget) return { owned: to, final: true };
  const step: OwnedFields = { apiVersion: to.apiVersion, components: from.components.map((c) => ({ ...c })) };
  let left = budget;
  const order = [...to.components].sort((a, b) => (b.replicas ?? 0) - (a.replicas ?? 0));
  for (const t of order) {
    const f = from.components.find((c) => c.name === t.name);
    const s = step.components.find((c) => c.name === t.name);
    if (!f || !s) continue;
    const templateChange =
      JSON.stringify([f.args, f.gpus, f.env]) !== JSON.stringify([t.args, t.gpus, t.env]);
    if (templateChange) {
      const cost = (f.replicas ?? 1) * (Number(t.gpus ?? f.gpus ?? 1) || 1);
      if (cost > budget)
        return {
          unstageable: `restarting ${t.name} with new settings moves ${cost} GPUs at once, over the disruption budget of ${budget}`,
        };
      if (cost <= left) {
        Object.assign(s, { args: t.args, gpus: t.gpus, env: t.env });
        left -= cost;
      }
      continue;
    }
    // Replicas servetune does not own (the Planner's) are not stepped.
    if (t.replicas === undefined && f.replicas === undefined) continue;
    const per = Number(t.gpus ?? f.gpus ?? 1) || 1;
    const have = f.replicas ?? 1;
    const want = t.replicas ?? have;
    const steps = Math.min(Math.abs(want - have), Math.floor(left / per));
    s.replicas = have + Math.sign(want - have) * steps;
    left -= steps * per;
  }
  if (ownedDigest(step) === ownedDigest(from))
    return { unstageable: `no step of the change fits the disruption budget of ${budget} GPUs` };
  return { owned: step, final: ownedDigest(step) === ownedDigest(to) };
}

/** Whether `now` lies in one of the maintenance windows (none given: always). */
export function inMaintenanceWindow(
  windows: { start: string; duration: string }[] | undefined,
  now: Date,
): boolean {
  if (!windows || windows.length === 0) return true;
  for (const w of windows) {
    try {
      const it = CronExpressionParser.parse(w.start, { currentDate: new Date(now.getTime() + 1), tz: 'UTC' });
      const opened = it.prev().toDate().getTime();
      if (now.getTime() - opened < parseDuration(w.duration)) return true;
    } catch {
      // An unparsable window never opens (admission checks the syntax).
    }
  }
  return false;
}

/** Seconds a simulated transition may spend far outside the SLOs (twice a bound) before Automatic waits for a person. */
const MAX_TRANSITION_SLO_MISS_S = 60;

/** Why the Automatic mode may not approve this proposal now, or undefined if it may. */
export function automaticBlock(o: RolloutObservation): string | undefined {
  const t = o.tuning!;
  const a = t.spec.updatePolicy.automatic;
  const spec = o.rec.spec;
  const min = t.spec.guardrails.minImprovementPercent;
  const baselineMisses = !spec.predicted.baseline.meetsSlos;
  const low = spec.predicted.gainPercentLow;
  if (!baselineMisses) {
    if (low === undefined) return 'the prediction has no uncertainty interval';
    if (low < min)
      return `the gain after subtracting the prediction's uncertainty is ${low}%, below the ${min}% guardrail`;
  } else {
    // A fix for missed SLOs must meet them even at the pessimistic end of its interval.
    const iv = spec.predicted.intervals?.proposal;
    if (!iv) return 'the prediction has no uncertainty interval';
    for (const slo of t.spec.slos) {
      if (slo.percentile !== 90 || slo.metric === 'E2E') continue;
      const high = slo.metric === 'TTFT' ? iv.ttftP90Ms.high : iv.itlP90Ms.high;
      if (high > slo.maxMs)
        return `the proposal may miss the ${slo.metric} SLO within its uncertainty (${high} ms)`;
    }
  }
  if (t.calibrationErrorPercent === undefined)
    return "the simulator's live calibration error for this deployment is not known yet";
  if (t.calibrationErrorPercent > a.maxCalibrationErrorPercent)
    return `the simulator's live calibration error is ${t.calibrationErrorPercent}%, above the ${a.maxCalibrationErrorPercent}% bound`;
  const cool = parseDuration(a.coolDown);
  for (const [what, at] of [
    ['change', t.lastChangeTime],
    ['rollback', t.lastRollbackTime],
  ] as const) {
    if (at && o.now.getTime() - Date.parse(at) < cool)
      return `the last ${what} was at ${at}, within the ${a.coolDown} cool-down`;
  }
  if (!inMaintenanceWindow(a.maintenanceWindows, o.now)) return 'outside the maintenance windows';
  const miss = spec.transition?.simulated?.sloMissSeconds;
  if (miss !== undefined && miss > MAX_TRANSITION_SLO_MISS_S)
    return `the simulated transition puts p90 TTFT or ITL over twice the SLO for ${miss} s (more than ${MAX_TRANSITION_SLO_MISS_S} s): a person should choose when to make it`;
  const payback = spec.transition?.paybackHours;
  if (payback !== undefined && payback > t.horizonHours)
    return `the change pays back its transition after ${payback} h, longer than the workload is expected to hold (${t.horizonHours} h)`;
  return undefined;
}

function judge(o: RolloutObservation, s: VerificationSample): VerificationWindow {
  const v = o.tuning!.spec.updatePolicy.verification;
  const base = { start: s.start, end: s.end };
  if (
    s.unavailable !== undefined ||
    s.ttftP90Ms === undefined ||
    s.itlP90Ms === undefined ||
    s.requests === undefined
  )
    return {
      ...base,
      outcome: 'Inconclusive',
      message: (s.unavailable ?? 'no data for the window').slice(0, 1024),
    };
  const measured = {
    ttftMs: { p90: round(s.ttftP90Ms) },
    itlMs: { p90: round(s.itlP90Ms) },
    requests: Math.round(s.requests),
    ...(s.requestRateRps !== undefined && { requestRateRps: round(s.requestRateRps) }),
  };
  if (!Number.isFinite(s.ttftP90Ms) || !Number.isFinite(s.itlP90Ms))
    return {
      ...base,
      outcome: 'Inconclusive',
      message: 'the percentiles are not finite (no requests finished)',
    };
  if (s.requests < v.minRequests)
    return {
      ...base,
      ...measured,
      outcome: 'Inconclusive',
      message: `${Math.round(s.requests)} requests in the window, fewer than the ${v.minRequests} needed`,
    };
  const tol = 1 + v.tolerancePercent / 100;
  const spec = o.rec.spec;
  const iv = spec.predicted.intervals?.proposal;
  const predTtft = iv?.ttftP90Ms.high ?? spec.predicted.proposal.ttftMs.p90;
  const predItl = iv?.itlP90Ms.high ?? spec.predicted.proposal.itlMs.p90;
  const problems: string[] = [];
  if (s.ttftP90Ms > predTtft * tol)
    problems.push(
      `p90 TTFT ${round(s.ttftP90Ms)} ms above the predicted ${round(predTtft)} ms (+${v.tolerancePercent}%)`,
    );
  if (s.itlP90Ms > predItl * tol)
    problems.push(
      `p90 ITL ${round(s.itlP90Ms)} ms above the predicted ${round(predItl)} ms (+${v.tolerancePercent}%)`,
    );
  for (const slo of o.tuning!.spec.slos) {
    const value = sloValue(s, slo.metric, slo.percentile);
    if (value === undefined || !Number.isFinite(value))
      return {
        ...base,
        ...measured,
        outcome: 'Inconclusive',
        message: `no data for the p${slo.percentile} ${slo.metric} SLO`,
      };
    if (value > slo.maxMs)
      problems.push(`p${slo.percentile} ${slo.metric} ${round(value)} ms misses the ${slo.maxMs} ms SLO`);
  }
  if (s.errorRatio !== undefined && s.errorRatio > 0.05)
    problems.push(`${round(s.errorRatio * 100)}% of requests failed`);
  return problems.length > 0
    ? { ...base, ...measured, outcome: 'Failed', message: problems.join('; ').slice(0, 1024) }
    : { ...base, ...measured, outcome: 'Successful', message: 'within the prediction and the SLOs' };
}

const round = (x: number) => Number(x.toFixed(3));

/** A measured SLO percentile: the p90 TTFT/ITL every window has, else the sample's per-SLO values. */
function sloValue(s: VerificationSample, metric: string, percentile: number): number | undefined {
  if (percentile === 90 && metric === 'TTFT') return s.ttftP90Ms;
  if (percentile === 90 && metric === 'ITL') return s.itlP90Ms;
  return s.slo?.[`${metric}:${percentile}`];
}

/** The verification window due next, if its end has passed (observe fetches it; decide judges it). */
export function dueWindow(
  status: TuningRecommendationStatus | undefined,
  windowMs: number,
  now: Date,
): { start: string; end: string } | undefined {
  if (status?.state !== 'Verifying' || !status.rollout?.readySince) return undefined;
  const done = status.rollout.windows ?? [];
  const ready = Date.parse(status.rollout.readySince);
  // Windows of an earlier stage end before this stage became ready.
  const last = done.length > 0 ? Math.max(ready, Date.parse(done[done.length - 1].end)) : ready;
  const end = last + windowMs;
  if (end > now.getTime()) return undefined;
  return { start: nowIso(new Date(last)), end: nowIso(new Date(end)) };
}

export function decideRollout(o: RolloutObservation): RolloutDecision {
  const st = o.rec.status;
  const state: RolloutState = st?.state ?? 'Proposed';
  const spec = o.rec.spec;
  const rollbackable = ['Applying', 'Applied', 'Verifying', 'Verified'].includes(state);
  if (TERMINAL_STATES.includes(state) && !(rollbackable && spec.rollbackRequest)) return { events: [] };
  const t = o.tuning;
  if (!t) {
    if (state === 'Proposed' || state === 'Approved')
      return transition(o, 'Superseded', 'TuningDeleted', 'The DeploymentTuning that proposed this is gone.');
    return hold(
      o,
      'The DeploymentTuning that proposed this is gone; the rollout is left where it is.',
      600_000,
    );
  }
  const policy = t.spec.updatePolicy;
  const review = spec.review;
  const reviewer = review?.by;

  // A rollback request wins over everything once something was changed.
  if (spec.rollbackRequest && rollbackable) {
    if (!o.reviewPolicy)
      return hold(
        o,
        'A rollback was requested, but the review admission policy is not installed, so its author cannot be trusted.',
        60_000,
        'ReviewPolicyMissing',
      );
    return transition(
      o,
      'RollingBack',
      'RollbackRequested',
      `Rollback requested by ${spec.rollbackRequest.by}${spec.rollbackRequest.reason ? `: ${spec.rollbackRequest.reason}` : ''}.`,
      spec.rollbackRequest.by,
    );
  }

  switch (state) {
    case 'Proposed': {
      if (review) {
        if (!o.reviewPolicy)
          return hold(
            o,
            "A review is present, but the admission policy that checks reviewers' identity is not installed; it is not trusted.",
            60_000,
            'ReviewPolicyMissing',
          );
        if (review.decision === 'Rejected')
          return transition(
            o,
            'Rejected',
            'Rejected',
            `Rejected by ${reviewer}${review.reason ? `: ${review.reason}` : ''}.`,
            reviewer,
          );
        return transition(
          o,
          'Approved',
          'Approved',
          `Approved by ${reviewer}${review.reason ? `: ${review.reason}` : ''}.`,
          reviewer,
        );
      }
      const window = parseDuration(policy.approvalWindow);
      const age = o.now.getTime() - Date.parse(o.rec.creationTimestamp);
      if (policy.mode === 'Automatic') {
        const block = automaticBlock(o);
        if (!block)
          return transition(
            o,
            'Approved',
            'AutomaticApproval',
            'Approved by the Automatic mode: every guardrail passed.',
            OPERATOR_ACTOR,
          );
        if (age >= window)
          return transition(
            o,
            'Expired',
            'Expired',
            `Not applied within ${policy.approvalWindow}: ${block}.`,
          );
        return hold(o, `Automatic mode holds: ${block}.`, 300_000, 'GuardrailBlocked');
      }
      if (age >= window)
        return transition(
          o,
          'Expired',
          'Expired',
          `Not reviewed within the approval window (${policy.approvalWindow}).`,
        );
      return { events: [], requeueAfterMs: Math.min(window - age + 1000, 3_600_000) };
    }

    case 'Approved': {
      if ('missing' in o.target) return transition(o, 'Failed', 'TargetNotFound', o.target.missing);
      if (settingsDigest(o.target.settings) !== settingsDigest(spec.baseline))
        return transition(
          o,
          'Failed',
          'TargetChanged',
          'The target changed since this was proposed; not applied over that change (the next sweep starts from the new settings).',
        );
      if (policy.mode === 'Off')
        return hold(o, 'Approved; updatePolicy.mode is Off, so nothing is applied.', 600_000, 'ModeOff');
      if (o.otherActive)
        return hold(
          o,
          `Waiting: ${o.otherActive} is being rolled out on the same target.`,
          RETRY_MS,
          'Queued',
        );
      const plan = o.target.plan;
      if ('unsupported' in plan)
        return transition(
          o,
          'Failed',
          'UnsupportedChange',
          `Not applied: ${plan.unsupported}. Apply it by hand if wanted.`,
        );
      const budget = budgetGpus(policy.maxGPUsChanging, o.target.gpus);
      const stage = nextStage(o.target.owned, plan.target, budget);
      if ('unstageable' in stage)
        return transition(
          o,
          'Failed',
          'DisruptionBudgetExceeded',
          `Not applied: ${stage.unstageable}; raise updatePolicy.maxGPUsChanging or apply by hand.`,
        );
      const steps = stage.final ? '' : ' (first stage of a staged change)';
      return transition(
        o,
        'Applying',
        'Applying',
        `Applying ${gpusChanging(o.target.owned, stage.owned)} GPUs of change${steps}.${plan.notes.length ? ` ${plan.notes.join('; ')}.` : ''}`,
        undefined,
        { baseline: st?.rollout?.baseline ?? o.target.owned, target: plan.target },
      );
    }

    case 'Applying': {
      const r = st?.rollout;
      if (!r?.target || !r.baseline)
        return transition(o, 'Failed', 'StateLost', 'The rollout lost its recorded target values.');
      if ('missing' in o.target) return transition(o, 'Failed', 'TargetNotFound', o.target.missing);
      const budget = budgetGpus(policy.maxGPUsChanging, o.target.gpus);
      const stage = nextStage(o.target.owned, r.target, budget);
      if ('unstageable' in stage)
        return transition(o, 'Failed', 'DisruptionBudgetExceeded', stage.unstageable);
      const res = o.actionResult;
      if (!res)
        return { events: [], action: { kind: 'apply', owned: stage.owned, force: policy.forceConflicts } };
      if (res.ok) {
        if (!stage.final) {
          // A stage landed: wait for it to be ready, then the next (each stage is verified by readiness).
          return transition(
            o,
            'Applied',
            'StageApplied',
            `Stage applied; the target is moving towards the proposal.`,
            undefined,
            {
              appliedGeneration: res.generation,
              applied: stage.owned,
            },
          );
        }
        return {
          ...transition(
            o,
            'Applied',
            'Applied',
            'The proposal was applied to the target; waiting for it to be ready.',
            undefined,
            {
              appliedGeneration: res.generation,
              applied: stage.owned,
            },
          ),
          tuning: {
            rollout: { recommendation: o.rec.name, state: 'Applied', since: nowIso(o.now) },
            lastChangeTime: nowIso(o.now),
          },
        };
      }
      if (res.conflict) {
        const who = res.conflict.managers.join(', ') || 'another manager';
        return transition(
          o,
          'Failed',
          'FieldConflict',
          `Not applied: ${who} owns ${res.conflict.fields.join(', ')}; nothing was changed. Hand the fields over, or set updatePolicy.forceConflicts.`,
          undefined,
          { conflict: res.conflict },
        );
      }
      if (res.permanent) return transition(o, 'Failed', 'ApplyFailed', `Not applied: ${res.message}`);
      return hold(o, `Applying: ${res.message}; retrying.`, RETRY_MS, 'ApplyRetry');
    }

    case 'Applied': {
      if ('missing' in o.target) return transition(o, 'Failed', 'TargetNotFound', o.target.missing);
      const r = st!.rollout!;
      const appliedAt = Date.parse(st!.stateTransitionTime ?? o.now.toISOString());
      const timeout = parseDuration(policy.verification.readyTimeout);
      const ready = o.target.ready;
      const caughtUp =
        ready?.observedGeneration === undefined || ready.observedGeneration >= (r.appliedGeneration ?? 0);
      const staged = r.target && r.applied && ownedDigest(r.applied) !== ownedDigest(r.target);
      if (ready?.status === 'True' && caughtUp) {
        // Every stage is verified against the live metrics before the next one goes out.
        return transition(
          o,
          'Verifying',
          'Ready',
          staged
            ? `This stage is ready; verifying it over a window of ${policy.verification.window} before the next stage.`
            : `The target is ready; verifying against the prediction over ${policy.verification.windows} window(s) of ${policy.verification.window}.`,
          undefined,
          {
            readySince: nowIso(o.now),
            windows: r.windows ?? [],
            consecutiveFailures: 0,
          },
        );
      }
      if (o.now.getTime() - appliedAt > timeout)
        return transition(
          o,
          'RollingBack',
          'ReadyTimeout',
          `The target was not ready within ${policy.verification.readyTimeout}${ready?.message ? ` (${ready.message})` : ''}; rolling back.`,
        );
      return { events: [], requeueAfterMs: 5_000 };
    }

    case 'Verifying': {
      if ('missing' in o.target) return transition(o, 'Failed', 'TargetNotFound', o.target.missing);
      const r = st!.rollout!;
      const expected = r.applied ?? r.target;
      if (expected && ownedDigest(o.target.owned) !== ownedDigest(expected))
        return transition(
          o,
          'Failed',
          'TargetChanged',
          'The target was changed outside servetune during verification; not rolling back over that change.',
        );
      const v = policy.verification;
      const windowMs = parseDuration(v.window);
      if (!o.sample) {
        const due = dueWindow(st, windowMs, o.now);
        const last = r.windows?.length
          ? Date.parse(r.windows[r.windows.length - 1].end)
          : Date.parse(r.readySince!);
        return {
          events: [],
          requeueAfterMs: due ? 0 : Math.max(1000, last + windowMs - o.now.getTime() + 1000),
        };
      }
      const w = judge(o, o.sample);
      const windows = [...(r.windows ?? []), w].slice(-16);
      // Successes of this stage only (windows of earlier stages ended before it was ready).
      const readyMs = Date.parse(r.readySince!);
      const successes = windows.filter(
        (x) => x.outcome === 'Successful' && Date.parse(x.start) >= readyMs,
      ).length;
      const moreStages = r.applied && r.target && ownedDigest(r.applied) !== ownedDigest(r.target);
      let failures =
        w.outcome === 'Failed'
          ? (r.consecutiveFailures ?? 0) + 1
          : w.outcome === 'Successful'
            ? 0
            : (r.consecutiveFailures ?? 0);
      if (w.outcome === 'Inconclusive' && v.onInconclusive === 'Retry') {
        const tail = windows.slice(-3);
        if (tail.length === 3 && tail.every((x) => x.outcome === 'Inconclusive')) failures++;
      }
      const observed = { windows, consecutiveFailures: failures };
      if (w.outcome === 'Inconclusive' && v.onInconclusive === 'Rollback')
        return failedVerification(
          o,
          `Verification was inconclusive (${w.message}) and updatePolicy.verification.onInconclusive is Rollback.`,
          observed,
        );
      if (failures >= v.failuresBeforeRollback)
        return failedVerification(
          o,
          `Verification failed ${failures} time(s) in a row: ${w.message}.`,
          observed,
        );
      if (moreStages && w.outcome === 'Successful')
        return transition(
          o,
          'Applying',
          'NextStage',
          `This stage verified (${w.message}); applying the next.`,
          undefined,
          observed,
        );
      if (successes >= v.windows && w.outcome === 'Successful')
        return transition(
          o,
          'Verified',
          'Verified',
          `Verified over ${successes} window(s): ${w.message}.`,
          undefined,
          observed,
        );
      return {
        status: {
          ...st!,
          message: `Verifying: window ${windows.length} ${w.outcome.toLowerCase()} (${w.message}).`.slice(
            0,
            1024,
          ),
          rollout: { ...r, ...observed },
        },
        events: [
          {
            type: w.outcome === 'Successful' ? 'Normal' : 'Warning',
            reason: `Verification${w.outcome}`,
            message: `Window ${w.start} - ${w.end}: ${w.message}.`,
          },
        ],
        requeueAfterMs: windowMs,
      };
    }

    case 'RollingBack': {
      const r = st?.rollout;
      if (!r?.baseline)
        return transition(
          o,
          'Failed',
          'StateLost',
          'Rolling back, but the baseline values were not recorded.',
        );
      if ('missing' in o.target)
        return transition(o, 'Failed', 'TargetNotFound', `Cannot roll back: ${o.target.missing}`);
      const res = o.actionResult;
      // A rollback restores the recorded baseline whole; it is not staged (speed matters more here).
      if (!res)
        return { events: [], action: { kind: 'rollback', owned: r.baseline, force: policy.forceConflicts } };
      if (res.ok) {
        const d = transition(
          o,
          'RolledBack',
          'RolledBack',
          `The target's previous settings were restored.${describeObserved(r)}`,
        );
        return {
          ...d,
          tuning: {
            rollout: { recommendation: o.rec.name, state: 'RolledBack', since: nowIso(o.now) },
            lastChangeTime: nowIso(o.now),
            lastRollbackTime: nowIso(o.now),
            failedProposal: settingsDigest(spec.proposal),
          },
        };
      }
      if (res.permanent || res.conflict)
        return transition(
          o,
          'Failed',
          'RollbackFailed',
          `The rollback could not be applied: ${res.conflict ? `${res.conflict.managers.join(', ')} owns ${res.conflict.fields.join(', ')}` : res.message}. The target is left as it is; restore it by hand.`,
        );
      return hold(o, `Rolling back: ${res.message}; retrying.`, 5_000, 'RollbackRetry');
    }

    default:
      return { events: [] };
  }
}

function failedVerification(
  o: RolloutObservation,
  message: string,
  observed: Partial<RolloutStatus>,
): RolloutDecision {
  return transition(o, 'RollingBack', 'VerificationFailed', `${message} Rolling back.`, undefined, observed);
}

function describeObserved(r: RolloutStatus): string {
  const last = [...(r.windows ?? [])].reverse().find((w) => w.ttftMs?.p90 !== undefined);
  if (!last) return '';
  return ` Observed p90 TTFT ${last.ttftMs?.p90} ms, ITL ${last.itlMs?.p90} ms (${last.outcome}).`;
}

/** What "the same proposal" means for remembering failures: the shape and knobs, not the metrics. */
export function settingsDigest(s: ServingSettings): string {
  // Under the Planner the worker counts are its to move: its bounds stand for them.
  const planner = s.planner.enabled;
  const role = (r?: { workers: number; tensorParallel: number }) =>
    r ? `${planner ? 'P' : r.workers}x${r.tensorParallel}` : '-';
  return [
    ...(planner ? [`planner:${s.planner.minEndpoint ?? ''}:${s.planner.maxGpuBudget ?? ''}`] : []),
    s.gpuType,
    s.topology,
    role(s.aggregated),
    role(s.prefill),
    role(s.decode),
    s.router.mode,
    s.router.overlapWeight ?? '',
    s.engine?.backend ?? '',
    s.engine?.maxNumSeqs ?? '',
    s.engine?.maxNumBatchedTokens ?? '',
    s.engine?.blockSize ?? '',
  ]
    .join('|')
    .slice(0, 128);
}
