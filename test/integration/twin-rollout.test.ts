import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { KubeClient } from '../../src/operator/kube/client.ts';
import { DYNAMO_GRAPH_DEPLOYMENTS, pathOf } from '../../src/operator/kube/resources.ts';
import type { Twin } from '../../src/twin/twin.ts';
import type { PrometheusServer } from '../support/prometheus.ts';
import { startDgdTwin, stopTestTwins } from '../support/twin.ts';
import { createDgd, createNamespace, installCrds, kube, waitFor } from './support.ts';

/**
 * The testbed of a rollout's verification: a twin standing for a v1alpha1 DGD (as the operator's tests create
 * it), fed by a trace faster than real time, scraped by a real Prometheus, degraded for any settings other
 * than those it started with. A change of the DGD is reported Ready once its workers serve, and the frontend's
 * inter-token latency seen through PromQL gets worse; going back to the starting settings recovers.
 */

const TRACE = fileURLToPath(new URL('../fixtures/traces/conversation-sample.jsonl', import.meta.url));
const FACTOR = 3;

let client: KubeClient;
let ns: string;
let twin: Twin;
let prom: PrometheusServer;

beforeAll(async () => {
  client = kube();
  await installCrds(client);
  ns = await createNamespace(client, 'twin-rollout');
  await createDgd(client, ns, 'llm', 2);
  ({ twin, prometheus: prom } = (await startDgdTwin({
    client,
    namespace: ns,
    target: 'llm',
    trace: { path: TRACE, loop: true },
    timeScale: 20,
    degrade: `${FACTOR}:changed=true`,
    config: { startupTimeS: 20 },
  })) as { twin: Twin; prometheus: PrometheusServer });
});

afterAll(async () => {
  await stopTestTwins();
  await client.close();
});

type Status = {
  conditions?: { type: string; status: string; reason: string }[];
  observedGeneration?: number;
};

/** Resolves once the DGD's Ready condition is True for its current generation. */
async function readyNow(): Promise<void> {
  await waitFor(
    'the DGD Ready',
    async () => {
      const o = await client.get<{ metadata: { generation: number }; status?: Status }>(
        pathOf(DYNAMO_GRAPH_DEPLOYMENTS, ns, 'llm'),
      );
      const ready = o.status?.conditions?.find((c) => c.type === 'Ready');
      return ready?.status === 'True' && o.status?.observedGeneration === o.metadata.generation;
    },
    30_000,
  );
}

/** Mean inter-token latency (s) over the next `wallMs`, from the frontend histogram through PromQL. */
async function meanItl(wallMs: number): Promise<number> {
  const s = `{dynamo_namespace="${ns}-llm"}`;
  const read = async () => ({
    sum: (await prom.scalar(`sum(dynamo_frontend_inter_token_latency_seconds_sum${s})`)) ?? 0,
    count: (await prom.scalar(`sum(dynamo_frontend_inter_token_latency_seconds_count${s})`)) ?? 0,
  });
  // Two scrapes after the moment, so the window starts with what the twin did until then.
  await new Promise((r) => setTimeout(r, 1_200));
  const a = await read();
  await new Promise((r) => setTimeout(r, wallMs));
  const b = await read();
  expect(b.count - a.count, 'tokens in the window').toBeGreaterThan(1000);
  return (b.sum - a.sum) / (b.count - a.count);
}

async function setReplicas(n: number) {
  await client.mergePatch(pathOf(DYNAMO_GRAPH_DEPLOYMENTS, ns, 'llm'), {
    spec: { services: { VllmDecodeWorker: { replicas: n } } },
  });
}

describe('a degraded twin as the testbed of a rollout', () => {
  it('regresses when its DGD changes, and recovers when the change is rolled back', async () => {
    await readyNow();
    const base = await meanItl(4_000);
    expect(twin.sim.workers().filter((w) => w.state === 'ready')).toHaveLength(2);

    await setReplicas(3);
    await readyNow();
    expect(twin.sim.workers().filter((w) => w.state === 'ready')).toHaveLength(3);
    const changed = await meanItl(4_000);
    // Three workers share the load, yet every pass takes FACTOR times as long.
    expect(changed).toBeGreaterThan(base * 1.5);

    await setReplicas(2);
    await readyNow();
    await waitFor('the extra worker gone', () => twin.sim.workers().every((w) => w.state !== 'draining'));
    const back = await meanItl(4_000);
    // The drained worker finished what it held: nothing was lost across the changes.
    expect(twin.runtime.ended).toMatchObject({ rejected: 0, cancelled: 0 });
    expect(twin.runtime.ended.finished).toBeGreaterThan(500);
    expect(back).toBeLessThan(changed / 1.5);
    console.log(
      `mean ITL: baseline ${(base * 1000).toFixed(1)} ms, changed ${(changed * 1000).toFixed(1)} ms, ` +
        `rolled back ${(back * 1000).toFixed(1)} ms`,
    );
  }, 120_000);
});
