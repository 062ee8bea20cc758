import { describe, expect, it } from 'vitest';
import { plannerConfigArg } from '../../../src/operator/target/planner.ts';
import { dgdStatus } from '../../../src/twin/dgd-status.ts';
import { readGraph, type TwinGraph } from '../../../src/twin/graph.ts';

const container = (args: string[], gpus = '1') => ({
  spec: { containers: [{ name: 'main', args, resources: { limits: { 'nvidia.com/gpu': gpus } } }] },
});

const dgd = (components: object[], generation = 3) => ({
  metadata: { name: 'llama', namespace: 'ns', generation },
  spec: { backendFramework: 'vllm', components },
});

function graph(obj: object): TwinGraph {
  const g = readGraph(obj as never, ['h100_sxm']);
  if ('error' in g) throw new Error(g.error);
  return g;
}

describe('readGraph', () => {
  it('groups worker components by role, with replicas, scaling adapters and a template revision', () => {
    const base = [
      { name: 'Frontend', type: 'frontend', podTemplate: container(['--router-mode', 'kv']) },
      { name: 'prefill', type: 'prefill', replicas: 2, podTemplate: container(['--model', 'Qwen/Qwen3-8B']) },
      {
        name: 'decode',
        type: 'decode',
        replicas: 3,
        scalingAdapter: {},
        podTemplate: container(['--model', 'Qwen/Qwen3-8B', '--tensor-parallel-size', '2'], '2'),
      },
    ];
    const g = graph(dgd(base));
    expect(g.shape).toBe('components');
    expect(g.generation).toBe(3);
    expect(g.settings.topology).toBe('Disaggregated');
    expect(g.pools.prefill).toMatchObject({ components: ['prefill'], replicas: 2, scaled: [] });
    expect(g.pools.decode).toMatchObject({ components: ['decode'], replicas: 3, scaled: ['decode'] });
    expect(g.roles.get('Frontend')).toBe('frontend');
    // Replicas do not change the revision; a changed argument does.
    const more = graph(dgd(base.map((c) => (c.name === 'decode' ? { ...c, replicas: 5 } : c))));
    expect(more.pools.decode!.revision).toBe(g.pools.decode!.revision);
    const tp4 = graph(
      dgd(
        base.map((c) =>
          c.name === 'decode'
            ? {
                ...c,
                podTemplate: container(['--model', 'Qwen/Qwen3-8B', '--tensor-parallel-size', '4'], '4'),
              }
            : c,
        ),
      ),
    );
    expect(tp4.pools.decode!.revision).not.toBe(g.pools.decode!.revision);
    expect(tp4.pools.prefill!.revision).toBe(g.pools.prefill!.revision);
  });

  it("reads the Planner component's --config JSON with Dynamo's field names, and reports a bad one", () => {
    const config = {
      optimization_target: 'throughput',
      throughput_adjustment_interval: 30,
      max_gpu_budget: 6,
    };
    const g = graph(
      dgd([
        { name: 'w', type: 'worker', replicas: 1, podTemplate: container([]) },
        {
          name: 'planner',
          type: 'planner',
          podTemplate: {
            spec: { containers: [{ name: 'main', args: ['--config', JSON.stringify(config)] }] },
          },
        },
      ]),
    );
    expect(g.planner?.component).toBe('planner');
    expect(g.planner?.config).toMatchObject({
      throughput_adjustment_interval_seconds: 30,
      max_gpu_budget: 6,
    });
    const bad = graph(
      dgd([
        { name: 'w', type: 'worker', podTemplate: container([]) },
        {
          name: 'p',
          type: 'planner',
          podTemplate: {
            spec: { containers: [{ name: 'main', args: ['--config', '{"no_such_field": 1}'] }] },
          },
        },
      ]),
    );
    expect(bad.planner?.config).toBeNull();
    expect(bad.planner?.error).toContain('--config');
    expect(plannerConfigArg(['python3 -m dynamo.planner --config \'{"a": 1}\''])).toBe('{"a": 1}');
    expect(plannerConfigArg(['--config={"b":2}'])).toBe('{"b":2}');
  });

  it('refuses a graph without workers', () => {
    expect(readGraph(dgd([{ name: 'Frontend', type: 'frontend' }]) as never)).toHaveProperty('error');
  });
});

describe('dgdStatus', () => {
  const components = [
    { name: 'Frontend', role: 'frontend' as const, replicas: 1 },
    { name: 'decode', role: 'aggregated' as const, replicas: 3 },
  ];
  const now = new Date('2026-12-01T10:00:00.123Z');

  it('is Ready with all_resources_are_ready when every worker serves at the current revision', () => {
    const s = dgdStatus({
      name: 'llama',
      shape: 'components',
      generation: 4,
      components,
      fleet: { aggregated: { ready: 3, starting: 0, draining: 0, updated: 3 } },
      rolling: false,
      now,
    });
    expect(s).toMatchObject({
      observedGeneration: 4,
      state: 'successful',
      conditions: [
        {
          type: 'Ready',
          status: 'True',
          reason: 'all_resources_are_ready',
          message: 'All resources are ready',
          lastTransitionTime: '2026-12-01T10:00:00Z',
          observedGeneration: 4,
        },
      ],
      components: {
        decode: {
          componentKind: 'Deployment',
          componentNames: ['llama-decode'],
          replicas: 3,
          updatedReplicas: 3,
          readyReplicas: 3,
          availableReplicas: 3,
        },
        Frontend: { readyReplicas: 1 },
      },
    });
  });

  it('is pending while workers start or drain, naming the resource; v1alpha1 gets services', () => {
    const s = dgdStatus({
      name: 'llama',
      shape: 'services',
      generation: 5,
      components,
      fleet: { aggregated: { ready: 2, starting: 1, draining: 1, updated: 3 } },
      rolling: false,
      now,
      previousReady: { status: 'True', lastTransitionTime: '2026-11-30T00:00:00Z' },
    });
    expect(s.state).toBe('pending');
    expect(s.conditions[0]).toMatchObject({
      status: 'False',
      reason: 'some_resources_are_not_ready',
      message: 'Resources not ready: llama-decode: 2/3 replicas ready, 1 terminating',
      lastTransitionTime: '2026-12-01T10:00:00Z',
    });
    expect(s.services?.decode).toMatchObject({
      componentName: 'llama-decode',
      replicas: 4,
      readyReplicas: 2,
    });
    expect(s.components).toBeUndefined();
  });

  it('keeps the transition time while the status holds; reports rolling updates and invalid specs', () => {
    const fleet = { aggregated: { ready: 3, starting: 0, draining: 0, updated: 3 } };
    const held = dgdStatus({
      name: 'llama',
      shape: 'components',
      generation: 4,
      components,
      fleet,
      rolling: false,
      now,
      previousReady: { status: 'True', lastTransitionTime: '2026-11-30T00:00:00Z' },
    });
    expect(held.conditions[0].lastTransitionTime).toBe('2026-11-30T00:00:00Z');
    const rolling = dgdStatus({
      name: 'llama',
      shape: 'components',
      generation: 4,
      components,
      fleet,
      rolling: true,
      now,
    });
    expect(rolling.conditions[0]).toMatchObject({ status: 'False', reason: 'rolling_update_in_progress' });
    const invalid = dgdStatus({
      name: 'llama',
      shape: 'components',
      generation: 4,
      components,
      fleet,
      rolling: false,
      now,
      invalid: 'TP 3 does not divide',
    });
    expect(invalid).toMatchObject({
      state: 'failed',
      conditions: [{ reason: 'ValidationFailed', message: 'Validation failed: TP 3 does not divide' }],
    });
  });
});
