import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { KubeClient } from '../../src/operator/kube/client.ts';
import { DEPLOYMENT_TUNINGS, DYNAMO_GRAPH_DEPLOYMENTS, pathOf } from '../../src/operator/kube/resources.ts';
import type { Operator } from '../../src/operator/manager.ts';
import {
  applyDgdV1beta1,
  applyScalingAdapter,
  asUser,
  DGD_V1BETA1,
  DGDSA,
  getRecommendation,
  grantEditors,
  installReviewPolicy,
  markReadyLoop,
  review,
  waitForState,
} from './rollout-support.ts';
import {
  createDgd,
  createGpuNode,
  createNamespace,
  createTuning,
  deleteNodes,
  getTuning,
  installCrds,
  kube,
  makeDue,
  putConfigMap,
  startOperator,
  traceSample,
  tuningSpec,
  updateTuningStatus,
  waitFor,
} from './support.ts';

/** The other paths of a rollout: Automatic mode, scaling adapters, v1alpha1 targets, supersede, failover. */

let client: KubeClient;
let ns: string;
const NODES = ['paths-gpu'];
const alice = asUser('alice');
const stops: (() => void)[] = [];
let ops: Operator[] = [];

beforeAll(async () => {
  client = kube();
  await installCrds(client);
  await installReviewPolicy(client);
  await grantEditors(client, ['alice']);
  ns = await createNamespace(client, 'paths');
  await createGpuNode(client, NODES[0], 'NVIDIA-H100-SXM5-80GB', 8);
  await putConfigMap(client, ns, 'traffic', { 'trace.jsonl': traceSample(150) });
});

afterEach(async () => {
  for (const op of ops) await op.stop();
  ops = [];
  for (const s of stops.splice(0)) s();
});

afterAll(async () => {
  await deleteNodes(client, NODES);
  await client.close();
});

async function operator(opts: Partial<Parameters<typeof startOperator>[0]> = {}) {
  const op = startOperator({ ...opts, namespace: ns });
  ops.push(op);
  await op.start();
  return op;
}

const spec = (target: string, updatePolicy: object = {}, apiVersion = 'nvidia.com/v1beta1') =>
  tuningSpec(target, 'traffic', {
    model: 'Qwen/Qwen3-8B',
    targetRef: { apiVersion, name: target },
    searchSpace: { tensorParallel: { aggregated: [1] }, routers: ['RoundRobin'] },
    updatePolicy: {
      mode: 'Approval',
      forceConflicts: true,
      verification: { readyTimeout: '60s', window: '2s', windows: 1 },
      ...updatePolicy,
    },
  });

const recommended = (name: string) =>
  waitFor(
    `a recommendation for ${name}`,
    async () => (await getTuning(client, ns, name)).status?.currentRecommendation,
  );

describe('Automatic mode', () => {
  it('holds while the live calibration error is unknown, and applies once it is within bounds', async () => {
    await operator();
    stops.push(markReadyLoop(client, ns, 'auto'));
    await applyDgdV1beta1(client, ns, 'auto', { workers: 4 });
    await createTuning(client, ns, 'auto', spec('auto', { mode: 'Automatic' }));
    const rec = await recommended('auto');
    const held = await waitFor('a guardrail hold', async () => {
      const r = await getRecommendation(client, ns, rec);
      return r.status?.message?.includes('Automatic mode holds') ? r : undefined;
    });
    expect(held.status!.state).toBe('Proposed');
    expect(held.status!.message).toMatch(/calibration error .* not known|uncertainty/);
    // Telemetry reports a small calibration error: the guardrails pass (if the gain clears its uncertainty).
    await updateTuningStatus(client, ns, 'auto', (d) => {
      (d.status as Record<string, unknown>).calibration = {
        time: new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
        errorPercent: 4,
      };
    });
    const r = await getRecommendation(client, ns, rec);
    const low = r.spec.predicted.gainPercentLow ?? Number.NEGATIVE_INFINITY;
    if (low >= 10 || !r.spec.predicted.baseline.meetsSlos) {
      const applied = await waitForState(client, ns, rec, ['Applied', 'Verifying']);
      expect(applied.status!.rollout!.transitions!.find((t) => t.state === 'Approved')).toMatchObject({
        actor: 'servetune',
        reason: 'AutomaticApproval',
      });
    } else {
      const still = await waitFor('a hold on the uncertain gain', async () => {
        const x = await getRecommendation(client, ns, rec);
        return /uncertainty/.test(x.status?.message ?? '') ? x : undefined;
      });
      expect(still.status!.state).toBe('Proposed');
    }
  });

  it('holds outside its maintenance windows even when everything else passes', async () => {
    await operator();
    await applyDgdV1beta1(client, ns, 'auto-window', { workers: 4 });
    const closedHour = (new Date().getUTCHours() + 12) % 24;
    await createTuning(
      client,
      ns,
      'auto-window',
      spec('auto-window', {
        mode: 'Automatic',
        automatic: { maintenanceWindows: [{ start: `0 ${closedHour} * * *`, duration: '1h' }] },
      }),
    );
    const rec = await recommended('auto-window');
    await updateTuningStatus(client, ns, 'auto-window', (d) => {
      (d.status as Record<string, unknown>).calibration = {
        time: new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
        errorPercent: 1,
      };
    });

    const r = await waitFor('a hold on the window (or the uncertain gain)', async () => {
      const x = await getRecommendation(client, ns, rec);
      return /outside the maintenance windows|uncertainty/.test(x.status?.message ?? '') ? x : undefined;
    });
    expect(r.status!.message).toMatch(/outside the maintenance windows|uncertainty/);
    expect(r.status!.state).toBe('Proposed');
  });
});

describe('targets', () => {
  it('changes replicas owned by a scaling adapter through its scale subresource', async () => {
    await operator();
    stops.push(markReadyLoop(client, ns, 'adapted'));
    await applyDgdV1beta1(client, ns, 'adapted', { workers: 4, adapter: true });
    await applyScalingAdapter(client, ns, 'adapted', 'worker', 4);
    await createTuning(client, ns, 'adapted', spec('adapted'));
    const rec = await recommended('adapted');
    const gen = (await client.get<{ metadata: { generation: number } }>(pathOf(DGD_V1BETA1, ns, 'adapted')))
      .metadata.generation;
    await review(alice, ns, rec, { decision: 'Approved', by: 'alice' });
    const applied = await waitForState(client, ns, rec, ['Applied', 'Verifying']);
    const want = applied.spec.proposal.aggregated!.workers;
    const adapter = await client.get<{ spec: { replicas: number } }>(pathOf(DGDSA, ns, 'adapted-worker'));
    expect(adapter.spec.replicas).toBe(want);
    // The graph's own replicas are the adapter's to set: servetune did not write them.
    const g = await client.get<{
      metadata: { generation: number };
      spec: { components: { name: string; replicas: number }[] };
    }>(pathOf(DGD_V1BETA1, ns, 'adapted'));
    expect(g.spec.components.find((c) => c.name === 'worker')!.replicas).toBe(4);
    expect(g.metadata.generation).toBe(gen);
    expect(applied.status!.rollout!.baseline!.components.find((c) => c.name === 'worker')).toMatchObject({
      replicas: 4,
      scalingAdapter: 'adapted-worker',
    });
  });

  it('writes a v1alpha1 graph in its own shape (spec.services)', async () => {
    await operator();
    stops.push(markReadyLoop(client, ns, 'alpha', 'v1alpha1'));
    await createDgd(client, ns, 'alpha', 4);
    await createTuning(client, ns, 'alpha', spec('alpha', {}, 'nvidia.com/v1alpha1'));
    const rec = await recommended('alpha');
    await review(alice, ns, rec, { decision: 'Approved', by: 'alice' });
    const applied = await waitForState(client, ns, rec, ['Applied', 'Verifying']);
    const g = await client.get<{
      spec: { services: Record<string, { replicas: number }>; components?: unknown };
    }>(pathOf(DYNAMO_GRAPH_DEPLOYMENTS, ns, 'alpha'));
    expect(g.spec.services.VllmDecodeWorker.replicas).toBe(applied.spec.proposal.aggregated!.workers);
    expect(g.spec.components).toBeUndefined();
  });
});

describe('supersede and failover', () => {
  it('supersedes an approved recommendation not yet applying when a newer one is proposed', async () => {
    await operator({ rolloutHook: undefined });
    await applyDgdV1beta1(client, ns, 'newer', { workers: 4 });
    // Mode Off: approval is recorded but nothing is applied, so the approved one waits.
    await createTuning(client, ns, 'newer', spec('newer', { mode: 'Off' }));
    const first = await recommended('newer');
    await review(alice, ns, first, { decision: 'Approved', by: 'alice' });
    await waitForState(client, ns, first, ['Approved']);
    await putConfigMap(client, ns, 'traffic-2', { 'trace.jsonl': traceSample(140) });
    await client.mergePatch(pathOf(DEPLOYMENT_TUNINGS, ns, 'newer'), {
      spec: { workload: { source: { configMap: { name: 'traffic-2', key: 'trace.jsonl' } } } },
    });
    await makeDue(client, ns, 'newer');
    const second = await waitFor('a newer recommendation', async () => {
      const c = (await getTuning(client, ns, 'newer')).status?.currentRecommendation;
      return c && c !== first ? c : undefined;
    });
    const old = await waitForState(client, ns, first, ['Superseded']);
    expect(old.status!.supersededBy).toBe(second);
    // A superseded recommendation nobody reviewed cannot be approved any more.
    await putConfigMap(client, ns, 'traffic-3', { 'trace.jsonl': traceSample(130) });
    await client.mergePatch(pathOf(DEPLOYMENT_TUNINGS, ns, 'newer'), {
      spec: { workload: { source: { configMap: { name: 'traffic-3', key: 'trace.jsonl' } } } },
    });
    await makeDue(client, ns, 'newer');
    await waitForState(client, ns, second, ['Superseded']);
    const late = await review(alice, ns, second, { decision: 'Approved', by: 'alice' }).catch(
      (e: Error) => e,
    );
    expect((late as Error).message).toMatch(
      /only a Proposed recommendation can be reviewed; this one is Superseded/,
    );
  });

  it('continues a rollout on the new leader when the old one dies mid-verification', async () => {
    const le = {
      enabled: true,
      namespace: ns,
      name: 'paths-failover',
      leaseDurationMs: 3000,
      renewDeadlineMs: 2000,
      retryPeriodMs: 300,
    };
    const a = await operator({ identity: 'paths-a', leaderElection: le });
    stops.push(markReadyLoop(client, ns, 'failover'));
    await applyDgdV1beta1(client, ns, 'failover', { workers: 4 });
    await createTuning(
      client,
      ns,
      'failover',
      spec('failover', { verification: { readyTimeout: '60s', window: '2s', windows: 1 } }),
    );
    const rec = await recommended('failover');
    await review(alice, ns, rec, { decision: 'Approved', by: 'alice' });
    await waitForState(client, ns, rec, ['Verifying']);
    const b = await operator({ identity: 'paths-b', leaderElection: le });
    await a.stop({ releaseLease: false });
    await waitFor('the other replica to lead', () => b.isLeader(), 20_000);
    // The new leader keeps verifying (windows are Inconclusive without Prometheus, and recorded).
    const before = (await getRecommendation(client, ns, rec)).status!.rollout!.windows?.length ?? 0;
    await waitFor('another verification window', async () => {
      const r = await getRecommendation(client, ns, rec);
      return (r.status!.rollout!.windows?.length ?? 0) > before && r.status!.state === 'Verifying';
    });
  });
});
