import type { Logger } from 'pino';
import type { DeploymentTuning, DeploymentTuningSpec, TuningRecommendation } from '../../api/index.ts';
import { nowIso, setCondition } from '../conditions.ts';
import { refOf } from '../kube/events.ts';
import { splitKey } from '../kube/resources.ts';
import { type SweepJobResult, summarize } from '../sweep/job.ts';
import { baselineOf } from '../telemetry/baseline.ts';
import { calibrationStatus, recordCalibration } from '../telemetry/calibration-status.ts';
import type { FinishedSweep, TuningContext } from './context.ts';
import { activeRollout } from './observe.ts';
import { decideProposal } from './policy.ts';
import {
  buildRecommendation,
  createRecommendation,
  ensureProposed,
  supersedeAndPrune,
} from './recommendations.ts';
import { nextSlot } from './slots.ts';
import { pushHistory, summarizeConditions } from './status.ts';
import { updateStatus } from './status-write.ts';
import { failSweep } from './sweep-failure.ts';

/**
 * Writing a finished sweep: the proposal decision (`policy.ts`), the recommendation when warranted (named
 * after the slot, so a restart finds it instead of duplicating it), the previous one superseded, the
 * tuning's status and history, Events and metrics.
 */

/** Writes a finished sweep's outcome: recommendation (if warranted), status, events. */
export async function completeSweep(
  ctx: TuningContext,
  key: string,
  dt: DeploymentTuning,
  s: DeploymentTuningSpec,
  f: FinishedSweep,
  log: Logger,
): Promise<void> {
  const { o } = ctx;
  const generation = dt.metadata.generation ?? 0;
  const regarding = refOf(dt);
  if (f.error) {
    await failSweep(ctx, key, dt, s, { ...f, error: f.error });
    return;
  }
  const r = f.result!;
  const { namespace: ns, name: dtName } = splitKey(key);
  recordCalibration(o.metrics, ns, dtName, r.calibration);
  if (r.calibration?.correction?.bounded)
    void o.recorder.emit(
      regarding,
      'Warning',
      'CalibrationBounded',
      'Calibrate',
      `The simulator's correction for this deployment hit its bound (prefill x${r.calibration.correction.factors.prefill}, decode x${r.calibration.correction.factors.decode}; mean error ${(r.calibration.correction.meanAbsError * 100).toFixed(0)} % after, ${(r.calibration.meanAbsError * 100).toFixed(0)} % before): the model is off by more than a scale explains, so the correction is not applied.`,
    );
  const decision = decideProposal({
    best: r.best,
    baseline: f.baseline,
    baselineMeetsSlos: r.baseline.meetsSlos,
    gainPercent: r.gainPercent,
    gainPercentLow: r.gainPercentLow,
    objective: s.objective,
    guardrails: s.guardrails,
    lastProposalTime: dt.status?.lastProposalTime,
    completedTime: f.completedTime,
    failedProposals: dt.status?.failedProposals,
    ...(r.excluded && { excluded: r.excluded }),
    rolloutInProgress: await activeRollout(o.client, dt),
  });
  void o.recorder.emit(
    regarding,
    r.summary.badLines > 0 ? 'Warning' : 'Normal',
    r.summary.badLines > 0 ? 'TraceLinesSkipped' : 'TraceLoaded',
    'LoadTrace',
    `Loaded ${r.summary.requests} requests from ${r.summary.source}` +
      (r.summary.badLines > 0
        ? `; skipped ${r.summary.badLines} bad lines (first: ${describeIssue(r.issues[0])}).`
        : '.'),
  );
  void o.recorder.emit(
    regarding,
    'Normal',
    'SweepCompleted',
    'Sweep',
    `Simulated ${r.candidates} candidates (${r.feasible} feasible) in ${(
      (Date.parse(f.completedTime) - Date.parse(f.startedTime)) / 1000
    ).toFixed(0)}s.`,
  );
  let created: string | undefined;
  if (decision.outcome === 'Proposed') {
    const body = buildRecommendation(dt, s, { ...f, result: r });
    await createRecommendation(o.client, body, log);
    created = body.metadata.name;
    // Counted once it exists: a failed create is retried, not counted as a proposal.
    o.metrics.sweeps.inc({ outcome: 'Proposed' });
    await o.recorder.emit(
      regarding,
      'Normal',
      'RecommendationCreated',
      'Recommend',
      `TuningRecommendation ${created}: ${summarize(r.best!.settings)} (${r.gainPercent}% ${s.objective}).`,
    );
    await supersedeAndPrune(o.client, o.recorder, dt, s.historyLimit, created, log, ctx.now());
  } else {
    o.metrics.sweeps.inc({ outcome: decision.outcome });
    await o.recorder.emit(regarding, 'Normal', decision.outcome, 'Recommend', decision.message);
  }
  await updateStatus(o.client, key, (st) => {
    st.lastSweepTime = f.completedTime;
    st.nextSweepTime = nowIso(
      nextSlot(s, { lastSweepTime: f.completedTime }, ctx.now(), ctx.limits.minScheduleIntervalMs),
    );
    st.sweepStartedTime = undefined;
    st.sweepCrashes = undefined;
    st.workload = r.summary;
    st.sweepReason = undefined;
    // The profile this sweep replayed is what later windows are compared with.
    st.drift = {
      ...(st.drift ?? {
        checkedTime: f.completedTime,
        level: 0,
        drifted: false,
        phase: 'Stable',
        armed: true,
        scores: {},
      }),
      baseline: baselineOf(r.profile, new Date(f.completedTime)),
    };
    const cal = calibrationStatus(r, f.completedTime);
    if (cal) st.calibration = cal;
    if (f.inventory) st.gpuInventory = f.inventory;
    st.lastSweep = {
      candidates: r.candidates,
      feasible: r.feasible,
      durationSeconds: (Date.parse(f.completedTime) - Date.parse(f.startedTime)) / 1000,
      simulatorVersion: r.simulatorVersion,
    };
    if (created) {
      st.currentRecommendation = created;
      st.lastProposalTime = f.completedTime;
    }
    pushHistory(st, {
      time: f.completedTime,
      reason: f.reason,
      outcome: decision.outcome,
      ...(created && { recommendation: created }),
      ...(r.gainPercent !== null && { gainPercent: r.gainPercent }),
      message: decision.message.slice(0, 1024),
    });
    st.conditions = setCondition(
      st.conditions,
      {
        type: 'Sweeping',
        status: 'False',
        reason: 'SweepCompleted',
        message: r.explanation.slice(0, 32768),
        observedGeneration: generation,
      },
      ctx.now(),
    );
    st.conditions = setCondition(
      st.conditions,
      {
        type: 'Degraded',
        status: 'False',
        reason: 'SweepSucceeded',
        message: 'The last sweep succeeded.',
        observedGeneration: generation,
      },
      ctx.now(),
    );
    if (created) {
      st.conditions = setCondition(
        st.conditions,
        {
          type: 'RecommendationAvailable',
          status: 'True',
          reason: 'RecommendationCreated',
          message: `TuningRecommendation ${created} proposes ${summarize(r.best!.settings)}.`,
          observedGeneration: generation,
        },
        ctx.now(),
      );
    } else if (!st.currentRecommendation) {
      st.conditions = setCondition(
        st.conditions,
        {
          type: 'RecommendationAvailable',
          status: 'False',
          reason: decision.outcome,
          message: decision.message,
          observedGeneration: generation,
        },
        ctx.now(),
      );
    }
    summarizeConditions(st, generation, ctx.now());
  });
}

/**
 * Finishes a due slot whose recommendation already exists (the operator stopped after creating it): a crash
 * may have come between creating it and writing its state, or superseding the previous one.
 */
export async function finishFoundRecommendation(
  ctx: TuningContext,
  key: string,
  dt: DeploymentTuning,
  s: DeploymentTuningSpec,
  existing: TuningRecommendation,
  generation: number,
  log: Logger,
): Promise<void> {
  const { o } = ctx;
  log.info({ recommendation: existing.metadata.name }, 'Found the recommendation of this slot; finishing');
  await ensureProposed(o.client, existing);
  await supersedeAndPrune(o.client, o.recorder, dt, s.historyLimit, existing.metadata.name, log, ctx.now());
  await updateStatus(o.client, key, (st) => {
    const completed = existing.spec.sweep.completedTime;
    st.lastSweepTime = completed;
    st.nextSweepTime = nowIso(
      nextSlot(s, { lastSweepTime: completed }, ctx.now(), ctx.limits.minScheduleIntervalMs),
    );
    st.sweepStartedTime = undefined;
    st.sweepCrashes = undefined;
    st.currentRecommendation = existing.metadata.name;
    st.lastProposalTime = completed;
    pushHistory(st, {
      time: completed,
      outcome: 'Proposed',
      recommendation: existing.metadata.name,
      gainPercent: existing.spec.predicted.gainPercent,
    });
    st.conditions = setCondition(
      st.conditions,
      {
        type: 'RecommendationAvailable',
        status: 'True',
        reason: 'RecommendationCreated',
        message: `TuningRecommendation ${existing.metadata.name} proposes ${summarize(existing.spec.proposal)}.`,
        observedGeneration: generation,
      },
      ctx.now(),
    );
    st.conditions = setCondition(
      st.conditions,
      {
        type: 'Sweeping',
        status: 'False',
        reason: 'SweepCompleted',
        message: 'The last sweep completed.',
        observedGeneration: generation,
      },
      ctx.now(),
    );
    summarizeConditions(st, generation, ctx.now());
  });
}

/**
 * A bad trace line, located but not quoted: the trace may come from anywhere the operator can read, and its
 * content must not leak into Events.
 */
function describeIssue(i: SweepJobResult['issues'][number] | undefined): string {
  if (!i) return 'unknown';
  return `line ${i.line}: ${i.field ? `field '${i.field}' is invalid or missing` : 'not a JSON object'}`;
}
