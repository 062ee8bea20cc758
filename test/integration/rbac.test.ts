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
});
