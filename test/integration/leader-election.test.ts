import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { KubeClient } from '../../src/operator/kube/client.ts';
import { LEASES, pathOf } from '../../src/operator/kube/resources.ts';
import {
  apiserverPort,
  auditedWrites,
  condition,
  createDgd,
  createGpuNode,
  createNamespace,
  createTuning,
  deleteNodes,
  freezableProxy,
  getTuning,
  installCrds,
  kube,
  kubeconfigVia,
  type OperatorProcess,
  putConfigMap,
  spawnOperator,
  traceSample,
  tuningSpec,
  waitFor,
} from './support.ts';

/**
 * Leader election as users run it: `bin/servetune.js operator` replicas in child processes against the real
 * kube-apiserver, with the flags the Helm chart ships (no lease durations given) or short ones for speed.
 */

let client: KubeClient;
let ns: string;
const NODES = ['le-gpu'];
let procs: OperatorProcess[] = [];

interface Lease {
  metadata: { resourceVersion: string };
  spec: { holderIdentity?: string | null; leaseDurationSeconds?: number; leaseTransitions?: number };
}

beforeAll(async () => {
  client = kube();
  await installCrds(client);
  ns = await createNamespace(client, 'leader');
  await createGpuNode(client, NODES[0], 'NVIDIA-H100-SXM5-80GB', 8);
  await createDgd(client, ns, 'llama', 4);
  await putConfigMap(client, ns, 'traffic', { 'trace.jsonl': traceSample(2000) });
});

afterEach(async () => {
  for (const p of procs) {
    p.child.kill('SIGCONT');
    p.child.kill('SIGKILL');
    await p.exited;
  }
  procs = [];
});

afterAll(async () => {
  await deleteNodes(client, NODES);
  await client.close();
});

const lease = (name: string) => client.get<Lease>(pathOf(LEASES, ns, name));

/** Sum of the API server's own request counter for Lease GETs (every client; only ours run here). */
async function leaseGets(): Promise<number> {
  const text = await client.getText('/metrics');
  let sum = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith('apiserver_request_total{')) continue;
    if (!line.includes('resource="leases"') || !line.includes('verb="GET"')) continue;
    sum += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return sum;
}

const SHORT_LEASE = [
  '--leader-election-lease-duration',
  '4s',
  '--leader-election-renew-deadline',
  '3s',
  '--leader-election-retry-period',
  '500ms',
];

const argsFor = (id: string, extra: string[] = []) => [
  '--namespace',
  ns,
  '--http-port',
  '0',
  '--leader-election-namespace',
  ns,
  '--leader-election-id',
  id,
  ...extra,
];

function start(id: string, extra: string[] = []): OperatorProcess[] {
  const two = [spawnOperator(argsFor(id, extra)), spawnOperator(argsFor(id, extra))];
  procs.push(...two);
  return two;
}

/** A search space whose sweep takes seconds, so it is in flight when something happens to the leader. */
const SLOW_SWEEP = {
  searchSpace: {
    tensorParallel: { aggregated: [1, 2] },
    workers: { aggregated: { min: 1, max: 4 } },
    routers: ['RoundRobin', 'KV'],
    kvOverlapWeights: [0.5, 1, 2],
  },
};

async function leaderOf(two: OperatorProcess[], id: string) {
  const l = await waitFor(`a holder of ${id}`, async () => {
    const x = await lease(id);
    return x.spec.holderIdentity ? x : undefined;
  });
  const leader = two.find((p) => p.identity() === l.spec.holderIdentity);
  if (!leader) throw new Error(`holder ${l.spec.holderIdentity} is not one of ours`);
  return { leader, follower: two.find((p) => p !== leader)!, lease: l };
}

describe('leader election with the real command', () => {
  it('with default flags renews calmly, and a standby takes over once the leader is SIGKILLed', async () => {
    const id = 'defaults';
    const two = start(id);
    await Promise.all(two.map((p) => p.waitForLog('Starting')));
    const { leader, follower, lease: first } = await leaderOf(two, id);
    // The Lease carries its duration, so it expires when its holder dies.
    expect(first.spec.leaseDurationSeconds).toBe(15);

    // A calm rate: one renewal every retry period (2 s), the standby reading at about the same pace.
    const since = new Date().toISOString();
    const gets0 = await leaseGets();
    await new Promise((r) => setTimeout(r, 10_000));
    const renewals = auditedWrites(ns).filter(
      (e) =>
        e.objectRef?.resource === 'leases' && e.objectRef.name === id && e.requestReceivedTimestamp > since,
    );
    const gets = (await leaseGets()) - gets0;
    expect(renewals.length).toBeGreaterThanOrEqual(3);
    expect(renewals.length).toBeLessThanOrEqual(7);
    expect(gets).toBeLessThanOrEqual(20); // both replicas over 10 s; a spinning loop makes thousands
    expect(new Set(renewals.map((e) => e.userAgent))).toEqual(
      new Set([`servetune-operator (${leader.identity()})`]),
    );

    // SIGKILL: no release, no goodbye. The standby must take over within lease duration + a retry period.
    const killedAt = Date.now();
    leader.child.kill('SIGKILL');
    await waitFor(
      'the standby to hold the lease',
      async () => (await lease(id)).spec.holderIdentity === follower.identity(),
      30_000,
      100,
    );
    const takeover = (Date.now() - killedAt) / 1000;
    expect(takeover).toBeLessThanOrEqual(15 + 2 * 2.2 + 3); // lease + a jittered retry, and a loaded machine
    await follower.waitForLog('Became leader');

    // And it acts: a new DeploymentTuning gets its recommendation from the new leader.
    await createTuning(client, ns, 'after-kill', tuningSpec('llama', 'traffic'));
    await waitFor(
      'a recommendation',
      async () => (await getTuning(client, ns, 'after-kill')).status?.currentRecommendation,
    );
  });

  it('a frozen leader (SIGSTOP) is deposed and writes nothing once the other replica leads', async () => {
    const id = 'frozen';
    const two = start(id, SHORT_LEASE);
    const { leader, follower } = await leaderOf(two, id);
    await leader.waitForLog('Caches synced; starting workers');
    // A sweep big enough to be in flight when the leader freezes.
    await createTuning(client, ns, 'frozen', tuningSpec('llama', 'traffic', SLOW_SWEEP));
    await leader.waitForLog('Sweep started', 60_000);
    leader.child.kill('SIGSTOP');
    await waitFor(
      'the other replica to lead',
      async () => (await lease(id)).spec.holderIdentity === follower.identity(),
      30_000,
      100,
    );
    await waitFor(
      'the new leader to finish the sweep',
      async () => {
        const dt = await getTuning(client, ns, 'frozen');
        return dt.status?.currentRecommendation && condition(dt, 'Sweeping')?.status === 'False';
      },
      120_000,
    );
    // Wake the old leader: its sweep completes, its timers fire. It must notice it lost the lease and write
    // nothing (no status, recommendation, Event or Lease write), then exit.
    const wokeAt = new Date().toISOString();
    leader.child.kill('SIGCONT');
    expect(await leader.exited).toBe(1);
    await new Promise((r) => setTimeout(r, 1_000));
    const writes = auditedWrites(ns);
    const late = writes.filter(
      (e) =>
        e.userAgent === `servetune-operator (${leader.identity()})` && e.requestReceivedTimestamp >= wokeAt,
    );
    expect(late).toEqual([]);
    // The new leader did write (the check above is not vacuous).
    expect(writes.some((e) => e.userAgent === `servetune-operator (${follower.identity()})`)).toBe(true);
    expect(leader.logs.some((l) => l.msg === 'Lost the lease')).toBe(true);
  });

  it('a leader cut off from the API server steps down within the renew deadline; nothing it held back lands later', async () => {
    const id = 'partition';
    const proxy = await freezableProxy(apiserverPort());
    try {
      // The leader talks to the API server through the proxy; the standby directly.
      const leader = spawnOperator(argsFor(id, SHORT_LEASE), {
        kubeconfig: kubeconfigVia(proxy.port, mkdtempSync(join(tmpdir(), 'servetune-le-'))),
      });
      procs.push(leader);
      await leader.waitForLog('Caches synced; starting workers');
      const standby = spawnOperator(argsFor(id, SHORT_LEASE));
      procs.push(standby);
      await standby.waitForLog('Starting');
      await createTuning(client, ns, 'partition', tuningSpec('llama', 'traffic', SLOW_SWEEP));
      // Cut the network once the sweep has its inputs: the sweep finishes while the leader is cut off.
      await leader.waitForLog('Traffic window ready; simulating', 90_000);
      proxy.freeze();
      const frozenAt = Date.now();
      await waitFor(
        'the standby to lead',
        async () => (await lease(id)).spec.holderIdentity === standby.identity(),
        30_000,
        100,
      );
      // A renew stalled in the partition must not keep the old leader believing it leads: it stops acting
      // within the renew deadline (3 s) of its last renew, so before the standby could take over.
      const lost = await leader.waitForLog('Lost the lease', 15_000);
      expect(Number(lost.time) - frozenAt).toBeLessThan(3_000 + 500 + 1_000);
      await waitFor(
        'the new leader to recommend',
        async () => (await getTuning(client, ns, 'partition')).status?.currentRecommendation,
        120_000,
      );
      // Heal the partition: whatever the old leader had in flight is delivered now. None of it may change
      // anything (a write sent while it led fails its resourceVersion precondition; none is sent after).
      const healedAt = new Date().toISOString();
      proxy.thaw();
      await new Promise((r) => setTimeout(r, 3_000));
      const landed = auditedWrites(ns).filter(
        (e) =>
          e.userAgent === `servetune-operator (${leader.identity()})` &&
          e.requestReceivedTimestamp >= healedAt &&
          (e.responseStatus?.code ?? 0) < 400,
      );
      expect(landed).toEqual([]);
      expect(await leader.exited).toBe(1);
    } finally {
      await proxy.close();
    }
  });
});
