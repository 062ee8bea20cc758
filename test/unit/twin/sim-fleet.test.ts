import { describe, expect, it } from 'vitest';
import { parseDegrade, SimFleet } from '../../../src/twin/fleet.ts';
import { readGraph, type TwinGraph } from '../../../src/twin/graph.ts';
import { FakeLive } from '../../support/fake-live.ts';

/** The fleet driver's decisions, on the fake simulation's fleet bookkeeping. */

const base = {
  timing: { model: 'polynomial' as const, prefillMs: 0, decodeMs: 0 },
  seed: 1,
  traceBlockSize: 64,
  startupTimeS: 10,
};

function graph(
  opts: { replicas?: number; tp?: number; router?: string; planner?: object; disagg?: boolean } = {},
): TwinGraph {
  const tp = opts.tp ?? 1;
  const worker = (name: string, type: string) => ({
    name,
    type,
    replicas: opts.replicas ?? 2,
    podTemplate: {
      spec: {
        containers: [
          {
            name: 'main',
            args: ['--model', 'acme/model', '--tensor-parallel-size', String(tp)],
            resources: { limits: { 'nvidia.com/gpu': String(tp) } },
          },
        ],
      },
    },
  });
  const components: object[] = [
    {
      name: 'Frontend',
      type: 'frontend',
      podTemplate: {
        spec: { containers: [{ name: 'main', args: [`--router-mode=${opts.router ?? 'round-robin'}`] }] },
      },
    },
    ...(opts.disagg
      ? [worker('prefill', 'prefill'), worker('decode', 'decode')]
      : [worker('decode', 'worker')]),
  ];
  if (opts.planner) {
    components.push({
      name: 'planner',
      type: 'planner',
      podTemplate: {
        spec: { containers: [{ name: 'main', args: ['--config', JSON.stringify(opts.planner)] }] },
      },
    });
  }
  const g = readGraph({ metadata: { name: 'g', generation: 1 }, spec: { components } } as never, [
    'h100_sxm',
  ]);
  if ('error' in g) throw new Error(g.error);
  return g;
}

function setup(g0 = graph(), degrade?: string) {
  const sim = new FakeLive({}, { aggregated: 2 });
  const fleet = new SimFleet({
    sim,
    base,
    initial: g0,
    degrade: degrade ? parseDegrade(degrade) : undefined,
  });
  expect(fleet.apply(g0)).toEqual({});
  return { sim, fleet };
}

const ops = (sim: FakeLive) => sim.calls.map((c) => c.op);

describe('SimFleet', () => {
  it('does nothing for the graph it was built from', () => {
    const { sim, fleet } = setup();
    expect(ops(sim).filter((o) => o !== 'setPlanner')).toEqual([]);
    expect(fleet.counts()).toEqual({ aggregated: { ready: 2, starting: 0, draining: 0, updated: 2 } });
    expect(fleet.rolling()).toBe(false);
  });

  it('adds workers with a cold start when replicas grow, and drains them when they shrink', () => {
    const { sim, fleet } = setup();
    expect(fleet.apply(graph({ replicas: 4 }))).toEqual({});
    expect(sim.calls.at(-1)).toEqual({ op: 'setReplicas', args: ['aggregated', 4] });
    expect(fleet.counts().aggregated).toEqual({ ready: 2, starting: 2, draining: 0, updated: 4 });
    sim.advanceTo(10_000);
    expect(fleet.counts().aggregated).toEqual({ ready: 4, starting: 0, draining: 0, updated: 4 });
    fleet.apply(graph({ replicas: 1 }));
    expect(fleet.counts().aggregated).toMatchObject({ ready: 1, draining: 3 });
  });

  it('rolls the workers onto a new template, reporting the rollout until the old ones are gone', () => {
    const { sim, fleet } = setup();
    const before = sim.workers().map((w) => w.id);
    fleet.apply(graph({ tp: 2 }));
    expect(ops(sim)).toContain('replacePool');
    expect(fleet.rolling()).toBe(true);
    expect(fleet.counts().aggregated).toMatchObject({ ready: 2, starting: 1, updated: 1 });
    sim.advanceTo(10_000);
    sim.advanceTo(20_000);
    sim.advanceTo(20_001);
    expect(fleet.rolling()).toBe(false);
    const after = sim.workers().map((w) => w.id);
    expect(after).toHaveLength(2);
    for (const id of after) expect(before).not.toContain(id);
    expect(fleet.counts().aggregated).toEqual({ ready: 2, starting: 0, draining: 0, updated: 2 });
  });

  it('switches the router without touching workers', () => {
    const { sim, fleet } = setup();
    fleet.apply(graph({ router: 'kv' }));
    expect(ops(sim).filter((o) => o !== 'setPlanner')).toEqual(['setRouter']);
    expect(sim.calls.at(-1)!.args[0]).toMatchObject({ kind: 'kv' });
  });

  it('slows down only the workers whose settings match the degrade selector', () => {
    const { sim, fleet } = setup(graph(), '3:tp=2');
    expect(sim.factors.size === 0 || [...sim.factors.values()].every((f) => f === 1)).toBe(true);
    fleet.apply(graph({ tp: 2 }));
    for (let t = 1; t <= 4; t++) {
      sim.advanceTo(t * 10_000);
      fleet.counts();
    }
    const live = sim.workers().filter((w) => w.state !== 'gone');
    expect(live.length).toBe(2);
    for (const w of live) expect(sim.factors.get(w.id)).toBe(3);
  });

  it('with changed=true, slows down whatever differs from the starting settings, and recovers on rollback', () => {
    const { sim, fleet } = setup(graph(), '3:changed=true');
    const factors = () =>
      sim
        .workers()
        .filter((w) => w.state !== 'gone')
        .map((w) => sim.factors.get(w.id) ?? 1);
    expect(factors()).toEqual([1, 1]);
    // A replica change alone is a change: the whole role runs slower.
    fleet.apply(graph({ replicas: 3 }));
    fleet.counts();
    expect(factors()).toEqual([3, 3, 3]);
    // Back to the starting settings: every worker serves at the simulation's speed again.
    fleet.apply(graph());
    fleet.counts();
    expect(new Set(factors())).toEqual(new Set([1]));
    // A template change: the new workers are slow, the old ones keep their speed while they drain.
    fleet.apply(graph({ tp: 2 }));
    for (let t = 1; t <= 4; t++) {
      sim.advanceTo(t * 10_000);
      fleet.counts();
    }
    expect(factors()).toEqual([3, 3]);
  });

  it('restarts a killed worker with a cold start, as Kubernetes restarts a failed pod', () => {
    const { sim, fleet } = setup(graph({ replicas: 2 }));
    const victim = sim.workers()[0].id;
    sim.killWorker(victim);
    expect(fleet.counts().aggregated).toEqual({ ready: 1, starting: 1, draining: 0, updated: 2 });
    sim.advanceTo(10_000);
    expect(fleet.counts().aggregated).toEqual({ ready: 2, starting: 0, draining: 0, updated: 2 });
    expect(sim.workers().map((w) => w.id)).not.toContain(victim);
  });

  it('hands replicas to the Planner when the graph has one, and refuses what needs a restart', () => {
    const { sim, fleet } = setup();
    expect(
      fleet.apply(graph({ replicas: 3, planner: { optimization_target: 'throughput', max_gpu_budget: 8 } })),
    ).toEqual({});
    expect(sim.calls.at(-1)).toMatchObject({ op: 'setPlanner', args: [expect.objectContaining({})] });
    expect(ops(sim)).not.toContain('setReplicas');
    expect(fleet.apply(graph({ disagg: true })).error).toMatch(/restart/);
  });
});
