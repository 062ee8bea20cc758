/** REST paths of the kinds the operator touches. */

export interface ResourceType {
  group: string; // '' for the core group
  version: string;
  plural: string;
  namespaced: boolean;
}

export const DEPLOYMENT_TUNINGS: ResourceType = {
  group: 'servetune.dev',
  version: 'v1alpha1',
  plural: 'deploymenttunings',
  namespaced: true,
};
export const TUNING_RECOMMENDATIONS: ResourceType = {
  group: 'servetune.dev',
  version: 'v1alpha1',
  plural: 'tuningrecommendations',
  namespaced: true,
};
export const DYNAMO_GRAPH_DEPLOYMENTS: ResourceType = {
  group: 'nvidia.com',
  version: 'v1alpha1',
  plural: 'dynamographdeployments',
  namespaced: true,
};
/** Dynamo's stored DGD version (`spec.components`); the v1alpha1 endpoint serves the same objects. */
export const DYNAMO_GRAPH_DEPLOYMENTS_V1BETA1: ResourceType = {
  ...DYNAMO_GRAPH_DEPLOYMENTS,
  version: 'v1beta1',
};
export const DYNAMO_SCALING_ADAPTERS: ResourceType = {
  group: 'nvidia.com',
  version: 'v1beta1',
  plural: 'dynamographdeploymentscalingadapters',
  namespaced: true,
};
export const SECRETS: ResourceType = { group: '', version: 'v1', plural: 'secrets', namespaced: true };
export const NODES: ResourceType = { group: '', version: 'v1', plural: 'nodes', namespaced: false };
export const PODS: ResourceType = { group: '', version: 'v1', plural: 'pods', namespaced: true };
export const CONFIG_MAPS: ResourceType = { group: '', version: 'v1', plural: 'configmaps', namespaced: true };
export const LEASES: ResourceType = {
  group: 'coordination.k8s.io',
  version: 'v1',
  plural: 'leases',
  namespaced: true,
};
export const EVENTS: ResourceType = {
  group: 'events.k8s.io',
  version: 'v1',
  plural: 'events',
  namespaced: true,
};
export const CRDS: ResourceType = {
  group: 'apiextensions.k8s.io',
  version: 'v1',
  plural: 'customresourcedefinitions',
  namespaced: false,
};

/** Path of a collection (namespace omitted = all namespaces) or, with a name, of one object. */
export function pathOf(
  r: ResourceType,
  namespace?: string,
  name?: string,
  subresource?: 'status' | 'scale',
): string {
  let p = r.group === '' ? `/api/${r.version}` : `/apis/${r.group}/${r.version}`;
  if (r.namespaced && namespace) p += `/namespaces/${encodeURIComponent(namespace)}`;
  p += `/${r.plural}`;
  if (name !== undefined) p += `/${encodeURIComponent(name)}`;
  if (subresource) p += `/${subresource}`;
  return p;
}

/** The fields every object has that the machinery relies on. */
export interface KubeObject {
  apiVersion?: string;
  kind?: string;
  metadata: {
    name: string;
    namespace?: string;
    uid?: string;
    resourceVersion?: string;
    generation?: number;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
    creationTimestamp?: string;
    deletionTimestamp?: string;
    ownerReferences?: { apiVersion: string; kind: string; name: string; uid: string; controller?: boolean }[];
  };
}

export interface KubeList<T> {
  metadata: { resourceVersion?: string; continue?: string };
  items: T[];
}

export function keyOf(o: { metadata: { name: string; namespace?: string } }): string {
  return o.metadata.namespace ? `${o.metadata.namespace}/${o.metadata.name}` : o.metadata.name;
}

export function splitKey(key: string): { namespace: string; name: string } {
  const i = key.indexOf('/');
  return i < 0 ? { namespace: '', name: key } : { namespace: key.slice(0, i), name: key.slice(i + 1) };
}
