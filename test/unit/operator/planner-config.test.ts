import { describe, expect, it } from 'vitest';
import type { GraphComponent } from '../../../src/api/dynamo.ts';
import type { ServingSettings } from '../../../src/api/index.ts';
import { gpusChanging, nextStage } from '../../../src/operator/rollout/decide.ts';
import { readDynamoBaseline } from '../../../src/operator/target/dynamo.ts';
import {
  adapterScales,
  applyBody,
  ownedDigest,
  planChange,
  readOwned,
  readTargetGraph,
} from '../../../src/operator/target/dynamo-apply.ts';
import {
  MAX_PLANNER_CONFIG_CHARS,
  readPlanner,
  withPlannerBounds,
} from '../../../src/operator/target/planner.ts';

/** The Planner component's configuration: read in Dynamo's forms, bounded, rewritten in place. */

const component = (args: string[], command: string[] = []): GraphComponent => ({
  name: 'Planner',
  type: 'planner',
  replicas: 1,
  tokens: [...command, ...args].flatMap((a) => (a.startsWith('{') ? [a] : a.split(/\s+/))),
  rawArgs: [...command, ...args],
  env: [],
  gpuLimit: undefined,
  nodeSelector: {},
  nodeCount: 1,
  scalingAdapter: false,
});

describe("reading the Planner's configuration", () => {
  it('reads inline --config JSON with aliases folded, and the effective bounds', () => {
    const r = readPlanner(
      component([
        '--config',
        '{"mode":"agg","ttft":300,"throughput_adjustment_interval":60,"min_endpoint":2}',
      ]),
    );
    if ('error' in r) throw new Error(r.error);
    expect(r.form).toBe('config');
    expect(r.given).toEqual({
      mode: 'agg',
      ttft_ms: 300,
      throughput_adjustment_interval_seconds: 60,
      min_endpoint: 2,
    });
    expect(r.config).toMatchObject({ ttft_ms: 300, min_endpoint: 2, max_gpu_budget: 8 });
  });

  it('reads the earlier flag form as the SLA planner, and nothing as the defaults', () => {
    const r = readPlanner(
      component([
        'python3 -m dynamo.planner --max-gpu-budget 6 --min-endpoint 2 --adjustment-interval 30 --ttft 200 --itl 20 --no-operation',
      ]),
    );
    if ('error' in r) throw new Error(r.error);
    expect(r.form).toBe('flags');
    expect(r.config).toMatchObject({
      optimization_target: 'sla',
      max_gpu_budget: 6,
      min_endpoint: 2,
      throughput_adjustment_interval_seconds: 30,
      ttft_ms: 200,
      itl_ms: 20,
      advisory: true,
    });
    const none = readPlanner(component(['python3 -m dynamo.planner']));
    if ('error' in none) throw new Error(none.error);
    expect(none.form).toBe('none');
    expect(none.config.max_gpu_budget).toBe(8);
  });

  it('refuses what it cannot read with the component and the field named', () => {
    const err = (args: string[]) => {
      const r = readPlanner(component(args));
      return 'error' in r ? r.error : 'read';
    };
    expect(err(['--config', '{"max_gpu_budget": -4}'])).toMatch(
      /^Planner component 'Planner': --config: field 'max_gpu_budget': /,
    );
    expect(err(['--config', '{"no_such_field": 1}'])).toContain("field '(root)'");
    expect(err(['--config', '{"ttft":'])).toContain('--config is not JSON');
    expect(err(['--config', '[1, 2]'])).toContain('names a file');
    expect(err(['--config', '/etc/planner/config.yaml'])).toContain(
      "names a file ('/etc/planner/config.yaml')",
    );
    expect(err(['--config', `{"a":"${'x'.repeat(MAX_PLANNER_CONFIG_CHARS)}"}`])).toContain(
      `over the ${MAX_PLANNER_CONFIG_CHARS} servetune reads`,
    );
    expect(err(['--max-gpu-budget', 'lots'])).toContain("--max-gpu-budget: 'lots' is not an integer");
  });

  it('gives the baseline its bounds and configuration, and a bad --config a clear reason', () => {
    const dgd = (plannerArgs: string[]) => ({
      apiVersion: 'nvidia.com/v1beta1',
      kind: 'DynamoGraphDeployment',
      metadata: { name: 'g', namespace: 'ns' },
      spec: {
        components: [
          {
            name: 'w',
            type: 'worker',
            replicas: 3,
            podTemplate: {
              spec: {
                containers: [
                  {
                    name: 'main',
                    args: ['--tensor-parallel-size', '1'],
                    resources: { limits: { 'nvidia.com/gpu': '1' } },
                  },
                ],
              },
            },
          },
          {
            name: 'planner',
            type: 'planner',
            podTemplate: { spec: { containers: [{ name: 'main', args: plannerArgs }] } },
          },
        ],
      },
    });
    const ok = readDynamoBaseline(dgd(['--config', '{"mode":"agg","max_gpu_budget":6,"min_endpoint":2}']), [
      'h100_sxm',
    ]);
    if ('error' in ok) throw new Error(ok.error);
    expect(ok.settings.planner).toEqual({
      enabled: true,
      minEndpoint: 2,
      maxGpuBudget: 6,
      config: '{"mode":"agg","max_gpu_budget":6,"min_endpoint":2}',
    });
    const bad = readDynamoBaseline(dgd(['--config', '{"min_endpoint": 0}']), ['h100_sxm']);
    expect(bad).toEqual({
      error: expect.stringMatching(/^Planner component 'planner': --config: field 'min_endpoint'/),
      reason: 'PlannerConfigInvalid',
    });
  });
});

describe("rewriting the Planner's bounds", () => {
  it('changes only the owned keys inside --config, wherever it sits', () => {
    const json = '{"optimization_target":"sla","ttft_ms":300,"min_endpoint":1,"environment":"kubernetes"}';
    expect(
      withPlannerBounds(['--config', json], [], 'config', { min_endpoint: 2, max_gpu_budget: 6 }),
    ).toEqual([
      '--config',
      '{"optimization_target":"sla","ttft_ms":300,"min_endpoint":2,"environment":"kubernetes","max_gpu_budget":6}',
    ]);
    expect(withPlannerBounds([`--config=${json}`], [], 'config', { max_gpu_budget: 4 })).toEqual([
      '--config={"optimization_target":"sla","ttft_ms":300,"min_endpoint":1,"environment":"kubernetes","max_gpu_budget":4}',
    ]);
    const shell = `python3 -m dynamo.planner --config '{"ttft": 300, "max_gpu_budget": 8}'`;
    expect(withPlannerBounds([shell], [], 'config', { max_gpu_budget: 4 })).toEqual([
      `python3 -m dynamo.planner --config '{"ttft":300,"max_gpu_budget":4}'`,
    ]);
    // Nothing to change: the args as they are.
    expect(withPlannerBounds(['--config', json], [], 'config', {})).toEqual(['--config', json]);
  });

  it('writes flags in the flag form, a new --config when there is none, and refuses one in the command', () => {
    expect(
      withPlannerBounds(['python3 -m dynamo.planner --min-endpoint 1 --ttft 200'], [], 'flags', {
        min_endpoint: 2,
        max_gpu_budget: 6,
      }),
    ).toEqual(['python3 -m dynamo.planner --min-endpoint 2 --ttft 200 --max-gpu-budget 6']);
    expect(withPlannerBounds(['--namespace', 'x'], [], 'none', { max_gpu_budget: 6 })).toEqual([
      '--namespace',
      'x',
      '--config',
      '{"max_gpu_budget":6}',
    ]);
    expect(
      withPlannerBounds([], ['python3', '-m', 'dynamo.planner', '--config', '{}'], 'config', {
        min_endpoint: 2,
      }),
    ).toEqual({
      unsupported: "the Planner's --config is in its container's command, which servetune does not own",
    });
  });
});

describe('Planner flags split between command and args', () => {
  it('reads back what it writes: a later flag overrides an earlier one, as argparse takes it', () => {
    const command = ['python3', '-m', 'dynamo.planner', '--max-gpu-budget', '4', '--min-endpoint', '3'];
    const args = ['--environment', 'kubernetes', '--ttft', '200'];
    const written = withPlannerBounds(args, command, 'flags', { min_endpoint: 1, max_gpu_budget: 2 });
    if (!Array.isArray(written)) throw new Error(written.unsupported);
    // The command is not servetune's: the bounds go into the args, after it, where they take effect.
    expect(written).toEqual([...args, '--min-endpoint', '1', '--max-gpu-budget', '2']);
    const read = readPlanner(component(written, command));
    if ('error' in read) throw new Error(read.error);
    expect(read.config).toMatchObject({ min_endpoint: 1, max_gpu_budget: 2, ttft_ms: 200 });
    // A flag given twice in the args: the last one is the one the Planner runs, so it is the one rewritten.
    const twice = ['--min-endpoint', '3', '--min-endpoint', '5'];
    const rewritten = withPlannerBounds(twice, [], 'flags', { min_endpoint: 1 });
    expect(rewritten).toEqual(['--min-endpoint', '3', '--min-endpoint', '1']);
    const again = readPlanner(component(rewritten as string[]));
    expect('error' in again ? again.error : again.config.min_endpoint).toBe(1);
  });
});

describe('applying Planner bounds to a DGD', () => {
  const plannerJson =
    '{"mode":"agg","optimization_target":"throughput","throughput_adjustment_interval":60,"min_endpoint":1,"max_gpu_budget":4,"environment":"kubernetes"}';
  const dgd = (plannerArgs: string[], workerReplicas = 3) => ({
    apiVersion: 'nvidia.com/v1beta1',
    kind: 'DynamoGraphDeployment',
    metadata: { name: 'g', namespace: 'ns', generation: 2 },
    spec: {
      components: [
        {
          name: 'Frontend',
          type: 'frontend',
          podTemplate: { spec: { containers: [{ name: 'main', args: ['python3 -m dynamo.frontend'] }] } },
        },
        {
          name: 'worker',
          type: 'worker',
          replicas: workerReplicas,
          podTemplate: {
            spec: {
              containers: [
                {
                  name: 'main',
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
          podTemplate: {
            spec: {
              containers: [{ name: 'main', args: ['python3 -m dynamo.planner', '--config', ...plannerArgs] }],
            },
          },
        },
      ],
    },
  });
  const read = (o: ReturnType<typeof dgd>) => {
    const graph = readTargetGraph(o);
    if ('error' in graph) throw new Error(graph.error);
    const base = readDynamoBaseline(o, ['h100_sxm']);
    if ('error' in base) throw new Error(base.error);
    return { graph, owned: readOwned(o, graph, new Map()), settings: base.settings };
  };

  it("writes only the Planner's bounds, keeps its other keys and leaves the replicas to it; the baseline restores it", () => {
    const before = read(dgd([plannerJson]));
    // The worker's replicas are the Planner's: not recorded, so never written or restored.
    expect(before.owned.components.find((c) => c.name === 'worker')?.replicas).toBeUndefined();
    expect(before.owned.components.find((c) => c.name === 'Planner')?.args).toEqual([
      'python3 -m dynamo.planner',
      '--config',
      plannerJson,
    ]);
    const proposal: ServingSettings = {
      ...before.settings,
      aggregated: { workers: 4, tensorParallel: 1, gpusPerWorker: 1 },
      planner: { enabled: true, minEndpoint: 2, maxGpuBudget: 6 },
    };
    const plan = planChange(before.owned, before.graph, before.settings, proposal);
    if ('unsupported' in plan) throw new Error(plan.unsupported);
    expect(plan.notes).toContain("the Planner owns worker's replicas; its bounds are set instead");
    const args = plan.target.components.find((c) => c.name === 'Planner')?.args ?? [];
    const written = JSON.parse(args[2]) as Record<string, unknown>;
    const original = JSON.parse(plannerJson) as Record<string, unknown>;
    expect(written).toEqual({ ...original, min_endpoint: 2, max_gpu_budget: 6 });
    expect(Object.keys(written)).toEqual(Object.keys(original));
    expect(args.slice(0, 2)).toEqual(['python3 -m dynamo.planner', '--config']);

    const body = applyBody(dgd([plannerJson]), 'components', plan.target) as {
      spec: { components: { name: string; replicas?: number; podTemplate?: unknown }[] };
    };
    expect(body.spec.components.find((c) => c.name === 'worker')).not.toHaveProperty('replicas');
    expect(body.spec.components.find((c) => c.name === 'Planner')).toEqual({
      name: 'Planner',
      podTemplate: { spec: { containers: [{ name: 'main', args }] } },
    });

    // A Planner restart holds no GPUs: one stage within any disruption budget, the worker's replicas untouched.
    expect(gpusChanging(before.owned, plan.target)).toBe(0);
    const stage = nextStage(before.owned, plan.target, 0);
    expect(stage).toMatchObject({ final: true });
    expect('owned' in stage && stage.owned.components.find((c) => c.name === 'worker')).not.toHaveProperty(
      'replicas',
    );

    // Applied, and the Planner has since scaled the worker: the same proposal asks for no further change.
    const after = read(dgd([args[2]], 5));
    expect(after.settings.planner).toMatchObject({ minEndpoint: 2, maxGpuBudget: 6 });
    const again = planChange(after.owned, after.graph, after.settings, proposal);
    if ('unsupported' in again) throw new Error(again.unsupported);
    expect(ownedDigest(again.target)).toBe(ownedDigest(after.owned));
    expect(ownedDigest(after.owned)).toBe(ownedDigest(plan.target));
    // The rollback applies the recorded baseline: the previous --config, byte for byte.
    const restore = applyBody(dgd([args[2]], 5), 'components', before.owned) as typeof body;
    expect(restore.spec.components.find((c) => c.name === 'Planner')).toEqual({
      name: 'Planner',
      podTemplate: {
        spec: {
          containers: [{ name: 'main', args: ['python3 -m dynamo.planner', '--config', plannerJson] }],
        },
      },
    });
  });

  it('sets the replicas itself when the Planner is scaled to zero (it runs nothing)', () => {
    const o = dgd([plannerJson]);
    (o.spec.components[2] as { replicas?: number }).replicas = 0;
    const before = read(o);
    expect(before.graph.planner).toBeUndefined();
    expect(before.settings.planner).toEqual({ enabled: false });
    expect(before.owned.components.map((c) => c.name)).toEqual(['Frontend', 'worker']);
    const plan = planChange(before.owned, before.graph, before.settings, {
      ...before.settings,
      aggregated: { workers: 2, tensorParallel: 1, gpusPerWorker: 1 },
    });
    if ('unsupported' in plan) throw new Error(plan.unsupported);
    expect(plan.target.components.find((c) => c.name === 'worker')?.replicas).toBe(2);
  });

  it('never writes the replicas of a worker with a scaling adapter under a Planner; scaled to zero, it does', () => {
    const o = dgd([plannerJson]);
    (o.spec.components[1] as { scalingAdapter?: object }).scalingAdapter = {};
    const graph = readTargetGraph(o);
    if ('error' in graph) throw new Error(graph.error);
    const base = readDynamoBaseline(o, ['h100_sxm']);
    if ('error' in base) throw new Error(base.error);
    const owned = readOwned(o, graph, new Map([['worker', 'g-worker']]));
    const worker = owned.components.find((c) => c.name === 'worker');
    expect(worker).toMatchObject({ scalingAdapter: 'g-worker' });
    expect(worker).not.toHaveProperty('replicas');
    const proposal: ServingSettings = {
      ...base.settings,
      aggregated: { workers: 1, tensorParallel: 1, gpusPerWorker: 1 },
      planner: { enabled: true, minEndpoint: 1, maxGpuBudget: 2 },
    };
    const plan = planChange(owned, graph, base.settings, proposal);
    if ('unsupported' in plan) throw new Error(plan.unsupported);
    // Neither through the adapter's scale subresource nor in the graph, going forward or back.
    expect(adapterScales(plan.target)).toEqual([]);
    expect(adapterScales(owned)).toEqual([]);
    for (const fields of [plan.target, owned]) {
      const body = applyBody(o, 'components', fields) as { spec: { components: { name: string }[] } };
      expect(body.spec.components.find((c) => c.name === 'worker')).not.toHaveProperty('replicas');
    }
    expect(JSON.parse(plan.target.components.find((c) => c.name === 'Planner')!.args![2])).toMatchObject({
      min_endpoint: 1,
      max_gpu_budget: 2,
    });

    // A Planner scaled to zero runs nothing: the adapter's replicas are servetune's again.
    (o.spec.components[2] as { replicas?: number }).replicas = 0;
    const idle = readTargetGraph(o);
    if ('error' in idle) throw new Error(idle.error);
    const idleBase = readDynamoBaseline(o, ['h100_sxm']);
    if ('error' in idleBase) throw new Error(idleBase.error);
    const idleOwned = readOwned(o, idle, new Map([['worker', 'g-worker']]));
    const idlePlan = planChange(idleOwned, idle, idleBase.settings, {
      ...idleBase.settings,
      aggregated: { workers: 1, tensorParallel: 1, gpusPerWorker: 1 },
    });
    if ('unsupported' in idlePlan) throw new Error(idlePlan.unsupported);
    expect(adapterScales(idlePlan.target)).toEqual([
      { adapter: 'g-worker', component: 'worker', replicas: 1 },
    ]);
  });

  it('gives a Planner without --config one holding only the bounds', () => {
    const o = dgd([]);
    o.spec.components[2].podTemplate = {
      spec: { containers: [{ name: 'main', args: ['python3 -m dynamo.planner'] }] },
    };
    const before = read(o);
    expect(before.graph.planner?.form).toBe('none');
    const plan = planChange(before.owned, before.graph, before.settings, {
      ...before.settings,
      planner: { enabled: true, minEndpoint: 1, maxGpuBudget: 4 },
    });
    if ('unsupported' in plan) throw new Error(plan.unsupported);
    expect(plan.target.components.find((c) => c.name === 'Planner')?.args).toEqual([
      `python3 -m dynamo.planner --config '{"max_gpu_budget":4}'`,
    ]);
  });

  it('writes a v1alpha1 Planner in the flag form of earlier releases, in its own shape', () => {
    const o = {
      apiVersion: 'nvidia.com/v1alpha1',
      kind: 'DynamoGraphDeployment',
      metadata: { name: 'old', namespace: 'ns' },
      spec: {
        services: {
          VllmWorker: {
            componentType: 'worker',
            replicas: 2,
            resources: { limits: { gpu: '1' } },
            extraPodSpec: { mainContainer: { args: ['--model', 'Qwen/Qwen3-8B'] } },
          },
          Planner: {
            componentType: 'planner',
            extraPodSpec: {
              mainContainer: {
                args: ['python3 -m dynamo.planner --mode agg --max-gpu-budget 8 --min-endpoint 2'],
              },
            },
          },
        },
      },
    };
    const graph = readTargetGraph(o);
    if ('error' in graph) throw new Error(graph.error);
    expect(graph.planner).toMatchObject({ name: 'Planner', form: 'flags' });
    const base = readDynamoBaseline(o, ['h100_sxm']);
    if ('error' in base) throw new Error(base.error);
    expect(base.settings.planner).toMatchObject({ minEndpoint: 2, maxGpuBudget: 8 });
    const owned = readOwned(o, graph, new Map());
    const plan = planChange(owned, graph, base.settings, {
      ...base.settings,
      planner: { enabled: true, minEndpoint: 1, maxGpuBudget: 4 },
    });
    if ('unsupported' in plan) throw new Error(plan.unsupported);
    const body = applyBody(o, 'services', plan.target) as { spec: { services: Record<string, unknown> } };
    expect(body.spec.services.Planner).toEqual({
      extraPodSpec: {
        mainContainer: { args: ['python3 -m dynamo.planner --mode agg --max-gpu-budget 4 --min-endpoint 1'] },
      },
    });
    expect(body.spec.services.VllmWorker).not.toHaveProperty('replicas');
  });
});
