import type { GraphComponent } from '../../api/dynamo.ts';
import { type PlannerConfig, PlannerConfigSchema } from '../../sim/planner/config.ts';
import { flagValue, setFlag } from './flags.ts';

/**
 * The Dynamo Planner component's configuration, read and rewritten in the forms a DGD carries it, for the
 * operator (pricing, applying) and the twin (running it) alike:
 * - `--config <JSON>` inline, which current Dynamo reads (`python -m dynamo.planner --config ...`, the value
 *   "a JSON string or a path to a JSON/YAML file", components/src/dynamo/planner/__main__.py). A path names a
 *   file inside the pod that servetune cannot read, so it is reported, not guessed;
 * - the flags of earlier releases (`--max-gpu-budget`, `--min-endpoint`, `--adjustment-interval`, `--ttft`,
 *   `--itl`, ..., planner_args.py), mapped onto the same fields. That Planner was the SLA planner, so the
 *   flag form runs with `optimization_target: sla`. Their PLANNER_* environment fallbacks are not read;
 * - neither: Dynamo's defaults.
 * Only the replica bounds servetune owns (`min_endpoint`, `max_gpu_budget`) are ever rewritten.
 */

/** Longest `--config` read: what one argument of a recommendation's recorded fields holds. */
export const MAX_PLANNER_CONFIG_CHARS = 8192;

export type PlannerForm = 'config' | 'flags' | 'none';

export interface PlannerReading {
  component: string;
  form: PlannerForm;
  /** The settings as given (reference field names; aliases canonical), as a planner file would hold them. */
  given: Record<string, unknown>;
  config: PlannerConfig;
}

export type PlannerResult = PlannerReading | { component: string; error: string };

/** The bounds servetune owns, in the Planner's own field names. */
export interface PlannerBounds {
  min_endpoint?: number;
  max_gpu_budget?: number;
}

/** The `--config` argument of a Planner component (JSON inline or a path), if any. */
export function plannerConfigArg(rawArgs: readonly string[]): string | undefined {
  for (let i = 0; i < rawArgs.length; i++) {
    const found = configIn(rawArgs, i);
    if (found) return found.value;
  }
  return undefined;
}

/** Where `--config` sits in argument `i`: its value and how to put another value in its place. */
function configIn(
  args: readonly string[],
  i: number,
): { value: string; replace: (v: string) => string[] } | undefined {
  const a = args[i];
  const withArg = (at: number, text: string) => args.map((x, j) => (j === at ? text : x));
  if (a === '--config' && i + 1 < args.length)
    return { value: args[i + 1], replace: (v) => withArg(i + 1, v) };
  if (a.startsWith('--config='))
    return { value: a.slice('--config='.length), replace: (v) => withArg(i, `--config=${v}`) };
  // A whole command line in one string: `... --config '{"a": 1}'`.
  const m = /--config[= ]+(['"]?)(\{.*\})\1\s*$/s.exec(a);
  if (m) {
    const start = m.index + m[0].indexOf(m[1] + m[2]) + m[1].length;
    return {
      value: m[2],
      replace: (v) => withArg(i, a.slice(0, start) + v + a.slice(start + m[2].length)),
    };
  }
  return undefined;
}

type FlagKind = 'int' | 'number' | 'string' | 'ignored';
/** Flags of the earlier Planner (planner_args.py) and the planner-file field each sets. */
const LEGACY_FLAGS: Record<string, [string, FlagKind]> = {
  '--mode': ['mode', 'string'],
  '--adjustment-interval': ['throughput_adjustment_interval_seconds', 'number'],
  '--max-gpu-budget': ['max_gpu_budget', 'int'],
  '--min-endpoint': ['min_endpoint', 'int'],
  '--decode-engine-num-gpu': ['decode_engine_num_gpu', 'int'],
  '--prefill-engine-num-gpu': ['prefill_engine_num_gpu', 'int'],
  '--ttft': ['ttft_ms', 'number'],
  '--itl': ['itl_ms', 'number'],
  '--load-predictor': ['load_predictor', 'string'],
  '--prophet-window-size': ['prophet_window_size', 'int'],
  '--kalman-q-level': ['kalman_q_level', 'number'],
  '--kalman-q-trend': ['kalman_q_trend', 'number'],
  '--kalman-r': ['kalman_r', 'number'],
  '--kalman-min-points': ['kalman_min_points', 'int'],
  '--loadbased-adjustment-interval': ['load_adjustment_interval_seconds', 'number'],
  '--loadbased-scaling-down-sensitivity': ['load_scaling_down_sensitivity', 'number'],
  '--loadbased-min-observations': ['load_min_observations', 'int'],
  '--environment': ['', 'ignored'],
  '--namespace': ['', 'ignored'],
  '--backend': ['', 'ignored'],
  '--log-dir': ['', 'ignored'],
  '--profile-results-dir': ['', 'ignored'],
  '--metric-pulling-prometheus-endpoint': ['', 'ignored'],
  '--metric-reporting-prometheus-port': ['', 'ignored'],
  '--model-name': ['', 'ignored'],
  '--loadbased-router-metrics-url': ['', 'ignored'],
  '--loadbased-learning-window': ['', 'ignored'],
  '--loadbased-metric-samples': ['', 'ignored'],
  '--load-predictor-warmup-trace': ['', 'ignored'],
};
const LEGACY_SWITCHES: Record<string, [string, boolean]> = {
  '--no-operation': ['no_operation', true],
  '--enable-throughput-scaling': ['enable_throughput_scaling', true],
  '--no-enable-throughput-scaling': ['enable_throughput_scaling', false],
  '--enable-loadbased-scaling': ['enable_load_scaling', true],
  '--no-enable-loadbased-scaling': ['enable_load_scaling', false],
  '--load-predictor-log1p': ['load_predictor_log1p', true],
  '--no-load-predictor-log1p': ['load_predictor_log1p', false],
};
const OWNED_FLAGS: Record<keyof PlannerBounds, string> = {
  min_endpoint: '--min-endpoint',
  max_gpu_budget: '--max-gpu-budget',
};

const usesLegacyFlags = (tokens: readonly string[]) =>
  tokens.some((t) => t.split('=')[0] in LEGACY_FLAGS || t in LEGACY_SWITCHES);

function legacySettings(tokens: string[]): Record<string, unknown> | { field: string; message: string } {
  const out: Record<string, unknown> = { optimization_target: 'sla' };
  for (const [flag, [field, kind]] of Object.entries(LEGACY_FLAGS)) {
    if (kind === 'ignored') continue;
    const v = flagValue(tokens, flag);
    if (v === undefined) continue;
    if (kind === 'string') out[field] = v;
    else {
      const n = Number(v);
      if (v.trim() === '' || !Number.isFinite(n) || (kind === 'int' && !Number.isInteger(n)))
        return {
          field: flag,
          message: `'${v.slice(0, 40)}' is not ${kind === 'int' ? 'an integer' : 'a number'}`,
        };
      out[field] = n;
    }
  }
  for (const [flag, [field, value]] of Object.entries(LEGACY_SWITCHES))
    if (tokens.includes(flag)) out[field] = value;
  return out;
}

/**
 * The configuration of a Planner component, or the reason it cannot be read (naming the component and the
 * argument or field). Bounded: a `--config` longer than MAX_PLANNER_CONFIG_CHARS is refused before parsing.
 */
export function readPlanner(c: GraphComponent): PlannerResult {
  const fail = (message: string): PlannerResult => ({
    component: c.name,
    error: `Planner component '${c.name}': ${message}`,
  });
  const raw = plannerConfigArg(c.rawArgs);
  let given: Record<string, unknown>;
  let form: PlannerForm;
  if (raw !== undefined) {
    form = 'config';
    if (raw.length > MAX_PLANNER_CONFIG_CHARS)
      return fail(
        `--config is ${raw.length} characters, over the ${MAX_PLANNER_CONFIG_CHARS} servetune reads`,
      );
    if (!raw.trim().startsWith('{'))
      return fail(
        `--config names a file ('${raw.slice(0, 120)}') inside the pod, which servetune cannot read; give the configuration inline as JSON`,
      );
    let json: unknown;
    try {
      json = JSON.parse(raw);
    } catch (e) {
      return fail(`--config is not JSON: ${(e as Error).message}`);
    }
    if (typeof json !== 'object' || json === null || Array.isArray(json))
      return fail('--config must be a JSON object');
    given = json as Record<string, unknown>;
  } else if (usesLegacyFlags(c.tokens)) {
    form = 'flags';
    const legacy = legacySettings(c.tokens);
    if ('field' in legacy) return fail(`${legacy.field}: ${legacy.message}`);
    given = legacy;
  } else {
    form = 'none';
    given = {};
  }
  const parsed = PlannerConfigSchema.safeParse(given);
  if (!parsed.success) {
    const i = parsed.error.issues[0];
    const where = form === 'flags' ? 'flags' : '--config';
    return fail(`${where}: field '${i.path.join('.') || '(root)'}': ${i.message}`);
  }
  // Canonical names (aliases folded), in the order given.
  const canonical: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(given)) canonical[CANONICAL[k] ?? k] = v;
  return { component: c.name, form, given: canonical, config: parsed.data };
}

const CANONICAL: Record<string, string> = {
  ttft: 'ttft_ms',
  itl: 'itl_ms',
  throughput_adjustment_interval: 'throughput_adjustment_interval_seconds',
  load_adjustment_interval: 'load_adjustment_interval_seconds',
};

/**
 * The Planner's main-container args with the owned bounds set, in the form the component uses: inside the
 * `--config` JSON (only those keys change; the others keep their values and order), as flags in the earlier
 * form, or a new `--config` holding only the bounds when the Planner has neither (what current Dynamo reads).
 * A `--config` given in the container's command rather than its args cannot be rewritten (servetune owns the
 * args only): the reason is returned instead.
 */
export function withPlannerBounds(
  args: readonly string[],
  command: readonly string[],
  form: PlannerForm,
  bounds: PlannerBounds,
): string[] | { unsupported: string } {
  const keys = (Object.keys(bounds) as (keyof PlannerBounds)[]).filter((k) => bounds[k] !== undefined);
  if (keys.length === 0) return [...args];
  if (form === 'flags') {
    let out = [...args];
    for (const k of keys) out = setFlag(out, [OWNED_FLAGS[k]], String(bounds[k]));
    return out;
  }
  for (let i = 0; i < args.length; i++) {
    const found = configIn(args, i);
    if (!found) continue;
    let json: Record<string, unknown>;
    try {
      json = JSON.parse(found.value) as Record<string, unknown>;
    } catch {
      return { unsupported: "the Planner's --config is not JSON" };
    }
    for (const k of keys) json[k] = bounds[k];
    return found.replace(JSON.stringify(json));
  }
  if (form === 'config' || plannerConfigArg(command) !== undefined)
    return {
      unsupported: "the Planner's --config is in its container's command, which servetune does not own",
    };
  const only = JSON.stringify(Object.fromEntries(keys.map((k) => [k, bounds[k]])));
  if (args.length === 1 && /\s/.test(args[0])) return [`${args[0]} --config '${only}'`];
  return [...args, '--config', only];
}
