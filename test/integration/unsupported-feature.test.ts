import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { KubeClient } from '../../src/operator/kube/client.ts';
import { DYNAMO_GRAPH_DEPLOYMENTS, pathOf } from '../../src/operator/kube/resources.ts';
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
  waitFor,
} from './support.ts';

/**
 * A target using a feature the simulator does not model is reported, not tuned as if the feature were absent:
 * the DeploymentTuning gets Degraded (UnsupportedFeature) naming it, a Warning Event, and no recommendation.
 * So is a Planner whose configuration cannot be read (PlannerConfigInvalid, naming the component and field).
 */

let client: KubeClient;
let ns: string;
const NODES = ['unsupported-gpu'];

beforeAll(async () => {
  client = kube();
  await installCrds(client);
  ns = await createNamespace(client, 'unsupported');
  await createGpuNode(client, NODES[0], 'NVIDIA-H100-SXM5-80GB', 8);
  await createDgd(client, ns, 'pipelined', 2, ['--pipeline-parallel-size', '2']);
  await createDgd(client, ns, 'ngram', 2, [
    '--speculative-config',
    '{"method": "ngram", "num_speculative_tokens": 3}',
  ]);
  await createDgd(client, ns, 'badplanner', 2);
  await client.mergePatch(pathOf(DYNAMO_GRAPH_DEPLOYMENTS, ns, 'badplanner'), {
    spec: {
      services: {
        Planner: {
          componentType: 'planner',
          replicas: 1,
          extraPodSpec: {
            mainContainer: { args: ['python3 -m dynamo.planner', '--config', '{"min_endpoint": 0}'] },
          },
        },
      },
    },
  });
  await putConfigMap(client, ns, 'traffic', { 'trace.jsonl': traceSample(60) });
});

afterAll(async () => {
  await deleteNodes(client, NODES);
  await client.close();
});

describe('a target with a feature the simulator does not model', () => {
  it('gets Degraded UnsupportedFeature naming the feature, a Warning Event, and no recommendation', async () => {
    const op = startOperator({ namespace: ns });
    await op.start();
    try {
      await createTuning(client, ns, 'pp', tuningSpec('pipelined', 'traffic'));
      await createTuning(client, ns, 'spec', tuningSpec('ngram', 'traffic'));
      await createTuning(client, ns, 'planner', tuningSpec('badplanner', 'traffic'));
      for (const [name, feature, reason] of [
        ['pp', /pipeline parallelism \(service VllmDecodeWorker: 2 stages\)/, 'UnsupportedFeature'],
        ['spec', /speculative decoding with method 'ngram'/, 'UnsupportedFeature'],
        ['planner', /Planner component 'Planner': --config: field 'min_endpoint'/, 'PlannerConfigInvalid'],
      ] as const) {
        const dt = await waitFor(`${name} degraded`, async () => {
          const d = await getTuning(client, ns, name);
          return condition(d, 'Degraded')?.status === 'True' ? d : undefined;
        });
        const degraded = condition(dt, 'Degraded');
        expect(degraded?.reason).toBe(reason);
        expect(degraded?.message).toMatch(feature);
        const events = (await listEvents(client, ns)).filter((e) => e.regarding.name === name);
        expect(events.some((e) => e.type === 'Warning' && e.reason === reason)).toBe(true);
        expect(dt.status?.currentRecommendation).toBeUndefined();
      }
      expect(await listRecommendations(client, ns)).toHaveLength(0);
    } finally {
      await op.stop();
    }
  });
});
