import {
  type DeploymentTuning,
  type DeploymentTuningSpec,
  DeploymentTuningSpecSchema,
  type ServingSettings,
} from '../../api/index.ts';
import { isNotFound, type KubeClient } from '../kube/client.ts';
import { DEPLOYMENT_TUNINGS, type KubeObject, pathOf, splitKey } from '../kube/resources.ts';
import { validateCron } from '../schedule.ts';
import type { TargetAdapter } from '../target/adapter.ts';
import type { ControllerOptions, InFlight } from './context.ts';
import type { Continuation, InFlightView, ObservedTuning, Reobserved, TuningObservation } from './decide.ts';
import { findRecommendation } from './recommendations.ts';
import { oneLine } from './status.ts';

/**
 * Reading the world for a reconcile: the DeploymentTuning from the cache (or fresh from the API server when
 * decide asks), its spec checked, its target and the target's serving settings, the key's work in flight,
 * and whether a rollout is under way. A problem comes back as the Degraded reason and message to show, not
 * as an exception.
 */

/** Why the object cannot be acted on (a Degraded reason and its message). */
export interface Unusable {
  reason: string;
  message: string;
}

/** The object as the API server has it now (the cache may lag our own writes); undefined once it is gone. */
export async function fetchTuning(client: KubeClient, key: string): Promise<DeploymentTuning | undefined> {
  const { namespace, name } = splitKey(key);
  try {
    return await client.get<DeploymentTuning>(pathOf(DEPLOYMENT_TUNINGS, namespace, name));
  } catch (e) {
    if (isNotFound(e)) return undefined;
    throw e;
  }
}

/** The spec parsed, with a schedule that fires. */
export function readSpec(dt: DeploymentTuning): { spec: DeploymentTuningSpec } | Unusable {
  const spec = DeploymentTuningSpecSchema.safeParse(dt.spec);
  if (!spec.success) {
    const issue = spec.error.issues[0];
    return { reason: 'InvalidSpec', message: oneLine(`spec.${issue.path.join('.')}: ${issue.message}`, 512) };
  }
  const s = spec.data;
  const cronError = validateCron(s.schedule);
  if (cronError) {
    return {
      reason: 'InvalidSchedule',
      message: oneLine(
        `spec.schedule '${s.schedule.slice(0, 100)}' never fires or is not valid: ${cronError}`,
        512,
      ),
    };
  }
  return { spec: s };
}

export interface ObservedTarget {
  adapter: TargetAdapter;
  obj: KubeObject;
  baseline: { settings: ServingSettings; warnings: string[] };
}

/** The target from its informer's cache, and the serving settings it runs now. */
export function readTarget(
  targets: ControllerOptions['targets'],
  dt: DeploymentTuning,
  s: DeploymentTuningSpec,
): ObservedTarget | Unusable {
  const target = targets.get(s.targetRef.kind);
  const obj = target?.informer.get(`${dt.metadata.namespace}/${s.targetRef.name}`);
  if (!target || !obj) {
    const message = target
      ? `${s.targetRef.kind} ${dt.metadata.namespace}/${s.targetRef.name} not found`
      : `target kind ${s.targetRef.kind} is not supported`;
    return { reason: 'TargetNotFound', message };
  }
  const baseline = target.adapter.readBaseline(obj, []);
  if ('error' in baseline) {
    return {
      reason: baseline.reason ?? 'TargetUnreadable',
      message: `${s.targetRef.kind} ${s.targetRef.name}: ${baseline.error}`,
    };
  }
  return { adapter: target.adapter, obj, baseline };
}

/** The current recommendation, if its rollout is under way (no new proposal may interrupt it). */
export async function activeRollout(client: KubeClient, dt: DeploymentTuning): Promise<string | undefined> {
  const name = dt.status?.currentRecommendation;
  if (!name) return undefined;
  const rec = await findRecommendation(client, dt.metadata.namespace ?? 'default', name);
  const state = rec?.status?.state;
  return state && ['Applying', 'Applied', 'Verifying', 'RollingBack'].includes(state) ? name : undefined;
}

/** A reconcile's first observation: the cached object, its spec and target, and the key's work in flight. */
export function observeTuning(
  o: Pick<ControllerOptions, 'tunings' | 'targets'>,
  inFlight: InFlight,
  key: string,
): TuningObservation {
  return { key, tuning: observeObject(o, key), inFlight: inFlightOf(inFlight, key) };
}

/** A later round: what decide asked to read, with the work in flight seen anew. */
export async function observeAgain(
  client: KubeClient,
  inFlight: InFlight,
  prev: TuningObservation,
  c: Continuation,
): Promise<TuningObservation> {
  let again: Reobserved;
  if (c.resume === 'startDue') {
    const namespace = c.dt.metadata.namespace ?? 'default';
    again = { ...c, existing: await findRecommendation(client, namespace, c.recommendation) };
  } else {
    again = { ...c, fresh: await fetchTuning(client, prev.key) };
  }
  return { ...prev, inFlight: inFlightOf(inFlight, prev.key), again };
}

function observeObject(o: Pick<ControllerOptions, 'tunings' | 'targets'>, key: string): ObservedTuning {
  const cached = o.tunings.get(key);
  if (!cached) return { state: 'gone' };
  if (cached.metadata.deletionTimestamp) return { state: 'deleting' };
  // A copy: the act step must not change the informer's object.
  const dt = structuredClone(cached);
  const spec = readSpec(dt);
  if (!('spec' in spec)) return { state: 'invalid', dt, problem: spec };
  return { state: 'valid', dt, spec: spec.spec, target: readTarget(o.targets, dt, spec.spec) };
}

function inFlightOf(inFlight: InFlight, key: string): InFlightView {
  return {
    running: inFlight.running.has(key),
    finished: inFlight.finished.get(key),
    checking: inFlight.checking.has(key),
    checked: inFlight.checked.get(key),
  };
}
