import { graphComponents } from '../../api/dynamo.ts';
import type { OwnedComponent, OwnedFields, ServingSettings } from '../../api/index.ts';
import { ENGINE_DEFAULTS } from '../engine-defaults.ts';
import { type ComponentRole, componentRoles } from './dynamo.ts';
import { flagValue, setFlag } from './flags.ts';
import { type PlannerBounds, type PlannerForm, readPlanner, withPlannerBounds } from './planner.ts';

/**
 * The write side of a DynamoGraphDeployment: which fields servetune owns, their current values, the values a
 * proposal gives them, and the server-side apply body that sets exactly those (nothing else in the object is
 * sent, so nothing else changes hands). Either shape is written in its own form: v1beta1 `spec.components`
 * (a list keyed by `name`; the main container in `podTemplate.spec.containers`, keyed by `name`) and v1alpha1
 * `spec.services` (a map; `extraPodSpec.mainContainer`, `resources.limits.gpu`).
 *
 * Owned fields, per component: worker replicas (unless a scaling adapter or the Planner owns them), the main
 * container's args (tensor parallelism and engine knobs are flags there; the list is atomic under server-side
 * apply, so it is owned whole), the GPU limit per pod; on the frontend, its args (router mode and knobs) or the
 * router environment variables when that is how the graph sets them; on the Planner, its args (where its
 * configuration is), of which only the replica bounds servetune tunes ever change. Under a Planner the worker
 * replicas are neither recorded nor written: they are the Planner's, and its bounds stand for them.
 */

type Raw = Record<string, unknown>;
const obj = (v: unknown): Raw => (v && typeof v === 'object' && !Array.isArray(v) ? (v as Raw) : {});

interface Container {
  args?: string[];
  command?: string[];
  env?: { name: string; value?: string }[];
  limits: Raw;
}

/** The main container of a component in either shape. */
function mainContainer(spec: Raw, shape: 'components' | 'services', name: string): Container {
  if (shape === 'components') {
    const c = (spec.components as Raw[] | undefined)?.find((x) => x.name === name) ?? {};
    const main = ((obj(obj(c.podTemplate).spec).containers as Raw[] | undefined) ?? []).find(
      (x) => x.name === 'main',
    );
    const m = obj(main);
    return {
      args: m.args as string[] | undefined,
      command: m.command as string[] | undefined,
      env: m.env as Container['env'],
      limits: obj(obj(m.resources).limits),
    };
  }
  const svc = obj(obj(spec.services)[name]);
  const m = obj(obj(svc.extraPodSpec).mainContainer);
  return {
    args: m.args as string[] | undefined,
    command: m.command as string[] | undefined,
    env: svc.envs as Container['env'],
    limits: obj(obj(svc.resources).limits),
  };
}

export interface TargetGraph {
  apiVersion: string;
  shape: 'components' | 'services';
  roles: Map<string, ComponentRole>;
  components: { name: string; replicas: number | undefined; scalingAdapter: boolean; nodeCount: number }[];
  /** The running Planner: its component, the form its configuration takes, and its container's command. */
  planner?: { name: string; form: PlannerForm; command: string[] };
}

export function readTargetGraph(target: {
  apiVersion?: string;
  spec?: unknown;
}): TargetGraph | { error: string } {
  const g = graphComponents(target.spec ?? {});
  if ('error' in g) return g;
  const roles = componentRoles(g.components);
  // The Planner that runs (as the baseline reads it: the first one not scaled to zero).
  const pc = g.components.find((c) => roles.get(c.name) === 'planner' && (c.replicas ?? 1) > 0);
  const reading = pc ? readPlanner(pc) : undefined;
  return {
    ...(pc &&
      reading && {
        planner: {
          name: pc.name,
          form: 'error' in reading ? 'config' : reading.form,
          command: mainContainer(obj(target.spec), g.shape, pc.name).command ?? [],
        },
      }),
    apiVersion: g.shape === 'components' ? 'nvidia.com/v1beta1' : 'nvidia.com/v1alpha1',
    shape: g.shape,
    roles,
    components: g.components.map((c) => ({
      name: c.name,
      replicas: c.replicas,
      scalingAdapter: c.scalingAdapter,
      nodeCount: c.nodeCount,
    })),
  };
}

const GPU_KEYS = ['nvidia.com/gpu', 'gpu'];

/** The current values of the fields servetune owns (workers and the frontend). */
export function readOwned(
  target: { spec?: unknown },
  graph: TargetGraph,
  adapters: Map<string, string>,
): OwnedFields {
  const spec = obj(target.spec);
  const components: OwnedComponent[] = [];
  for (const c of graph.components) {
    const role = graph.roles.get(c.name);
    if (role === 'planner' && c.name === graph.planner?.name) {
      const args = mainContainer(spec, graph.shape, c.name).args;
      components.push({ name: c.name, ...(args !== undefined && { args: [...args] }) });
      continue;
    }
    if (role !== 'aggregated' && role !== 'prefill' && role !== 'decode' && role !== 'frontend') continue;
    const m = mainContainer(spec, graph.shape, c.name);
    const gpuKey = GPU_KEYS.find((k) => m.limits[k] !== undefined);
    const entry: OwnedComponent = { name: c.name };
    if (role !== 'frontend' && c.replicas !== undefined && !graph.planner) entry.replicas = c.replicas;
    if (m.args !== undefined) entry.args = [...m.args];
    if (gpuKey) entry.gpus = String(m.limits[gpuKey]);
    const routerEnv = (m.env ?? []).filter((e) => ROUTER_ENV.includes(e.name) && e.value !== undefined);
    if (routerEnv.length > 0) entry.env = routerEnv.map((e) => ({ name: e.name, value: e.value as string }));
    const adapter = adapters.get(c.name);
    if (adapter) entry.scalingAdapter = adapter;
    components.push(entry);
  }
  return { apiVersion: graph.apiVersion, components };
}

const ROUTER_ENV = ['DYN_ROUTER_MODE', 'DYN_KV_OVERLAP_SCORE_WEIGHT', 'DYN_ROUTER_TEMPERATURE'];

type Backend = NonNullable<NonNullable<ServingSettings['engine']>['backend']>;

const FLAGS: Record<Backend, { tp: string[]; seqs: string[]; batched: string[]; block: string[] }> = {
  vLLM: {
    tp: ['--tensor-parallel-size', '-tp', '--tp'],
    seqs: ['--max-num-seqs'],
    batched: ['--max-num-batched-tokens'],
    block: ['--block-size'],
  },
  SGLang: {
    tp: ['--tp-size', '--tp', '--tensor-parallel-size'],
    seqs: ['--max-running-requests'],
    batched: ['--chunked-prefill-size'],
    block: ['--page-size'],
  },
  // Dynamo's TensorRT-LLM worker (python -m dynamo.trtllm) spells them as TensorRT-LLM's LLM API does.
  TRTLLM: {
    tp: ['--tensor-parallel-size', '--tp-size', '--tp'],
    seqs: ['--max-batch-size'],
    batched: ['--max-num-tokens'],
    block: ['--kv-block-size'],
  },
};

/** Dynamo frontend router modes (`--router-mode`); LeastLoaded has no Dynamo equivalent. */
const ROUTER_FLAG: Record<string, string | undefined> = {
  RoundRobin: 'round-robin',
  Random: 'random',
  KV: 'kv',
  LeastLoaded: undefined,
};

export type Plan = { target: OwnedFields; notes: string[] } | { unsupported: string };

/**
 * The owned fields' values under `proposal`, from their current values. Changes servetune cannot make in
 * place (a different engine, a topology change, a role served by several components) are refused with the
 * reason, so they are never half-applied.
 */
export function planChange(
  current: OwnedFields,
  graph: TargetGraph,
  baseline: ServingSettings,
  proposal: ServingSettings,
): Plan {
  const backend = (baseline.engine?.backend ?? 'vLLM') as Backend;
  if ((proposal.engine?.backend ?? 'vLLM') !== backend)
    return {
      unsupported: `changing the engine from ${backend} to ${proposal.engine?.backend} needs a new image and command`,
    };
  if (proposal.topology !== baseline.topology)
    return {
      unsupported: `changing the topology from ${baseline.topology} to ${proposal.topology} needs new components`,
    };
  if (proposal.gpuType !== baseline.gpuType && baseline.gpuType !== 'unknown')
    return {
      unsupported: `moving from ${baseline.gpuType} to ${proposal.gpuType} GPUs needs new node placement`,
    };
  const notes: string[] = [];
  const target: OwnedFields = {
    apiVersion: current.apiVersion,
    components: current.components.map((c) => ({ ...c })),
  };
  const byRole = (role: ComponentRole) => target.components.filter((c) => graph.roles.get(c.name) === role);
  const f = FLAGS[backend];
  for (const role of ['aggregated', 'prefill', 'decode'] as const) {
    const want = proposal[role];
    if (!want) continue;
    const cs = byRole(role);
    if (cs.length !== 1) return { unsupported: `the ${role} role is served by ${cs.length} components` };
    const c = cs[0];
    const nodes = graph.components.find((x) => x.name === c.name)?.nodeCount ?? 1;
    if (nodes > 1 && baseline[role]?.tensorParallel !== want.tensorParallel)
      return {
        unsupported: `${c.name} spans ${nodes} nodes per worker; its parallelism is not changed in place`,
      };
    // A Planner scaled to zero runs nothing: the replicas are then servetune's to set.
    if (graph.planner) notes.push(`the Planner owns ${c.name}'s replicas; its bounds are set instead`);
    else c.replicas = want.workers;
    const have = baseline[role];
    let args = c.args ?? [];
    if (!have || have.tensorParallel !== want.tensorParallel)
      args = setFlag(args, f.tp, String(want.tensorParallel));
    // Knobs the graph leaves unset run at the engine's defaults: only a real change is written.
    const e = proposal.engine;
    const be = { ...ENGINE_DEFAULTS, ...definedOf(baseline.engine) };
    if (e?.maxNumSeqs !== undefined && e.maxNumSeqs !== be.maxNumSeqs)
      args = setFlag(args, f.seqs, String(e.maxNumSeqs));
    if (e?.maxNumBatchedTokens !== undefined && e.maxNumBatchedTokens !== be.maxNumBatchedTokens)
      args = setFlag(args, f.batched, String(e.maxNumBatchedTokens));
    if (e?.blockSize !== undefined && e.blockSize !== be.blockSize)
      args = setFlag(args, f.block, String(e.blockSize));
    if (args.length > 0 || c.args !== undefined) c.args = args;
    if (want.gpusPerWorker !== have?.gpusPerWorker || c.gpus !== undefined)
      c.gpus = String(want.gpusPerWorker);
  }
  const bounds = plannerBoundsChange(baseline.planner, proposal.planner);
  if (bounds && graph.planner) {
    const pl = graph.planner;
    const entry = target.components.find((c) => c.name === pl.name);
    if (!entry) return { unsupported: `the Planner component ${pl.name} is not among the owned fields` };
    const args = withPlannerBounds(entry.args ?? [], pl.command, pl.form, bounds);
    if (!Array.isArray(args)) return args;
    entry.args = args;
  }
  // The router, on the frontend: flags where the graph has them, else its environment.
  const r = proposal.router;
  const b = baseline.router;
  if (r.mode !== b.mode || r.overlapWeight !== b.overlapWeight || r.temperature !== b.temperature) {
    const mode = ROUTER_FLAG[r.mode];
    if (mode === undefined) return { unsupported: `Dynamo's frontend has no ${r.mode} router` };
    const fronts = byRole('frontend');
    if (fronts.length !== 1) return { unsupported: `the graph has ${fronts.length} frontends` };
    const fe = fronts[0];
    const set = (flag: string, env: string, value: string) => {
      const inEnv = fe.env?.some((x) => x.name === env) && !flagValue(tokensOf(fe.args), flag);
      if (inEnv) fe.env = fe.env!.map((x) => (x.name === env ? { name: env, value } : x));
      else fe.args = setFlag(fe.args ?? [], [flag], value);
    };
    set('--router-mode', 'DYN_ROUTER_MODE', mode);
    if (r.mode === 'KV' && r.overlapWeight !== undefined)
      set('--kv-overlap-score-weight', 'DYN_KV_OVERLAP_SCORE_WEIGHT', String(r.overlapWeight));
    if (r.mode === 'KV' && r.temperature !== undefined)
      set('--router-temperature', 'DYN_ROUTER_TEMPERATURE', String(r.temperature));
  }
  return { target, notes };
}

/** The Planner bounds a proposal changes (Dynamo's field names), or null when it changes none. */
function plannerBoundsChange(
  from: ServingSettings['planner'],
  to: ServingSettings['planner'],
): PlannerBounds | null {
  if (!to.enabled) return null;
  const out: PlannerBounds = {};
  if (to.minEndpoint !== undefined && to.minEndpoint !== from.minEndpoint) out.min_endpoint = to.minEndpoint;
  if (to.maxGpuBudget !== undefined && to.maxGpuBudget !== from.maxGpuBudget)
    out.max_gpu_budget = to.maxGpuBudget;
  return Object.keys(out).length > 0 ? out : null;
}

const definedOf = <T extends object>(o: T | undefined): Partial<T> =>
  Object.fromEntries(Object.entries(o ?? {}).filter(([, v]) => v !== undefined)) as Partial<T>;

const tokensOf = (args?: string[]) => (args ?? []).flatMap((a) => a.split(/\s+/)).filter((t) => t !== '');

/** Replica changes that go through a scaling adapter's scale subresource instead of the graph. */
export function adapterScales(
  owned: OwnedFields,
): { adapter: string; component: string; replicas: number }[] {
  return owned.components
    .filter((c) => c.scalingAdapter && c.replicas !== undefined)
    .map((c) => ({ adapter: c.scalingAdapter as string, component: c.name, replicas: c.replicas as number }));
}

/**
 * The server-side apply body that sets `owned` on the target, in the target's own shape. Replicas owned by a
 * scaling adapter are left out (they go through its scale subresource); fields absent from `owned` are absent
 * from the body, so applying a baseline gives up a field servetune set but the target did not have.
 */
export function applyBody(
  target: { metadata: { name: string; namespace?: string } },
  shape: 'components' | 'services',
  owned: OwnedFields,
): Raw {
  const meta = { name: target.metadata.name, namespace: target.metadata.namespace };
  const gpuKey = shape === 'components' ? 'nvidia.com/gpu' : 'gpu';
  if (shape === 'components') {
    const components = owned.components.map((c) => {
      const main: Raw = { name: 'main' };
      if (c.args !== undefined) main.args = c.args;
      if (c.gpus !== undefined) main.resources = { limits: { [gpuKey]: c.gpus } };
      if (c.env !== undefined) main.env = c.env;
      const entry: Raw = { name: c.name };
      if (c.replicas !== undefined && !c.scalingAdapter) entry.replicas = c.replicas;
      if (Object.keys(main).length > 1) entry.podTemplate = { spec: { containers: [main] } };
      return entry;
    });
    return {
      apiVersion: owned.apiVersion,
      kind: 'DynamoGraphDeployment',
      metadata: meta,
      spec: { components },
    };
  }
  const services: Raw = {};
  for (const c of owned.components) {
    const entry: Raw = {};
    if (c.replicas !== undefined && !c.scalingAdapter) entry.replicas = c.replicas;
    if (c.args !== undefined) entry.extraPodSpec = { mainContainer: { args: c.args } };
    if (c.gpus !== undefined) entry.resources = { limits: { [gpuKey]: c.gpus } };
    if (c.env !== undefined) entry.envs = c.env;
    services[c.name] = entry;
  }
  return { apiVersion: owned.apiVersion, kind: 'DynamoGraphDeployment', metadata: meta, spec: { services } };
}

/** Fields and managers named by a server-side apply conflict (HTTP 409 with FieldManagerConflict causes). */
export function parseConflict(body: unknown): { managers: string[]; fields: string[] } | undefined {
  const causes = (obj(obj(body).details).causes as Raw[] | undefined) ?? [];
  const conflicts = causes.filter((c) => c.reason === 'FieldManagerConflict');
  if (conflicts.length === 0) return undefined;
  const managers = new Set<string>();
  const fields = new Set<string>();
  for (const c of conflicts) {
    const m = /conflict with "([^"]+)"/.exec(String(c.message ?? ''));
    if (m) managers.add(m[1]);
    if (c.field) fields.add(String(c.field));
  }
  return { managers: [...managers].slice(0, 16), fields: [...fields].slice(0, 32) };
}

/** The owned fields as a stable digest (what "the same change" means across restarts). */
export function ownedDigest(o: OwnedFields): string {
  return JSON.stringify(
    [...o.components]
      .sort((a, b) => a.name.localeCompare(b.name))
      .map((c) => [c.name, c.replicas ?? null, c.args ?? null, c.gpus ?? null, c.env ?? null]),
  );
}
