import type { Logger } from 'pino';
import { ApiError, isNotFound, type KubeClient, MERGE_PATCH } from '../operator/kube/client.ts';
import { Informer } from '../operator/kube/informer.ts';
import {
  DYNAMO_GRAPH_DEPLOYMENTS,
  DYNAMO_GRAPH_DEPLOYMENTS_V1BETA1,
  DYNAMO_SCALING_ADAPTERS,
  type KubeObject,
  pathOf,
  type ResourceType,
} from '../operator/kube/resources.ts';
import type { LiveRole } from '../sim/live.ts';
import { type DgdStatus, dgdStatus, type RoleCounts, resourceName } from './dgd-status.ts';
import { readGraph, type TwinGraph } from './graph.ts';

/**
 * The twin's cluster side: it watches one DynamoGraphDeployment and does for it what Dynamo's operator and
 * its scaling-adapter controller would, so that a cluster without Dynamo behaves like one with it for
 * everything servetune reads and writes:
 * - the simulated fleet follows the DGD (the `FleetDriver` turns a graph into fleet changes);
 * - the DGD's status (`Ready`, per-component replicas) is written from the simulated fleet;
 * - a component with `scalingAdapter` gets its DynamoGraphDeploymentScalingAdapter (`<dgd>-<component>`,
 *   owned by the DGD), whose `spec.replicas` (moved by a person, an HPA or the Planner through the scale
 *   subresource) is copied into the DGD, and whose status mirrors the component;
 * - the simulated Planner's replica decisions are written back as Dynamo's Planner does: through the
 *   component's scaling adapter when it has one, otherwise into the DGD.
 *
 * Versions: the DGD is read and written through `nvidia.com/v1beta1` when the cluster serves it, else
 * `v1alpha1`; either shape of spec is understood (graph.ts), and status is written in the spec's shape.
 */

export interface FleetDriver {
  /** Makes the fleet follow the graph; returns a reason when it cannot be served (status: failed). */
  apply(graph: TwinGraph): { error?: string };
  /** What the fleet has, per worker role. */
  counts(): Partial<Record<LiveRole, RoleCounts>>;
  /** A rolling restart is in progress. */
  rolling(): boolean;
}

export interface ClusterOptions {
  client: KubeClient;
  namespace: string;
  name: string;
  driver: FleetDriver;
  logger?: Logger;
  /** How often the status is recomputed (ms; default 1000). Writes happen only when it changed. */
  statusIntervalMs?: number;
  /** Field manager of the twin's writes. */
  fieldManager?: string;
  /** GPU types a graph without a GPU nodeSelector may run on (the first is assumed; `--gpu`). */
  knownGpuTypes?: string[];
}

type Dgd = KubeObject & { spec?: Record<string, unknown>; status?: Partial<DgdStatus> };
type Dgdsa = KubeObject & {
  spec: { replicas: number; dgdRef: { name: string; componentName?: string; serviceName?: string } };
  status?: { replicas?: number; selector?: string };
};

/** Picks the served DGD version (v1beta1 first). */
async function servedDgdResource(client: KubeClient, namespace: string): Promise<ResourceType> {
  try {
    await client.get(pathOf(DYNAMO_GRAPH_DEPLOYMENTS_V1BETA1, namespace), { limit: 1 });
    return DYNAMO_GRAPH_DEPLOYMENTS_V1BETA1;
  } catch (e) {
    if (isNotFound(e)) return DYNAMO_GRAPH_DEPLOYMENTS;
    throw e;
  }
}

export class ClusterFollower {
  private readonly o: Required<Omit<ClusterOptions, 'logger'>> & ClusterOptions;
  private dgdResource: ResourceType = DYNAMO_GRAPH_DEPLOYMENTS_V1BETA1;
  private dgds: Informer<Dgd> | undefined;
  private adapters: Informer<Dgdsa> | undefined;
  private timer: NodeJS.Timeout | undefined;
  private graph: TwinGraph | undefined;
  private invalid: string | undefined;
  private lastApplied = '';
  private lastStatus = '';
  private busy = false;
  private again = false;
  /** Writes done, for tests and logs. */
  readonly writes = { status: 0, replicas: 0, adapters: 0 };

  constructor(opts: ClusterOptions) {
    // Defaults survive options given as undefined.
    this.o = {
      ...opts,
      statusIntervalMs: opts.statusIntervalMs ?? 1000,
      fieldManager: opts.fieldManager ?? 'servetune-twin',
      knownGpuTypes: opts.knownGpuTypes ?? [],
    };
  }

  get current(): TwinGraph | undefined {
    return this.graph;
  }

  async start(): Promise<void> {
    const { client, namespace, logger } = this.o;
    this.dgdResource = await servedDgdResource(client, namespace);
    this.dgds = new Informer<Dgd>(client, this.dgdResource, { namespace, logger });
    this.adapters = new Informer<Dgdsa>(client, DYNAMO_SCALING_ADAPTERS, { namespace, logger });
    this.dgds.on((_t, obj) => {
      if (obj.metadata.name === this.o.name) this.kick();
    });
    this.adapters.on((_t, obj) => {
      if (obj.spec?.dgdRef?.name === this.o.name) this.kick();
    });
    this.dgds.start();
    this.adapters.start();
    await Promise.all([this.dgds.waitForSync(), this.adapters.waitForSync()]);
    await this.reconcile();
    this.timer = setInterval(() => this.kick(), this.o.statusIntervalMs);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    await Promise.all([this.dgds?.stop(), this.adapters?.stop()]);
  }

  /** Runs a reconcile now, or once more after the one in progress. */
  kick(): void {
    if (this.busy) {
      this.again = true;
      return;
    }
    this.reconcile().catch((e) =>
      this.o.logger?.warn({ err: (e as Error).message }, 'twin reconcile failed'),
    );
  }

  private dgd(): Dgd | undefined {
    return this.dgds?.get(`${this.o.namespace}/${this.o.name}`);
  }

  private async reconcile(): Promise<void> {
    this.busy = true;
    try {
      do {
        this.again = false;
        await this.reconcileOnce();
      } while (this.again);
    } finally {
      this.busy = false;
    }
  }

  private async reconcileOnce(): Promise<void> {
    const obj = this.dgd();
    if (!obj) return;
    // Scaling adapters first: their replicas are the truth for the components they own.
    if (await this.syncAdapters(obj)) return; // the DGD changed; its watch event brings the next round
    // Status writes change the resourceVersion, not the generation: only spec changes re-apply the graph.
    const key = `${obj.metadata.uid}/${obj.metadata.generation}`;
    if (key !== this.lastApplied) {
      this.lastApplied = key;
      const g = readGraph(obj, this.o.knownGpuTypes);
      if ('error' in g) {
        this.invalid = g.error;
        this.o.logger?.warn({ dgd: this.o.name, err: g.error }, 'the DGD cannot be simulated');
      } else {
        const r = this.o.driver.apply(g);
        this.invalid = r.error;
        if (!r.error) this.graph = g;
        if (r.error)
          this.o.logger?.warn({ dgd: this.o.name, err: r.error }, 'the fleet cannot follow the DGD');
      }
    }
    await this.writeStatus(obj);
  }

  /** Creates missing adapters, copies adapter replicas into the DGD; true when the DGD was patched. */
  private async syncAdapters(obj: Dgd): Promise<boolean> {
    const g = readGraph(obj, this.o.knownGpuTypes);
    if ('error' in g) return false;
    const { client, namespace } = this.o;
    let patched = false;
    for (const c of g.components) {
      if (!c.scalingAdapter) continue;
      const name = resourceName(this.o.name, c.name);
      const existing = this.adapters?.get(`${namespace}/${name}`);
      const declared = c.replicas ?? 1;
      if (!existing) {
        try {
          await client.create(pathOf(DYNAMO_SCALING_ADAPTERS, namespace), {
            apiVersion: 'nvidia.com/v1beta1',
            kind: 'DynamoGraphDeploymentScalingAdapter',
            metadata: {
              name,
              namespace,
              labels: { 'nvidia.com/dynamo-graph-deployment-name': this.o.name },
              ownerReferences: [
                {
                  apiVersion: obj.apiVersion ?? 'nvidia.com/v1beta1',
                  kind: 'DynamoGraphDeployment',
                  name: this.o.name,
                  uid: obj.metadata.uid ?? '',
                  controller: true,
                  blockOwnerDeletion: true,
                },
              ],
            },
            spec: { replicas: declared, dgdRef: { name: this.o.name, componentName: c.name } },
          });
          this.writes.adapters++;
        } catch (e) {
          if (!(e instanceof ApiError && e.status === 409)) throw e;
        }
        continue;
      }
      if (existing.spec.replicas !== declared) {
        await this.setComponentReplicas(obj, g, c.name, existing.spec.replicas);
        patched = true;
      }
      const selector = `nvidia.com/dynamo-graph-deployment-name=${this.o.name},nvidia.com/dynamo-component=${c.name.toLowerCase()}`;
      if (existing.status?.replicas !== declared || existing.status?.selector !== selector) {
        await client.mergePatch(pathOf(DYNAMO_SCALING_ADAPTERS, namespace, name, 'status'), {
          status: {
            replicas: declared,
            selector,
            lastScaleTime: new Date().toISOString().replace(/\.\d{3}Z$/, 'Z'),
          },
        });
      }
    }
    return patched;
  }

  /** Sets one component's replicas in the DGD (a JSON patch guarded by the component's name / key). */
  async setComponentReplicas(obj: Dgd, g: TwinGraph, component: string, replicas: number): Promise<void> {
    const path = pathOf(this.dgdResource, this.o.namespace, this.o.name);
    const query = { fieldManager: this.o.fieldManager };
    if (g.shape === 'components') {
      const list = (obj.spec?.components ?? []) as { name: string; replicas?: number }[];
      const i = list.findIndex((c) => c.name === component);
      if (i < 0) return;
      await this.o.client.request('PATCH', path, {
        contentType: 'application/json-patch+json',
        query,
        body: [
          { op: 'test', path: `/spec/components/${i}/name`, value: component },
          { op: 'add', path: `/spec/components/${i}/replicas`, value: replicas },
        ],
      });
    } else {
      await this.o.client.request('PATCH', path, {
        contentType: MERGE_PATCH,
        query,
        body: { spec: { services: { [component]: { replicas } } } },
      });
    }
    this.writes.replicas++;
  }

  /**
   * The simulated Planner decided `replicas` for a role: written as Dynamo's Planner writes it, through the
   * scaling adapter of the role's (first) component when it has one, else into the DGD.
   */
  async plannerDecision(role: LiveRole, replicas: number): Promise<void> {
    const obj = this.dgd();
    const g = this.graph;
    if (!obj || !g) return;
    const pool = g.pools[role];
    if (!pool) return;
    const component = pool.components[0];
    if (pool.scaled.includes(component)) {
      const name = resourceName(this.o.name, component);
      await this.o.client.mergePatch(pathOf(DYNAMO_SCALING_ADAPTERS, this.o.namespace, name, 'scale'), {
        spec: { replicas },
      });
      this.writes.replicas++;
      return;
    }
    await this.setComponentReplicas(obj, g, component, replicas);
  }

  private async writeStatus(obj: Dgd): Promise<void> {
    const g = this.graph;
    const components = g
      ? g.components.map((c) => ({
          name: c.name,
          role: g.roles.get(c.name) ?? 'other',
          replicas: c.replicas ?? 1,
        }))
      : [];
    const shape = g?.shape ?? (obj.spec && 'components' in obj.spec ? 'components' : 'services');
    const previous = obj.status?.conditions?.find((c) => c.type === 'Ready');
    const status = dgdStatus({
      name: this.o.name,
      shape,
      generation: obj.metadata.generation ?? 0,
      components,
      fleet: this.o.driver.counts(),
      rolling: this.o.driver.rolling(),
      invalid: this.invalid,
      now: new Date(),
      previousReady: previous,
    });
    const text = JSON.stringify(status);
    if (text === this.lastStatus) return;
    // A merge patch merges maps: components no longer in the graph are removed explicitly.
    const patch: Record<string, unknown> = { ...status };
    for (const k of ['components', 'services'] as const) {
      const old = (obj.status as Record<string, Record<string, unknown> | undefined> | undefined)?.[k];
      const now = (status as unknown as Record<string, Record<string, unknown> | undefined>)[k];
      if (!old) continue;
      const merged: Record<string, unknown> = { ...(now ?? {}) };
      for (const name of Object.keys(old)) if (!now || !(name in now)) merged[name] = null;
      patch[k] = merged;
    }
    try {
      await this.o.client.mergePatch(pathOf(this.dgdResource, this.o.namespace, this.o.name, 'status'), {
        status: patch,
      });
      this.lastStatus = text;
      this.writes.status++;
    } catch (e) {
      if (isNotFound(e)) return;
      throw e;
    }
  }
}
