import type { Logger } from 'pino';
import {
  API_VERSION,
  type DeploymentTuning,
  type DeploymentTuningSpec,
  type ServingSettings,
  type TuningRecommendation,
} from '../../api/index.ts';
import { nowIso } from '../conditions.ts';
import { isAlreadyExists, isConflict, isNotFound, type KubeClient } from '../kube/client.ts';
import { type EventRecorder, refOf } from '../kube/events.ts';
import { boundedName, labelValue } from '../kube/names.ts';
import { type KubeList, pathOf, TUNING_RECOMMENDATIONS } from '../kube/resources.ts';
import { type SweepJobResult, summarize } from '../sweep/job.ts';

/**
 * TuningRecommendation objects: built from a sweep, created idempotently under a name derived from the
 * schedule slot (so a restarted operator finds, rather than duplicates, what it created), superseded when
 * a newer one arrives, and pruned beyond the tuning's historyLimit.
 */

export const LABEL_TUNING = 'servetune.dev/deployment-tuning';
const LABEL_SLOT = 'servetune.dev/sweep-slot';

/** `<tuning>-<slot seconds>`, within the 253 characters of an object name (long names cut and hashed). */
export function recommendationName(tuning: string, slot: string): string {
  return boundedName(tuning, `-${Math.floor(Date.parse(slot) / 1000)}`);
}

/** The label selector of a tuning's recommendations (the label value is hashed when the name is long). */
export function tuningSelector(tuning: string): string {
  return `${LABEL_TUNING}=${labelValue(tuning)}`;
}

export interface SweepRecord {
  slot: string;
  startedTime: string;
  completedTime: string;
  baseline: ServingSettings;
  result: SweepJobResult;
}

export function buildRecommendation(
  dt: DeploymentTuning,
  spec: DeploymentTuningSpec,
  sweep: SweepRecord,
): TuningRecommendation {
  const r = sweep.result;
  const best = r.best!;
  return {
    apiVersion: API_VERSION,
    kind: 'TuningRecommendation',
    metadata: {
      name: recommendationName(dt.metadata.name, sweep.slot),
      namespace: dt.metadata.namespace,
      labels: {
        [LABEL_TUNING]: labelValue(dt.metadata.name),
        [LABEL_SLOT]: String(Math.floor(Date.parse(sweep.slot) / 1000)),
      },
      ownerReferences: [
        {
          apiVersion: API_VERSION,
          kind: 'DeploymentTuning',
          name: dt.metadata.name,
          uid: dt.metadata.uid!,
          controller: true,
          blockOwnerDeletion: true,
        },
      ],
    },
    spec: {
      deploymentTuning: dt.metadata.name,
      targetRef: spec.targetRef,
      objective: spec.objective,
      baseline: sweep.baseline,
      proposal: best.settings,
      predicted: {
        baseline: r.baseline,
        proposal: best.metrics,
        gainPercent: r.gainPercent ?? 0,
        ...(r.intervals && {
          intervals: {
            baseline: intervalOf(r.intervals.baseline),
            proposal: intervalOf(r.intervals.proposal),
          },
        }),
        ...(r.gainPercentLow !== undefined &&
          r.gainPercentLow !== null && { gainPercentLow: r.gainPercentLow }),
      },
      ...(r.transition && { transition: r.transition }),
      frontier: r.frontier.slice(0, 32).map((c) => ({
        summary: summarize(c.settings).slice(0, 256),
        gpus: c.settings.gpus,
        objectiveValue: c.metrics.objectiveValue,
        ttftP90Ms: c.metrics.ttftMs.p90,
        itlP90Ms: c.metrics.itlMs.p90,
        outputTokensPerSecondPerGpu: c.metrics.outputTokensPerSecondPerGpu,
        meetsSlos: c.metrics.meetsSlos,
      })),
      explanation: r.explanation.slice(0, 4096),
      trace: {
        source: r.summary.source,
        hash: r.summary.hash,
        windowStartSeconds: r.summary.windowStartSeconds,
        windowEndSeconds: r.summary.windowEndSeconds,
        requests: r.summary.requests,
      },
      sweep: {
        scheduledTime: sweep.slot,
        startedTime: sweep.startedTime,
        completedTime: sweep.completedTime,
        candidates: r.candidates,
        feasible: r.feasible,
        optimizer: r.optimizer,
        simulatorVersion: r.simulatorVersion,
      },
    },
  };
}

/** The API's interval shape (the per-window values stay in the job). */
function intervalOf(i: NonNullable<SweepJobResult['intervals']>['baseline']) {
  return {
    objectiveValue: i.objectiveValue,
    ttftP90Ms: i.ttftP90Ms,
    itlP90Ms: i.itlP90Ms,
    e2eP90Ms: i.e2eP90Ms,
  };
}

export async function findRecommendation(
  client: KubeClient,
  namespace: string,
  name: string,
): Promise<TuningRecommendation | undefined> {
  try {
    return await client.get<TuningRecommendation>(pathOf(TUNING_RECOMMENDATIONS, namespace, name));
  } catch (e) {
    if (isNotFound(e)) return undefined;
    throw e;
  }
}

/** Creates the recommendation (or finds it, if a previous attempt got that far) and marks it Proposed. */
export async function createRecommendation(
  client: KubeClient,
  body: TuningRecommendation,
  log: Logger,
): Promise<TuningRecommendation> {
  const namespace = body.metadata.namespace ?? 'default';
  const name = body.metadata.name;
  let obj: TuningRecommendation;
  try {
    obj = await client.create<TuningRecommendation>(pathOf(TUNING_RECOMMENDATIONS, namespace), body);
    log.info({ recommendation: name }, 'Created TuningRecommendation');
  } catch (e) {
    if (!isAlreadyExists(e)) throw e;
    obj = await client.get<TuningRecommendation>(pathOf(TUNING_RECOMMENDATIONS, namespace, name));
  }
  return ensureProposed(client, obj);
}

/**
 * Gives a recommendation that has no state yet its first one. An operator that crashed between creating a
 * recommendation and writing its status finds it without a state; adopting it finishes this step.
 */
export async function ensureProposed(
  client: KubeClient,
  obj: TuningRecommendation,
): Promise<TuningRecommendation> {
  if (obj.status?.state) return obj;
  obj.status = {
    state: 'Proposed',
    stateTransitionTime: obj.spec.sweep.completedTime,
    message: 'Awaiting review.',
  };
  return client.replace<TuningRecommendation>(
    pathOf(TUNING_RECOMMENDATIONS, obj.metadata.namespace ?? 'default', obj.metadata.name, 'status'),
    obj,
  );
}

/**
 * Marks older recommendations that are still only proposed (or approved but not yet applying) Superseded, and
 * deletes the oldest beyond `historyLimit`, never one whose rollout is under way.
 */
export async function supersedeAndPrune(
  client: KubeClient,
  recorder: EventRecorder,
  dt: DeploymentTuning,
  historyLimit: number,
  current: string,
  log: Logger,
  now: Date,
): Promise<void> {
  const namespace = dt.metadata.namespace ?? 'default';
  const list = await client.get<KubeList<TuningRecommendation>>(pathOf(TUNING_RECOMMENDATIONS, namespace), {
    labelSelector: tuningSelector(dt.metadata.name),
  });
  // Only this object's: a deleted and re-created tuning of the same name must not touch the old one's.
  const mine = list.items.filter((t) => t.metadata.ownerReferences?.some((o) => o.uid === dt.metadata.uid));
  for (const t of mine) {
    const st = t.status?.state ?? 'Proposed';
    if (t.metadata.name === current || (st !== 'Proposed' && st !== 'Approved')) continue;
    t.status = {
      ...t.status,
      state: 'Superseded',
      stateTransitionTime: nowIso(now),
      supersededBy: current,
      message: `Superseded by ${current}.`,
    };
    try {
      await client.replace(pathOf(TUNING_RECOMMENDATIONS, namespace, t.metadata.name, 'status'), t);
      void recorder.emit(refOf(t), 'Normal', 'Superseded', 'Supersede', `Superseded by ${current}.`);
    } catch (e) {
      if (!isConflict(e) && !isNotFound(e)) throw e;
    }
  }
  const oldestFirst = mine.sort(
    (a, b) =>
      Date.parse(a.spec.sweep.completedTime) - Date.parse(b.spec.sweep.completedTime) ||
      a.metadata.name.localeCompare(b.metadata.name),
  );
  for (const t of oldestFirst.slice(0, Math.max(0, oldestFirst.length - historyLimit))) {
    if (t.metadata.name === current) continue;
    if (['Applying', 'Applied', 'Verifying', 'RollingBack'].includes(t.status?.state ?? '')) continue;
    try {
      await client.delete(pathOf(TUNING_RECOMMENDATIONS, namespace, t.metadata.name));
      log.info({ recommendation: t.metadata.name }, 'Pruned TuningRecommendation beyond historyLimit');
      void recorder.emit(
        refOf(dt),
        'Normal',
        'RecommendationPruned',
        'Prune',
        `Deleted ${t.metadata.name} (historyLimit ${historyLimit}).`,
      );
    } catch (e) {
      if (!isNotFound(e)) throw e;
    }
  }
}
