import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { inject } from 'vitest';
import { parseAllDocuments } from 'yaml';
import type { TuningRecommendation } from '../../src/api/index.ts';
import { isNotFound, KubeClient } from '../../src/operator/kube/client.ts';
import { pathOf, type ResourceType, TUNING_RECOMMENDATIONS } from '../../src/operator/kube/resources.ts';
import { ROOT, waitFor } from './support.ts';

/** Helpers for rollout tests: the review policy, people as impersonated users, v1beta1 targets. */

export const DGD_V1BETA1: ResourceType = {
  group: 'nvidia.com',
  version: 'v1beta1',
  plural: 'dynamographdeployments',
  namespaced: true,
};
export const DGDSA: ResourceType = {
  group: 'nvidia.com',
  version: 'v1beta1',
  plural: 'dynamographdeploymentscalingadapters',
  namespaced: true,
};

/** Applies config/admission/review-policy.yaml (the policy and its binding). */
export async function installReviewPolicy(client: KubeClient): Promise<void> {
  const text = readFileSync(join(ROOT, 'config/admission/review-policy.yaml'), 'utf8');
  for (const doc of parseAllDocuments(text)) {
    const o = doc.toJS() as { kind: string; metadata: { name: string } };
    const plural =
      o.kind === 'ValidatingAdmissionPolicy'
        ? 'validatingadmissionpolicies'
        : 'validatingadmissionpolicybindings';
    await client.apply(
      `/apis/admissionregistration.k8s.io/v1/${plural}/${o.metadata.name}`,
      o,
      'servetune-tests',
    );
  }
  // Policies take effect asynchronously: wait until a forged review is refused.
}

/** Lets people act as namespace editors with the user roles of config/rbac/ (bound cluster-wide for tests). */
export async function grantEditors(client: KubeClient, users: string[]): Promise<void> {
  const text = readFileSync(join(ROOT, 'config/rbac/user-roles.yaml'), 'utf8');
  for (const doc of parseAllDocuments(text)) {
    const o = doc.toJS() as { metadata: { name: string } };
    await client.apply(
      `/apis/rbac.authorization.k8s.io/v1/clusterroles/${o.metadata.name}`,
      o,
      'servetune-tests',
    );
  }
  await client.apply(
    '/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/servetune-test-editors',
    {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'ClusterRoleBinding',
      metadata: { name: 'servetune-test-editors' },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'servetune-editor' },
      subjects: users.map((name) => ({ kind: 'User', apiGroup: 'rbac.authorization.k8s.io', name })),
    },
    'servetune-tests',
  );
}

/** A client acting as a person; what they may do comes from `grantEditors`. */
export function asUser(user: string): KubeClient {
  return KubeClient.load(inject('kubeconfig'), { impersonate: { user } });
}

export interface DgdOptions {
  workers: number;
  tp?: number;
  model?: string;
  router?: string;
  adapter?: boolean;
  /** Field manager of the creation (server-side apply); it then owns every field it set. */
  manager?: string;
}

export function dgdV1beta1(namespace: string, name: string, o: DgdOptions) {
  const tp = o.tp ?? 1;
  return {
    apiVersion: 'nvidia.com/v1beta1',
    kind: 'DynamoGraphDeployment',
    metadata: { name, namespace },
    spec: {
      backendFramework: 'vllm',
      components: [
        {
          name: 'frontend',
          type: 'frontend',
          replicas: 1,
          podTemplate: {
            spec: {
              containers: [
                {
                  name: 'main',
                  args: [`python3 -m dynamo.frontend --router-mode ${o.router ?? 'round-robin'}`],
                },
              ],
            },
          },
        },
        {
          name: 'worker',
          type: 'worker',
          replicas: o.workers,
          ...(o.adapter && { scalingAdapter: {} }),
          podTemplate: {
            spec: {
              nodeSelector: { 'nvidia.com/gpu.product': 'NVIDIA-H100-SXM5-80GB' },
              containers: [
                {
                  name: 'main',
                  image: 'nvcr.io/nvidia/ai-dynamo/vllm-runtime:0.6.1',
                  command: ['python3', '-m', 'dynamo.vllm'],
                  args: ['--model', o.model ?? 'Qwen/Qwen3-8B', '--tensor-parallel-size', String(tp)],
                  env: [{ name: 'HF_HOME', value: '/models' }],
                  resources: { limits: { 'nvidia.com/gpu': String(tp) } },
                },
              ],
            },
          },
        },
      ],
    },
  };
}

export async function applyDgdV1beta1(client: KubeClient, namespace: string, name: string, o: DgdOptions) {
  await client.apply(
    pathOf(DGD_V1BETA1, namespace, name),
    dgdV1beta1(namespace, name, o),
    o.manager ?? 'gitops',
    true,
  );
}

/**
 * A stand-in for Dynamo's operator, for tests of apply mechanics only: marks the graph Ready at its current
 * generation whenever it changes (the twin does this with simulated workers and cold starts; tests of
 * verification use the twin).
 */
export function markReadyLoop(
  client: KubeClient,
  namespace: string,
  name: string,
  version = 'v1beta1',
): () => void {
  let stopped = false;
  const path = pathOf({ ...DGD_V1BETA1, version }, namespace, name);
  void (async () => {
    while (!stopped) {
      try {
        const d = await client.get<{
          metadata: { generation: number };
          status?: { observedGeneration?: number };
        }>(path);
        if (d.status?.observedGeneration !== d.metadata.generation) {
          await client.mergePatch(`${path}/status`, {
            status: {
              observedGeneration: d.metadata.generation,
              state: 'successful',
              conditions: [
                {
                  type: 'Ready',
                  status: 'True',
                  reason: 'AllResourcesReady',
                  message: 'All resources are ready',
                  lastTransitionTime: new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
                  observedGeneration: d.metadata.generation,
                },
              ],
            },
          });
        }
      } catch (e) {
        if (!isNotFound(e)) {
          // keep trying
        }
      }
      await new Promise((r) => setTimeout(r, 200));
    }
  })();
  return () => {
    stopped = true;
  };
}

/** The parts of a v1beta1 graph the tests read back. */
type DgdRead = {
  metadata: { generation: number };
  spec: {
    components: {
      name: string;
      replicas?: number;
      podTemplate?: { spec: { containers: { args?: string[] }[] } };
    }[];
  };
};

export function getDgd(client: KubeClient, namespace: string, name: string): Promise<DgdRead> {
  return client.get<DgdRead>(pathOf(DGD_V1BETA1, namespace, name));
}

/** One component of a v1beta1 graph, as the API server holds it now. */
export async function dgdComponent(client: KubeClient, namespace: string, name: string, component: string) {
  return (await getDgd(client, namespace, name)).spec.components.find((c) => c.name === component)!;
}

/** The Planner component's main-container args. */
export async function plannerArgs(client: KubeClient, namespace: string, name: string): Promise<string[]> {
  return (await dgdComponent(client, namespace, name, 'Planner')).podTemplate!.spec.containers[0].args!;
}

/** A scaling adapter for one component of a graph, at `replicas`, written as Dynamo's operator would. */
export async function applyScalingAdapter(
  client: KubeClient,
  namespace: string,
  dgd: string,
  component: string,
  replicas: number,
): Promise<void> {
  await client.apply(
    pathOf(DGDSA, namespace, `${dgd}-${component}`),
    {
      apiVersion: 'nvidia.com/v1beta1',
      kind: 'DynamoGraphDeploymentScalingAdapter',
      metadata: { name: `${dgd}-${component}`, namespace },
      spec: { replicas, dgdRef: { name: dgd, componentName: component } },
    },
    'dynamo',
  );
}

export async function getRecommendation(client: KubeClient, namespace: string, name: string) {
  return client.get<TuningRecommendation>(pathOf(TUNING_RECOMMENDATIONS, namespace, name));
}

export function waitForState(
  client: KubeClient,
  namespace: string,
  name: string,
  states: string[],
  timeoutMs = 90_000,
) {
  return waitFor(
    `${name} in ${states.join(' or ')}`,
    async () => {
      const r = await getRecommendation(client, namespace, name);
      return states.includes(r.status?.state ?? '') ? r : undefined;
    },
    timeoutMs,
    200,
  );
}

export async function review(
  user: KubeClient,
  namespace: string,
  name: string,
  review: { decision: 'Approved' | 'Rejected'; by: string; reason?: string },
) {
  return user.mergePatch(pathOf(TUNING_RECOMMENDATIONS, namespace, name), { spec: { review } });
}
