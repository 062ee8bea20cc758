import { createHash } from 'node:crypto';
import { type GraphComponent, type GraphShape, graphComponents } from '../api/dynamo.ts';
import type { ServingSettings } from '../api/index.ts';
import type { KubeObject } from '../operator/kube/resources.ts';
import { type ComponentRole, componentRoles, readDynamoSettings } from '../operator/target/dynamo.ts';
import type { LiveRole } from '../sim/live.ts';
import type { PlannerConfig } from '../sim/planner/config.ts';

/**
 * What the twin needs from a DynamoGraphDeployment: the serving settings the operator reads (the same
 * reading, so the twin simulates what the operator believes it deployed), and per worker role the components
 * that make it up, their replicas, whether a scaling adapter owns them, and a revision of their pod template
 * (anything but replicas), whose change restarts the role's workers, as Dynamo rolls pods on a template change.
 */

export interface TwinPool {
  role: LiveRole;
  /** Components serving this role (usually one). */
  components: string[];
  replicas: number;
  /** Digest of the role's pod templates (command line, env, GPUs, node selector, nodes). */
  revision: string;
  /** Components of the role whose replicas a DynamoGraphDeploymentScalingAdapter owns. */
  scaled: string[];
}

export interface TwinGraph {
  shape: GraphShape;
  generation: number;
  settings: ServingSettings;
  warnings: string[];
  pools: Partial<Record<LiveRole, TwinPool>>;
  components: GraphComponent[];
  /** Component name -> what it is. */
  roles: Map<string, ComponentRole>;
  planner?: { component: string; config: PlannerConfig | null; error?: string };
}

export type GraphResult = TwinGraph | { error: string };

function revisionOf(cs: GraphComponent[]): string {
  const h = createHash('sha256');
  for (const c of cs) {
    h.update(JSON.stringify([c.name, c.rawArgs, c.env, c.gpuLimit ?? null, c.nodeSelector, c.nodeCount]));
  }
  return h.digest('hex').slice(0, 12);
}

export function readGraph(obj: KubeObject & { spec?: unknown }, knownGpuTypes: string[] = []): GraphResult {
  const base = readDynamoSettings(obj, knownGpuTypes);
  if ('error' in base) return base;
  const graph = graphComponents(obj.spec ?? {});
  if ('error' in graph) return graph;
  const roles = componentRoles(graph.components);
  const pools: TwinGraph['pools'] = {};
  for (const role of ['aggregated', 'prefill', 'decode'] as const) {
    const cs = graph.components.filter((c) => roles.get(c.name) === role);
    if (cs.length === 0) continue;
    pools[role] = {
      role,
      components: cs.map((c) => c.name),
      replicas: cs.reduce((n, c) => n + (c.replicas ?? 1), 0),
      revision: revisionOf(cs),
      scaled: cs.filter((c) => c.scalingAdapter).map((c) => c.name),
    };
  }
  // The operator's reading of the Planner: the twin runs what the operator prices.
  const p = base.planner;
  const planner: TwinGraph['planner'] =
    p &&
    ('error' in p
      ? { component: p.component, config: null, error: p.error }
      : { component: p.component, config: p.config });
  return {
    shape: graph.shape,
    generation: obj.metadata.generation ?? 0,
    settings: base.settings,
    warnings: base.warnings,
    pools,
    components: graph.components,
    roles,
    ...(planner && { planner }),
  };
}
