import { describe, expect, it } from 'vitest';
import {
  computeInventory,
  effectiveBudget,
  gpuTypeForProduct,
  listGpuInventory,
  listPaged,
  type NodeLike,
  type PodLike,
  podGpus,
  podGpuView,
} from '../../../src/operator/gpu-inventory.ts';
import type { KubeClient } from '../../../src/operator/kube/client.ts';
import { readDynamoBaseline } from '../../../src/operator/target/dynamo.ts';

const dgd = (services: object) => ({ metadata: { name: 'llama' }, spec: { services } });
/** Passes an object literal through a variable: KubeObject does not declare spec. */
const lit = <T>(o: T): T => o;

describe('readDynamoBaseline', () => {
  it('reads an aggregated graph: replicas, GPU limits, TP, router, engine flags and model', () => {
    const r = readDynamoBaseline(
      dgd({
        Frontend: {
          componentType: 'frontend',
          replicas: 1,
          extraPodSpec: {
            mainContainer: {
              args: ['python3 -m dynamo.frontend --router-mode kv --kv-overlap-score-weight 0.5'],
            },
          },
        },
        VllmWorker: {
          componentType: 'worker',
          replicas: 3,
          resources: { limits: { gpu: '2' } },
          extraPodSpec: {
            nodeSelector: { 'nvidia.com/gpu.product': 'NVIDIA-H200' },
            mainContainer: {
              command: ['python3', '-m', 'dynamo.vllm'],
              args: ['--model', 'Qwen/Qwen3-8B', '--tensor-parallel-size=2', '--max-num-seqs', '128'],
            },
          },
        },
      }),
      ['h100_sxm'],
    );
    expect('settings' in r && r.settings).toEqual({
      model: 'Qwen/Qwen3-8B',
      gpuType: 'h200_sxm',
      gpus: 6,
      topology: 'Aggregated',
      aggregated: { workers: 3, tensorParallel: 2, gpusPerWorker: 2 },
      router: { mode: 'KV', overlapWeight: 0.5 },
      planner: { enabled: false },
      engine: { backend: 'vLLM', maxNumSeqs: 128 },
    });
  });

  it('reads a disaggregated graph with a planner and the router from the environment', () => {
    const r = readDynamoBaseline(
      dgd({
        Frontend: { componentType: 'frontend', envs: [{ name: 'DYN_ROUTER_MODE', value: 'kv' }] },
        Planner: { componentType: 'planner' },
        Prefill: {
          componentType: 'worker',
          subComponentType: 'prefill',
          replicas: 2,
          resources: { limits: { gpu: '1' } },
        },
        Decode: {
          componentType: 'worker',
          subComponentType: 'decode',
          replicas: 1,
          resources: { limits: { gpu: '4' } },
          extraPodSpec: { mainContainer: { args: ['--tensor-parallel-size 4'] } },
        },
      }),
      ['b200_sxm'],
    );
    if (!('settings' in r)) throw new Error(r.error);
    expect(r.settings.topology).toBe('Disaggregated');
    expect(r.settings.prefill).toEqual({ workers: 2, tensorParallel: 1, gpusPerWorker: 1 });
    expect(r.settings.decode).toEqual({ workers: 1, tensorParallel: 4, gpusPerWorker: 4 });
    expect(r.settings.gpus).toBe(6);
    expect(r.settings.router.mode).toBe('KV');
    expect(r.settings.planner.enabled).toBe(true);
    expect(r.settings.gpuType).toBe('b200_sxm');
  });

  it('recognises SGLang workers and their flags', () => {
    const r = readDynamoBaseline(
      dgd({
        SGLangWorker: {
          componentType: 'worker',
          replicas: 2,
          resources: { limits: { gpu: '2' } },
          extraPodSpec: {
            mainContainer: {
              args: ['python3 -m dynamo.sglang --model-path Qwen/Qwen3-8B --tp 2 --page-size 16'],
            },
          },
        },
      }),
      ['h100_sxm'],
    );
    if (!('settings' in r)) throw new Error(r.error);
    expect(r.settings.engine).toEqual({ backend: 'SGLang', blockSize: 16 });
    expect(r.settings.aggregated).toEqual({ workers: 2, tensorParallel: 2, gpusPerWorker: 2 });
    expect(r.settings.model).toBe('Qwen/Qwen3-8B');
  });

  it('refuses a graph without workers, or with prefill but no decode', () => {
    expect(readDynamoBaseline(dgd({ Frontend: { componentType: 'frontend' } }), [])).toHaveProperty('error');
    expect(
      readDynamoBaseline(dgd({ P: { componentType: 'worker', subComponentType: 'prefill' } }), []),
    ).toHaveProperty('error');
  });

  // v1beta1 (Dynamo's stored version): spec.components, a list keyed by name, pod templates.
  const main = (args: string[], extra: object = {}) => ({
    spec: { containers: [{ name: 'main', image: 'vllm-runtime', args, ...extra }] },
  });

  it('reads a v1beta1 graph: components by type, the main container, nvidia.com/gpu limits', () => {
    const r = readDynamoBaseline(
      lit({
        metadata: { name: 'llama' },
        spec: {
          backendFramework: 'vllm',
          env: [{ name: 'DYN_ROUTER_MODE', value: 'round-robin' }],
          components: [
            {
              name: 'Frontend',
              type: 'frontend',
              podTemplate: main(['python3 -m dynamo.frontend'], {
                env: [{ name: 'DYN_ROUTER_MODE', value: 'kv' }],
              }),
            },
            { name: 'Planner', type: 'planner' },
            {
              name: 'prefill',
              type: 'prefill',
              replicas: 2,
              podTemplate: {
                spec: {
                  nodeSelector: { 'nvidia.com/gpu.product': 'NVIDIA-H100-80GB-HBM3' },
                  containers: [
                    {
                      name: 'main',
                      command: ['python3', '-m', 'dynamo.vllm'],
                      args: ['--model', 'Qwen/Qwen3-8B', '--tensor-parallel-size', '2'],
                      resources: { limits: { 'nvidia.com/gpu': 2 } },
                    },
                    { name: 'sidecar', image: 'busybox', args: ['--tensor-parallel-size', '8'] },
                  ],
                },
              },
            },
            {
              name: 'decode',
              type: 'decode',
              replicas: 3,
              scalingAdapter: {},
              podTemplate: main(['--model Qwen/Qwen3-8B --tensor-parallel-size 1'], {
                resources: { limits: { 'nvidia.com/gpu': '1' } },
              }),
            },
          ],
        },
      }),
      [],
    );
    if (!('settings' in r)) throw new Error(r.error);
    expect(r.settings).toMatchObject({
      model: 'Qwen/Qwen3-8B',
      gpuType: 'h100_sxm',
      gpus: 7,
      topology: 'Disaggregated',
      prefill: { workers: 2, tensorParallel: 2, gpusPerWorker: 2 },
      decode: { workers: 3, tensorParallel: 1, gpusPerWorker: 1 },
      // The component's own env overrides the graph-level one.
      router: { mode: 'KV' },
      planner: { enabled: true },
    });
  });

  it('reads v1alpha1 and v1beta1 forms of the same graph alike', () => {
    const alpha = readDynamoBaseline(
      dgd({
        Frontend: {
          componentType: 'frontend',
          extraPodSpec: { mainContainer: { args: ['--router-mode kv'] } },
        },
        W: {
          componentType: 'worker',
          replicas: 4,
          resources: { limits: { gpu: '2' } },
          extraPodSpec: { mainContainer: { args: ['--tensor-parallel-size', '2'] } },
        },
      }),
      ['b200_sxm'],
    );
    const beta = readDynamoBaseline(
      lit({
        metadata: { name: 'llama' },
        spec: {
          components: [
            { name: 'Frontend', type: 'frontend', podTemplate: main(['--router-mode kv']) },
            {
              name: 'W',
              type: 'worker',
              replicas: 4,
              podTemplate: main(['--tensor-parallel-size', '2'], {
                resources: { limits: { 'nvidia.com/gpu': '2' } },
              }),
            },
          ],
        },
      }),
      ['b200_sxm'],
    );
    expect(beta).toEqual(alpha);
  });

  it('refuses a v1beta1 spec that breaks the schema, naming the field', () => {
    const r = readDynamoBaseline(
      lit({ metadata: { name: 'x' }, spec: { components: [{ name: 'bad name!' }] } }),
      [],
    );
    expect(r).toHaveProperty('error');
    expect((r as { error: string }).error).toContain('spec.components.0.name');
  });
});

describe('GPU inventory', () => {
  const node = (name: string, product: string | undefined, gpus: number, extra: object = {}): NodeLike => ({
    metadata: {
      name,
      labels: product
        ? { 'nvidia.com/gpu.product': product, 'nvidia.com/gpu.count': String(gpus) }
        : ({} as Record<string, string>),
    },
    status: { allocatable: { 'nvidia.com/gpu': String(gpus) } },
    ...extra,
  });
  const pod = (nodeName: string, gpus: number, phase = 'Running') => ({
    spec: { nodeName, containers: [{ resources: { limits: { 'nvidia.com/gpu': String(gpus) } } }] },
    status: { phase },
  });

  it('maps products onto catalog ids, strips sharing suffixes and rejects MIG slices', () => {
    expect(gpuTypeForProduct('NVIDIA-H100-SXM5-80GB')).toBe('h100_sxm');
    expect(gpuTypeForProduct('NVIDIA-H100-80GB-HBM3-SHARED')).toBe('h100_sxm');
    expect(gpuTypeForProduct('NVIDIA-H200')).toBe('h200_sxm');
    expect(gpuTypeForProduct('NVIDIA-B200')).toBe('b200_sxm');
    expect(gpuTypeForProduct('NVIDIA-GB200')).toBe('gb200');
    expect(gpuTypeForProduct('NVIDIA-A100-SXM4-40GB-MIG-1g.5gb')).toBeUndefined();
    expect(gpuTypeForProduct('Tesla-T4')).toBeUndefined();
    expect(gpuTypeForProduct('NVIDIA-H100-PCIe')).toBe('h100_pcie');
    expect(gpuTypeForProduct('NVIDIA-L40S')).toBe('l40s');
    // A 40 GB A100 is a different GPU from the catalog's 80 GB parts: unknown, not mis-sized.
    expect(gpuTypeForProduct('NVIDIA-A100-PCIE-40GB')).toBeUndefined();
  });

  it('subtracts what running pods request, skips unschedulable nodes and reports unknown products', () => {
    const inv = computeInventory(
      [
        node('a', 'NVIDIA-H100-SXM5-80GB', 8),
        node('b', 'NVIDIA-H100-SXM5-80GB', 8),
        node('c', 'NVIDIA-H100-SXM5-80GB', 8, { spec: { unschedulable: true } }),
        node('d', 'Tesla-T4', 4),
        node('e', undefined, 0),
      ],
      [pod('a', 2), pod('a', 1), pod('b', 4, 'Succeeded'), pod('', 8)],
    );
    expect(inv.types).toEqual([
      {
        gpuType: 'h100_sxm',
        product: 'NVIDIA-H100-SXM5-80GB',
        nodes: 2,
        gpus: 16,
        requested: 3,
        available: 13,
      },
    ]);
    expect(inv.unknownProducts).toEqual([{ product: 'Tesla-T4', nodes: 1, gpus: 4 }]);
  });

  it('counts init containers by their maximum', () => {
    expect(
      podGpus({
        spec: {
          containers: [{ resources: { limits: { 'nvidia.com/gpu': '1' } } }],
          initContainers: [{ resources: { limits: { 'nvidia.com/gpu': '2' } } }],
        },
      }),
    ).toBe(2);
  });

  it('budgets free GPUs plus what the target holds in Auto mode, the map in Explicit mode', () => {
    const inv = computeInventory([node('a', 'NVIDIA-H100-SXM5-80GB', 8)], [pod('a', 4)]);
    expect(effectiveBudget(inv, { mode: 'Auto' }, { gpuType: 'h100_sxm', gpus: 4 })).toEqual({ h100_sxm: 8 });
    expect(
      effectiveBudget(inv, { mode: 'Auto', gpus: { h100_sxm: 6 } }, { gpuType: 'h100_sxm', gpus: 4 }),
    ).toEqual({
      h100_sxm: 6,
    });
    expect(
      effectiveBudget(
        inv,
        { mode: 'Explicit', gpus: { h200_sxm: 16 }, maxTotalGPUs: 8 },
        { gpuType: 'x', gpus: 0 },
      ),
    ).toEqual({
      h200_sxm: 8,
    });
  });
});

describe('inventory listing', () => {
  it('pages through Nodes and Pods and keeps no more of a Pod than its node, phase and GPUs', async () => {
    const calls: string[] = [];
    const pod = (name: string, node: string, gpus: number) => ({
      metadata: { name },
      spec: {
        nodeName: node,
        containers: [
          {
            env: [{ name: 'SECRET_TOKEN', value: 'hunter2' }],
            resources: { limits: { 'nvidia.com/gpu': String(gpus) } },
          },
        ],
      },
      status: { phase: 'Running' },
    });
    const pages: Record<string, { items: unknown[]; metadata: { continue?: string } }[]> = {
      '/api/v1/nodes': [
        {
          items: [
            {
              metadata: {
                name: 'n1',
                labels: { 'nvidia.com/gpu.product': 'NVIDIA-H100-SXM5-80GB', 'nvidia.com/gpu.count': '8' },
              },
              status: { allocatable: { 'nvidia.com/gpu': '8' } },
            },
          ],
          metadata: {},
        },
      ],
      '/api/v1/pods': [
        { items: [pod('a', 'n1', 2), pod('b', 'n1', 0)], metadata: { continue: 'page2' } },
        { items: [pod('c', 'n1', 1)], metadata: {} },
      ],
    };
    const client = {
      async get(path: string, query: Record<string, unknown>) {
        calls.push(`${path}?limit=${query.limit}&continue=${query.continue ?? ''}`);
        const list = pages[path];
        return query.continue === 'page2' ? list[1] : list[0];
      },
    } as unknown as KubeClient;
    const pods = await listPaged(client, '/api/v1/pods', {}, podGpuView);
    expect(pods).toHaveLength(2); // the pod without GPUs is dropped
    expect(JSON.stringify(pods)).not.toContain('hunter2');
    expect(pods.map((p) => podGpus(p as PodLike))).toEqual([2, 1]);
    const inv = await listGpuInventory(client, new Date('2026-01-01T00:00:00Z'));
    expect(inv.types[0]).toMatchObject({ gpus: 8, requested: 3, available: 5 });
    expect(calls).toContain('/api/v1/pods?limit=500&continue=page2');
  });
});
