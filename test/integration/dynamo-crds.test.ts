import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ApiError, type KubeClient } from '../../src/operator/kube/client.ts';
import {
  DYNAMO_GRAPH_DEPLOYMENTS,
  DYNAMO_GRAPH_DEPLOYMENTS_V1BETA1,
  DYNAMO_SCALING_ADAPTERS,
  pathOf,
} from '../../src/operator/kube/resources.ts';
import { createNamespace, installCrds, kube } from './support.ts';

/**
 * The stand-in Dynamo CRDs (config/dev/) on a real kube-apiserver: v1beta1 `spec.components` as a list keyed
 * by name (validation, CEL rules, server-side apply merging by name), the deprecated v1alpha1 still served,
 * and the scaling adapter's scale subresource.
 */

let client: KubeClient;
let ns: string;

beforeAll(async () => {
  client = kube();
  await installCrds(client);
  ns = await createNamespace(client, 'dynamo-crds');
});
afterAll(() => client.close());

const dgdPath = (name?: string) => pathOf(DYNAMO_GRAPH_DEPLOYMENTS_V1BETA1, ns, name);

const worker = (name: string, replicas: number, extra: object = {}) => ({
  name,
  type: 'worker',
  replicas,
  podTemplate: {
    spec: {
      containers: [
        {
          name: 'main',
          image: 'nvcr.io/nvidia/ai-dynamo/vllm-runtime:1.0.0',
          args: ['--model', 'Qwen/Qwen3-8B', '--tensor-parallel-size', '1'],
          resources: { limits: { 'nvidia.com/gpu': '1' } },
        },
      ],
    },
  },
  ...extra,
});

const dgd = (name: string, components: object[]) => ({
  apiVersion: 'nvidia.com/v1beta1',
  kind: 'DynamoGraphDeployment',
  metadata: { name, namespace: ns },
  spec: { backendFramework: 'vllm', components },
});

async function rejection(path: string, body: unknown): Promise<string> {
  try {
    await client.create(path, body);
  } catch (e) {
    expect(e).toBeInstanceOf(ApiError);
    expect((e as ApiError).status).toBe(422);
    return (e as ApiError).message;
  }
  throw new Error('expected the apiserver to reject the object');
}

describe('DynamoGraphDeployment stand-in', () => {
  it('accepts v1beta1 components and validates them as Dynamo does', async () => {
    await client.create(
      dgdPath(),
      dgd('ok', [{ name: 'Frontend', type: 'frontend', replicas: 1 }, worker('decode', 2)]),
    );
    expect(await rejection(dgdPath(), dgd('dup', [worker('decode', 1), worker('Decode', 1)]))).toContain(
      'component names must be unique case-insensitively',
    );
    expect(
      await rejection(
        dgdPath(),
        dgd('epp', [
          { name: 'a', type: 'epp' },
          { name: 'b', type: 'epp' },
        ]),
      ),
    ).toContain('at most one component may have type epp');
    expect(await rejection(dgdPath(), dgd('bad-type', [{ name: 'a', type: 'gpu' }]))).toContain(
      'Unsupported value',
    );
    expect(await rejection(dgdPath(), dgd('bad-name', [{ name: 'a_b' }]))).toContain(
      'spec.components[0].name',
    );
    expect(await rejection(dgdPath(), dgd('neg', [worker('w', -1)]))).toContain(
      'spec.components[0].replicas',
    );
    const many = Array.from({ length: 26 }, (_, i) => ({ name: `c${i}` }));
    expect(await rejection(dgdPath(), dgd('many', many))).toContain('must have at most 25 items');
  });

  it('merges components by name under server-side apply, with per-field ownership', async () => {
    await client.apply(
      dgdPath('ssa'),
      dgd('ssa', [worker('prefill', 1), worker('decode', 2)]),
      'gitops',
      false,
    );
    // Another manager sets only the decode replicas: the rest of the list is untouched.
    await client.apply(
      dgdPath('ssa'),
      {
        apiVersion: 'nvidia.com/v1beta1',
        kind: 'DynamoGraphDeployment',
        metadata: { name: 'ssa' },
        spec: { components: [{ name: 'decode', replicas: 5 }] },
      },
      'servetune',
      true,
    );
    const got = await client.get<{
      spec: { components: { name: string; replicas: number; podTemplate?: object }[] };
    }>(dgdPath('ssa'));
    expect(got.spec.components.map((c) => [c.name, c.replicas])).toEqual([
      ['prefill', 1],
      ['decode', 5],
    ]);
    expect(got.spec.components[1].podTemplate).toBeDefined();
    // Without force, taking a field another manager owns is a conflict naming that manager.
    try {
      await client.apply(
        dgdPath('ssa'),
        {
          apiVersion: 'nvidia.com/v1beta1',
          kind: 'DynamoGraphDeployment',
          metadata: { name: 'ssa' },
          spec: { components: [{ name: 'prefill', replicas: 3 }] },
        },
        'servetune',
        false,
      );
      throw new Error('expected a conflict');
    } catch (e) {
      expect((e as ApiError).status).toBe(409);
      expect((e as ApiError).message).toContain('gitops');
    }
  });

  it('still serves the deprecated v1alpha1 (spec.services), and both endpoints read the same objects', async () => {
    await client.create(pathOf(DYNAMO_GRAPH_DEPLOYMENTS, ns), {
      apiVersion: 'nvidia.com/v1alpha1',
      kind: 'DynamoGraphDeployment',
      metadata: { name: 'alpha' },
      spec: {
        services: { Worker: { componentType: 'worker', replicas: 2, resources: { limits: { gpu: '1' } } } },
      },
    });
    const viaBeta = await client.get<{
      apiVersion: string;
      spec: { services: Record<string, { replicas: number }> };
    }>(dgdPath('alpha'));
    expect(viaBeta.apiVersion).toBe('nvidia.com/v1beta1');
    expect(viaBeta.spec.services.Worker.replicas).toBe(2);
    const viaAlpha = await client.get<{ spec: { components: unknown[] } }>(
      pathOf(DYNAMO_GRAPH_DEPLOYMENTS, ns, 'ok'),
    );
    expect(viaAlpha.spec.components).toHaveLength(2);
  });
});

describe('DynamoGraphDeploymentScalingAdapter stand-in', () => {
  const adapter = (name: string, dgdRef: object, replicas = 2) => ({
    apiVersion: 'nvidia.com/v1beta1',
    kind: 'DynamoGraphDeploymentScalingAdapter',
    metadata: { name, namespace: ns },
    spec: { replicas, dgdRef },
  });

  it('needs exactly one of componentName or componentGroupName', async () => {
    expect(
      await rejection(pathOf(DYNAMO_SCALING_ADAPTERS, ns), adapter('neither', { name: 'ok' })),
    ).toContain('exactly one of componentName or componentGroupName must be set');
  });

  it('serves the scale subresource on spec.replicas / status.replicas / status.selector', async () => {
    await client.create(
      pathOf(DYNAMO_SCALING_ADAPTERS, ns),
      adapter('ok-decode', { name: 'ok', componentName: 'decode' }),
    );
    await client.mergePatch(pathOf(DYNAMO_SCALING_ADAPTERS, ns, 'ok-decode', 'status'), {
      status: { replicas: 2, selector: 'nvidia.com/dynamo-component=decode' },
    });
    const scale = await client.get<{
      kind: string;
      spec: { replicas: number };
      status: { replicas: number; selector: string };
    }>(pathOf(DYNAMO_SCALING_ADAPTERS, ns, 'ok-decode', 'scale'));
    expect(scale).toMatchObject({
      kind: 'Scale',
      spec: { replicas: 2 },
      status: { replicas: 2, selector: 'nvidia.com/dynamo-component=decode' },
    });
    await client.mergePatch(pathOf(DYNAMO_SCALING_ADAPTERS, ns, 'ok-decode', 'scale'), {
      spec: { replicas: 4 },
    });
    const after = await client.get<{ spec: { replicas: number } }>(
      pathOf(DYNAMO_SCALING_ADAPTERS, ns, 'ok-decode'),
    );
    expect(after.spec.replicas).toBe(4);
  });
});
