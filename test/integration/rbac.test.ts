import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { type ApiError, isAlreadyExists, KubeClient } from '../../src/operator/kube/client.ts';
import { NODES, pathOf } from '../../src/operator/kube/resources.ts';
import {
  createDgd,
  createGpuNode,
  createTuning,
  deleteNodes,
  getTuning,
  installCrds,
  kube,
  putConfigMap,
  ROOT,
  startOperator,
  traceSample,
  tuningSpec,
  waitFor,
} from './support.ts';

/** The operator runs end to end with only the permissions config/rbac/ grants its service account. */

const SA = 'system:serviceaccount:servetune-system:servetune-operator';
const PATHS: Record<string, (o: { metadata: { name: string; namespace?: string } }) => string> = {
  ClusterRole: (o) => `/apis/rbac.authorization.k8s.io/v1/clusterroles/${o.metadata.name}`,
  ClusterRoleBinding: (o) => `/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/${o.metadata.name}`,
  Role: (o) =>
    `/apis/rbac.authorization.k8s.io/v1/namespaces/${o.metadata.namespace}/roles/${o.metadata.name}`,
  RoleBinding: (o) =>
    `/apis/rbac.authorization.k8s.io/v1/namespaces/${o.metadata.namespace}/rolebindings/${o.metadata.name}`,
  ServiceAccount: (o) => `/api/v1/namespaces/${o.metadata.namespace}/serviceaccounts/${o.metadata.name}`,
};

let admin: KubeClient;
let ns: string;
const GPU_NODES = ['rbac-gpu'];

beforeAll(async () => {
  admin = kube();
  await installCrds(admin);
  ns = `rbac-${Math.random().toString(36).slice(2, 7)}`;
  for (const name of ['servetune-system', ns]) {
    try {
      await admin.create('/api/v1/namespaces', { apiVersion: 'v1', kind: 'Namespace', metadata: { name } });
    } catch (e) {
      if (!isAlreadyExists(e)) throw e;
    }
  }
  for (const file of ['role.yaml', 'service-account.yaml', 'user-roles.yaml']) {
    for (const doc of parseAllDocuments(readFileSync(join(ROOT, 'config/rbac', file), 'utf8'))) {
      const o = doc.toJS() as { kind: string; metadata: { name: string; namespace?: string } };
      await admin.apply(PATHS[o.kind](o), o, 'servetune-tests');
    }
  }
  await createGpuNode(admin, GPU_NODES[0], 'NVIDIA-H100-SXM5-80GB', 8);
  await createDgd(admin, ns, 'llama', 4);
  await putConfigMap(admin, ns, 'traffic', { 'trace.jsonl': traceSample(100) });
});

afterAll(async () => {
  await deleteNodes(admin, GPU_NODES);
  await admin.close();
});

describe('config/rbac', () => {
  it('is enough for a full sweep and recommendation, with the lease in servetune-system', async () => {
    const client = KubeClient.load(inject('kubeconfig'), {
      impersonate: {
        user: SA,
        groups: ['system:serviceaccounts', 'system:serviceaccounts:servetune-system', 'system:authenticated'],
      },
    });
    const op = startOperator({
      client,
      namespace: ns,
      leaderElection: {
        enabled: true,
        namespace: 'servetune-system',
        leaseDurationMs: 3000,
        renewDeadlineMs: 2000,
        retryPeriodMs: 300,
      },
    });
    await op.start();
    try {
      await createTuning(admin, ns, 'llama', tuningSpec('llama', 'traffic'));
      const dt = await waitFor('a recommendation made as the service account', async () => {
        const d = await getTuning(admin, ns, 'llama');
        return d.status?.currentRecommendation ? d : undefined;
      });
      expect(dt.status!.gpuInventory!.types[0]).toMatchObject({ gpuType: 'h100_sxm' });
      // And nothing beyond: the service account cannot, e.g., delete nodes.
      let denied: unknown;
      try {
        await client.delete(pathOf(NODES, undefined, GPU_NODES[0]));
      } catch (e) {
        denied = e;
      }
      expect((denied as ApiError).status).toBe(403);
    } finally {
      await op.stop();
    }
  });

  it('denies what would matter if the operator were compromised or confused', async () => {
    const allowed = async (a: {
      verb: string;
      group: string;
      resource: string;
      subresource?: string;
      namespace?: string;
    }) =>
      (
        await admin.create<{ status: { allowed: boolean } }>(
          '/apis/authorization.k8s.io/v1/subjectaccessreviews',
          {
            apiVersion: 'authorization.k8s.io/v1',
            kind: 'SubjectAccessReview',
            spec: {
              user: SA,
              groups: [
                'system:serviceaccounts',
                'system:serviceaccounts:servetune-system',
                'system:authenticated',
              ],
              resourceAttributes: a,
            },
          },
        )
      ).status.allowed;
    type Attrs = { verb: string; group: string; resource: string; subresource?: string; namespace?: string };
    const mustNot: Attrs[] = [
      // Secrets, tokens and code execution.
      ...['get', 'list', 'watch'].map((verb) => ({ verb, group: '', resource: 'secrets' })),
      { verb: 'create', group: '', resource: 'serviceaccounts', subresource: 'token' },
      { verb: 'create', group: '', resource: 'pods', subresource: 'exec' },
      { verb: 'create', group: '', resource: 'pods' },
      { verb: 'delete', group: '', resource: 'pods' },
      { verb: 'get', group: '', resource: 'pods', subresource: 'log' },
      // Privilege escalation.
      ...['create', 'update', 'escalate', 'bind'].map((verb) => ({
        verb,
        group: 'rbac.authorization.k8s.io',
        resource: 'clusterroles',
      })),
      { verb: 'create', group: 'rbac.authorization.k8s.io', resource: 'rolebindings' },
      { verb: 'impersonate', group: '', resource: 'users' },
      // Other tenants' data and the cluster itself.
      { verb: 'list', group: '', resource: 'configmaps' },
      { verb: 'update', group: '', resource: 'configmaps' },
      { verb: 'patch', group: '', resource: 'nodes' },
      { verb: 'delete', group: '', resource: 'nodes' },
      { verb: 'update', group: '', resource: 'nodes', subresource: 'status' },
      { verb: 'delete', group: 'events.k8s.io', resource: 'events' },
      // Users' objects: read their spec, never change it; the target is read-only in recommend-only mode.
      ...['create', 'update', 'patch', 'delete'].map((verb) => ({
        verb,
        group: 'servetune.dev',
        resource: 'deploymenttunings',
      })),
      // The target changes only by server-side apply (patch); never replaced, created or deleted.
      ...['create', 'update', 'delete'].map((verb) => ({
        verb,
        group: 'nvidia.com',
        resource: 'dynamographdeployments',
      })),
      { verb: 'update', group: 'nvidia.com', resource: 'dynamographdeploymentscalingadapters' },
      { verb: 'delete', group: 'nvidia.com', resource: 'dynamographdeploymentscalingadapters' },
      { verb: 'update', group: 'admissionregistration.k8s.io', resource: 'validatingadmissionpolicies' },
      {
        verb: 'delete',
        group: 'admissionregistration.k8s.io',
        resource: 'validatingadmissionpolicybindings',
      },
      { verb: 'update', group: 'servetune.dev', resource: 'tuningrecommendations' },
      // Leases other than its own namespace's.
      { verb: 'update', group: 'coordination.k8s.io', resource: 'leases', namespace: 'kube-system' },
      // Reads it never makes (removed from the role: only what is used).
      { verb: 'get', group: '', resource: 'nodes' },
      { verb: 'patch', group: 'servetune.dev', resource: 'deploymenttunings', subresource: 'status' },
    ];
    const wrong: string[] = [];
    for (const a of mustNot) {
      const attrs = { namespace: ns, ...a };
      if (await allowed(attrs))
        wrong.push(`${a.verb} ${a.group || 'core'}/${a.resource}${a.subresource ? `/${a.subresource}` : ''}`);
    }
    expect(wrong).toEqual([]);
    // The calls it does make stay allowed (the list the role was trimmed to).
    for (const a of [
      { verb: 'list', group: '', resource: 'nodes' },
      { verb: 'list', group: '', resource: 'pods' },
      {
        verb: 'update',
        group: 'servetune.dev',
        resource: 'deploymenttunings',
        subresource: 'status',
        namespace: ns,
      },
      { verb: 'watch', group: 'nvidia.com', resource: 'dynamographdeployments', namespace: ns },
      { verb: 'get', group: '', resource: 'configmaps', namespace: ns },
    ])
      expect(await allowed(a), `${a.verb} ${a.resource}`).toBe(true);
  });
});
