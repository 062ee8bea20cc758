import { type GraphComponent, graphComponents } from '../../api/dynamo.ts';
import type { RoleSettings, RouterMode, ServingSettings } from '../../api/index.ts';
import { gpuTypeForProduct } from '../gpu-inventory.ts';
import { DYNAMO_GRAPH_DEPLOYMENTS, type KubeObject } from '../kube/resources.ts';
import type { BaselineReason, BaselineResult, TargetAdapter } from './adapter.ts';
import { flagValue } from './flags.ts';
import { type PlannerResult, readPlanner } from './planner.ts';

/**
 * Reads the serving settings of a DynamoGraphDeployment in either shape (v1beta1 `spec.components`, v1alpha1
 * `spec.services`; see `graphComponents`): the backend (`spec.backendFramework`, else the worker's command),
 * worker components by type (or componentType/subComponentType), replicas, per-pod GPU limits, tensor- and
 * data-parallel sizes, expert parallelism, speculative decoding and engine flags from the main container's
 * command line, the frontend's `--router-mode` (or DYN_ROUTER_MODE), and the Planner component's configuration
 * (src/operator/target/planner.ts: its replica bounds, and the whole of it for pricing the deployment under it).
 * A target using something the simulator does not model (pipeline parallelism, LoRA, a speculative method
 * other than a draft chain, data-parallel ranks with disaggregation or the Planner) is reported as
 * unsupported, naming it, instead of being priced as if it were absent.
 */

type Role = 'aggregated' | 'prefill' | 'decode';

function envValue(c: GraphComponent, name: string): string | undefined {
  return c.env.find((e) => e.name === name)?.value;
}

function positiveInt(v: string | undefined): number | undefined {
  const n = v === undefined ? Number.NaN : Number(v);
  return Number.isInteger(n) && n > 0 ? n : undefined;
}

function kind(name: string, c: GraphComponent): 'frontend' | 'planner' | 'worker' | 'other' {
  const t = c.type.toLowerCase();
  if (t === 'frontend' || t === 'planner' || t === 'worker') return t;
  if (t === 'prefill' || t === 'decode') return 'worker';
  if (t) return 'other';
  if (/frontend/i.test(name)) return 'frontend';
  if (/planner/i.test(name)) return 'planner';
  if (/worker|prefill|decode/i.test(name)) return 'worker';
  return 'other';
}

function workerRole(c: GraphComponent, tokens: string[]): Role {
  const sub = c.type.toLowerCase();
  const mode = flagValue(tokens, '--disaggregation-mode');
  if (sub === 'prefill' || mode === 'prefill' || tokens.includes('--is-prefill-worker')) return 'prefill';
  if (sub === 'decode' || mode === 'decode') return 'decode';
  // Names are no guide: Dynamo's aggregated examples call their only worker "VllmDecodeWorker".
  return 'aggregated';
}

export type ComponentRole = 'frontend' | 'planner' | 'other' | Role;

/**
 * What each component of a graph is: frontend, planner, a worker of a role, or something else. Older graphs
 * mark only their prefill worker (--is-prefill-worker); the unmarked worker then decodes.
 */
export function componentRoles(components: readonly GraphComponent[]): Map<string, ComponentRole> {
  const out = new Map<string, ComponentRole>();
  for (const c of components) {
    const k = kind(c.name, c);
    out.set(c.name, k === 'worker' ? workerRole(c, c.tokens) : k);
  }
  const roles = new Set(out.values());
  if (roles.has('prefill') && !roles.has('decode') && roles.has('aggregated')) {
    for (const [name, r] of out) if (r === 'aggregated') out.set(name, 'decode');
  }
  return out;
}

const BACKENDS: Record<string, NonNullable<ServingSettings['engine']>['backend']> = {
  vllm: 'vLLM',
  sglang: 'SGLang',
  trtllm: 'TRTLLM',
};

/** Speculative methods that propose a chain of draft tokens from a small head, as the simulator models. */
const DRAFT_CHAIN_METHODS = new Set([
  'mtp',
  'deepseek_mtp',
  'nextn',
  'eagle',
  'eagle3',
  'qwen3_next_mtp',
  'glm4_moe_mtp',
]);

/** A worker's speculative decoding (vLLM --speculative-config JSON; SGLang --speculative-*), or a problem. */
function speculativeOf(
  tokens: string[],
): { method: string; draftTokens: number } | { unsupported: string } | undefined {
  const json = flagValue(tokens, '--speculative-config', '--speculative_config');
  let method: string | undefined;
  let draftTokens: number | undefined;
  if (json !== undefined) {
    let cfg: { method?: unknown; num_speculative_tokens?: unknown };
    try {
      cfg = JSON.parse(json) as typeof cfg;
    } catch {
      return { unsupported: 'speculative decoding with an unreadable --speculative-config' };
    }
    method = typeof cfg.method === 'string' ? cfg.method.toLowerCase() : 'draft_model';
    draftTokens = positiveInt(String(cfg.num_speculative_tokens));
  } else {
    const algorithm = flagValue(tokens, '--speculative-algorithm');
    if (algorithm === undefined) return undefined;
    method = algorithm.toLowerCase();
    draftTokens = positiveInt(flagValue(tokens, '--speculative-num-steps')) ?? 1;
  }
  if (!DRAFT_CHAIN_METHODS.has(method))
    return { unsupported: `speculative decoding with method '${method}'` };
  if (draftTokens === undefined || draftTokens > 5)
    return {
      unsupported: `speculative decoding with ${draftTokens ?? 'an unknown number of'} draft tokens (1 to 5 are modelled)`,
    };
  return { method, draftTokens };
}

const ROUTER_MODES: Record<string, RouterMode> = {
  kv: 'KV',
  'round-robin': 'RoundRobin',
  round_robin: 'RoundRobin',
  roundrobin: 'RoundRobin',
  random: 'Random',
  'least-loaded': 'LeastLoaded',
  least_loaded: 'LeastLoaded',
};

/**
 * The settings and the Planner's configuration as read (a Planner whose configuration cannot be read is
 * returned with its error, for the caller to report: the operator refuses to price it, the twin says so).
 */
export function readDynamoSettings(
  obj: KubeObject,
  knownGpuTypes: string[],
):
  | { settings: ServingSettings; warnings: string[]; planner?: PlannerResult }
  | { error: string; reason?: BaselineReason } {
  const graph = graphComponents((obj as { spec?: unknown }).spec ?? {});
  if ('error' in graph) return { error: `spec does not look like a DynamoGraphDeployment: ${graph.error}` };
  const warnings: string[] = [];
  const roles: Partial<Record<Role, RoleSettings>> = {};
  let router: ServingSettings['router'] = { mode: 'RoundRobin' };
  let plannerReading: PlannerResult | undefined;
  let model: string | undefined;
  let gpuType: string | undefined;
  const engine: NonNullable<ServingSettings['engine']> = {};
  const kinds = componentRoles(graph.components);
  const unsupported: string[] = [];
  const framework = graph.backendFramework ? BACKENDS[graph.backendFramework] : undefined;
  if (framework) engine.backend = framework;
  let dataParallel = false;
  for (const s of graph.components) {
    const name = s.name;
    const tokens = s.tokens;
    const k = kind(name, s);
    // A Planner scaled to zero runs nothing.
    if (k === 'planner' && (s.replicas ?? 1) > 0) plannerReading ??= readPlanner(s);
    if (k === 'frontend') {
      const mode = (
        flagValue(tokens, '--router-mode') ??
        envValue(s, 'DYN_ROUTER_MODE') ??
        'round-robin'
      ).toLowerCase();
      const m = ROUTER_MODES[mode];
      if (!m) warnings.push(`service ${name}: unknown router mode '${mode}', assuming round-robin`);
      const weight = Number(
        flagValue(tokens, '--kv-overlap-score-weight') ?? envValue(s, 'DYN_KV_OVERLAP_SCORE_WEIGHT'),
      );
      const temp = Number(flagValue(tokens, '--router-temperature') ?? envValue(s, 'DYN_ROUTER_TEMPERATURE'));
      router = {
        mode: m ?? 'RoundRobin',
        ...(Number.isFinite(weight) && weight >= 0 && { overlapWeight: weight }),
        ...(Number.isFinite(temp) && temp >= 0 && { temperature: temp }),
      };
    }
    const role = kinds.get(name);
    if (role !== 'aggregated' && role !== 'prefill' && role !== 'decode') continue;
    const perPod = positiveInt(s.gpuLimit);
    const nodes = s.nodeCount;
    const tp = positiveInt(flagValue(tokens, '--tensor-parallel-size', '-tp', '--tp', '--tp-size'));
    const dp = positiveInt(flagValue(tokens, '--data-parallel-size', '-dp', '--dp-size', '--dp')) ?? 1;
    const pp = positiveInt(flagValue(tokens, '--pipeline-parallel-size', '-pp', '--pp-size', '--pp')) ?? 1;
    if (pp > 1) unsupported.push(`pipeline parallelism (service ${name}: ${pp} stages)`);
    if (tokens.includes('--enable-lora')) unsupported.push(`LoRA adapters (service ${name})`);
    if (tokens.includes('--enable-attention-dp') || tokens.includes('--enable_attention_dp'))
      unsupported.push(`TRT-LLM attention data parallelism set in its engine file (service ${name})`);
    const gpusPerWorker = (perPod ?? (tp ?? 1) * dp) * nodes;
    if (perPod === undefined) warnings.push(`service ${name}: no GPU limit, assuming ${gpusPerWorker}`);
    const prev = roles[role];
    const replicas = s.replicas ?? 1;
    if (dp > 1) dataParallel = true;
    roles[role] = {
      workers: (prev?.workers ?? 0) + replicas,
      tensorParallel: tp ?? Math.max(1, Math.floor(gpusPerWorker / dp)),
      ...(dp > 1 && { dataParallel: dp }),
      gpusPerWorker,
    };
    const ep = positiveInt(flagValue(tokens, '--ep-size', '--expert-parallel-size'));
    if (tokens.includes('--enable-expert-parallel') || (ep !== undefined && ep > 1))
      engine.expertParallel = true;
    const spec = speculativeOf(tokens);
    if (spec && 'unsupported' in spec) unsupported.push(`${spec.unsupported} (service ${name})`);
    else if (spec) engine.speculative = spec;
    if (prev) warnings.push(`several ${role} components; their replicas are added up`);
    model ??= flagValue(tokens, '--model', '--model-path');
    const product = s.nodeSelector['nvidia.com/gpu.product'];
    if (product && !gpuType) gpuType = gpuTypeForProduct(product);
    const seqs = positiveInt(
      flagValue(tokens, '--max-num-seqs', '--max-running-requests', '--max-batch-size'),
    );
    const batched = positiveInt(
      flagValue(tokens, '--max-num-batched-tokens', '--chunked-prefill-size', '--max-num-tokens'),
    );
    const block = positiveInt(flagValue(tokens, '--block-size', '--page-size', '--kv-block-size'));
    if (framework) {
      // spec.backendFramework decides.
    } else if (tokens.some((t) => /(^|\.)sglang($|\.)/.test(t) || t === 'sglang.launch_server'))
      engine.backend = 'SGLang';
    else if (tokens.some((t) => /(^|\.)(trtllm|tensorrt_llm)($|\.)/.test(t))) engine.backend = 'TRTLLM';
    else if (tokens.some((t) => /(^|\.)vllm($|\.)/.test(t))) engine.backend = 'vLLM';
    if (seqs) engine.maxNumSeqs = seqs;
    if (batched) engine.maxNumBatchedTokens = batched;
    if (block) engine.blockSize = block;
  }
  const planner = plannerReading !== undefined;
  const disaggregated = roles.prefill !== undefined || roles.decode !== undefined;
  if (!roles.aggregated && !disaggregated)
    return { error: `no worker components found in spec.${graph.shape}` };
  if (disaggregated && (!roles.prefill || !roles.decode)) {
    return { error: 'disaggregated workers need both a prefill and a decode service' };
  }
  // As the reference, data-parallel ranks are simulated for aggregated workers without the Planner.
  if (dataParallel && disaggregated) unsupported.push('data-parallel ranks with disaggregated workers');
  if (dataParallel && planner) unsupported.push('data-parallel ranks under the Planner');
  if (unsupported.length > 0)
    return {
      error: `uses what the simulator does not model: ${[...new Set(unsupported)].join('; ')}`,
      reason: 'UnsupportedFeature',
    };
  if (!gpuType) {
    gpuType = knownGpuTypes.length > 0 ? knownGpuTypes[0] : 'unknown';
    if (knownGpuTypes.length > 1) warnings.push(`GPU type not pinned by a nodeSelector; assuming ${gpuType}`);
  }
  const total = (r?: RoleSettings) => (r ? r.workers * r.gpusPerWorker : 0);
  const settings: ServingSettings = {
    ...(model && { model }),
    gpuType,
    gpus: disaggregated ? total(roles.prefill) + total(roles.decode) : total(roles.aggregated),
    topology: disaggregated ? 'Disaggregated' : 'Aggregated',
    ...(disaggregated ? { prefill: roles.prefill, decode: roles.decode } : { aggregated: roles.aggregated }),
    router,
    planner: plannerSettings(plannerReading),
    ...(Object.keys(engine).length > 0 && { engine }),
  };
  return { settings, warnings, ...(plannerReading && { planner: plannerReading }) };
}

/** The Planner as serving settings: its effective replica bounds and its configuration for pricing. */
function plannerSettings(p: PlannerResult | undefined): ServingSettings['planner'] {
  if (!p) return { enabled: false };
  if ('error' in p) return { enabled: true };
  const min = p.config.min_endpoint;
  return {
    enabled: true,
    ...(typeof min === 'number' && { minEndpoint: min }),
    maxGpuBudget: p.config.max_gpu_budget,
    config: JSON.stringify(p.given),
  };
}

export function readDynamoBaseline(obj: KubeObject, knownGpuTypes: string[]): BaselineResult {
  const r = readDynamoSettings(obj, knownGpuTypes);
  if ('error' in r) return r;
  if (r.planner && 'error' in r.planner) return { error: r.planner.error, reason: 'PlannerConfigInvalid' };
  return { settings: r.settings, warnings: r.warnings };
}

export const dynamoAdapter: TargetAdapter = {
  kind: 'DynamoGraphDeployment',
  resource: DYNAMO_GRAPH_DEPLOYMENTS,
  readBaseline: readDynamoBaseline,
};
