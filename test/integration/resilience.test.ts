import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { KubeClient } from '../../src/operator/kube/client.ts';
import { LEASES, pathOf } from '../../src/operator/kube/resources.ts';
import type { Operator } from '../../src/operator/manager.ts';
import {
  condition,
  createDgd,
  createGpuNode,
  createNamespace,
  createTuning,
  deleteNodes,
  getTuning,
  installCrds,
  killAndRestartApiserver,
  kube,
  listEvents,
  listRecommendations,
  putConfigMap,
  startOperator,
  traceSample,
  tuningSpec,
  waitFor,
} from './support.ts';

/** The API server going away under a watch, and two replicas competing for the lease. */

let client: KubeClient;
let ns: string;
const NODES = ['resilience-gpu'];

beforeAll(async () => {
  client = kube();
  await installCrds(client);
  ns = await createNamespace(client, 'resilience');
  await createGpuNode(client, NODES[0], 'NVIDIA-H100-SXM5-80GB', 8);
  await createDgd(client, ns, 'llama', 4);
  await putConfigMap(client, ns, 'traffic', { 'trace.jsonl': traceSample(100) });
});

afterAll(async () => {
  await deleteNodes(client, NODES);
  await client.close();
});

const recommended = (name: string) =>
  waitFor(`a recommendation for ${name}`, async () => {
    const d = await getTuning(client, ns, name);
    return d.status?.currentRecommendation ? d : undefined;
  });

describe('kube-apiserver killed and restarted', () => {
  it('is survived by the watches: objects created afterwards are reconciled', async () => {
    // A lease long enough to outlive the restart (losing it would, correctly, stop the operator).
    const op = startOperator({
      namespace: ns,
      leaderElection: {
        enabled: true,
        namespace: ns,
        name: 'apiserver-restart',
        leaseDurationMs: 60_000,
        renewDeadlineMs: 45_000,
        retryPeriodMs: 500,
      },
    });
    await op.start();
    try {
      await createTuning(client, ns, 'before', tuningSpec('llama', 'traffic'));
      await recommended('before');
      await killAndRestartApiserver();
      await waitFor('the apiserver', () => client.get('/readyz').then(() => true), 60_000);
      await createTuning(client, ns, 'after', tuningSpec('llama', 'traffic'));
      const dt = await recommended('after');
      expect(condition(dt, 'Ready')).toMatchObject({ status: 'True' });
      expect(op.isLeader()).toBe(true);
      const metrics = await (await fetch(`http://127.0.0.1:${op.port}/metrics`)).text();
      expect(metrics).toMatch(/servetune_sweeps_total\{outcome="Proposed"\} 2/);
    } finally {
      await op.stop();
    }
  });
});

describe('two replicas', () => {
  let a: Operator;
  let b: Operator;
  let lost: string[] = [];

  afterAll(async () => {
    await a?.stop();
    await b?.stop();
  });

  it('elect one leader, and only the leader reconciles', async () => {
    lost = [];
    const le = {
      enabled: true,
      namespace: ns,
      name: 'two-replicas',
      leaseDurationMs: 3000,
      renewDeadlineMs: 2000,
      retryPeriodMs: 300,
    };
    a = startOperator({
      namespace: ns,
      identity: 'replica-a',
      leaderElection: le,
      onLostLease: () => lost.push('a'),
    });
    b = startOperator({
      namespace: ns,
      identity: 'replica-b',
      leaderElection: le,
      onLostLease: () => lost.push('b'),
    });
    await Promise.all([a.start(), b.start()]);
    const leader = await waitFor('a leader', () => (a.isLeader() ? a : b.isLeader() ? b : undefined));
    const follower = leader === a ? b : a;
    // Stays single for a few renewals.
    for (let i = 0; i < 10; i++) {
      expect(a.isLeader() && b.isLeader()).toBe(false);
      await new Promise((r) => setTimeout(r, 200));
    }
    expect(follower.isLeader()).toBe(false);
    expect(follower.isReady()).toBe(true);
    await createTuning(client, ns, 'elected', tuningSpec('llama', 'traffic'));
    await recommended('elected');
    const events = (await listEvents(client, ns)).filter((e) => e.regarding.name === 'elected');
    expect(new Set(events.map((e) => e.reportingInstance))).toEqual(new Set([leader.identity]));
    expect(
      (await listRecommendations(client, ns)).filter((r) => r.spec.deploymentTuning === 'elected'),
    ).toHaveLength(1);
    const lease = await client.get<{ spec: { holderIdentity: string } }>(pathOf(LEASES, ns, 'two-replicas'));
    expect(lease.spec.holderIdentity).toBe(leader.identity);

    // The leader steps down; the other replica takes over.
    await leader.stop();
    await waitFor('the follower to lead', () => follower.isLeader(), 15_000);
    if (leader === a) a = undefined as never;
    else b = undefined as never;
  });

  it('gives up (exits) when another holder takes the lease', async () => {
    const leader = a?.isLeader() ? a : b;
    const name = leader === a ? 'a' : 'b';
    const path = pathOf(LEASES, ns, 'two-replicas');
    const intruder = setInterval(() => {
      void client
        .get<{ metadata: object; spec: Record<string, unknown> }>(path)
        .then((l) => {
          l.spec.holderIdentity = 'intruder';
          l.spec.renewTime = new Date().toISOString().replace('Z', '000Z');
          return client.replace(path, l);
        })
        .catch(() => {});
    }, 200);
    try {
      await waitFor('the lease to be lost', () => lost.includes(name), 15_000);
      expect(leader.isLeader()).toBe(false);
    } finally {
      clearInterval(intruder);
    }
  });
});
