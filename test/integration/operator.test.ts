import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { KubeClient } from '../../src/operator/kube/client.ts';
import { DEPLOYMENT_TUNINGS, pathOf } from '../../src/operator/kube/resources.ts';
import type { Operator } from '../../src/operator/manager.ts';
import {
  condition,
  createDgd,
  createGpuNode,
  createGpuPod,
  createNamespace,
  createTuning,
  deleteNodes,
  getTuning,
  installCrds,
  kube,
  listEvents,
  listRecommendations,
  makeDue,
  putConfigMap,
  startOperator,
  traceSample,
  waitFor,
} from './support.ts';

/** A DeploymentTuning against a DGD and GPU nodes, end to end through one operator. */

let client: KubeClient;
let ns: string;
let op: Operator;
const NODES = ['op-gpu-a', 'op-gpu-b', 'op-t4'];

beforeAll(async () => {
  client = kube();
  await installCrds(client);
  ns = await createNamespace(client, 'op');
  await createGpuNode(client, NODES[0], 'NVIDIA-H100-SXM5-80GB', 8);
  await createGpuNode(client, NODES[1], 'NVIDIA-H100-SXM5-80GB-SHARED', 8);
  await createGpuNode(client, NODES[2], 'Tesla-T4', 4);
  // The target's own workers hold 4 GPUs; another workload holds 2 more.
  await createGpuPod(client, ns, 'worker-0', NODES[0], 4);
  await createGpuPod(client, ns, 'other', NODES[1], 2);
  await createDgd(client, ns, 'llama', 4);
  // 150 good rows plus two bad lines.
  await putConfigMap(client, ns, 'traffic', {
    'trace.jsonl': traceSample(150, ['{"timestamp": 1, "output_length": 5}', 'not json']),
  });
  op = startOperator({ namespace: ns });
  await op.start();
});

afterAll(async () => {
  await op?.stop();
  await deleteNodes(client, NODES);
  await client.close();
});

describe('a DeploymentTuning', () => {
  it('yields a TuningRecommendation with sane predictions, owned by it', async () => {
    const created = await createTuning(client, ns, 'llama', {
      targetRef: { name: 'llama' },
      slos: [
        { metric: 'TTFT', percentile: 90, maxMs: 8000 },
        { metric: 'ITL', percentile: 90, maxMs: 100 },
      ],
      gpuBudget: { mode: 'Auto', maxTotalGPUs: 6 },
      searchSpace: {
        tensorParallel: { aggregated: [1, 2] },
        routers: ['RoundRobin', 'KV'],
        kvOverlapWeights: [1],
      },
      workload: { source: { configMap: { name: 'traffic', key: 'trace.jsonl' } } },
      schedule: '0 0 1 1 *',
      guardrails: { minImprovementPercent: 10, minProposalInterval: '0s' },
    });
    const dt = await waitFor('a recommendation', async () => {
      const d = await getTuning(client, ns, 'llama');
      return d.status?.currentRecommendation ? d : undefined;
    });
    const recs = await listRecommendations(client, ns);
    expect(recs).toHaveLength(1);
    const rec = recs[0];
    expect(rec.metadata.name).toBe(dt.status!.currentRecommendation);
    expect(rec.status?.state).toBe('Proposed');
    expect(rec.metadata.ownerReferences).toEqual([
      expect.objectContaining({
        kind: 'DeploymentTuning',
        name: 'llama',
        uid: created.metadata.uid,
        controller: true,
      }),
    ]);
    expect(rec.metadata.labels?.['servetune.dev/deployment-tuning']).toBe('llama');
    const s = rec.spec;
    // Baseline as read from the DGD.
    expect(s.baseline).toMatchObject({
      gpuType: 'h100_sxm',
      gpus: 4,
      topology: 'Aggregated',
      aggregated: { workers: 4, tensorParallel: 1, gpusPerWorker: 1 },
      router: { mode: 'RoundRobin' },
      model: 'Qwen/Qwen3-8B',
    });
    // The proposal fits the budget, meets the SLOs and beats the baseline by the guardrail.
    expect(s.proposal.gpus).toBeGreaterThan(0);
    expect(s.proposal.gpus).toBeLessThanOrEqual(6);
    expect(s.predicted.proposal.meetsSlos).toBe(true);
    expect(s.predicted.proposal.ttftMs.p90).toBeLessThanOrEqual(8000);
    expect(s.predicted.proposal.itlMs.p90).toBeLessThanOrEqual(100);
    expect(s.predicted.gainPercent).toBeGreaterThanOrEqual(10);
    for (const m of [s.predicted.baseline, s.predicted.proposal]) {
      expect(m.outputTokensPerSecondPerGpu).toBeGreaterThan(0);
      expect(m.requestThroughputRps).toBeGreaterThan(0);
      expect(m.ttftMs.p50).toBeLessThanOrEqual(m.ttftMs.p90);
      expect(m.ttftMs.p90).toBeLessThanOrEqual(m.ttftMs.p99);
      expect(m.e2eMs.p50).toBeGreaterThan(m.ttftMs.p50);
    }
    expect(s.predicted.proposal.objectiveValue).toBeGreaterThan(s.predicted.baseline.objectiveValue);
    expect(s.frontier.length).toBeGreaterThan(0);
    expect(s.trace).toMatchObject({ requests: 150, source: `configmap://${ns}/traffic#trace.jsonl` });
    expect(s.trace.hash).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(s.sweep.candidates).toBeGreaterThan(3);
    expect(s.sweep.simulatorVersion).toMatch(/^servetune-sim\//);
    expect(s.explanation).toContain('Recommended');
  });

  it('reports conditions, inventory and the workload summary in status', async () => {
    const dt = await getTuning(client, ns, 'llama');
    const st = dt.status!;
    expect(st.observedGeneration).toBe(dt.metadata.generation);
    expect(condition(dt, 'Ready')).toMatchObject({ status: 'True', reason: 'Scheduled' });
    expect(condition(dt, 'Sweeping')).toMatchObject({ status: 'False', reason: 'SweepCompleted' });
    expect(condition(dt, 'RecommendationAvailable')).toMatchObject({
      status: 'True',
      reason: 'RecommendationCreated',
    });
    expect(condition(dt, 'Degraded')).toMatchObject({ status: 'False' });
    for (const c of st.conditions!) expect(c.observedGeneration).toBe(dt.metadata.generation);
    expect(Date.parse(st.nextSweepTime!)).toBeGreaterThan(Date.now());
    expect(st.lastSweepTime).toBeDefined();
    // 16 H100s (one node shared: -SHARED stripped), 6 requested; the T4 is not in the catalog.
    expect(st.gpuInventory!.types).toEqual([
      expect.objectContaining({ gpuType: 'h100_sxm', gpus: 16, requested: 6, available: 10 }),
    ]);
    expect(st.gpuInventory!.unknownProducts).toEqual([expect.objectContaining({ product: 'Tesla-T4' })]);
    expect(st.gpuInventory!.budget).toEqual({ h100_sxm: 6 });
    expect(st.workload).toMatchObject({ requests: 150, badLines: 2 });
    expect(st.history![0]).toMatchObject({ outcome: 'Proposed', recommendation: st.currentRecommendation });
  });

  it('records Events for each step', async () => {
    const events = await waitFor('events', async () => {
      const e = (await listEvents(client, ns)).filter((x) => x.regarding.name === 'llama');
      return e.some((x) => x.reason === 'RecommendationCreated') ? e : undefined;
    });
    const reasons = events.map((e) => e.reason);
    expect(reasons).toEqual(
      expect.arrayContaining([
        'SweepStarted',
        'TraceLinesSkipped',
        'SweepCompleted',
        'RecommendationCreated',
        'UnknownGPUProducts',
      ]),
    );
    expect(events.find((e) => e.reason === 'TraceLinesSkipped')).toMatchObject({ type: 'Warning' });
    expect(events.find((e) => e.reason === 'TraceLinesSkipped')!.note).toContain('skipped 2 bad lines');
  });

  it('sets Degraded and keeps the recommendation when the source has no usable data', async () => {
    const before = await getTuning(client, ns, 'llama');
    await putConfigMap(client, ns, 'traffic', { 'trace.jsonl': 'garbage\n{"timestamp": "x"}\n' });
    await makeDue(client, ns, 'llama');
    const dt = await waitFor('Degraded', async () => {
      const d = await getTuning(client, ns, 'llama');
      return condition(d, 'Degraded')?.status === 'True' ? d : undefined;
    });
    expect(condition(dt, 'Degraded')).toMatchObject({ reason: 'NoUsableData' });
    expect(condition(dt, 'Degraded')!.message).toContain('no usable requests');
    expect(condition(dt, 'Ready')).toMatchObject({ status: 'False', reason: 'NoUsableData' });
    expect(condition(dt, 'RecommendationAvailable')).toMatchObject({ status: 'True' });
    expect(dt.status!.currentRecommendation).toBe(before.status!.currentRecommendation);
    expect(await listRecommendations(client, ns)).toHaveLength(1);
    expect(dt.status!.history![0]).toMatchObject({ outcome: 'Failed' });
  });

  it('supersedes the previous recommendation and prunes beyond historyLimit', async () => {
    await putConfigMap(client, ns, 'traffic', { 'trace.jsonl': traceSample(150) });
    const first = (await getTuning(client, ns, 'llama')).status!.currentRecommendation!;
    // Sweep every 2 s now, keep two recommendations.
    await client.mergePatch(pathOf(DEPLOYMENT_TUNINGS, ns, 'llama'), {
      spec: { schedule: '*/2 * * * * *', historyLimit: 2 },
    });
    await makeDue(client, ns, 'llama');
    await waitFor(
      'three proposals',
      async () => {
        const d = await getTuning(client, ns, 'llama');
        return (d.status?.history?.filter((h) => h.outcome === 'Proposed').length ?? 0) >= 3;
      },
      90_000,
    );
    await client.mergePatch(pathOf(DEPLOYMENT_TUNINGS, ns, 'llama'), { spec: { suspend: true } });
    await waitFor('the last sweep to finish', async () => {
      const d = await getTuning(client, ns, 'llama');
      return condition(d, 'Sweeping')?.status === 'False' && condition(d, 'Ready')?.reason === 'Suspended';
    });
    const recs = await listRecommendations(client, ns);
    const latest = (await getTuning(client, ns, 'llama')).status!.currentRecommendation!;
    expect(recs).toHaveLength(2);
    expect(recs.map((r) => r.metadata.name)).not.toContain(first);
    expect(recs.map((r) => r.metadata.name)).toContain(latest);
    const byName = new Map(recs.map((r) => [r.metadata.name, r]));
    expect(byName.get(latest)!.status?.state).toBe('Proposed');
    for (const r of recs) if (r.metadata.name !== latest) expect(r.status?.state).toBe('Superseded');
    const dtNow = await getTuning(client, ns, 'llama');
    expect(condition(dtNow, 'Degraded')).toMatchObject({ status: 'False' });
  });

  it('follows a sooner schedule at once, and holds back small gains and too-frequent proposals', async () => {
    // Yearly schedule, huge gain threshold: the next slot is far away until the schedule changes.
    await client.mergePatch(pathOf(DEPLOYMENT_TUNINGS, ns, 'llama'), {
      spec: { suspend: false, schedule: '0 0 1 1 *', guardrails: { minImprovementPercent: 1000 } },
    });
    await waitFor('a yearly slot', async () => {
      const d = await getTuning(client, ns, 'llama');
      return (
        d.status?.observedGeneration === d.metadata.generation &&
        Date.parse(d.status!.nextSweepTime!) > Date.now() + 86_400_000
      );
    });
    const proposals = async () =>
      ((await getTuning(client, ns, 'llama')).status?.history ?? []).filter((h) => h.outcome === 'Proposed')
        .length;
    const before = await proposals();
    await client.mergePatch(pathOf(DEPLOYMENT_TUNINGS, ns, 'llama'), { spec: { schedule: '*/3 * * * * *' } });
    const small = await waitFor('a sweep held back by the gain guardrail', async () => {
      const d = await getTuning(client, ns, 'llama');
      return d.status?.history?.[0]?.outcome === 'NoImprovement' ? d : undefined;
    });
    expect(small.status!.history![0]).toMatchObject({ outcome: 'NoImprovement' });
    // Now a real gain, but one proposal per hour at most (the last was seconds ago).
    await client.mergePatch(pathOf(DEPLOYMENT_TUNINGS, ns, 'llama'), {
      spec: { guardrails: { minImprovementPercent: 10, minProposalInterval: '1h' } },
    });
    await waitFor('a sweep held back by the interval guardrail', async () => {
      const d = await getTuning(client, ns, 'llama');
      return d.status?.history?.[0]?.outcome === 'TooSoon';
    });
    await client.mergePatch(pathOf(DEPLOYMENT_TUNINGS, ns, 'llama'), { spec: { suspend: true } });
    expect(await proposals()).toBe(before);
    const events = (await listEvents(client, ns)).map((e) => e.reason);
    expect(events).toEqual(expect.arrayContaining(['NoImprovement', 'TooSoon']));
  });

  it('serves health, readiness and metrics', async () => {
    const base = `http://127.0.0.1:${op.port}`;
    expect((await fetch(`${base}/healthz`)).status).toBe(200);
    expect((await fetch(`${base}/readyz`)).status).toBe(200);
    // Probes with a query string (kubelet's, or `?verbose`) are answered too.
    expect((await fetch(`${base}/healthz?verbose`)).status).toBe(200);
    expect((await fetch(`${base}/readyz?exclude=x`)).status).toBe(200);
    const metrics = await (await fetch(`${base}/metrics`)).text();
    expect(metrics).toMatch(
      /controller_runtime_reconcile_total\{controller="deploymenttuning",result="[a-z_]+"\} \d+/,
    );
    expect(metrics).toMatch(/servetune_sweeps_total\{outcome="Proposed"\} [1-9]/);
    expect(metrics).toMatch(/servetune_sweeps_total\{outcome="Failed"\} 1/);
    expect(metrics).toMatch(/servetune_sweep_candidates_evaluated_total [1-9]/);
    expect(metrics).toMatch(/servetune_recommendations\{state="(Proposed|Superseded)"\} \d/);
    expect(metrics).toMatch(/workqueue_depth\{name="deploymenttuning"\} \d/);
    expect(metrics).toMatch(/leader_election_master_status\{name="[^"]+"\} 1/);
  });
});
