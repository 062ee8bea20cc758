import type { Logger } from 'pino';
import {
  type DeploymentTuning,
  DeploymentTuningSpecSchema,
  parseDuration,
  type TuningRecommendation,
} from '../../api/index.ts';
import { ApiError, isConflict, isNotFound, type KubeClient } from '../kube/client.ts';
import { type EventRecorder, refOf } from '../kube/events.ts';
import type { Informer } from '../kube/informer.ts';
import {
  DEPLOYMENT_TUNINGS,
  type KubeList,
  type KubeObject,
  pathOf,
  type ResourceType,
  splitKey,
  TUNING_RECOMMENDATIONS,
} from '../kube/resources.ts';
import type { ReconcileResult } from '../kube/work-loop.ts';
import type { OperatorMetrics } from '../metrics.ts';
import { shortestInterval } from '../schedule.ts';
import { DEFAULT_URL_POLICY, type UrlPolicy } from '../sweep/url-policy.ts';
import { readDynamoBaseline } from '../target/dynamo.ts';
import {
  adapterScales,
  applyBody,
  parseConflict,
  planChange,
  readOwned,
  readTargetGraph,
  type TargetGraph,
} from '../target/dynamo-apply.ts';
import {
  ACTIVE_STATES,
  type ActionResult,
  decideRollout,
  dueWindow,
  type RolloutAction,
  type RolloutDecision,
  type RolloutObservation,
  TERMINAL_STATES,
} from './decide.ts';
import { measureWindow, type PrometheusTarget } from './prometheus.ts';

/**
 * The rollout controller, keyed by TuningRecommendation: observe (the recommendation, its tuning, the target
 * read fresh, scaling adapters, the review policy, a verification window's metrics) -> decide (decide.ts, pure)
 * -> act (at most one write to the target, then the recommendation's status from a fresh read, the tuning's
 * rollout summary, Events, metrics). Every write passes the leader fence of the client.
 */

export const FIELD_MANAGER = 'servetune';
export const REVIEW_POLICY = 'servetune-review-identity';

export interface RolloutControllerOptions {
  client: KubeClient;
  logger: Logger;
  recorder: EventRecorder;
  metrics: OperatorMetrics;
  tunings: Informer<DeploymentTuning>;
  recommendations: Informer<TuningRecommendation>;
  /** The Prometheus the administrator configured (trusted), if any. */
  prometheusUrl?: string;
  /** Policy for Prometheus URLs tenants write in their DeploymentTunings. */
  urlPolicy?: UrlPolicy;
  now?: () => Date;
  /** Test hook called at the crash-sensitive points of a reconcile (it may throw to cut it short there). */
  hook?: RolloutHook;
}

/** Before an action on the target, after it (before its outcome is written), after a status write. */
export type RolloutHook = (
  point: 'before-action' | 'after-action' | 'after-status',
  key: string,
  state: string,
) => Promise<void> | void;

const DGD = (version: string): ResourceType => ({
  group: 'nvidia.com',
  version,
  plural: 'dynamographdeployments',
  namespaced: true,
});
const DGDSA: ResourceType = {
  group: 'nvidia.com',
  version: 'v1beta1',
  plural: 'dynamographdeploymentscalingadapters',
  namespaced: true,
};
const VAP: ResourceType = {
  group: 'admissionregistration.k8s.io',
  version: 'v1',
  plural: 'validatingadmissionpolicies',
  namespaced: false,
};
const VAP_BINDING: ResourceType = { ...VAP, plural: 'validatingadmissionpolicybindings' };

interface Adapter {
  metadata: { name: string };
  spec?: { replicas?: number; dgdRef?: { name?: string; componentName?: string; serviceName?: string } };
}

export class RolloutController {
  private readonly o: RolloutControllerOptions;
  private readonly now: () => Date;
  private policyCheckedAt = 0;
  private policyPresent = false;
  enqueue: (key: string) => void = () => {};

  constructor(opts: RolloutControllerOptions) {
    this.o = opts;
    this.now = opts.now ?? (() => new Date());
  }

  /** Keys of recommendations worth a reconcile when a tuning or target changes. */
  keysFor(namespace: string, tuningOrTarget: string): string[] {
    return this.o.recommendations
      .list()
      .filter(
        (r) =>
          r.metadata.namespace === namespace &&
          (r.spec.deploymentTuning === tuningOrTarget || r.spec.targetRef.name === tuningOrTarget) &&
          !TERMINAL_STATES.includes(r.status?.state ?? 'Proposed'),
      )
      .map((r) => `${namespace}/${r.metadata.name}`);
  }

  async reconcile(key: string): Promise<ReconcileResult> {
    const obs = await this.observe(key);
    if (!obs) return {};
    let d = decideRollout(obs.observation);
    const state = obs.rec.status?.state ?? 'Proposed';
    if (d.action) {
      await this.o.hook?.('before-action', key, state);
      const result = await this.perform(d.action, obs);
      await this.o.hook?.('after-action', key, state);
      d = decideRollout({ ...obs.observation, actionResult: result });
    }
    await this.act(key, obs, d);
    if (d.status) await this.o.hook?.('after-status', key, d.status.state);
    return d.requeueAfterMs !== undefined ? { requeueAfterMs: d.requeueAfterMs } : {};
  }

  /** Whether the admission policy that makes reviews unforgeable is installed (checked once a minute). */
  private async reviewPolicy(): Promise<boolean> {
    const now = Date.now();
    if (now - this.policyCheckedAt < 60_000) return this.policyPresent;
    try {
      await this.o.client.get(pathOf(VAP, undefined, REVIEW_POLICY));
      await this.o.client.get(pathOf(VAP_BINDING, undefined, REVIEW_POLICY));
      this.policyPresent = true;
    } catch (e) {
      if (!(e instanceof ApiError) || (e.status !== 404 && e.status !== 403)) throw e;
      this.policyPresent = false;
    }
    this.policyCheckedAt = now;
    return this.policyPresent;
  }

  private async observe(key: string): Promise<
    | {
        observation: RolloutObservation;
        rec: TuningRecommendation;
        tuning: DeploymentTuning | undefined;
        target?: { obj: KubeObject; graph: TargetGraph; version: string };
      }
    | undefined
  > {
    const rec = this.o.recommendations.get(key);
    if (!rec || rec.metadata.deletionTimestamp) return undefined;
    const state = rec.status?.state ?? 'Proposed';
    if (TERMINAL_STATES.includes(state) && !rec.spec.rollbackRequest) return undefined;
    const { namespace } = splitKey(key);
    const now = this.now();
    const owner = rec.metadata.ownerReferences?.find((r) => r.kind === 'DeploymentTuning');
    const dt = this.o.tunings.get(`${namespace}/${rec.spec.deploymentTuning}`);
    const tuning = dt && (!owner || owner.uid === dt.metadata.uid) ? dt : undefined;
    const parsed = tuning ? DeploymentTuningSpecSchema.safeParse(tuning.spec) : undefined;
    const spec = parsed?.success ? parsed.data : undefined;

    // The target, read fresh whenever the decision may act on it.
    const needTarget = state !== 'Proposed' || spec?.updatePolicy.mode === 'Automatic';
    let target: RolloutObservation['target'] = { missing: 'not read' };
    let targetRef: { obj: KubeObject; graph: TargetGraph; version: string } | undefined;
    if (needTarget) {
      const read = await this.readTarget(namespace, rec);
      if ('missing' in read) target = read;
      else {
        targetRef = read.ref;
        target = read.observed;
      }
    }
    const otherActive = this.o.recommendations.list().find(
      (r) =>
        r.metadata.namespace === namespace &&
        r.metadata.name !== rec.metadata.name &&
        r.spec.targetRef.name === rec.spec.targetRef.name &&
        ACTIVE_STATES.includes(r.status?.state ?? 'Proposed') &&
        // Of two approved at once, the older goes first.
        !(
          r.status?.state === 'Approved' &&
          state === 'Approved' &&
          r.metadata.creationTimestamp! > rec.metadata.creationTimestamp!
        ),
    )?.metadata.name;
    const observation: RolloutObservation = {
      now,
      rec: {
        name: rec.metadata.name,
        creationTimestamp: rec.metadata.creationTimestamp ?? now.toISOString(),
        spec: rec.spec,
        status: rec.status,
      },
      tuning: spec
        ? {
            spec,
            lastChangeTime: tuning?.status?.lastChangeTime,
            lastRollbackTime: tuning?.status?.lastRollbackTime,
            calibrationErrorPercent: calibrationError(tuning?.status),
            horizonHours: horizonHours(spec.schedule, now),
          }
        : undefined,
      target,
      ...(otherActive && { otherActive }),
      reviewPolicy: rec.spec.review || rec.spec.rollbackRequest ? await this.reviewPolicy() : true,
    };
    if (spec) {
      const due = dueWindow(rec.status, parseDuration(spec.updatePolicy.verification.window), now);
      if (due)
        observation.sample = await measureWindow(
          this.prometheus(spec),
          this.selector(spec, rec),
          due,
          spec.slos,
        );
    }
    return { observation, rec, tuning, target: targetRef };
  }

  private prometheus(spec: NonNullable<ReturnType<typeof DeploymentTuningSpecSchema.safeParse>['data']>) {
    const url = spec.metrics?.prometheusURL;
    if (url) return { url, policy: this.o.urlPolicy ?? DEFAULT_URL_POLICY } satisfies PrometheusTarget;
    return this.o.prometheusUrl ? { url: this.o.prometheusUrl } : undefined;
  }

  private selector(
    spec: NonNullable<ReturnType<typeof DeploymentTuningSpecSchema.safeParse>['data']>,
    rec: TuningRecommendation,
  ): Record<string, string> {
    if (spec.metrics?.selector) return spec.metrics.selector;
    const model = spec.model ?? rec.spec.proposal.model ?? rec.spec.baseline.model;
    return model ? { model } : {};
  }

  private async readTarget(
    namespace: string,
    rec: TuningRecommendation,
  ): Promise<
    | { missing: string }
    | {
        ref: { obj: KubeObject; graph: TargetGraph; version: string };
        observed: Exclude<RolloutObservation['target'], { missing: string }>;
      }
  > {
    const name = rec.spec.targetRef.name;
    const version = rec.spec.targetRef.apiVersion.split('/')[1] ?? 'v1alpha1';
    let obj: KubeObject & {
      spec?: unknown;
      status?: {
        observedGeneration?: number;
        conditions?: { type: string; status: string; observedGeneration?: number; message?: string }[];
      };
    };
    try {
      obj = await this.o.client.get(pathOf(DGD(version), namespace, name));
    } catch (e) {
      if (isNotFound(e)) return { missing: `DynamoGraphDeployment ${namespace}/${name} not found` };
      throw e;
    }
    const graph = readTargetGraph(obj);
    if ('error' in graph) return { missing: `DynamoGraphDeployment ${namespace}/${name}: ${graph.error}` };
    const adapters = new Map<string, string>();
    const adapterReplicas = new Map<string, number>();
    if (graph.components.some((c) => c.scalingAdapter)) {
      const list = await this.o.client.get<KubeList<Adapter>>(pathOf(DGDSA, namespace));
      for (const a of list.items) {
        const ref = a.spec?.dgdRef;
        const component = ref?.componentName ?? ref?.serviceName;
        if (ref?.name !== name || !component) continue;
        if (!graph.components.find((c) => c.name === component)?.scalingAdapter) continue;
        adapters.set(component, a.metadata.name);
        if (a.spec?.replicas !== undefined) adapterReplicas.set(component, a.spec.replicas);
      }
    }
    const owned = readOwned(obj, graph, adapters);
    // Where an adapter owns replicas, its count is the truth.
    for (const c of owned.components)
      if (adapterReplicas.has(c.name) && !graph.planner) c.replicas = adapterReplicas.get(c.name);
    const read = readDynamoBaseline(obj, [rec.spec.baseline.gpuType]);
    if ('error' in read) return { missing: `DynamoGraphDeployment ${namespace}/${name}: ${read.error}` };
    const settings = read.settings;
    const ready = obj.status?.conditions?.find((c) => c.type === 'Ready');
    return {
      ref: { obj, graph, version: graph.apiVersion.split('/')[1] },
      observed: {
        owned,
        plan: planChange(owned, graph, settings, rec.spec.proposal),
        settings,
        generation: obj.metadata.generation ?? 0,
        ready: ready
          ? {
              status: ready.status as 'True' | 'False' | 'Unknown',
              observedGeneration: ready.observedGeneration ?? obj.status?.observedGeneration,
              message: ready.message,
            }
          : undefined,
        gpus: settings.gpus,
      },
    };
  }

  /** The one write to the target a decision asks for: server-side apply, then adapters' scale subresources. */
  private async perform(
    action: RolloutAction,
    obs: NonNullable<Awaited<ReturnType<RolloutController['observe']>>>,
  ): Promise<ActionResult> {
    const t = obs.target;
    if (!t) return { ok: false, permanent: true, message: 'the target could not be read' };
    const ns = t.obj.metadata.namespace ?? 'default';
    let generation: number | undefined;
    try {
      const body = applyBody(t.obj, t.graph.shape, action.owned);
      const res = await this.o.client.apply<KubeObject>(
        pathOf(DGD(t.version), ns, t.obj.metadata.name),
        body,
        FIELD_MANAGER,
        action.force,
      );
      generation = res.metadata.generation;
      for (const s of adapterScales(action.owned)) {
        await this.o.client.mergePatch(pathOf(DGDSA, ns, s.adapter, 'scale'), {
          spec: { replicas: s.replicas },
        });
      }
    } catch (e) {
      if (!(e instanceof ApiError)) throw e;
      const conflict = isConflict(e) ? parseConflict(e.body) : undefined;
      if (conflict) return { ok: false, conflict, permanent: true, message: e.message };
      const permanent = [400, 403, 404, 422].includes(e.status);
      return {
        ok: false,
        permanent,
        message: `${e.status} ${(e.body as { message?: string })?.message ?? e.message}`.slice(0, 512),
      };
    }
    this.o.logger.info(
      { recommendation: obs.rec.metadata.name, action: action.kind, generation },
      action.kind === 'apply' ? 'Applied to the target' : 'Rolled the target back',
    );
    return { ok: true, generation };
  }

  private async act(
    key: string,
    obs: NonNullable<Awaited<ReturnType<RolloutController['observe']>>>,
    d: RolloutDecision,
  ): Promise<void> {
    const { namespace, name } = splitKey(key);
    const rec = obs.rec;
    if (d.status) {
      // From a fresh read, and only if nobody moved the state meanwhile (the decision was made from it).
      const fresh = await this.o.client.get<TuningRecommendation>(
        pathOf(TUNING_RECOMMENDATIONS, namespace, name),
      );
      if ((fresh.status?.state ?? 'Proposed') !== (rec.status?.state ?? 'Proposed')) {
        this.enqueue(key);
        return;
      }
      fresh.status = d.status;
      await this.o.client.replace(pathOf(TUNING_RECOMMENDATIONS, namespace, name, 'status'), fresh);
    }
    if (d.tuning && obs.tuning) await this.updateTuning(namespace, obs.tuning.metadata.name, d.tuning);
    if (d.left) this.o.metrics.rolloutStateSeconds.observe({ state: d.left.state }, d.left.seconds);
    if (d.outcome) this.o.metrics.rollouts.inc({ outcome: d.outcome });
    for (const e of d.events) {
      await this.o.recorder.emit(
        refOf(rec as unknown as KubeObject),
        e.type,
        e.reason,
        'Rollout',
        e.message,
        obs.tuning ? refOf(obs.tuning as unknown as KubeObject) : undefined,
      );
    }
    if (d.status && d.requeueAfterMs === undefined && !TERMINAL_STATES.includes(d.status.state))
      this.enqueue(key);
  }

  private async updateTuning(namespace: string, name: string, c: NonNullable<RolloutDecision['tuning']>) {
    for (let attempt = 0; ; attempt++) {
      let dt: DeploymentTuning;
      try {
        dt = await this.o.client.get<DeploymentTuning>(pathOf(DEPLOYMENT_TUNINGS, namespace, name));
      } catch (e) {
        if (isNotFound(e)) return;
        throw e;
      }
      const st = { ...dt.status };
      st.rollout = c.rollout;
      if (c.lastChangeTime) st.lastChangeTime = c.lastChangeTime;
      if (c.lastRollbackTime) st.lastRollbackTime = c.lastRollbackTime;
      if (c.failedProposal)
        st.failedProposals = [
          c.failedProposal,
          ...(st.failedProposals ?? []).filter((x) => x !== c.failedProposal),
        ].slice(0, 16);
      dt.status = st;
      try {
        await this.o.client.replace(pathOf(DEPLOYMENT_TUNINGS, namespace, name, 'status'), dt);
        return;
      } catch (e) {
        if (!isConflict(e) || attempt >= 4) throw e;
      }
    }
  }
}

/** The largest calibration error in percent the telemetry wrote into the tuning's status, if any. */
export function calibrationError(status: unknown): number | undefined {
  const c = (status as { calibration?: unknown } | undefined)?.calibration as
    | { errorPercent?: number; metrics?: { errorPercent?: number }[] }
    | undefined;
  if (!c) return undefined;
  if (typeof c.errorPercent === 'number' && Number.isFinite(c.errorPercent)) return c.errorPercent;
  const all = (c.metrics ?? [])
    .map((m) => m.errorPercent)
    .filter((x): x is number => typeof x === 'number' && Number.isFinite(x));
  return all.length > 0 ? Math.max(...all.map(Math.abs)) : undefined;
}

/** How long a workload is expected to hold: the sweep interval of its schedule, in hours (at least one). */
export function horizonHours(schedule: string, now: Date): number {
  try {
    return Math.max(1, shortestInterval(schedule, now, 4) / 3_600_000);
  } catch {
    return 24;
  }
}
