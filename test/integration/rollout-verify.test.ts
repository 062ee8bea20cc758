import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { TuningRecommendation } from '../../src/api/index.ts';
import type { KubeClient } from '../../src/operator/kube/client.ts';
import { pathOf } from '../../src/operator/kube/resources.ts';
import type { Operator } from '../../src/operator/manager.ts';
import { parseDegrade } from '../../src/twin/fleet.ts';
import type { Twin } from '../../src/twin/twin.ts';
import { PrometheusServer } from '../support/prometheus.ts';
import { startTestTwin, stopTestTwins, twinTarget } from '../support/twin.ts';
import {
  applyDgdV1beta1,
  asUser,
  DGD_V1BETA1,
  getRecommendation,
  grantEditors,
  installReviewPolicy,
  review,
  waitForState,
} from './rollout-support.ts';
import {
  createGpuNode,
  createNamespace,
  createTuning,
  deleteNodes,
  getTuning,
  installCrds,
  kube,
  listEvents,
  makeDue,
  putConfigMap,
  startOperator,
  traceSample,
  tuningSpec,
  waitFor,
} from './support.ts';

/**
 * Verification against live metrics, end to end: a twin follows the DynamoGraphDeployment (simulated workers,
 * cold starts, Dynamo's Ready condition and frontend metrics), a real Prometheus scrapes it, and the operator
 * judges the applied change with PromQL against its prediction. A twin that keeps the prediction is Verified;
 * one made slower for exactly the proposed settings (`--degrade`) is rolled back to the exact baseline; a
 * Prometheus outage is Inconclusive and never passes.
 */

let client: KubeClient;
let ns: string;
let prometheus: PrometheusServer;
let traceFile: string;
const NODES = ['verify-gpu'];
const alice = asUser('alice');
let ops: Operator[] = [];
const ROWS = 150;

beforeAll(async () => {
  client = kube();
  await installCrds(client);
  await installReviewPolicy(client);
  await grantEditors(client, ['alice']);
  ns = await createNamespace(client, 'verify');
  await createGpuNode(client, NODES[0], 'NVIDIA-H100-SXM5-80GB', 8);
  // The sample's arrivals four times further apart: a deployment with headroom, whose latencies the
  // prediction should match (a saturated one is dominated by its queue, which a looped replay does not share
  // with a single pass).
  const trace = traceSample(ROWS)
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => {
      const r = JSON.parse(l) as { timestamp: number };
      return JSON.stringify({ ...r, timestamp: r.timestamp * 4 });
    })
    .join('\n');
  await putConfigMap(client, ns, 'traffic', { 'trace.jsonl': trace });
  traceFile = join(mkdtempSync(join(tmpdir(), 'servetune-verify-')), 'trace.jsonl');
  writeFileSync(traceFile, trace);
  prometheus = await PrometheusServer.start({ scrapeInterval: '500ms' });
});

afterEach(async () => {
  for (const op of ops) await op.stop();
  ops = [];
  await stopTestTwins();
  prometheus?.setTargets([]);
});

afterAll(async () => {
  await prometheus?.stop();
  await deleteNodes(client, NODES);
  await client.close();
});

/** The workload's own trace replayed in a loop, ten simulated seconds per wall second. */
const TIME_SCALE = 10;

async function operator(prometheusUrl: string) {
  const op = startOperator({ namespace: ns, prometheusUrl });
  ops.push(op);
  await op.start();
  return op;
}

const spec = (target: string, workerRange = { min: 3, max: 3 }) =>
  tuningSpec(target, 'traffic', {
    model: 'Qwen/Qwen3-8B',
    targetRef: { apiVersion: 'nvidia.com/v1beta1', name: target },
    // Three workers (from four): a change with headroom under the SLOs, so that a window of a few dozen
    // requests judges the deployment rather than the noise of a p90 at the SLO's edge.
    searchSpace: {
      tensorParallel: { aggregated: [1] },
      routers: ['RoundRobin'],
      workers: { aggregated: workerRange },
    },
    // An SLO beyond the p90 TTFT/ITL (never binding here): verified from Dynamo's request-duration histogram.
    slos: [
      { metric: 'TTFT', percentile: 90, maxMs: 8000 },
      { metric: 'ITL', percentile: 90, maxMs: 100 },
      { metric: 'E2E', percentile: 99, maxMs: 600_000 },
    ],
    metrics: { selector: { dynamo_namespace: `${ns}-${target}` } },
    updatePolicy: {
      mode: 'Approval',
      forceConflicts: true,
      // Windows in wall time; the twin runs ten times faster, so each holds tens of requests. The histogram
      // quantile interpolates within Dynamo's buckets, hence a wide tolerance; the degraded twin is 8x slower.
      verification: {
        readyTimeout: '90s',
        window: '6s',
        windows: 2,
        minRequests: 10,
        tolerancePercent: 150,
        onInconclusive: 'Hold',
      },
    },
  });

/** A target with too many workers for its traffic, its tuning, and the proposal the first sweep makes. */
async function proposal(
  name: string,
  prometheusUrl = prometheus.url,
  workerRange?: { min: number; max: number },
): Promise<TuningRecommendation> {
  await operator(prometheusUrl);
  await applyDgdV1beta1(client, ns, name, { workers: 4 });
  await createTuning(client, ns, name, spec(name, workerRange));
  const recName = await waitFor(
    `a recommendation for ${name}`,
    async () => (await getTuning(client, ns, name)).status?.currentRecommendation,
    120_000,
  );
  return waitForState(client, ns, recName, ['Proposed']);
}

async function twinFor(name: string, degrade?: string): Promise<Twin> {
  const twin = await startTestTwin({
    config: { timing: { model: 'hardware' }, hardware: { model: 'Qwen/Qwen3-8B', gpu: 'h100_sxm' } },
    cluster: { client, namespace: ns, target: name },
    trace: { path: traceFile, loop: true },
    timeScale: TIME_SCALE,
    ...(degrade !== undefined && { faults: { degrade: parseDegrade(degrade) } }),
  });
  prometheus.setTargets([twinTarget(twin)]);
  await prometheus.waitForTargetsUp();
  return twin;
}

const workers = (r: TuningRecommendation, side: 'baseline' | 'proposal') =>
  (r.spec[side] as { aggregated?: { workers: number } }).aggregated?.workers;

interface Dgd {
  spec: { components: { name: string; replicas?: number }[] };
}
const replicas = async (name: string) =>
  (await client.get<Dgd>(pathOf(DGD_V1BETA1, ns, name))).spec.components.find((c) => c.name === 'worker')
    ?.replicas;

describe('verification against a twin scraped by Prometheus', () => {
  it('marks a change that keeps its prediction Verified, with the observed figures', async () => {
    const rec = await proposal('keeps');
    expect(workers(rec, 'proposal')).toBe(3);
    await twinFor('keeps');
    await review(alice, ns, rec.metadata.name, { decision: 'Approved', by: 'alice' });
    const done = await waitForState(
      client,
      ns,
      rec.metadata.name,
      ['Verified', 'RolledBack', 'Failed'],
      180_000,
    );
    const windows = done.status?.rollout?.windows ?? [];
    expect(done.status?.state, JSON.stringify(windows)).toBe('Verified');
    const ok = windows.filter((w) => w.outcome === 'Successful');
    expect(ok.length).toBeGreaterThanOrEqual(2);
    for (const w of ok) {
      expect(w.requests).toBeGreaterThanOrEqual(10);
      expect(w.ttftMs?.p90).toBeGreaterThan(0);
    }
    expect(await replicas('keeps')).toBe(workers(rec, 'proposal'));
  });

  it('rolls back a change the deployment does not keep, restoring the exact baseline', async () => {
    // Two or three workers: after the first fails, the other is the best of the rest.
    const rec = await proposal('degrades', prometheus.url, { min: 2, max: 3 });
    const proposed = workers(rec, 'proposal')!;
    // Only workers of the proposed shape are slow: the baseline stays healthy, the change really regresses.
    await twinFor('degrades', `8:workers=${proposed}`);
    await review(alice, ns, rec.metadata.name, { decision: 'Approved', by: 'alice' });
    const done = await waitForState(
      client,
      ns,
      rec.metadata.name,
      ['Verified', 'RolledBack', 'Failed'],
      180_000,
    );
    const windows = done.status?.rollout?.windows ?? [];
    expect(done.status?.state, JSON.stringify(windows)).toBe('RolledBack');
    const failed = windows.find((w) => w.outcome === 'Failed');
    expect(failed?.message).toMatch(/above the predicted|misses the/);
    expect(await replicas('degrades')).toBe(4);
    // Events are written after the status (and never block it).
    await waitFor('a RolledBack event', async () =>
      (await listEvents(client, ns)).some(
        (e) => e.regarding.name === rec.metadata.name && e.reason === 'RolledBack',
      ),
    );
    // The settings that failed are remembered: the next sweep proposes the best of the rest, and says why.
    const dt = await getTuning(client, ns, 'degrades');
    expect((dt.status as { failedProposals?: string[] }).failedProposals).toHaveLength(1);
    await makeDue(client, ns, 'degrades');
    const nextName = await waitFor('the next proposal', async () => {
      const c = (await getTuning(client, ns, 'degrades')).status?.currentRecommendation;
      return c && c !== rec.metadata.name ? c : undefined;
    });
    const next = await getRecommendation(client, ns, nextName);
    expect(workers(next, 'proposal')).toBe(proposed === 2 ? 3 : 2);
    expect(next.spec.explanation).toMatch(/failed verification on this target before.*best of the rest/);
  });

  it('counts a Prometheus outage as Inconclusive: the change is never Verified', async () => {
    const down = await PrometheusServer.start();
    await down.stop(); // nothing listens there any more
    const rec = await proposal('outage', down.url);
    await twinFor('outage');
    await review(alice, ns, rec.metadata.name, { decision: 'Approved', by: 'alice' });
    const measured = await waitFor(
      'two inconclusive windows',
      async () => {
        const r = await waitForState(client, ns, rec.metadata.name, ['Verifying', 'Verified', 'RolledBack']);
        return (r.status?.rollout?.windows ?? []).length >= 2 ? r : undefined;
      },
      120_000,
    );
    expect(measured.status?.state).toBe('Verifying');
    for (const w of measured.status?.rollout?.windows ?? []) {
      expect(w.outcome).toBe('Inconclusive');
      expect(w.message).toMatch(/Prometheus/);
    }
  });
});
