import { describe, expect, it } from 'vitest';
import type { GraphComponent } from '../../../src/api/dynamo.ts';
import { readDynamoBaseline } from '../../../src/operator/target/dynamo.ts';
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
