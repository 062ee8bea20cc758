import type { GraphShape } from '../api/dynamo.ts';
import type { ComponentRole } from '../operator/target/dynamo.ts';
import type { LiveRole } from '../sim/live.ts';

/**
 * The status Dynamo's operator writes on a DynamoGraphDeployment, computed from the twin's simulated fleet,
 * so that whatever waits on a real deployment (`Ready`, replica counts per component) can wait on the twin.
 * Shapes from Dynamo's controller (`deploy/operator/internal/controller/dynamographdeployment_controller.go`)
 * and API types: `state` successful | pending | failed; a `Ready` condition with reason
 * `all_resources_are_ready` ("All resources are ready") or `some_resources_are_not_ready` ("Resources not
 * ready: <resource>: <why>; ..."), `rolling_update_in_progress` while a template change rolls, and
 * `ValidationFailed` for a spec that cannot be served; replica status per component (v1beta1
 * `status.components`, v1alpha1 `status.services`) as the non-Grove pathway reports a Deployment's.
 */

export interface RoleCounts {
  /** Workers serving. */
  ready: number;
  /** Workers starting (cold start). */
  starting: number;
  /** Workers draining (removed or replaced, finishing their requests). */
  draining: number;
  /** Workers (ready or starting) on the current revision of the role's template. */
  updated: number;
}

export interface StatusInput {
  name: string;
  shape: GraphShape;
  generation: number;
  /** Component name -> role, and its declared replicas. */
  components: { name: string; role: ComponentRole; replicas: number }[];
  /** Per worker role, what the simulated fleet has. */
  fleet: Partial<Record<LiveRole, RoleCounts>>;
  rolling: boolean;
  /** The spec cannot be served (message for the condition). */
  invalid?: string;
  now: Date;
  /** The Ready condition currently on the object (its transition time is kept while its status holds). */
  previousReady?: { status: string; lastTransitionTime?: string };
}

export interface ComponentStatus {
  componentKind: 'Deployment';
  componentNames?: string[];
  componentName?: string;
  replicas: number;
  updatedReplicas: number;
  readyReplicas: number;
  availableReplicas: number;
}

export interface DgdStatus {
  observedGeneration: number;
  state: 'successful' | 'pending' | 'failed';
  conditions: {
    type: 'Ready';
    status: 'True' | 'False';
    reason: string;
    message: string;
    lastTransitionTime: string;
    observedGeneration: number;
  }[];
  components?: Record<string, ComponentStatus>;
  services?: Record<string, ComponentStatus>;
}

/** The Deployment Dynamo's operator would create for a component. */
export function resourceName(dgd: string, component: string): string {
  return `${dgd}-${component.toLowerCase()}`;
}

export function dgdStatus(i: StatusInput): DgdStatus {
  const perComponent: Record<string, ComponentStatus> = {};
  const notReady: string[] = [];
  // A role's workers are shared out over its components in declaration order, up to each one's replicas.
  const left = new Map<LiveRole, RoleCounts>();
  for (const [role, c] of Object.entries(i.fleet) as [LiveRole, RoleCounts][]) left.set(role, { ...c });
  for (const c of i.components) {
    const resource = resourceName(i.name, c.name);
    let s: ComponentStatus;
    if (c.role === 'aggregated' || c.role === 'prefill' || c.role === 'decode') {
      const pool = left.get(c.role) ?? { ready: 0, starting: 0, draining: 0, updated: 0 };
      const take = (k: keyof RoleCounts) => {
        const n = Math.min(pool[k], c.replicas);
        pool[k] -= n;
        return n;
      };
      const ready = take('ready');
      const starting = Math.min(pool.starting, Math.max(0, c.replicas - ready));
      pool.starting -= starting;
      const updated = take('updated');
      const draining = pool.draining;
      pool.draining = 0;
      s = {
        componentKind: 'Deployment',
        replicas: ready + starting + draining,
        updatedReplicas: updated,
        readyReplicas: ready,
        availableReplicas: ready,
      };
      if (ready < c.replicas || updated < c.replicas || draining > 0) {
        notReady.push(
          `${resource}: ${ready}/${c.replicas} replicas ready${draining > 0 ? `, ${draining} terminating` : ''}`,
        );
      }
    } else {
      // Frontend, planner and other components are simulated as ready at once.
      s = {
        componentKind: 'Deployment',
        replicas: c.replicas,
        updatedReplicas: c.replicas,
        readyReplicas: c.replicas,
        availableReplicas: c.replicas,
      };
    }
    perComponent[c.name] =
      i.shape === 'components' ? { ...s, componentNames: [resource] } : { ...s, componentName: resource };
  }
  let state: DgdStatus['state'];
  let reason: string;
  let message: string;
  if (i.invalid) {
    state = 'failed';
    reason = 'ValidationFailed';
    message = `Validation failed: ${i.invalid}`;
  } else if (i.rolling) {
    state = 'pending';
    reason = 'rolling_update_in_progress';
    message = 'Rolling update in progress';
  } else if (notReady.length > 0) {
    state = 'pending';
    reason = 'some_resources_are_not_ready';
    message = `Resources not ready: ${notReady.join('; ')}`;
  } else {
    state = 'successful';
    reason = 'all_resources_are_ready';
    message = 'All resources are ready';
  }
  const status = state === 'successful' ? 'True' : 'False';
  const lastTransitionTime =
    i.previousReady?.status === status && i.previousReady.lastTransitionTime
      ? i.previousReady.lastTransitionTime
      : i.now.toISOString().replace(/\.\d{3}Z$/, 'Z');
  return {
    observedGeneration: i.generation,
    state,
    conditions: [
      { type: 'Ready', status, reason, message, lastTransitionTime, observedGeneration: i.generation },
    ],
    ...(i.shape === 'components' ? { components: perComponent } : { services: perComponent }),
  };
}
