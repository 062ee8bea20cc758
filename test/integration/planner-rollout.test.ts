import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { KubeClient } from '../../src/operator/kube/client.ts';
import { pathOf, TUNING_RECOMMENDATIONS } from '../../src/operator/kube/resources.ts';
import type { Operator } from '../../src/operator/manager.ts';
import type { Twin } from '../../src/twin/twin.ts';
import { startDgdTwin, stopTestTwins } from '../support/twin.ts';
import {
  asUser,
  DGD_V1BETA1,
  dgdComponent,
  dgdV1beta1,
  getRecommendation,
  grantEditors,
  installReviewPolicy,
  plannerArgs as plannerArgsOf,
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
  putConfigMap,
  startOperator,
  traceSample,
  tuningSpec,
  waitFor,
} from './support.ts';

/**
 * A deployment whose replicas Dynamo's Planner moves: the operator prices it under its Planner and proposes
 * the Planner's bounds instead of replica counts; approval writes them into the Planner's `--config` by
 * server-side apply (its other keys untouched, the replicas left to it); the twin's Planner follows the new
 * bounds; a rollback restores the previous `--config` exactly.
 */

const NODES = ['planner-rollout-gpu'];
// Three workers held as a floor: for light traffic, per GPU, lower bounds do better.
const PLANNER_CONFIG = JSON.stringify({
  mode: 'agg',
  optimization_target: 'throughput',
  load_adjustment_interval: 2,
  min_endpoint: 3,
  max_gpu_budget: 4,
  environment: 'kubernetes',
});

let client: KubeClient;
let ns: string;
let op: Operator;
let twin: Twin;

const component = (name: string) => dgdComponent(client, ns, 'planned', name);
const plannerArgs = () => plannerArgsOf(client, ns, 'planned');
const liveWorkers = () =>
  twin.sim.workers().filter((w) => w.state === 'ready' || w.state === 'starting').length;

beforeAll(async () => {
  client = kube();
  await installCrds(client);
  await installReviewPolicy(client);
  await grantEditors(client, ['alice', 'carol']);
  ns = await createNamespace(client, 'planner-rollout');
  await createGpuNode(client, NODES[0], 'NVIDIA-H100-SXM5-80GB', 8);
  // The sample at a fifth of its rate: light traffic, for which a floor of three workers is waste.
  const light = traceSample(150)
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => {
      const r = JSON.parse(l) as { timestamp: number };
      return JSON.stringify({ ...r, timestamp: r.timestamp * 5 });
    })
    .join('\n');
  await putConfigMap(client, ns, 'traffic', { 'trace.jsonl': light });
  const twinTrace = join(mkdtempSync(join(tmpdir(), 'planner-rollout-')), 'light.jsonl');
  writeFileSync(twinTrace, light);
  const dgd = dgdV1beta1(ns, 'planned', { workers: 3 });
  dgd.spec.components.push({
    name: 'Planner',
    type: 'planner',
    replicas: 1,
    podTemplate: {
      spec: {
        containers: [{ name: 'main', args: ['python3 -m dynamo.planner', '--config', PLANNER_CONFIG] }],
      },
    },
  } as (typeof dgd.spec.components)[number]);
  await client.apply(pathOf(DGD_V1BETA1, ns, 'planned'), dgd, 'gitops', true);
  ({ twin } = await startDgdTwin({
    client,
    namespace: ns,
    target: 'planned',
    trace: { path: twinTrace, loop: true },
    timeScale: 20,
    config: { startupTimeS: 5 },
    prometheus: false,
  }));
  op = startOperator({ namespace: ns });
  await op.start();
});

afterAll(async () => {
  await op?.stop();
  await stopTestTwins();
  await deleteNodes(client, NODES);
  await client.close();
});

describe('a DGD whose replicas the Planner owns', () => {
  it("proposes the Planner's bounds, applies them into its --config, the Planner follows, a rollback restores it", async () => {
    await createTuning(
      client,
      ns,
      'planned',
      tuningSpec('planned', 'traffic', {
        model: 'Qwen/Qwen3-8B',
        targetRef: { apiVersion: 'nvidia.com/v1beta1', name: 'planned' },
        searchSpace: { tensorParallel: { aggregated: [1] }, routers: ['RoundRobin'] },
        slos: [{ metric: 'TTFT', percentile: 90, maxMs: 30_000 }],
        updatePolicy: {
          mode: 'Approval',
          forceConflicts: true,
          verification: { readyTimeout: '60s', window: '2s', windows: 1 },
        },
      }),
    );
    const name = (
      await waitFor(
        'a recommendation',
        async () => {
          const d = await getTuning(client, ns, 'planned');
          if (!d.status?.currentRecommendation)
            throw new Error(JSON.stringify(d.status?.conditions ?? []).slice(0, 3000));
          return d;
        },
        120_000,
      )
    ).status!.currentRecommendation!;
    const rec = await getRecommendation(client, ns, name);
    // Priced under the Planner: the baseline with its bounds and configuration, the proposal with new bounds.
    expect(rec.spec.baseline.planner).toMatchObject({ enabled: true, minEndpoint: 3, maxGpuBudget: 4 });
    expect(JSON.parse(rec.spec.baseline.planner.config!)).toEqual(
      expect.objectContaining({ optimization_target: 'throughput', load_adjustment_interval_seconds: 2 }),
    );
    const bounds = rec.spec.proposal.planner;
    expect(bounds.enabled).toBe(true);
    expect([bounds.minEndpoint, bounds.maxGpuBudget]).not.toEqual([3, 4]);
    expect(bounds.maxGpuBudget).toBeLessThanOrEqual(4);
    expect(rec.spec.explanation).toMatch(/planner\(min=\d+ gpu_budget=\d+/);
    const replicasBefore = (await component('worker')).replicas;

    const before = await plannerArgs();
    const alice = asUser('alice');
    await review(alice, ns, name, { decision: 'Approved', by: 'alice' });
    const applied = await waitForState(client, ns, name, ['Verifying', 'Applied']);
    // The rollout's baseline holds the Planner's previous arguments, and no worker replicas (the Planner's).
    const recorded = applied.status!.rollout!.baseline!.components;
    expect(recorded.find((c) => c.name === 'Planner')?.args).toEqual(before);
    expect(recorded.find((c) => c.name === 'worker')?.replicas).toBeUndefined();
    // Only the owned keys changed inside --config.
    const after = await plannerArgs();
    expect(after.slice(0, 2)).toEqual(before.slice(0, 2));
    expect(JSON.parse(after[2])).toEqual({
      ...JSON.parse(PLANNER_CONFIG),
      min_endpoint: bounds.minEndpoint,
      max_gpu_budget: bounds.maxGpuBudget,
    });

    // The twin's Planner runs the new bounds: its decisions, in the DGD and in the fleet, stay within them.
    const ceiling = Math.min(4, bounds.maxGpuBudget!);
    const settled = await waitFor(
      'the Planner within its new bounds',
      async () => {
        const r = (await component('worker')).replicas ?? 1;
        // Below the old floor of three when the new one allows it: the Planner runs the new bounds.
        const followed = bounds.minEndpoint! < 3 ? r < 3 : r <= ceiling;
        return followed && r <= ceiling && r >= bounds.minEndpoint! && liveWorkers() === r ? r : undefined;
      },
      60_000,
    );
    for (let i = 0; i < 10; i++) {
      await new Promise((r) => setTimeout(r, 300));
      const r = (await component('worker')).replicas ?? 1;
      expect(r).toBeLessThanOrEqual(ceiling);
      expect(r).toBeGreaterThanOrEqual(bounds.minEndpoint!);
    }
    console.log(`Planner bounds ${JSON.stringify(bounds)}: workers ${replicasBefore} -> ${settled}`);

    // A rollback restores the previous --config exactly, and the Planner runs within the old bounds again.
    const carol = asUser('carol');
    await carol.mergePatch(pathOf(TUNING_RECOMMENDATIONS, ns, name), {
      spec: { rollbackRequest: { by: 'carol', reason: 'back to three' } },
    });
    await waitForState(client, ns, name, ['RolledBack']);
    expect(await plannerArgs()).toEqual(before);
    await waitFor(
      'the Planner back at its floor',
      async () => ((await component('worker')).replicas ?? 1) >= 3,
      60_000,
    );
    await alice.close();
    await carol.close();
  }, 240_000);
});
