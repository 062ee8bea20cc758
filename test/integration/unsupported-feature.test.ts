import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { KubeClient } from '../../src/operator/kube/client.ts';
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
      for (const [name, feature] of [
        ['pp', /pipeline parallelism \(service VllmDecodeWorker: 2 stages\)/],
        ['spec', /speculative decoding with method 'ngram'/],
      ] as const) {
        const dt = await waitFor(`${name} degraded`, async () => {
          const d = await getTuning(client, ns, name);
          return condition(d, 'Degraded')?.status === 'True' ? d : undefined;
        });
        const degraded = condition(dt, 'Degraded');
        expect(degraded?.reason).toBe('UnsupportedFeature');
        expect(degraded?.message).toMatch(feature);
        const events = (await listEvents(client, ns)).filter((e) => e.regarding.name === name);
        expect(events.some((e) => e.type === 'Warning' && e.reason === 'UnsupportedFeature')).toBe(true);
        expect(dt.status?.currentRecommendation).toBeUndefined();
      }
      expect(await listRecommendations(client, ns)).toHaveLength(0);
    } finally {
      await op.stop();
    }
  });
});
