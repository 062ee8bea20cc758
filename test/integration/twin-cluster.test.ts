import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { KubeClient } from '../../src/operator/kube/client.ts';
import {
  DYNAMO_GRAPH_DEPLOYMENTS,
  DYNAMO_GRAPH_DEPLOYMENTS_V1BETA1,
  DYNAMO_SCALING_ADAPTERS,
  pathOf,
} from '../../src/operator/kube/resources.ts';
import type { Twin } from '../../src/twin/twin.ts';
import { startTestTwin, stopTestTwins } from '../support/twin.ts';
import { createNamespace, installCrds, kube, waitFor } from './support.ts';

/**
 * A twin standing for a DynamoGraphDeployment on a real kube-apiserver: the simulated fleet, the metrics and
 * the DGD's status follow changes of replicas (with cold starts), tensor parallelism (a rolling restart) and
 * the router; a component with a scaling adapter is scaled through the adapter's scale subresource; a
 * v1alpha1 graph is followed too.
 */

let client: KubeClient;
let ns: string;

beforeAll(async () => {
  client = kube();
  await installCrds(client);
  ns = await createNamespace(client, 'twin');
});

afterAll(async () => {
  await stopTestTwins();
  await client.close();
});

const worker = (name: string, replicas: number, tp: number, extra: object = {}) => ({
  name,
  type: 'worker',
  replicas,
  podTemplate: {
    spec: {
      containers: [
        {
          name: 'main',
          image: 'nvcr.io/nvidia/ai-dynamo/vllm-runtime:1.0.0',
          command: ['python3', '-m', 'dynamo.vllm'],
          args: ['--model', 'Qwen/Qwen3-8B', '--tensor-parallel-size', String(tp), '--block-size', '64'],
          resources: { limits: { 'nvidia.com/gpu': String(tp) } },
        },
      ],
      nodeSelector: { 'nvidia.com/gpu.product': 'NVIDIA-H100-80GB-HBM3' },
    },
  },
  ...extra,
});

const frontend = (router: string) => ({
  name: 'Frontend',
  type: 'frontend',
  replicas: 1,
  podTemplate: {
    spec: { containers: [{ name: 'main', args: ['python3 -m dynamo.frontend', `--router-mode ${router}`] }] },
  },
});

type Status = {
  state?: string;
  observedGeneration?: number;
  conditions?: { type: string; status: string; reason: string; message: string }[];
  components?: Record<string, { replicas: number; readyReplicas: number; updatedReplicas: number }>;
  services?: Record<string, { replicas: number; readyReplicas: number }>;
};

async function status(name: string): Promise<{ generation: number; status: Status }> {
  const o = await client.get<{ metadata: { generation: number }; status?: Status }>(
    pathOf(DYNAMO_GRAPH_DEPLOYMENTS_V1BETA1, ns, name),
  );
  return { generation: o.metadata.generation, status: o.status ?? {} };
}

const ready = (s: Status) => s.conditions?.find((c) => c.type === 'Ready');

async function setComponents(name: string, components: object[]) {
  await client.apply(
    pathOf(DYNAMO_GRAPH_DEPLOYMENTS_V1BETA1, ns, name),
    {
      apiVersion: 'nvidia.com/v1beta1',
      kind: 'DynamoGraphDeployment',
      metadata: { name, namespace: ns },
      spec: { backendFramework: 'vllm', components },
    },
    'test',
    true,
  );
}

function workerSeries(metrics: string): string[] {
  return [...metrics.matchAll(/^dynamo_component_kvstats_total_blocks\{[^}]*worker_id="(\d+)"/gm)].map(
    (m) => m[1],
  );
}

describe('a twin following a v1beta1 DynamoGraphDeployment', () => {
  let twin: Twin;

  it('starts from the DGD and reports it Ready with its replicas', async () => {
    await setComponents('agg', [frontend('round-robin'), worker('decode', 2, 1)]);
    twin = await startTestTwin({
      config: { startupTimeS: 3 },
      cluster: { client, namespace: ns, target: 'agg' },
    });
    const s = await waitFor('Ready', async () => {
      const r = await status('agg');
      return ready(r.status)?.status === 'True' ? r : undefined;
    });
    expect(s.status).toMatchObject({
      state: 'successful',
      observedGeneration: s.generation,
      components: {
        decode: { replicas: 2, readyReplicas: 2, updatedReplicas: 2 },
        Frontend: { readyReplicas: 1 },
      },
    });
    expect(ready(s.status)).toMatchObject({
      reason: 'all_resources_are_ready',
      message: 'All resources are ready',
    });
    expect(workerSeries(await twin.runtime.scrape())).toHaveLength(2);
    expect(twin.metrics.dynamoNamespace).toBe(`${ns}-agg`);
  });

  it('follows a replica change with cold starts: pending while workers start, then Ready', async () => {
    await setComponents('agg', [frontend('round-robin'), worker('decode', 4, 1)]);
    const pending = await waitFor('pending while starting', async () => {
      const r = await status('agg');
      return ready(r.status)?.status === 'False' ? r : undefined;
    });
    expect(ready(pending.status)).toMatchObject({
      reason: 'some_resources_are_not_ready',
      message: expect.stringContaining('2/4 replicas ready'),
    });
    expect(twin.sim.workers().filter((w) => w.state === 'starting')).toHaveLength(2);
    const done = await waitFor(
      'Ready after the cold start',
      async () => {
        const r = await status('agg');
        return ready(r.status)?.status === 'True' ? r : undefined;
      },
      20_000,
    );
    expect(done.status.components?.decode).toMatchObject({ replicas: 4, readyReplicas: 4 });
    expect(workerSeries(await twin.runtime.scrape())).toHaveLength(4);
  });

  it('rolls the workers onto a new tensor-parallel size, one cold start at a time', async () => {
    const before = new Set(twin.sim.workers().map((w) => w.id));
    await setComponents('agg', [frontend('round-robin'), worker('decode', 4, 2)]);
    const rolling = await waitFor('a rolling update', async () => {
      const r = await status('agg');
      return ready(r.status)?.reason === 'rolling_update_in_progress' ? r : undefined;
    });
    expect(rolling.status.state).toBe('pending');
    await waitFor(
      'Ready on the new revision',
      async () => {
        const r = await status('agg');
        return ready(r.status)?.status === 'True' && r.status.components?.decode?.updatedReplicas === 4;
      },
      60_000,
    );
    const live = twin.sim.workers().filter((w) => w.state !== 'gone');
    expect(live).toHaveLength(4);
    for (const w of live) expect(before.has(w.id)).toBe(false);
    expect(workerSeries(await twin.runtime.scrape()).sort()).toEqual(live.map((w) => String(w.id)).sort());
  });

  it('switches the router without restarting workers', async () => {
    const ids = twin.sim
      .workers()
      .filter((w) => w.state !== 'gone')
      .map((w) => w.id);
    await setComponents('agg', [frontend('kv'), worker('decode', 4, 2)]);
    await waitFor('the router followed', () => twin.cluster?.current?.settings.router.mode === 'KV');
    expect(
      twin.sim
        .workers()
        .filter((w) => w.state !== 'gone')
        .map((w) => w.id),
    ).toEqual(ids);
    const r = await status('agg');
    expect(ready(r.status)?.status).toBe('True');
  });
});

describe('the scaling-adapter path', () => {
  it('creates the adapter, and scaling it through /scale moves the DGD and the fleet', async () => {
    await setComponents('scaled', [frontend('kv'), worker('decode', 2, 1, { scalingAdapter: {} })]);
    const twin = await startTestTwin({
      config: { startupTimeS: 1 },
      cluster: { client, namespace: ns, target: 'scaled' },
    });
    const adapter = await waitFor('the adapter', () =>
      client
        .get<{
          spec: { replicas: number; dgdRef: object };
          status?: { replicas?: number; selector?: string };
        }>(pathOf(DYNAMO_SCALING_ADAPTERS, ns, 'scaled-decode'))
        .then((a) => (a.status?.replicas === 2 ? a : undefined)),
    );
    expect(adapter.spec).toEqual({ replicas: 2, dgdRef: { name: 'scaled', componentName: 'decode' } });
    await client.mergePatch(pathOf(DYNAMO_SCALING_ADAPTERS, ns, 'scaled-decode', 'scale'), {
      spec: { replicas: 3 },
    });
    await waitFor('the DGD took the adapter replicas', async () => {
      const o = await client.get<{ spec: { components: { name: string; replicas: number }[] } }>(
        pathOf(DYNAMO_GRAPH_DEPLOYMENTS_V1BETA1, ns, 'scaled'),
      );
      return o.spec.components.find((c) => c.name === 'decode')?.replicas === 3;
    });
    await waitFor(
      'Ready with 3 workers',
      async () => {
        const r = await status('scaled');
        return ready(r.status)?.status === 'True' && r.status.components?.decode?.readyReplicas === 3;
      },
      20_000,
    );
    expect(twin.sim.workers().filter((w) => w.state === 'ready')).toHaveLength(3);
    await twin.stop();
  });
});

describe('a twin following a v1alpha1 DynamoGraphDeployment', () => {
  it('reads spec.services and writes status.services', async () => {
    await client.create(pathOf(DYNAMO_GRAPH_DEPLOYMENTS, ns), {
      apiVersion: 'nvidia.com/v1alpha1',
      kind: 'DynamoGraphDeployment',
      metadata: { name: 'alpha' },
      spec: {
        services: {
          Frontend: { componentType: 'frontend', replicas: 1 },
          VllmDecodeWorker: {
            componentType: 'worker',
            replicas: 3,
            resources: { limits: { gpu: '1' } },
            extraPodSpec: {
              mainContainer: { args: ['--model', 'Qwen/Qwen3-8B', '--tensor-parallel-size', '1'] },
            },
          },
        },
      },
    });
    const twin = await startTestTwin({ cluster: { client, namespace: ns, target: 'alpha' } });
    const s = await waitFor('Ready', async () => {
      const r = await status('alpha');
      return ready(r.status)?.status === 'True' ? r : undefined;
    });
    expect(s.status.services?.VllmDecodeWorker).toMatchObject({
      replicas: 3,
      readyReplicas: 3,
      componentName: 'alpha-vllmdecodeworker',
    });
    expect(s.status.components).toBeUndefined();
    await twin.stop();
  });
});

describe('a twin following a disaggregated DynamoGraphDeployment', () => {
  it('serves through prefill and decode pools and follows a prefill scale-up', async () => {
    const prefill = (replicas: number) => ({
      ...worker('prefill', replicas, 1),
      type: 'prefill',
    });
    await setComponents('disagg', [frontend('kv'), prefill(1), worker('decode', 2, 1)]);
    const twin = await startTestTwin({
      config: { startupTimeS: 2 },
      cluster: { client, namespace: ns, target: 'disagg' },
    });
    await waitFor('Ready', async () => ready((await status('disagg')).status)?.status === 'True');
    const byRole = () => {
      const out: Record<string, number> = {};
      for (const w of twin.sim.workers()) if (w.state === 'ready') out[w.role] = (out[w.role] ?? 0) + 1;
      return out;
    };
    expect(byRole()).toEqual({ prefill: 1, decode: 2 });
    const res = await fetch(`${twin.url}/v1/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: twin.metrics.model, prompt: 'hello '.repeat(400), max_tokens: 8 }),
    });
    expect(res.status).toBe(200);
    expect(((await res.json()) as { usage: { completion_tokens: number } }).usage.completion_tokens).toBe(8);

    await setComponents('disagg', [frontend('kv'), prefill(3), worker('decode', 2, 1)]);
    const done = await waitFor(
      'Ready with three prefill workers',
      async () => {
        const r = await status('disagg');
        return ready(r.status)?.status === 'True' && r.status.components?.prefill?.readyReplicas === 3
          ? r
          : undefined;
      },
      20_000,
    );
    expect(done.status.components?.decode).toMatchObject({ replicas: 2, readyReplicas: 2 });
    expect(byRole()).toEqual({ prefill: 3, decode: 2 });
    await twin.stop();
  });
});

describe('a graph that pins no GPU by nodeSelector', () => {
  it('is priced on the GPU named by --gpu, as the operator assumes its inventory', async () => {
    const bare = worker('decode', 1, 1);
    delete (bare.podTemplate.spec as { nodeSelector?: object }).nodeSelector;
    await setComponents('nogpu', [frontend('round-robin'), bare]);
    const named = await startTestTwin({
      config: { hardware: { gpu: 'NVIDIA-H100-80GB-HBM3' } },
      cluster: { client, namespace: ns, target: 'nogpu' },
    });
    expect(named.cluster?.current?.settings.gpuType).toBe('h100_sxm');
    await named.stop(0);
    const unnamed = await startTestTwin({ cluster: { client, namespace: ns, target: 'nogpu' } });
    expect(unnamed.cluster?.current?.settings.gpuType).toBe('unknown');
    await unnamed.stop(0);
  });
});
