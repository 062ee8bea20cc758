import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from 'vitest';
import type { ApiError, KubeClient } from '../../src/operator/kube/client.ts';
import { pathOf, TUNING_RECOMMENDATIONS } from '../../src/operator/kube/resources.ts';
import type { Operator } from '../../src/operator/manager.ts';
import {
  applyDgdV1beta1,
  asUser,
  DGD_V1BETA1,
  getRecommendation,
  grantEditors,
  installReviewPolicy,
  markReadyLoop,
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
  putConfigMap,
  ROOT,
  startOperator,
  traceSample,
  tuningSpec,
  waitFor,
} from './support.ts';

/**
 * From a recommendation to a changed deployment on the real API server: review (identity checked by the
 * admission policy), server-side apply of only the owned fields, field conflicts, crash points, rollback to
 * the exact baseline. Readiness comes from a stand-in here; verification against live metrics is tested with
 * the twin and a real Prometheus (rollout-verify.test.ts).
 */

let client: KubeClient;
let ns: string;
const NODES = ['rollout-gpu'];
const alice = asUser('alice');
const stops: (() => void)[] = [];
let ops: Operator[] = [];

beforeAll(async () => {
  client = kube();
  await installCrds(client);
  await installReviewPolicy(client);
  await grantEditors(client, ['alice', 'bob', 'carol']);
  ns = await createNamespace(client, 'rollout');
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

const rolloutSpec = (target: string, updatePolicy: object = {}) =>
  tuningSpec(target, 'traffic', {
    model: 'Qwen/Qwen3-8B',
    targetRef: { apiVersion: 'nvidia.com/v1beta1', name: target },
    searchSpace: { tensorParallel: { aggregated: [1] }, routers: ['RoundRobin'] },
    updatePolicy: {
      mode: 'Approval',
      forceConflicts: true,
      verification: { readyTimeout: '60s', window: '2s', windows: 1 },
      ...updatePolicy,
    },
  });

/** A target and a tuning whose first sweep proposes a change; returns the recommendation's name. */
async function proposal(name: string, updatePolicy: object = {}, workers = 4): Promise<string> {
  await applyDgdV1beta1(client, ns, name, { workers });
  await createTuning(client, ns, name, rolloutSpec(name, updatePolicy));
  const dt = await waitFor(`a recommendation for ${name}`, async () => {
    const d = await getTuning(client, ns, name);
    return d.status?.currentRecommendation ? d : undefined;
  });
  return dt.status!.currentRecommendation!;
}

interface Dgd {
  metadata: { generation: number; managedFields?: { manager: string; fieldsV1?: unknown }[] };
  spec: {
    components: {
      name: string;
      replicas?: number;
      podTemplate: { spec: { containers: { name: string; args?: string[]; env?: unknown[] }[] } };
    }[];
  };
}
const dgd = (name: string) => client.get<Dgd>(pathOf(DGD_V1BETA1, ns, name));
const worker = (d: Dgd) => d.spec.components.find((c) => c.name === 'worker')!;

describe('review', () => {
  it('approval is recorded with its author, and the change is applied by server-side apply', async () => {
    await operator();
    stops.push(markReadyLoop(client, ns, 'approve'));
    const rec = await proposal('approve');
    const before = await dgd('approve');
    const r0 = await getRecommendation(client, ns, rec);
    expect(r0.status?.state).toBe('Proposed');
    await review(alice, ns, rec, { decision: 'Approved', by: 'alice' });
    const applied = await waitForState(client, ns, rec, ['Verifying', 'Applied']);
    const t = applied.status!.rollout!.transitions!;
    expect(t.find((x) => x.state === 'Approved')).toMatchObject({ actor: 'alice' });
    expect(t.map((x) => x.state)).toEqual(expect.arrayContaining(['Approved', 'Applying', 'Applied']));
    const after = await dgd('approve');
    expect(worker(after).replicas).toBe(r0.spec.proposal.aggregated!.workers);
    // Only the owned fields changed hands: the image and env stay the creator's.
    expect(after.metadata.managedFields?.some((m) => m.manager === 'servetune')).toBe(true);
    expect(worker(after).podTemplate.spec.containers[0].env).toEqual(
      worker(before).podTemplate.spec.containers[0].env,
    );
    expect(applied.status!.rollout!.baseline!.components.find((c) => c.name === 'worker')!.replicas).toBe(4);
    // Without a Prometheus, verification windows are Inconclusive and never pass.
    const v = await waitFor('an inconclusive window', async () => {
      const r = await getRecommendation(client, ns, rec);
      return r.status?.rollout?.windows?.length ? r : undefined;
    });
    expect(v.status!.state).toBe('Verifying');
    expect(v.status!.rollout!.windows![0]).toMatchObject({
      outcome: 'Inconclusive',
      message: expect.stringMatching(/no Prometheus/),
    });
  });

  it('refuses a forged approver, a second review, and a review of a recommendation that is not Proposed', async () => {
    await operator();
    const rec = await proposal('forge');
    const forged = await review(alice, ns, rec, { decision: 'Approved', by: 'bob' }).catch(
      (e: ApiError) => e,
    );
    expect((forged as ApiError).status).toBeGreaterThanOrEqual(400);
    expect((forged as ApiError).message).toMatch(/spec.review.by must be you \(alice\)/);
    const noReason = await review(alice, ns, rec, { decision: 'Rejected', by: 'alice' }).catch(
      (e: ApiError) => e,
    );
    expect((noReason as ApiError).message).toMatch(/a rejection needs a reason/);
    await review(alice, ns, rec, { decision: 'Rejected', by: 'alice', reason: 'not during the launch' });
    const rejected = await waitForState(client, ns, rec, ['Rejected']);
    expect(rejected.status!.message).toMatch(/not during the launch/);
    // Set once: changing the decision afterwards is refused by the schema.
    const flip = await review(alice, ns, rec, { decision: 'Approved', by: 'alice' }).catch(
      (e: ApiError) => e,
    );
    expect((flip as ApiError).message).toMatch(/set once/);
    expect(
      (await listEvents(client, ns)).some((e) => e.regarding.name === rec && e.reason === 'Rejected'),
    ).toBe(true);
  });

  it('expires a proposal nobody reviews within the approval window', async () => {
    await operator();
    const rec = await proposal('expire', { approvalWindow: '3s' });
    const r = await waitForState(client, ns, rec, ['Expired'], 30_000);
    expect(r.status!.message).toMatch(/approval window \(3s\)/);
    const late = await review(alice, ns, rec, { decision: 'Approved', by: 'alice' }).catch(
      (e: ApiError) => e,
    );
    expect((late as ApiError).message).toMatch(
      /only a Proposed recommendation can be reviewed; this one is Expired/,
    );
  });
});

describe('field ownership', () => {
  it('reports a field another manager owns as FieldConflict, naming it, and changes nothing', async () => {
    await operator();
    const rec = await proposal('conflict', { forceConflicts: false });
    const before = await dgd('conflict');
    await review(alice, ns, rec, { decision: 'Approved', by: 'alice' });
    const failed = await waitForState(client, ns, rec, ['Failed']);
    expect(failed.status!.rollout!.transitions!.at(-1)!.reason).toBe('FieldConflict');
    expect(failed.status!.message).toMatch(/gitops owns .*replicas/);
    expect(failed.status!.rollout!.conflict!.managers).toEqual(['gitops']);
    const after = await dgd('conflict');
    expect(after.metadata.generation).toBe(before.metadata.generation);
  });
});

describe('crash safety', () => {
  for (const point of ['before-action', 'after-action'] as const) {
    it(`an operator killed ${point === 'before-action' ? 'before' : 'after'} applying resumes and applies exactly once`, async () => {
      const name = `crash-${point}`;
      let crashed = false;
      let a!: Operator;
      a = await operator({
        namespace: ns,
        rolloutHook: (p, _key, state) => {
          if (p === point && state === 'Applying' && !crashed) {
            crashed = true;
            void a.stop({ releaseLease: false });
            throw new Error(`crash ${point}`);
          }
        },
      });
      stops.push(markReadyLoop(client, ns, name));
      const rec = await proposal(name);
      const gen0 = (await dgd(name)).metadata.generation;
      await review(alice, ns, rec, { decision: 'Approved', by: 'alice' });
      await waitFor('the crash', () => crashed);
      await waitFor('the first operator to stop', () => !a.isLeader());
      const mid = await getRecommendation(client, ns, rec);
      expect(mid.status!.state).toBe('Applying');
      const gen1 = (await dgd(name)).metadata.generation;
      expect(gen1).toBe(point === 'before-action' ? gen0 : gen0 + 1);
      await operator();
      await waitForState(client, ns, rec, ['Verifying', 'Applied']);
      // Applied once: a second apply of the same values changes nothing.
      expect((await dgd(name)).metadata.generation).toBe(gen0 + 1);
    });
  }

  it('never applies an unapproved recommendation, whatever the restarts', async () => {
    await operator();
    const rec = await proposal('unapproved');
    const gen = (await dgd('unapproved')).metadata.generation;
    await ops[0].stop({ releaseLease: false });
    ops = [];
    await operator();
    await new Promise((r) => setTimeout(r, 3_000));
    expect((await getRecommendation(client, ns, rec)).status!.state).toBe('Proposed');
    expect((await dgd('unapproved')).metadata.generation).toBe(gen);
  });
});

describe('rollback', () => {
  it('restores the exact baseline on request, and the requester is recorded', async () => {
    await operator();
    stops.push(markReadyLoop(client, ns, 'rollback'));
    const rec = await proposal('rollback');
    const before = worker(await dgd('rollback'));
    await review(alice, ns, rec, { decision: 'Approved', by: 'alice' });
    await waitForState(client, ns, rec, ['Verifying']);
    const carol = asUser('carol');
    await carol.mergePatch(pathOf(TUNING_RECOMMENDATIONS, ns, rec), {
      spec: { rollbackRequest: { by: 'carol', reason: 'p99 spikes' } },
    });
    const back = await waitForState(client, ns, rec, ['RolledBack']);
    expect(back.status!.rollout!.transitions!.find((t) => t.state === 'RollingBack')).toMatchObject({
      actor: 'carol',
    });
    const after = worker(await dgd('rollback'));
    expect(after.replicas).toBe(before.replicas);
    expect(after.podTemplate.spec.containers[0].args).toEqual(before.podTemplate.spec.containers[0].args);
    // The tuning's status is written after the recommendation's (another object, another write).
    await waitFor(
      'lastRollbackTime in the tuning status',
      async () =>
        ((await getTuning(client, ns, 'rollback')).status as { lastRollbackTime?: string }).lastRollbackTime,
      30_000,
    );
    await carol.close();
  });
});

describe('kubectl servetune', () => {
  // Asynchronous: the operator runs in this process and must keep renewing its lease meanwhile.
  const run = promisify(execFile);
  const plugin = async (...args: string[]) =>
    (
      await run(
        process.execPath,
        [
          '--no-memory-protection-keys',
          join(ROOT, 'bin/kubectl-servetune'),
          ...args,
          '--kubeconfig',
          inject('kubeconfig'),
          '-n',
          ns,
        ],
        { encoding: 'utf8', timeout: 60_000 },
      )
    ).stdout;

  it('lists, describes, diffs, approves as the caller, and writes the report', async () => {
    await operator();
    stops.push(markReadyLoop(client, ns, 'plugin'));
    const rec = await proposal('plugin');
    const r = await getRecommendation(client, ns, rec);
    expect(await plugin('list')).toMatch(new RegExp(`${rec}\\s+plugin\\s+Proposed`));
    const described = await plugin('describe', rec);
    expect(described).toContain(`replicas: 4 -> ${r.spec.proposal.aggregated!.workers}`);
    expect(described).toMatch(/TTFT p90/);
    expect(described).toMatch(/gain: [-\d.]+%/);
    // The transition, replayed on the simulator (or why it could not be).
    expect(described).toMatch(/Transition:\n.*\n {2}(simulated: changed at [\d.]+ s|not simulated: )/);
    const diff = await plugin('diff', rec);
    expect(diff).toContain('field manager "servetune"');
    expect(diff).toMatch(/name: worker\n\s+replicas: \d+/);
    expect(await plugin('approve', rec)).toMatch(new RegExp(`${rec} approved by \\S+`));
    const approved = await waitForState(
      client,
      ns,
      rec,
      ['Approved', 'Applying', 'Applied', 'Verifying'],
      20_000,
    ).catch(async (e) => {
      console.log(JSON.stringify((await getRecommendation(client, ns, rec)).status));
      throw e;
    });
    expect(approved.spec.review?.by).toBeTruthy();
    expect(approved.status!.rollout!.transitions!.find((t) => t.state === 'Approved')!.actor).toBe(
      approved.spec.review!.by,
    );
    // A second approval is refused with a clear message (exit 2).
    let second = '';
    try {
      await plugin('approve', rec);
    } catch (e) {
      second = String((e as { stderr?: string }).stderr);
    }
    expect(second).toMatch(/already approved by/);
    const file = join(mkdtempSync(join(tmpdir(), 'report-')), 'r.html');
    await plugin('report', rec, '-o', file);
    const html = readFileSync(file, 'utf8');
    expect(html).toContain('<svg');
    expect(html).toContain(rec);
  });
});
