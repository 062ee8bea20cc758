import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { KubeClient } from '../../src/operator/kube/client.ts';
import { pathOf, TUNING_RECOMMENDATIONS } from '../../src/operator/kube/resources.ts';
import type { Operator } from '../../src/operator/manager.ts';
import { startDgdTwin, stopTestTwins } from '../support/twin.ts';
import {
  applyScalingAdapter,
  asUser,
  DGD_V1BETA1,
  DGDSA,
  dgdComponent,
  dgdV1beta1,
  getDgd,
  getRecommendation,
  grantEditors,
  installReviewPolicy,
  markReadyLoop,
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
 * The other paths of a Planner-managed target (planner-rollout.test.ts covers `--config` with the twin):
 * the earlier flag form (only `--min-endpoint` and `--max-gpu-budget` rewritten, a rollback restoring the
 * args exactly), another manager owning the Planner's args (FieldConflict, nothing changed), and a worker
 * with a scaling adapter under a Planner (neither the adapter's nor the graph's replicas written): apply
 * mechanics, readiness from a stand-in. Last, bounds given as flags in the container's command: written into
 * the args (which argparse reads after the command), read back from there, and followed by the twin's Planner.
 */

const NODES = ['planner-paths-gpu'];
// Starts at a floor of three workers, which light traffic does not need: the proposal lowers the bounds.
const FLAG_ARGS = [
  'python3 -m dynamo.planner',
  '--environment',
  'kubernetes',
  '--backend',
  'vllm',
  '--adjustment-interval=30',
  '--max-gpu-budget',
  '4',
  '--min-endpoint',
  '3',
  '--ttft',
  '30000',
  '--load-predictor-log1p',
];
const CONFIG = JSON.stringify({
  mode: 'agg',
  optimization_target: 'throughput',
  load_adjustment_interval: 2,
  min_endpoint: 3,
  max_gpu_budget: 4,
  environment: 'kubernetes',
});

let client: KubeClient;
let ns: string;
const alice = asUser('alice');
const stops: (() => void)[] = [];
let op: Operator;
let lightTrace: string;

beforeAll(async () => {
  client = kube();
  await installCrds(client);
  await installReviewPolicy(client);
  await grantEditors(client, ['alice']);
  ns = await createNamespace(client, 'planner-paths');
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
  lightTrace = join(mkdtempSync(join(tmpdir(), 'planner-paths-')), 'light.jsonl');
  writeFileSync(lightTrace, light);
  op = startOperator({ namespace: ns });
  await op.start();
});

afterEach(() => {
  for (const s of stops.splice(0)) s();
});

afterAll(async () => {
  await op?.stop();
  await stopTestTwins();
  await deleteNodes(client, NODES);
  await alice.close();
  await client.close();
});

const dgd = (name: string) => getDgd(client, ns, name);
const component = (name: string, c: string) => dgdComponent(client, ns, name, c);
const plannerArgs = (name: string) => plannerArgsOf(client, ns, name);

/** A three-worker graph with a Planner whose main container has `args`, created by `gitops`. */
async function plannedGraph(name: string, args: string[], o: { adapter?: boolean; command?: string[] } = {}) {
  const g = dgdV1beta1(ns, name, { workers: 3, adapter: o.adapter });
  g.spec.components.push({
    name: 'Planner',
    type: 'planner',
    replicas: 1,
    podTemplate: { spec: { containers: [{ name: 'main', args, ...(o.command && { command: o.command }) }] } },
  } as (typeof g.spec.components)[number]);
  await client.apply(pathOf(DGD_V1BETA1, ns, name), g, 'gitops', true);
}

/** A tuning of `name` and its first recommendation, which must change the Planner's bounds. */
async function proposal(name: string, updatePolicy: object = {}, minImprovementPercent = 10) {
  await createTuning(
    client,
    ns,
    name,
    tuningSpec(name, 'traffic', {
      model: 'Qwen/Qwen3-8B',
      targetRef: { apiVersion: 'nvidia.com/v1beta1', name },
      searchSpace: { tensorParallel: { aggregated: [1] }, routers: ['RoundRobin'] },
      slos: [{ metric: 'TTFT', percentile: 90, maxMs: 30_000 }],
      guardrails: { minImprovementPercent, minProposalInterval: '0s' },
      updatePolicy: {
        mode: 'Approval',
        forceConflicts: true,
        verification: { readyTimeout: '60s', window: '2s', windows: 1 },
        ...updatePolicy,
      },
    }),
  );
  const rec = await waitFor(
    `a recommendation for ${name}`,
    async () => {
      const d = await getTuning(client, ns, name);
      if (!d.status?.currentRecommendation)
        throw new Error(JSON.stringify(d.status?.conditions ?? []).slice(0, 3000));
      return d.status.currentRecommendation;
    },
    60_000,
  );
  const r = await getRecommendation(client, ns, rec);
  expect(r.spec.baseline.planner).toMatchObject({ enabled: true, minEndpoint: 3, maxGpuBudget: 4 });
  const bounds = r.spec.proposal.planner;
  expect(bounds.enabled).toBe(true);
  expect([bounds.minEndpoint, bounds.maxGpuBudget]).not.toEqual([3, 4]);
  return { name: rec, bounds: { min: bounds.minEndpoint!, max: bounds.maxGpuBudget! } };
}

async function rollBack(rec: string) {
  await alice.mergePatch(pathOf(TUNING_RECOMMENDATIONS, ns, rec), {
    spec: { rollbackRequest: { by: 'alice', reason: 'back to the old bounds' } },
  });
  return waitForState(client, ns, rec, ['RolledBack']);
}

describe('a Planner configured by flags (earlier releases)', () => {
  it('rewrites only --min-endpoint and --max-gpu-budget, keeps every other arg; a rollback restores the args exactly', async () => {
    stops.push(markReadyLoop(client, ns, 'flags'));
    await plannedGraph('flags', FLAG_ARGS);
    // The SLA planner's gain from lower bounds on this short trace is within its uncertainty (the sweep
    // predicts +28 %, at worst 0 %): no guardrail, since the writes are what is tested here.
    const rec = await proposal('flags', {}, 0);
    // Read as the SLA planner of those releases, with the flags' values.
    const r0 = await getRecommendation(client, ns, rec.name);
    expect(JSON.parse(r0.spec.baseline.planner.config!)).toEqual(
      expect.objectContaining({
        optimization_target: 'sla',
        throughput_adjustment_interval_seconds: 30,
        ttft_ms: 30000,
        load_predictor_log1p: true,
      }),
    );
    const replicas = (await component('flags', 'worker')).replicas;

    await review(alice, ns, rec.name, { decision: 'Approved', by: 'alice' });
    const applied = await waitForState(client, ns, rec.name, ['Verifying', 'Applied']);
    const want = [...FLAG_ARGS];
    want[want.indexOf('--max-gpu-budget') + 1] = String(rec.bounds.max);
    want[want.indexOf('--min-endpoint') + 1] = String(rec.bounds.min);
    expect(await plannerArgs('flags')).toEqual(want);
    expect(applied.status!.rollout!.baseline!.components.find((c) => c.name === 'Planner')?.args).toEqual(
      FLAG_ARGS,
    );
    // The replicas are the Planner's: neither recorded nor written.
    expect(applied.status!.rollout!.baseline!.components.find((c) => c.name === 'worker')?.replicas).toBe(
      undefined,
    );
    expect((await component('flags', 'worker')).replicas).toBe(replicas);

    await rollBack(rec.name);
    expect(await plannerArgs('flags')).toEqual(FLAG_ARGS);
    expect((await component('flags', 'worker')).replicas).toBe(replicas);
  }, 150_000);
});

describe("another manager owning the Planner's args", () => {
  it('reports FieldConflict naming that manager and changes nothing', async () => {
    stops.push(markReadyLoop(client, ns, 'contested'));
    // Applied by a GitOps tool under its own manager name: it owns the Planner's args.
    await plannedGraph('contested', ['python3 -m dynamo.planner', '--config', CONFIG]);
    const rec = await proposal('contested', { forceConflicts: false });
    const before = await dgd('contested');
    await review(alice, ns, rec.name, { decision: 'Approved', by: 'alice' });
    const failed = await waitForState(client, ns, rec.name, ['Failed']);
    expect(failed.status!.rollout!.transitions!.at(-1)!.reason).toBe('FieldConflict');
    expect(failed.status!.rollout!.conflict!.managers).toEqual(['gitops']);
    // The Planner's args are the contested field (the other owned fields hold the values gitops gave them).
    expect(failed.status!.rollout!.conflict!.fields).toEqual([
      '.spec.components[name="Planner"].podTemplate.spec.containers[name="main"].args',
    ]);
    expect(failed.status!.message).toMatch(/gitops owns .*Planner.*args/);
    const after = await dgd('contested');
    expect(after.metadata.generation).toBe(before.metadata.generation);
    expect(after.spec).toEqual(before.spec);
  }, 150_000);
});

describe('a worker with a scaling adapter under a Planner', () => {
  it("writes the Planner's bounds and never the replicas, neither through the adapter nor in the graph", async () => {
    stops.push(markReadyLoop(client, ns, 'adapted'));
    await plannedGraph('adapted', ['python3 -m dynamo.planner', '--config', CONFIG], { adapter: true });
    // The Planner has scaled the worker to two through its adapter; the graph still says three.
    await applyScalingAdapter(client, ns, 'adapted', 'worker', 2);
    const adapter = () =>
      client.get<{ metadata: { resourceVersion: string }; spec: { replicas: number } }>(
        pathOf(DGDSA, ns, 'adapted-worker'),
      );
    const adapterBefore = await adapter();
    const rec = await proposal('adapted');
    await review(alice, ns, rec.name, { decision: 'Approved', by: 'alice' });
    const applied = await waitForState(client, ns, rec.name, ['Verifying', 'Applied']);
    expect(JSON.parse((await plannerArgs('adapted'))[2])).toMatchObject({
      min_endpoint: rec.bounds.min,
      max_gpu_budget: rec.bounds.max,
    });
    // The adapter is recorded as the worker's, but no replica count is (the Planner's).
    const worker = applied.status!.rollout!.baseline!.components.find((c) => c.name === 'worker')!;
    expect(worker.scalingAdapter).toBe('adapted-worker');
    expect(worker.replicas).toBeUndefined();
    expect(await adapter()).toMatchObject({ metadata: adapterBefore.metadata, spec: { replicas: 2 } });
    expect((await component('adapted', 'worker')).replicas).toBe(3);

    await rollBack(rec.name);
    expect(JSON.parse((await plannerArgs('adapted'))[2])).toEqual(JSON.parse(CONFIG));
    expect(await adapter()).toMatchObject({ metadata: adapterBefore.metadata, spec: { replicas: 2 } });
    expect((await component('adapted', 'worker')).replicas).toBe(3);
  }, 150_000);
});

describe('a Planner whose bounds are flags in its container command', () => {
  it("writes the new bounds into its args, where they override the command, and the twin's Planner follows them", async () => {
    const command = ['python3', '-m', 'dynamo.planner', '--min-endpoint', '3', '--max-gpu-budget', '4'];
    const args = ['--environment', 'kubernetes', '--adjustment-interval', '30', '--ttft', '30000'];
    await plannedGraph('commanded', args, { command });
    const { twin } = await startDgdTwin({
      client,
      namespace: ns,
      target: 'commanded',
      trace: { path: lightTrace, loop: true },
      timeScale: 20,
      config: { startupTimeS: 5 },
      prometheus: false,
    });
    const live = () => twin.sim.workers().filter((w) => w.state === 'ready' || w.state === 'starting').length;
    // As in the flag form above, the gain is within the prediction's uncertainty: no guardrail.
    const rec = await proposal('commanded', {}, 0);
    expect(rec.bounds.min).toBeLessThan(3);
    await review(alice, ns, rec.name, { decision: 'Approved', by: 'alice' });
    await waitForState(client, ns, rec.name, ['Verifying', 'Applied']);
    const container = async () =>
      (await component('commanded', 'Planner')).podTemplate!.spec.containers[0] as {
        command?: string[];
        args?: string[];
      };
    // The command is not servetune's: the bounds that change are appended to the args, which argparse
    // reads last (the sweep may keep the budget at four).
    expect(await container()).toMatchObject({
      command,
      args: [
        ...args,
        '--min-endpoint',
        String(rec.bounds.min),
        ...(rec.bounds.max !== 4 ? ['--max-gpu-budget', String(rec.bounds.max)] : []),
      ],
    });
    // The twin runs the operator's reading of the Planner: going below the old floor, it shows the new
    // bounds read back from the args (the command's first occurrence was read before, and the floor held).
    const settled = await waitFor(
      "the twin's Planner below the old floor",
      async () => {
        const r = (await component('commanded', 'worker')).replicas ?? 1;
        return r < 3 && r >= rec.bounds.min && live() === r ? r : undefined;
      },
      60_000,
    );
    expect(settled).toBeLessThanOrEqual(rec.bounds.max);

    await rollBack(rec.name);
    expect(await container()).toMatchObject({ command, args });
    await waitFor(
      "the twin's Planner back at its floor",
      async () => ((await component('commanded', 'worker')).replicas ?? 1) >= 3,
      60_000,
    );
  }, 180_000);
});
