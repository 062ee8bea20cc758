import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { KubeClient } from '../../src/operator/kube/client.ts';
import { DYNAMO_GRAPH_DEPLOYMENTS, pathOf } from '../../src/operator/kube/resources.ts';
import type { Twin } from '../../src/twin/twin.ts';
import { startTestTwin, stopTestTwins } from '../support/twin.ts';
import { createDgd, createNamespace, installCrds, kube, waitFor } from './support.ts';

/**
 * Faults on the real live simulation: `--stall` stops every worker's passes for its duration (no token in
 * between, serving resumes after), `--crash-worker` kills a worker whose requests migrate to the others and
 * finish; the killed worker comes back after its cold start as a restarted pod would (standalone after
 * `--restart-after`, unless `never`; following a DGD after `--startup-time`, the DGD's Ready condition
 * dropping meanwhile).
 */

const STALL_AT = 20_000;
const STALL_FOR = 15_000;
const CRASH_AT = 45_000;

let client: KubeClient;

beforeAll(() => {
  client = kube();
});

afterAll(async () => {
  await stopTestTwins();
  await client.close();
});

/** `n` requests at `everyMs` from `fromMs` (simulated), each recording its token times. */
function load(twin: Twin, n: number, fromMs: number, everyMs: number) {
  const tokens: number[] = [];
  const ends: string[] = [];
  const block = twin.runtime.contentBlockSize;
  for (let i = 0; i < n; i++) {
    const inputTokens = 512;
    twin.runtime.submit({
      requestId: `fault-${i}`,
      endpoint: 'chat_completions',
      stream: true,
      inputTokens,
      outputTokens: 300,
      blockIds: Array.from({ length: Math.ceil(inputTokens / block) }, (_, k) => i * 10_000 + k + 1),
      atMs: fromMs + i * everyMs,
      listener: {
        firstToken: (t) => tokens.push(t),
        token: (_index, t) => tokens.push(t),
        end: (reason) => ends.push(reason),
      },
    });
  }
  return { tokens, ends };
}

/** Worker ids with a series of `metric` in a scrape. */
function workerIds(metrics: string, metric: string): string[] {
  return [...metrics.matchAll(new RegExp(`^${metric}\\{[^}]*worker_id="(\\d+)"`, 'gm'))].map((m) => m[1]);
}

describe('--stall and --crash-worker on a standalone twin', () => {
  it("stops every pass during the stall; a crashed worker's requests finish on the others", async () => {
    const twin = await startTestTwin({
      config: { workers: 3, seed: 3 },
      timeScale: 20,
      faults: {
        stalls: [{ atMs: STALL_AT, durationMs: STALL_FOR }],
        crashes: [{ atMs: CRASH_AT }],
        // --restart-after never: the worker stays dead for the rest of the run.
        restartAfterMs: null,
      },
    });
    const n = 160;
    const { tokens, ends } = load(twin, n, 1_000, 500);
    await waitFor('every request to end', () => ends.length === n, 60_000);
    expect(new Set(ends)).toEqual(new Set(['finished']));
    // A pass that started before the stall may end inside it; none starts until the stall is over.
    const inside = tokens.filter((t) => t > STALL_AT + 1_000 && t < STALL_AT + STALL_FOR);
    expect(inside).toEqual([]);
    expect(
      tokens.filter((t) => t >= STALL_AT + STALL_FOR && t < STALL_AT + STALL_FOR + 2_000).length,
    ).toBeGreaterThan(100);
    // The crashed worker is gone, the others served on, and its metric series went with it.
    const alive = twin.sim.workers().filter((w) => w.state !== 'gone');
    expect(alive).toHaveLength(2);
    expect(tokens.filter((t) => t > CRASH_AT + 1_000).length).toBeGreaterThan(1000);
    const series = (await twin.runtime.scrape()).match(/^dynamo_component_kvstats_total_blocks\{/gm) ?? [];
    expect(series).toHaveLength(2);
  }, 90_000);

  it('restarts the crashed worker after --restart-after, cold, and it takes requests again', async () => {
    const crashAt = 15_000;
    const restartAfter = 20_000;
    const twin = await startTestTwin({
      config: { workers: 3, seed: 4 },
      timeScale: 10,
      faults: { crashes: [{ atMs: crashAt }], restartAfterMs: restartAfter },
    });
    const n = 120;
    const { ends } = load(twin, n, 1_000, 400);
    const before = new Set(twin.sim.workers().map((w) => w.id));
    // During the cold start: two serve, the replacement loads its model and publishes no KV stats yet.
    const replacement = await waitFor(
      'the replacement starting',
      () => twin.sim.workers().find((w) => w.state === 'starting'),
      30_000,
      50,
    );
    expect(before.has(replacement.id)).toBe(false);
    expect(replacement).toMatchObject({ activeBlocks: 0, running: 0, prefixHitRate: 0 });
    const starting = await twin.runtime.scrape();
    expect(twin.sim.now).toBeLessThan(crashAt + restartAfter);
    const kvDuring = workerIds(starting, 'dynamo_component_kvstats_total_blocks');
    expect(kvDuring).toHaveLength(2);
    expect(kvDuring).not.toContain(String(replacement.id));
    // After it: three serve again, the replacement among them, from an empty cache.
    await waitFor(
      'the replacement ready',
      () => twin.sim.workers().find((w) => w.id === replacement.id)?.state === 'ready',
      30_000,
      50,
    );
    expect(twin.sim.now).toBeGreaterThanOrEqual(crashAt + restartAfter);
    expect(twin.sim.workers().filter((w) => w.state === 'ready')).toHaveLength(3);
    expect(workerIds(await twin.runtime.scrape(), 'dynamo_component_kvstats_total_blocks')).toContain(
      String(replacement.id),
    );
    await waitFor('every request to end', () => ends.length === n, 60_000);
    expect(new Set(ends)).toEqual(new Set(['finished']));
    // It finished requests of its own (the per-worker latency gauge is set by requests it decoded).
    expect(
      workerIds(await twin.runtime.scrape(), 'dynamo_frontend_worker_last_inter_token_latency_seconds'),
    ).toContain(String(replacement.id));
  }, 90_000);
});

describe('--crash-worker on a twin following a DGD', () => {
  it('restarts the worker with a cold start, the DGD not Ready meanwhile', async () => {
    await installCrds(client);
    const ns = await createNamespace(client, 'twin-faults');
    await createDgd(client, ns, 'llm', 2);
    const crashAt = 10_000;
    const twin = await startTestTwin({
      config: { startupTimeS: 30 },
      timeScale: 10,
      cluster: { client, namespace: ns, target: 'llm' },
      faults: { crashes: [{ atMs: crashAt }] },
    });
    type Dgd = { status?: { conditions?: { type: string; status: string; reason: string }[] } };
    const ready = async () =>
      (await client.get<Dgd>(pathOf(DYNAMO_GRAPH_DEPLOYMENTS, ns, 'llm'))).status?.conditions?.find(
        (c) => c.type === 'Ready',
      );
    await waitFor('Ready before the crash', async () => (await ready())?.status === 'True');
    const before = twin.sim.workers().filter((w) => w.state === 'ready');
    expect(before).toHaveLength(2);
    const down = await waitFor('not Ready after the crash', async () => {
      const c = await ready();
      return c?.status === 'False' ? c : undefined;
    });
    expect(down.reason).toBe('some_resources_are_not_ready');
    expect(twin.sim.workers().filter((w) => w.state === 'starting')).toHaveLength(1);
    await waitFor('Ready again after the cold start', async () => (await ready())?.status === 'True', 20_000);
    expect(twin.sim.now).toBeGreaterThanOrEqual(crashAt + 30_000);
    const after = twin.sim.workers().filter((w) => w.state === 'ready');
    expect(after).toHaveLength(2);
    expect(after.filter((w) => before.some((b) => b.id === w.id))).toHaveLength(1);
  }, 60_000);
});
