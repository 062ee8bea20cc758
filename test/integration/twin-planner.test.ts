import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { KubeClient } from '../../src/operator/kube/client.ts';
import {
  DYNAMO_GRAPH_DEPLOYMENTS_V1BETA1,
  DYNAMO_SCALING_ADAPTERS,
  pathOf,
} from '../../src/operator/kube/resources.ts';
import { startTestTwin, stopTestTwins } from '../support/twin.ts';
import { createNamespace, installCrds, kube, waitFor } from './support.ts';

/**
 * A DGD with a Planner component: the twin runs the simulator's Planner with the component's configuration,
 * the Planner's replica decisions drive the simulated fleet and are written back as Dynamo's Planner writes
 * them: through the component's scaling adapter (whose controller moves the DGD), or into the DGD.
 */

const TRACE = fileURLToPath(new URL('../fixtures/traces/conversation-sample.jsonl', import.meta.url));

let client: KubeClient;
let ns: string;

beforeAll(async () => {
  client = kube();
  await installCrds(client);
  ns = await createNamespace(client, 'twin-planner');
});

afterAll(async () => {
  await stopTestTwins();
  await client.close();
});

const plannerConfig = {
  mode: 'agg',
  optimization_target: 'throughput',
  throughput_adjustment_interval: 20,
  max_gpu_budget: 4,
  min_endpoint: 1,
};

function dgd(name: string, scalingAdapter: boolean) {
  return {
    apiVersion: 'nvidia.com/v1beta1',
    kind: 'DynamoGraphDeployment',
    metadata: { name, namespace: ns },
    spec: {
      backendFramework: 'vllm',
      components: [
        {
          name: 'Frontend',
          type: 'frontend',
          replicas: 1,
          podTemplate: { spec: { containers: [{ name: 'main', args: ['python3 -m dynamo.frontend'] }] } },
        },
        {
          name: 'decode',
          type: 'worker',
          replicas: 1,
          ...(scalingAdapter ? { scalingAdapter: {} } : {}),
          podTemplate: {
            spec: {
              containers: [
                {
                  name: 'main',
                  command: ['python3', '-m', 'dynamo.vllm'],
                  args: ['--model', 'Qwen/Qwen3-8B', '--tensor-parallel-size', '1'],
                  resources: { limits: { 'nvidia.com/gpu': '1' } },
                },
              ],
            },
          },
        },
        {
          name: 'Planner',
          type: 'planner',
          replicas: 1,
          podTemplate: {
            spec: {
              containers: [
                {
                  name: 'main',
                  args: ['python3 -m dynamo.planner', '--config', JSON.stringify(plannerConfig)],
                },
              ],
            },
          },
        },
      ],
    },
  };
}

type Dgd = { spec: { components: { name: string; replicas?: number }[] } };
const decodeReplicas = async (name: string) =>
  (await client.get<Dgd>(pathOf(DYNAMO_GRAPH_DEPLOYMENTS_V1BETA1, ns, name))).spec.components.find(
    (c) => c.name === 'decode',
  )?.replicas;

describe("a twin following a DGD with Dynamo's Planner", () => {
  for (const adapter of [false, true]) {
    it(`writes the Planner's decisions ${adapter ? 'through the scaling adapter' : 'into the DGD'}, and the fleet follows them`, async () => {
      const name = adapter ? 'planned-dgdsa' : 'planned';
      await client.create(pathOf(DYNAMO_GRAPH_DEPLOYMENTS_V1BETA1, ns), dgd(name, adapter));
      const twin = await startTestTwin({
        config: { startupTimeS: 10 },
        cluster: { client, namespace: ns, target: name },
        trace: { path: TRACE, loop: true },
        timeScale: 20,
      });
      const scaled = await waitFor(
        'a Planner decision in the DGD',
        async () => {
          const r = await decodeReplicas(name);
          return r !== undefined && r > 1 ? r : undefined;
        },
        60_000,
      );
      expect(scaled).toBeLessThanOrEqual(4);
      await waitFor(
        'the simulated fleet at the decided size',
        () =>
          twin.sim.workers().filter((w) => w.state === 'ready' || w.state === 'starting').length === scaled,
        30_000,
      );
      if (adapter) {
        const a = await client.get<{ spec: { replicas: number }; status?: { replicas?: number } }>(
          pathOf(DYNAMO_SCALING_ADAPTERS, ns, `${name}-decode`),
        );
        expect(a.spec.replicas).toBeGreaterThan(1);
      }
      await twin.stop(0);
    }, 120_000);
  }
});
