import { describe, expect, it } from 'vitest';
import type { ServingSettings } from '../../../src/api/index.ts';
import { readDynamoBaseline } from '../../../src/operator/target/dynamo.ts';
import {
  adapterScales,
  applyBody,
  parseConflict,
  planChange,
  readOwned,
  readTargetGraph,
  type TargetGraph,
} from '../../../src/operator/target/dynamo-apply.ts';
import { flagValue, setFlag } from '../../../src/operator/target/flags.ts';

/** The write side of a DGD: owned fields, in-place flag edits, server-side apply bodies in both shapes. */

const v1beta1 = (workerArgs: string[], opts: { adapter?: boolean; frontendEnv?: boolean } = {}) => ({
  apiVersion: 'nvidia.com/v1beta1',
  metadata: { name: 'llama', namespace: 'ns', generation: 3 },
  spec: {
    components: [
      {
        name: 'frontend',
        type: 'frontend',
        replicas: 1,
        podTemplate: {
          spec: {
            containers: [
              {
                name: 'main',
                args: opts.frontendEnv
                  ? ['python3 -m dynamo.frontend']
                  : ['python3 -m dynamo.frontend --router-mode round-robin'],
                ...(opts.frontendEnv && { env: [{ name: 'DYN_ROUTER_MODE', value: 'round-robin' }] }),
              },
            ],
          },
        },
      },
      {
        name: 'worker',
        type: 'worker',
        replicas: 4,
        ...(opts.adapter && { scalingAdapter: {} }),
        podTemplate: {
          spec: {
            containers: [
              {
                name: 'main',
                command: ['python3', '-m', 'dynamo.vllm'],
                args: workerArgs,
                resources: { limits: { 'nvidia.com/gpu': '1' } },
                env: [{ name: 'HF_TOKEN', value: 'secret' }],
              },
            ],
          },
        },
      },
    ],
  },
});

const v1alpha1 = {
  apiVersion: 'nvidia.com/v1alpha1',
  metadata: { name: 'llama', namespace: 'ns' },
  spec: {
    services: {
      Frontend: {
        componentType: 'frontend',
        replicas: 1,
        extraPodSpec: { mainContainer: { args: ['python3 -m dynamo.frontend --router-mode kv'] } },
      },
      VllmWorker: {
        componentType: 'worker',
        replicas: 2,
        resources: { limits: { gpu: '2' } },
        extraPodSpec: {
          mainContainer: { args: ['python3 -m dynamo.vllm --model Qwen/Qwen3-8B --tensor-parallel-size 2'] },
        },
      },
    },
  },
};

const graphOf = (o: object) => readTargetGraph(o) as TargetGraph;
const settingsOf = (o: object) => {
  const r = readDynamoBaseline(o as never, ['h100_sxm']);
  if ('error' in r) throw new Error(r.error);
  return r.settings;
};
const propose = (base: ServingSettings, over: Partial<ServingSettings>): ServingSettings => ({
  ...base,
  ...over,
});

describe('flags', () => {
  it('rewrites a flag in place in tokens, = form and shell strings, or appends it', () => {
    expect(setFlag(['--tp', '1', '--model', 'm'], ['--tp'], '4')).toEqual(['--tp', '4', '--model', 'm']);
    expect(setFlag(['--tp=1'], ['--tp'], '4')).toEqual(['--tp=4']);
    expect(setFlag(['python3 -m x --tp 1 --y 2'], ['--tp'], '8')).toEqual(['python3 -m x --tp 8 --y 2']);
    expect(setFlag(['python3 -m x --tp-size=1'], ['--tp', '--tp-size'], '2')).toEqual([
      'python3 -m x --tp-size=2',
    ]);
    expect(setFlag(['python3 -m x'], ['--tp'], '2')).toEqual(['python3 -m x --tp 2']);
    expect(setFlag(['--model', 'm'], ['--tp'], '2')).toEqual(['--model', 'm', '--tp', '2']);
    // A flag whose name is a prefix of another is not confused with it.
    expect(setFlag(['python3 -m x --tp-size 4'], ['--tp'], '2')).toEqual(['python3 -m x --tp-size 4 --tp 2']);
    // Given twice, the last occurrence is the one argparse keeps, whatever the spelling: that one changes.
    expect(setFlag(['python3 -m x --tp 1 --y 2 --tp-size=1 --z'], ['--tp', '--tp-size'], '4')).toEqual([
      'python3 -m x --tp 1 --y 2 --tp-size=4 --z',
    ]);
    expect(setFlag(['--tp', '1', 'python3 -m x --tp 2', '--tp=3'], ['--tp'], '8')).toEqual([
      '--tp',
      '1',
      'python3 -m x --tp 2',
      '--tp=8',
    ]);
    expect(flagValue(['--tp', '1', '--model', 'm', '--tp=3'], '--tp')).toBe('3');
    expect(flagValue(['--tp-size', '2', '--tp', '4'], '--tp', '--tp-size')).toBe('4');
  });
});

describe('owned fields and plans', () => {
  it('reads workers and the frontend, never other env entries', () => {
    const o = v1beta1(['--model', 'Qwen/Qwen3-8B', '--tensor-parallel-size', '1']);
    const owned = readOwned(o, graphOf(o), new Map());
    expect(owned).toEqual({
      apiVersion: 'nvidia.com/v1beta1',
      components: [
        { name: 'frontend', args: ['python3 -m dynamo.frontend --router-mode round-robin'] },
        {
          name: 'worker',
          replicas: 4,
          args: ['--model', 'Qwen/Qwen3-8B', '--tensor-parallel-size', '1'],
          gpus: '1',
        },
      ],
    });
    expect(JSON.stringify(owned)).not.toContain('HF_TOKEN');
  });

  it('plans replicas, TP with its GPU limit, engine knobs and the router, changing nothing else', () => {
    const o = v1beta1(['--model', 'Qwen/Qwen3-8B', '--tensor-parallel-size', '1']);
    const g = graphOf(o);
    const base = settingsOf(o);
    const plan = planChange(readOwned(o, g, new Map()), g, base, {
      ...base,
      gpus: 4,
      aggregated: { workers: 2, tensorParallel: 2, gpusPerWorker: 2 },
      router: { mode: 'KV', overlapWeight: 2 },
      engine: { backend: 'vLLM', maxNumSeqs: 128 },
    });
    if ('unsupported' in plan) throw new Error(plan.unsupported);
    const [fe, w] = plan.target.components;
    expect(w).toMatchObject({
      replicas: 2,
      gpus: '2',
      args: ['--model', 'Qwen/Qwen3-8B', '--tensor-parallel-size', '2', '--max-num-seqs', '128'],
    });
    expect(fe.args).toEqual(['python3 -m dynamo.frontend --router-mode kv --kv-overlap-score-weight 2']);
  });

  it('sets the router through the environment when that is how the graph sets it', () => {
    const o = v1beta1(['--model', 'm'], { frontendEnv: true });
    const g = graphOf(o);
    const base = settingsOf(o);
    const plan = planChange(readOwned(o, g, new Map()), g, base, { ...base, router: { mode: 'KV' } });
    if ('unsupported' in plan) throw new Error(plan.unsupported);
    expect(plan.target.components[0]).toMatchObject({
      args: ['python3 -m dynamo.frontend'],
      env: [{ name: 'DYN_ROUTER_MODE', value: 'kv' }],
    });
  });

  it('refuses what it cannot change in place', () => {
    const o = v1beta1(['--model', 'm']);
    const g = graphOf(o);
    const base = settingsOf(o);
    const owned = readOwned(o, g, new Map());
    const refuse = (p: ServingSettings, why: RegExp) => {
      const r = planChange(owned, g, base, p);
      expect('unsupported' in r && r.unsupported).toMatch(why);
    };
    refuse(propose(base, { engine: { backend: 'SGLang' } }), /engine from vLLM to SGLang/);
    refuse(
      propose(base, {
        topology: 'Disaggregated',
        prefill: { workers: 1, tensorParallel: 1, gpusPerWorker: 1 },
        decode: { workers: 1, tensorParallel: 1, gpusPerWorker: 1 },
      }),
      /topology/,
    );
    refuse(propose(base, { gpuType: 'b200_sxm' }), /GPUs needs new node placement/);
    refuse(propose(base, { router: { mode: 'LeastLoaded' } }), /no LeastLoaded router/);
  });

  it('leaves replicas a scaling adapter owns to its scale subresource', () => {
    const o = v1beta1(['--model', 'm'], { adapter: true });
    const g = graphOf(o);
    const owned = readOwned(o, g, new Map([['worker', 'llama-worker']]));
    const base = settingsOf(o);
    const plan = planChange(owned, g, base, {
      ...base,
      aggregated: { workers: 6, tensorParallel: 1, gpusPerWorker: 1 },
    });
    if ('unsupported' in plan) throw new Error(plan.unsupported);
    expect(adapterScales(plan.target)).toEqual([
      { adapter: 'llama-worker', component: 'worker', replicas: 6 },
    ]);
    const body = applyBody(o, 'components', plan.target) as { spec: { components: { replicas?: number }[] } };
    expect(body.spec.components.every((c) => c.replicas === undefined)).toBe(true);
  });
});

describe('apply bodies', () => {
  it('write v1beta1 as list-map entries keyed by name, with only the owned fields', () => {
    const o = v1beta1(['--model', 'm']);
    const owned = readOwned(o, graphOf(o), new Map());
    expect(applyBody(o, 'components', owned)).toEqual({
      apiVersion: 'nvidia.com/v1beta1',
      kind: 'DynamoGraphDeployment',
      metadata: { name: 'llama', namespace: 'ns' },
      spec: {
        components: [
          {
            name: 'frontend',
            podTemplate: {
              spec: {
                containers: [
                  { name: 'main', args: ['python3 -m dynamo.frontend --router-mode round-robin'] },
                ],
              },
            },
          },
          {
            name: 'worker',
            replicas: 4,
            podTemplate: {
              spec: {
                containers: [
                  { name: 'main', args: ['--model', 'm'], resources: { limits: { 'nvidia.com/gpu': '1' } } },
                ],
              },
            },
          },
        ],
      },
    });
  });

  it('write v1alpha1 as a map of services with mainContainer args and limits.gpu', () => {
    const g = graphOf(v1alpha1);
    const owned = readOwned(v1alpha1, g, new Map());
    const base = settingsOf(v1alpha1);
    const plan = planChange(owned, g, base, {
      ...base,
      gpus: 3,
      aggregated: { workers: 3, tensorParallel: 1, gpusPerWorker: 1 },
    });
    if ('unsupported' in plan) throw new Error(plan.unsupported);
    expect(applyBody(v1alpha1, 'services', plan.target)).toMatchObject({
      apiVersion: 'nvidia.com/v1alpha1',
      spec: {
        services: {
          VllmWorker: {
            replicas: 3,
            resources: { limits: { gpu: '1' } },
            extraPodSpec: {
              mainContainer: {
                args: ['python3 -m dynamo.vllm --model Qwen/Qwen3-8B --tensor-parallel-size 1'],
              },
            },
          },
        },
      },
    });
  });

  it('name the managers and fields of a server-side apply conflict', () => {
    const body = {
      kind: 'Status',
      reason: 'Conflict',
      details: {
        causes: [
          {
            reason: 'FieldManagerConflict',
            message: 'conflict with "argocd-controller" using nvidia.com/v1beta1',
            field: '.spec.components[name="worker"].replicas',
          },
          {
            reason: 'FieldManagerConflict',
            message: 'conflict with "kubectl" with subresource "scale"',
            field: '.spec.x',
          },
        ],
      },
    };
    expect(parseConflict(body)).toEqual({
      managers: ['argocd-controller', 'kubectl'],
      fields: ['.spec.components[name="worker"].replicas', '.spec.x'],
    });
    expect(parseConflict({ kind: 'Status', reason: 'Conflict' })).toBeUndefined();
  });
});
