import { z } from 'zod';

/**
 * The Planner configuration, in the reference Planner's own field names and defaults (Dynamo's
 * `PlannerConfig`), so a planner file written for Dynamo runs here unchanged. Aliases the reference accepts
 * (`ttft`, `itl`, `*_interval`) are folded into the canonical names; the parsed object is canonical and can
 * be written back as a planner file. Reference fields that only matter to a live deployment (Prometheus,
 * Kubernetes, reports) are accepted and ignored; anything else is an error, so typos do not pass silently.
 * Fields marked "extension" do not exist in the reference.
 */

const ALIASES: Record<string, string> = {
  ttft: 'ttft_ms',
  itl: 'itl_ms',
  throughput_adjustment_interval: 'throughput_adjustment_interval_seconds',
  load_adjustment_interval: 'load_adjustment_interval_seconds',
  decode_sacle_up_kv_rate: 'decode_scale_up_kv_rate', // a misspelling the reference keeps accepting
};

/** Reference fields with no meaning in a simulation. */
const IGNORED = [
  'environment',
  'backend',
  'namespace',
  'log_dir',
  'profile_results_dir',
  'pre_deployment_sweeping_mode',
  'aic_interpolation',
  'aic_perf_model',
  'throughput_metrics_source',
  'metric_pulling_prometheus_endpoint',
  'metric_pulling_prometheus_token',
  'metric_pulling_prometheus_ssl_verify',
  'metric_pulling_prometheus_extra_query_params',
  'metric_reporting_prometheus_port',
  'model_name',
  'served_model_name',
  'global_planner_namespace',
  'report_interval_hours',
  'report_output_dir',
  'report_filename',
  'report_write_gzip_log',
  'live_dashboard_port',
  'control_api_port',
  'speculative_nextn',
  'load_predictor_warmup_trace',
  'load_metric_samples',
  'isl',
  'osl',
] as const;

export const PREDICTORS = [
  'constant',
  'moving_average',
  'arima',
  'kalman',
  'prophet',
  'holt_winters',
] as const;
export type PredictorName = (typeof PREDICTORS)[number];

const positive = z.number().positive('must be positive');
const positiveInt = z.number().int('must be an integer').positive('must be positive');
const nonNegativeInt = z.number().int('must be an integer').nonnegative('must not be negative');
const budget = z.number().int('must be an integer').min(-1, 'must be -1 (off) or a GPU count');
const percent = z.number().min(0, 'must be within 0-100').max(100, 'must be within 0-100');

/** A replica bound for every role, or per role (`agg` is the aggregated pool). */
const PerRole = z.union([
  positiveInt,
  z
    .object({ agg: positiveInt.optional(), prefill: positiveInt.optional(), decode: positiveInt.optional() })
    .strict(),
]);
export type PerRoleBound = z.infer<typeof PerRole>;

const Fields = z
  .object({
    mode: z
      .enum(['agg', 'disagg', 'prefill', 'decode'])
      .optional()
      .describe(
        'agg or disagg must match the simulated cluster (inferred when absent); prefill / decode scale one pool',
      ),
    optimization_target: z.enum(['throughput', 'latency', 'load', 'sla']).default('throughput'),
    enable_throughput_scaling: z.boolean().default(true),
    enable_load_scaling: z.boolean().default(false),
    ttft_ms: positive.default(500),
    itl_ms: positive.default(50),
    throughput_adjustment_interval_seconds: positive.default(180),
    load_adjustment_interval_seconds: positive.default(5),
    max_gpu_budget: budget.default(8),
    min_gpu_budget: budget.default(-1),
    min_endpoint: PerRole.default(1),
    max_endpoint: PerRole.optional().describe('extension: most replicas per role'),
    prefill_engine_num_gpu: positiveInt.optional(),
    decode_engine_num_gpu: positiveInt.optional(),
    max_num_fpm_samples: positiveInt.default(64),
    fpm_sample_bucket_size: positiveInt.default(16),
    load_min_observations: positiveInt.default(5),
    load_scaling_down_sensitivity: percent.default(80),
    sla_bootstrap: z
      .enum(['profile', 'none'])
      .default('profile')
      .describe(
        "extension: the SLA target's performance model starts from a profile of one worker the simulator runs (as Dynamo bootstraps from AI Configurator or pre-deployment profiling), or empty, learning from live forward-pass metrics only (Dynamo without that data)",
      ),
    prefill_scale_up_queue_tokens: nonNegativeInt.nullable().default(null),
    prefill_scale_down_queue_tokens: nonNegativeInt.nullable().default(null),
    decode_scale_up_kv_rate: percent.nullable().default(null),
    decode_scale_down_kv_rate: percent.nullable().default(null),
    load_predictor: z.enum(PREDICTORS).default('arima'),
    load_predictor_log1p: z.boolean().default(false),
    prophet_window_size: positiveInt.default(50),
    kalman_q_level: z.number().nonnegative().default(1),
    kalman_q_trend: z.number().nonnegative().default(0.1),
    kalman_r: z.number().nonnegative().default(10),
    kalman_min_points: positiveInt.default(5),
    moving_average_window: positiveInt.default(10).describe('extension: points the moving average keeps'),
    seasonal_period: z
      .number()
      .int()
      .min(2, 'must be at least 2')
      .default(24)
      .describe('extension: holt_winters season length, in throughput intervals'),
    context_length: positiveInt
      .optional()
      .describe(
        "extension: the engine's max model length (easy-mode prefill threshold); default: its KV capacity",
      ),
    advisory: z.boolean().default(false).describe('record decisions without applying them'),
    no_operation: z.boolean().optional(),
    scaling_mode: z.enum(['active', 'advisory']).optional(),
    ...Object.fromEntries(IGNORED.map((k) => [k, z.unknown().optional()])),
  })
  .strict();

/** Renames reference aliases to canonical names (an error when both spellings are given). */
function canonicalize(raw: unknown, ctx: z.RefinementCtx): unknown {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) return raw;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(raw)) {
    const name = ALIASES[k] ?? k;
    if (name in out) {
      ctx.addIssue({ code: 'custom', message: `given twice (as '${k}' and '${name}')`, path: [name] });
    }
    out[name] = v;
  }
  return out;
}

export const PlannerConfigSchema = z
  .preprocess(canonicalize, Fields)
  .superRefine((c, ctx) => {
    const root = Math.round(Math.sqrt(c.fpm_sample_bucket_size));
    if (root * root !== c.fpm_sample_bucket_size) {
      ctx.addIssue({ code: 'custom', message: 'must be a perfect square', path: ['fpm_sample_bucket_size'] });
    }
    const sla = c.optimization_target === 'sla';
    if (sla && !c.enable_load_scaling && !c.enable_throughput_scaling) {
      ctx.addIssue({
        code: 'custom',
        message: 'enable at least one of enable_load_scaling and enable_throughput_scaling',
        path: ['enable_load_scaling'],
      });
    }
    if (
      sla &&
      c.enable_load_scaling &&
      c.enable_throughput_scaling &&
      c.load_adjustment_interval_seconds >= c.throughput_adjustment_interval_seconds
    ) {
      ctx.addIssue({
        code: 'custom',
        message: `must be shorter than throughput_adjustment_interval_seconds (${c.throughput_adjustment_interval_seconds})`,
        path: ['load_adjustment_interval_seconds'],
      });
    }
    const pu = c.prefill_scale_up_queue_tokens;
    const pd = c.prefill_scale_down_queue_tokens;
    if (pu !== null && pd !== null && pu <= pd) {
      ctx.addIssue({
        code: 'custom',
        message: 'must be greater than prefill_scale_down_queue_tokens',
        path: ['prefill_scale_up_queue_tokens'],
      });
    }
    const du = c.decode_scale_up_kv_rate;
    const dd = c.decode_scale_down_kv_rate;
    if (du !== null && dd !== null && du <= dd) {
      ctx.addIssue({
        code: 'custom',
        message: 'must be greater than decode_scale_down_kv_rate',
        path: ['decode_scale_up_kv_rate'],
      });
    }
    if (c.min_gpu_budget >= 0 && c.max_gpu_budget >= 0 && c.min_gpu_budget > c.max_gpu_budget) {
      ctx.addIssue({ code: 'custom', message: 'must not exceed max_gpu_budget', path: ['min_gpu_budget'] });
    }
    for (const role of ['agg', 'prefill', 'decode'] as const) {
      const lo = boundFor(c.min_endpoint, role) ?? 1;
      const hi = c.max_endpoint === undefined ? undefined : boundFor(c.max_endpoint, role);
      if (hi !== undefined && hi < lo) {
        ctx.addIssue({
          code: 'custom',
          message: `${role}: below min_endpoint (${lo})`,
          path: ['max_endpoint'],
        });
        break;
      }
    }
  })
  .transform((c) => {
    // Every target but sla reacts to load only (the reference forces this).
    const sla = c.optimization_target === 'sla';
    const { no_operation, scaling_mode, ...rest } = c;
    return {
      ...rest,
      enable_load_scaling: sla ? c.enable_load_scaling : true,
      enable_throughput_scaling: sla ? c.enable_throughput_scaling : false,
      advisory: c.advisory || no_operation === true || scaling_mode === 'advisory',
    };
  });

export type PlannerConfig = z.output<typeof PlannerConfigSchema>;

/** The bound for one role: the number, or that role's entry. */
export function boundFor(b: PerRoleBound, role: 'agg' | 'prefill' | 'decode'): number | undefined {
  return typeof b === 'number' ? b : b[role];
}

export type ClusterRole = 'aggregated' | 'prefill' | 'decode';

/**
 * Checks a planner configuration against the cluster it will drive: the mode must match the topology, the
 * thresholds of target `load` must be set for the scaled roles, declared GPUs per engine must match, and the
 * initial workers must sit within the replica bounds and the GPU budget. Returns the field and message of
 * the first problem, or null.
 */
export function checkPlannerAgainstCluster(
  p: PlannerConfig,
  pools: { role: ClusterRole; workers: number; gpusPerWorker: number }[],
): { field: string; message: string } | null {
  const disagg = pools.length === 2;
  if (p.mode !== undefined && (p.mode === 'agg') === disagg) {
    return {
      field: 'mode',
      message: `'${p.mode}' does not match the simulated cluster (${disagg ? 'disaggregated' : 'aggregated'})`,
    };
  }
  const scaled = scaledRoles(p, disagg);
  if (p.optimization_target === 'load') {
    if (
      scaled.includes('prefill') &&
      (p.prefill_scale_up_queue_tokens === null || p.prefill_scale_down_queue_tokens === null)
    ) {
      return {
        field:
          p.prefill_scale_up_queue_tokens === null
            ? 'prefill_scale_up_queue_tokens'
            : 'prefill_scale_down_queue_tokens',
        message: "required by optimization_target 'load' when prefill workers are scaled",
      };
    }
    if (
      (scaled.includes('decode') || scaled.includes('aggregated')) &&
      (p.decode_scale_up_kv_rate === null || p.decode_scale_down_kv_rate === null)
    ) {
      return {
        field: p.decode_scale_up_kv_rate === null ? 'decode_scale_up_kv_rate' : 'decode_scale_down_kv_rate',
        message: "required by optimization_target 'load' when decode (or aggregated) workers are scaled",
      };
    }
  }
  for (const pool of pools) {
    const declared = pool.role === 'prefill' ? p.prefill_engine_num_gpu : p.decode_engine_num_gpu;
    if (declared !== undefined && declared !== pool.gpusPerWorker) {
      return {
        field: pool.role === 'prefill' ? 'prefill_engine_num_gpu' : 'decode_engine_num_gpu',
        message: `${declared} does not match the simulated workers (${pool.gpusPerWorker} GPUs each)`,
      };
    }
    if (!scaled.includes(pool.role)) continue;
    const { min, max } = replicaBounds(p, pool.role);
    if (pool.workers < min || pool.workers > max) {
      return {
        field: pool.workers < min ? 'min_endpoint' : 'max_endpoint',
        message: `the cluster starts with ${pool.workers} ${pool.role} workers, outside [${min}, ${max}]`,
      };
    }
  }
  const minGpus = pools.reduce(
    (s, q) => s + (scaled.includes(q.role) ? replicaBounds(p, q.role).min : q.workers) * q.gpusPerWorker,
    0,
  );
  const startGpus = pools.reduce((s, q) => s + q.workers * q.gpusPerWorker, 0);
  if (p.max_gpu_budget >= 0 && minGpus > p.max_gpu_budget) {
    return {
      field: 'max_gpu_budget',
      message: `${p.max_gpu_budget} GPUs cannot hold the minimum replicas (${minGpus} GPUs)`,
    };
  }
  if (p.max_gpu_budget >= 0 && startGpus > p.max_gpu_budget) {
    return {
      field: 'max_gpu_budget',
      message: `the cluster starts with ${startGpus} GPUs, over the budget of ${p.max_gpu_budget}`,
    };
  }
  return null;
}

/** Roles the planner changes: every pool, or one pool of a disaggregated cluster (modes prefill, decode). */
export function scaledRoles(p: PlannerConfig, disagg: boolean): ClusterRole[] {
  if (!disagg) return ['aggregated'];
  if (p.mode === 'prefill') return ['prefill'];
  if (p.mode === 'decode') return ['decode'];
  return ['prefill', 'decode'];
}

/** Replica bounds of a role: `min_endpoint` and the `max_endpoint` extension (unbounded when absent). */
export function replicaBounds(p: PlannerConfig, role: ClusterRole): { min: number; max: number } {
  const key = role === 'aggregated' ? 'agg' : role;
  const min = boundFor(p.min_endpoint, key) ?? 1;
  const max = p.max_endpoint === undefined ? undefined : boundFor(p.max_endpoint, key);
  return { min, max: max ?? Number.POSITIVE_INFINITY };
}
