import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { KubeClient } from '../../src/operator/kube/client.ts';
import { DEPLOYMENT_TUNINGS, pathOf } from '../../src/operator/kube/resources.ts';
import { runSweepJob } from '../../src/operator/sweep/job.ts';
import {
  condition,
  createDgd,
  createGpuNode,
  createNamespace,
  createTuning,
  deleteNodes,
  getTuning,
  installCrds,
  kube,
  listEvents,
  listRecommendations,
  putConfigMap,
  startOperator,
  traceSample,
  tuningSpec,
  updateTuningStatus,
  waitFor,
} from './support.ts';

/** Restarting the operator neither duplicates nor loses a recommendation. */

let client: KubeClient;
let ns: string;
const NODES = ['restart-gpu'];

beforeAll(async () => {
  client = kube();
  await installCrds(client);
  ns = await createNamespace(client, 'restart');
  await createGpuNode(client, NODES[0], 'NVIDIA-H100-SXM5-80GB', 8);
  await createDgd(client, ns, 'llama', 4);
  await putConfigMap(client, ns, 'traffic', { 'trace.jsonl': traceSample(120) });
});

afterAll(async () => {
  await deleteNodes(client, NODES);
  await client.close();
});

describe('an operator restart', () => {
  it('re-runs a sweep cut short by a crash, and creates one recommendation', async () => {
    let started!: () => void;
    const sweepStarted = new Promise<void>((r) => {
      started = r;
    });
    // The first operator's sweep never finishes on its own: it is cut short by the "crash".
    const a = startOperator({
      namespace: ns,
      runJob: (_input, signal) =>
        new Promise((_resolve, reject) => {
          started();
          signal.addEventListener('abort', () => reject(new Error('aborted')));
        }),
    });
    await a.start();
    await createTuning(client, ns, 'mid-sweep', tuningSpec('llama', 'traffic'));
    await sweepStarted;
    const during = await getTuning(client, ns, 'mid-sweep');
    expect(condition(during, 'Sweeping')).toMatchObject({ status: 'True', reason: 'SweepStarted' });
    const slot = during.status!.nextSweepTime!;
    // The sweep runs off the reconcile path: other objects are reconciled meanwhile, and a second due sweep
    // waits for the global limit (one) instead of running alongside.
    await createTuning(client, ns, 'no-target', tuningSpec('missing', 'traffic'));
    await createTuning(client, ns, 'queued', tuningSpec('llama', 'traffic'));
    await waitFor('the others to be reconciled during the sweep', async () => {
      const other = await getTuning(client, ns, 'no-target');
      const queued = await getTuning(client, ns, 'queued');
      return (
        condition(other, 'Degraded')?.reason === 'TargetNotFound' &&
        condition(queued, 'Sweeping')?.reason === 'SweepQueued'
      );
    });
    expect(condition(await getTuning(client, ns, 'mid-sweep'), 'Sweeping')?.status).toBe('True');
    await a.stop({ releaseLease: false });

    const b = startOperator({ namespace: ns, runJob: runSweepJob });
    await b.start();
    try {
      const dt = await waitFor(
        'the recommendation',
        async () => {
          const d = await getTuning(client, ns, 'mid-sweep');
          return d.status?.currentRecommendation ? d : undefined;
        },
        60_000,
      );
      const recs = (await listRecommendations(client, ns)).filter(
        (r) => r.spec.deploymentTuning === 'mid-sweep',
      );
      expect(recs).toHaveLength(1);
      expect(recs[0].spec.sweep.scheduledTime).toBe(slot);
      expect(condition(dt, 'Sweeping')).toMatchObject({ status: 'False', reason: 'SweepCompleted' });
      const reasons = (await listEvents(client, ns))
        .filter((e) => e.regarding.name === 'mid-sweep')
        .map((e) => e.reason);
      expect(reasons).toContain('SweepRestarted');
    } finally {
      await b.stop();
      for (const name of ['no-target', 'queued']) await client.delete(pathOf(DEPLOYMENT_TUNINGS, ns, name));
    }
  });

  it('finds the recommendation it created before a crash instead of creating another', async () => {
    const c = startOperator({ namespace: ns });
    await c.start();
    await createTuning(client, ns, 'after-create', tuningSpec('llama', 'traffic'));
    await waitFor('the first recommendation', async () => {
      const d = await getTuning(client, ns, 'after-create');
      return d.status?.currentRecommendation ? d : undefined;
    });
    await c.stop({ releaseLease: false });
    const rec = (await listRecommendations(client, ns)).find(
      (r) => r.spec.deploymentTuning === 'after-create',
    )!;

    // Put status back to where a crash between creating the recommendation and writing status leaves it.
    await updateTuningStatus(client, ns, 'after-create', (crashed) => {
      const st = crashed.status as Record<string, unknown>;
      st.nextSweepTime = rec.spec.sweep.scheduledTime;
      st.sweepStartedTime = rec.spec.sweep.startedTime;
      delete st.currentRecommendation;
      delete st.lastSweepTime;
      delete st.lastProposalTime;
      delete st.history;
      crashed.status!.conditions = crashed.status!.conditions!.filter(
        (x) => x.type !== 'RecommendationAvailable',
      );
      const sweeping = crashed.status!.conditions!.find((x) => x.type === 'Sweeping')!;
      Object.assign(sweeping, { status: 'True', reason: 'SweepStarted', message: 'Sweep started.' });
    });

    let jobs = 0;
    const d = startOperator({
      namespace: ns,
      runJob: (input, signal) => {
        jobs++;
        return runSweepJob(input, signal);
      },
    });
    await d.start();
    try {
      const dt = await waitFor('status to be finished', async () => {
        const x = await getTuning(client, ns, 'after-create');
        return x.status?.currentRecommendation ? x : undefined;
      });
      expect(dt.status!.currentRecommendation).toBe(rec.metadata.name);
      expect(condition(dt, 'Sweeping')).toMatchObject({ status: 'False' });
      expect(condition(dt, 'RecommendationAvailable')).toMatchObject({ status: 'True' });
      expect(Date.parse(dt.status!.nextSweepTime!)).toBeGreaterThan(Date.now());
      const recs = (await listRecommendations(client, ns)).filter(
        (r) => r.spec.deploymentTuning === 'after-create',
      );
      expect(recs.map((r) => r.metadata.name)).toEqual([rec.metadata.name]);
      expect(jobs).toBe(0);
    } finally {
      await d.stop();
    }
  });
});
