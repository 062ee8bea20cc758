import { z } from 'zod';
import {
  type API_VERSION,
  boundedDuration,
  Conditions,
  GROUP,
  Name,
  TargetRefSchema,
  Timestamp,
  VERSION,
} from './common.ts';
import { type CrdDefinition, cel, listMap } from './crd.ts';
import { CRON_PATTERN } from './cron.ts';
import { UpdatePolicySchema } from './rollout.ts';
import { RouterModeSchema } from './settings.ts';
import {
  CalibrationSpecSchema,
  CalibrationStatusSchema,
  DriftSpecSchema,
  DriftStatusSchema,
  PrometheusSelectorSchema,
  PrometheusSourceSchema,
  RequestTraceSourceSchema,
} from './telemetry.ts';

/**
 * DeploymentTuning: a user's tuning goal for one serving deployment (see docs in the README).
 *
 * Anyone who may create one in a namespace chooses what the operator computes and reads, so every size,
 * count and number is bounded here, at admission (see LIMITS and the README's security model).
 */

/** Admission limits (documented in the README; a sweep also has a deadline). */
export const LIMITS = {
  /** Upper bound of candidates a search space may describe (explicit parts; defaults count as below). */
  candidates: 10_000,
  /** Worker counts a default ('up to the budget') range contributes to that bound. */
  defaultWorkerCounts: 64,
  workersPerRole: 4096,
  tensorParallel: 64,
  dataParallel: 64,
  gpusPerType: 4096,
  totalGpus: 16_384,
  gpuTypes: 16,
  blockSize: 4096,
  maxNumSeqs: 65_536,
  maxNumBatchedTokens: 2_097_152,
  overlapWeight: 100,
  traceBlockSize: 65_536,
} as const;

const CRON = new RegExp(CRON_PATTERN);
const CRON_MESSAGE =
  'must be a cron expression: 5 fields (minute 0-59, hour 0-23, day 1-31, month 1-12, weekday 0-7), or 6 with seconds first, or @hourly/@daily/@weekly/@monthly/@yearly';

const posInt = z.number().int().min(1);
const boundedList = (max: number, maxValue: number) => z.array(posInt.max(maxValue)).min(1).max(max);

export const SloSchema = z
  .object({
    metric: z
      .enum(['TTFT', 'ITL', 'E2E'])
      .describe('Time to first token, inter-token latency or end-to-end.'),
    percentile: z.literal([50, 90, 99]).describe('Percentile the target applies to.'),
    maxMs: z.number().gt(0).describe('Upper bound in milliseconds.'),
  })
  .describe('A latency percentile target.');
export type Slo = z.infer<typeof SloSchema>;

const WorkerRange = cel(
  z
    .object({
      min: posInt.max(LIMITS.workersPerRole).describe('Fewest workers to try.'),
      max: posInt.max(LIMITS.workersPerRole).describe('Most workers to try.'),
    })
    .describe('Inclusive range of worker counts.'),
  { rule: 'self.min <= self.max', message: 'min must not exceed max' },
);

export const SearchSpaceSchema = z
  .object({
    gpuTypes: z
      .array(z.string().max(64))
      .max(LIMITS.gpuTypes)
      .optional()
      .describe('GPU types to consider (catalog ids such as h100_sxm); default: every type in the budget.'),
    topologies: z
      .array(z.enum(['Aggregated', 'Disaggregated']))
      .min(1)
      .max(2)
      .default(['Aggregated'])
      .describe('Serving topologies to consider.'),
    tensorParallel: z
      .object({
        aggregated: boundedList(8, LIMITS.tensorParallel).optional(),
        prefill: boundedList(8, LIMITS.tensorParallel).optional(),
        decode: boundedList(8, LIMITS.tensorParallel).optional(),
      })
      .optional()
      .describe('Tensor-parallel degrees to try per role (default: 1, 2, 4, 8).'),
    dataParallel: boundedList(4, LIMITS.dataParallel)
      .optional()
      .describe('Attention-data-parallel ranks per aggregated worker to try (default: the current).'),
    speculativeDraftTokens: z
      .array(z.number().int().min(0).max(5))
      .min(1)
      .max(6)
      .optional()
      .describe('MTP draft tokens per forward to try, 0 = none (default: the current).'),
    workers: z
      .object({
        aggregated: WorkerRange.optional(),
        prefill: WorkerRange.optional(),
        decode: WorkerRange.optional(),
      })
      .optional()
      .describe('Worker counts to try per role (default: 1 up to what the GPU budget allows).'),
    routers: z
      .array(RouterModeSchema)
      .min(1)
      .max(4)
      .default(['RoundRobin', 'KV'])
      .describe('Router policies to try.'),
    kvOverlapWeights: z
      .array(z.number().min(0).max(LIMITS.overlapWeight))
      .min(1)
      .max(8)
      .optional()
      .describe('KV router overlap (prefill cost) weights to try (default: 0.5, 1, 2).'),
    blockSizes: boundedList(4, LIMITS.blockSize)
      .optional()
      .describe('KV block sizes to try (default: the current one, else 64).'),
    backends: z
      .array(z.enum(['vLLM', 'SGLang', 'TRTLLM']))
      .min(1)
      .max(3)
      .optional()
      .describe('Serving engines to try (default: the one the target runs).'),
    maxNumSeqs: boundedList(8, LIMITS.maxNumSeqs).optional().describe('vLLM max_num_seqs values to try.'),
    maxNumBatchedTokens: boundedList(8, LIMITS.maxNumBatchedTokens)
      .optional()
      .describe('vLLM max_num_batched_tokens values to try.'),
    optimizer: z
      .enum(['Grid', 'Coordinate', 'Halving'])
      .default('Grid')
      .describe('Search strategy: exhaustive grid, coordinate descent, or successive halving.'),
  })
  .describe('The candidate configurations a sweep explores.');
export type SearchSpace = z.infer<typeof SearchSpaceSchema>;

/**
 * An upper bound of the candidates a search space describes, as CEL (admission) and TypeScript (runtime) over
 * the same terms: shapes per topology (a default TP list counts 4 or 3 values, a default worker range
 * LIMITS.defaultWorkerCounts; a disaggregated shape counts its prefill range only, since the budget edge
 * fixes the decode count) times routers, KV weights, engines, engine knobs and GPU types.
 */
const has = (path: string) =>
  path
    .split('.')
    .map((_, i, a) => `has(self.${a.slice(0, i + 1).join('.')})`)
    .join(' && ');
const sizeOr = (path: string, d: number) => `(${has(path)} ? size(self.${path}) : ${d})`;
const rangeOr = (path: string, d: number) =>
  `(${has(path)} ? self.${path}.max - self.${path}.min + 1 : ${d})`;
const W = LIMITS.defaultWorkerCounts;
export const CANDIDATE_BOUND_CEL = [
  `((self.topologies.exists(t, t == 'Aggregated') ? ${sizeOr('tensorParallel.aggregated', 4)} * ${sizeOr('dataParallel', 1)} * ${rangeOr('workers.aggregated', W)} : 0)`,
  ` + (self.topologies.exists(t, t == 'Disaggregated') ? ${sizeOr('tensorParallel.prefill', 3)} * ${sizeOr('tensorParallel.decode', 3)} * ${rangeOr('workers.prefill', W)} : 0))`,
  ` * size(self.routers) * ${sizeOr('kvOverlapWeights', 3)} * ${sizeOr('backends', 1)} * ${sizeOr('maxNumSeqs', 1)}`,
  ` * ${sizeOr('maxNumBatchedTokens', 1)} * ${sizeOr('blockSizes', 1)} * ${sizeOr('gpuTypes', 1)}`,
  ` * ${sizeOr('speculativeDraftTokens', 1)}`,
].join('');

export function candidateBound(s: SearchSpace): number {
  const range = (r?: { min: number; max: number }) => (r ? r.max - r.min + 1 : W);
  const agg = s.topologies.includes('Aggregated')
    ? (s.tensorParallel?.aggregated?.length ?? 4) *
      (s.dataParallel?.length ?? 1) *
      range(s.workers?.aggregated)
    : 0;
  const dis = s.topologies.includes('Disaggregated')
    ? (s.tensorParallel?.prefill?.length ?? 3) *
      (s.tensorParallel?.decode?.length ?? 3) *
      range(s.workers?.prefill)
    : 0;
  return (
    (agg + dis) *
    s.routers.length *
    (s.kvOverlapWeights?.length ?? 3) *
    (s.backends?.length ?? 1) *
    (s.maxNumSeqs?.length ?? 1) *
    (s.maxNumBatchedTokens?.length ?? 1) *
    (s.blockSizes?.length ?? 1) *
    (s.gpuTypes?.length ?? 1) *
    (s.speculativeDraftTokens?.length ?? 1)
  );
}

export const BoundedSearchSpaceSchema = cel(
  SearchSpaceSchema.refine(
    (s) => candidateBound(s) <= LIMITS.candidates,
    `describes too many candidates (more than ${LIMITS.candidates}); narrow the ranges or lists`,
  ),
  {
    rule: `${CANDIDATE_BOUND_CEL} <= ${LIMITS.candidates}`,
    message: `describes too many candidates (more than ${LIMITS.candidates}); narrow the ranges or lists`,
  },
);

export const WorkloadSourceSchema = cel(
  z
    .object({
      configMap: z
        .object({
          name: Name.describe('ConfigMap in the same namespace.'),
          key: z.string().min(1).max(253).describe('Data key holding the trace.'),
        })
        .optional()
        .describe(
          'A trace stored in a ConfigMap key (ConfigMaps hold at most 1 MiB; use file or url for more).',
        ),
      file: z
        .object({
          path: z
            .string()
            .min(1)
            .max(4096)
            .regex(/^\//, 'must be an absolute path')
            .describe('Absolute path.'),
        })
        .optional()
        .describe(
          'A trace file on a volume mounted into the operator, under one of its --trace-root directories.',
        ),
      url: z
        .object({
          url: z
            .string()
            .max(2048)
            .regex(
              /^https?:\/\/[^/?#@\s]+([/?#]\S*)?$/,
              'must be an http:// or https:// URL with a host and no credentials',
            )
            .describe(
              'URL serving the trace (https to a public address unless the operator allows more; no redirects are followed).',
            ),
        })
        .optional()
        .describe('A trace served over HTTP(S).'),
      requestTrace: RequestTraceSourceSchema.optional(),
      prometheus: PrometheusSourceSchema.optional(),
    })
    .describe('Where the traffic comes from; exactly one source.'),
  {
    rule: '(has(self.configMap) ? 1 : 0) + (has(self.file) ? 1 : 0) + (has(self.url) ? 1 : 0) + (has(self.requestTrace) ? 1 : 0) + (has(self.prometheus) ? 1 : 0) == 1',
    message: 'workload.source needs exactly one of configMap, file, url, requestTrace or prometheus',
  },
);

/** The source a workload spec names (admission makes it exactly one). */
export function sourceKind(
  s: z.infer<typeof WorkloadSourceSchema>,
): 'configMap' | 'file' | 'url' | 'requestTrace' | 'prometheus' {
  if (s.configMap) return 'configMap';
  if (s.file) return 'file';
  if (s.url) return 'url';
  if (s.requestTrace) return 'requestTrace';
  return 'prometheus';
}

export const WorkloadSpecSchema = z
  .object({
    source: WorkloadSourceSchema,
    format: z
      .enum(['Auto', 'MooncakeJSONL', 'DynamoRequestTrace', 'AzureCSV'])
      .default('Auto')
      .describe('Trace format: Auto detects it from the content; another value forces it.'),
    lookback: boundedDuration('720h')
      .optional()
      .describe(
        'Replay only the last part of the traffic (e.g. 1h): measured back from the newest request of a trace, and from now for request traces (default 1h there).',
      ),
    traceBlockSize: posInt
      .max(LIMITS.traceBlockSize)
      .default(512)
      .describe('Tokens per hash id in the trace (Mooncake: 512).'),
  })
  .describe('The traffic replayed by each sweep.');
export type WorkloadSpec = z.infer<typeof WorkloadSpecSchema>;

export const GpuBudgetSchema = cel(
  z
    .object({
      mode: z
        .enum(['Auto', 'Explicit'])
        .default('Auto')
        .describe('Auto: what the cluster has free plus what the target holds. Explicit: the gpus map.'),
      gpus: cel(
        z
          .record(
            z
              .string()
              .max(64)
              .regex(/^[a-z0-9][a-z0-9_.-]*$/, 'must be a catalog GPU id such as h100_sxm'),
            z.number().int().min(0).max(LIMITS.gpusPerType),
          )
          .meta({ maxProperties: LIMITS.gpuTypes })
          .refine((r) => Object.keys(r).length <= LIMITS.gpuTypes, `at most ${LIMITS.gpuTypes} GPU types`)
          .optional()
          .describe(
            'GPUs per type (catalog id such as h100_sxm): the budget when Explicit, a cap when Auto.',
          ),
        {
          rule: "self.all(k, size(k) <= 64 && k.matches('^[a-z0-9][a-z0-9_.-]*$'))",
          message: 'keys must be catalog GPU ids such as h100_sxm (lower case, at most 64 characters)',
        },
      ),
      maxTotalGPUs: posInt.max(LIMITS.totalGpus).optional().describe('Cap on GPUs of all types together.'),
    })
    .describe('GPUs a proposal may use.'),
  {
    rule: "self.mode == 'Auto' || (has(self.gpus) && size(self.gpus) > 0)",
    message: 'gpuBudget.gpus is required when mode is Explicit',
  },
);

export const DeploymentTuningSpecSchema = z
  .object({
    targetRef: TargetRefSchema,
    model: z
      .string()
      .max(253)
      .optional()
      .describe("Model served; default: read from the target's worker arguments."),
    objective: z
      .enum(['ThroughputPerGPU', 'Goodput', 'GoodputPerGPU', 'RequestsPerGPUHour', 'Cost'])
      .default('ThroughputPerGPU')
      .describe(
        'What the sweep optimises among configurations meeting the SLOs: output tokens/s per GPU, good requests/s (overall or per GPU), requests per GPU-hour, or (minimised) GPU cost per 1000 requests.',
      ),
    slos: listMap(
      z.array(SloSchema).max(9).default([]).describe('Latency targets every proposal must meet.'),
      'metric',
      'percentile',
    ),
    gpuBudget: GpuBudgetSchema.default({ mode: 'Auto' }),
    searchSpace: BoundedSearchSpaceSchema.default({
      topologies: ['Aggregated'],
      routers: ['RoundRobin', 'KV'],
      optimizer: 'Grid',
    }),
    workload: WorkloadSpecSchema,
    schedule: cel(
      z
        .string()
        .max(256)
        // A refinement, not a `pattern`: the API server would echo a 2 kB expression in its error.
        .refine((v) => CRON.test(v), CRON_MESSAGE)
        .default('0 * * * *')
        .describe(
          'Cron expression (5 fields, or 6 with seconds) for sweeps, in UTC. The operator enforces a minimum interval between sweeps (5m by default).',
        ),
      { rule: `self.matches('${CRON_PATTERN.replaceAll('\\', '\\\\')}')`, message: CRON_MESSAGE },
    ),
    sweepTimeout: boundedDuration('24h')
      .default('15m')
      .describe(
        'Deadline of one sweep; a sweep still running then is stopped and recorded as Failed. The operator may cap it lower.',
      ),
    suspend: z.boolean().default(false).describe('Stop scheduling sweeps (a running sweep finishes).'),
    updatePolicy: UpdatePolicySchema.default(UpdatePolicySchema.parse({})),
    metrics: z
      .object({
        prometheusURL: z
          .string()
          .max(2048)
          .regex(
            /^https?:\/\/[^/?#@\s]+([/?#]\S*)?$/,
            'must be an http:// or https:// URL with a host and no credentials',
          )
          .optional()
          .describe(
            "Prometheus that scrapes the target's Dynamo frontend (default: the operator's --prometheus-url). Subject to the operator's URL policy.",
          ),
        selector: PrometheusSelectorSchema.optional().describe(
          "Label matchers that pick the target's frontend series (default: model=<served model>).",
        ),
      })
      .optional()
      .describe('Where the live metrics of the target are, for verifying changes.'),
    guardrails: z
      .object({
        minImprovementPercent: z
          .number()
          .min(0)
          .max(1000)
          .default(10)
          .describe('Propose only when the objective improves by at least this much.'),
        minProposalInterval: boundedDuration('8760h')
          .default('1h')
          .describe('Least time between two proposals.'),
      })
      .default({ minImprovementPercent: 10, minProposalInterval: '1h' })
      .describe('Stabilisation rules for proposals.'),
    historyLimit: z
      .number()
      .int()
      .min(1)
      .max(100)
      .default(10)
      .describe('TuningRecommendations kept for this object; older ones are deleted.'),
    drift: DriftSpecSchema.default(DriftSpecSchema.parse({})),
    calibration: CalibrationSpecSchema.default(CalibrationSpecSchema.parse({})),
  })
  .describe('What to tune, towards which goal, with which traffic and how often.');
export type DeploymentTuningSpec = z.infer<typeof DeploymentTuningSpecSchema>;

const Stats = z
  .object({ mean: z.number().min(0), p50: z.number().min(0), p90: z.number().min(0) })
  .describe('Mean and percentiles.');

export const WorkloadSummarySchema = z
  .object({
    source: z.string().max(4096).describe('Where the trace came from.'),
    hash: z.string().max(128).describe('sha256 of the trace window used.'),
    lines: z.number().int().min(0).describe('Lines read.'),
    badLines: z.number().int().min(0).describe('Lines skipped as invalid.'),
    requests: z.number().int().min(0).describe('Requests in the window.'),
    sessions: z.number().int().min(0).describe('Multi-turn sessions in the window.'),
    windowStartSeconds: z.number().min(0).describe('Window start, seconds into the trace.'),
    windowEndSeconds: z.number().min(0).describe('Window end, seconds into the trace.'),
    requestRate: z.number().min(0).describe('Mean arrival rate (requests per second).'),
    inputTokens: Stats.describe('Input sequence length (ISL).'),
    outputTokens: Stats.describe('Output sequence length (OSL).'),
    prefixReuseRatio: z
      .number()
      .min(0)
      .max(1)
      .describe('Fraction of prompt blocks seen earlier in the window.'),
  })
  .describe('The traffic the last sweep replayed.');
export type WorkloadSummary = z.infer<typeof WorkloadSummarySchema>;

export const GpuInventorySchema = z
  .object({
    observedTime: Timestamp,
    types: z
      .array(
        z.object({
          gpuType: z.string().max(64).describe('Catalog id.'),
          product: z.string().max(253).describe('nvidia.com/gpu.product label value.'),
          nodes: z.number().int().min(0),
          gpus: z.number().int().min(0).describe('Physical GPUs on schedulable nodes.'),
          requested: z.number().int().min(0).describe('GPUs requested by running pods.'),
          available: z.number().int().min(0).describe('GPUs free for new pods.'),
        }),
      )
      .max(32),
    unknownProducts: z
      .array(
        z.object({
          product: z.string().max(253),
          nodes: z.number().int().min(0),
          gpus: z.number().int().min(0),
        }),
      )
      .max(32)
      .describe('GPU products the simulator catalog does not know; ignored by sweeps.'),
    budget: z.record(z.string(), z.number().int().min(0)).describe('GPUs per type the last sweep could use.'),
  })
  .describe('GPUs found on Nodes, minus what pods request.');
export type GpuInventory = z.infer<typeof GpuInventorySchema>;

export const SweepOutcomes = [
  'Proposed',
  'NoImprovement',
  'TooSoon',
  'NoFeasibleCandidate',
  'Failed',
] as const;

export const HistoryEntrySchema = z.object({
  time: Timestamp.describe('When the sweep finished.'),
  reason: z
    .enum(['Schedule', 'WorkloadDrift'])
    .optional()
    .describe('Why the sweep ran: its schedule, or drift of the workload (out of schedule).'),
  outcome: z.enum(SweepOutcomes).describe('What the sweep led to.'),
  recommendation: z.string().max(253).optional().describe('TuningRecommendation created, if any.'),
  gainPercent: z.number().optional().describe('Predicted objective gain of the best candidate.'),
  message: z.string().max(1024).optional(),
});

export const DeploymentTuningStatusSchema = z
  .object({
    observedGeneration: z.number().int().min(0).optional(),
    conditions: Conditions.optional(),
    lastSweepTime: Timestamp.optional().describe('When the last sweep finished.'),
    nextSweepTime: Timestamp.optional().describe('When the next sweep is due.'),
    sweepStartedTime: Timestamp.optional().describe('When the running sweep started.'),
    sweepCrashes: z
      .number()
      .int()
      .min(0)
      .optional()
      .describe(
        'Sweeps in a row that ended in a crash (the sweep ran out of memory, its worker died, or the operator restarted during it); after a few the slot is given up as Failed.',
      ),
    lastProposalTime: Timestamp.optional().describe('When the last TuningRecommendation was created.'),
    currentRecommendation: z.string().max(253).optional().describe('The newest TuningRecommendation.'),
    history: z
      .array(HistoryEntrySchema)
      .max(10)
      .optional()
      .describe('Outcomes of the latest sweeps, newest first.'),
    gpuInventory: GpuInventorySchema.optional(),
    workload: WorkloadSummarySchema.optional(),
    rollout: z
      .object({
        recommendation: z.string().max(253).describe('The recommendation being (or last) rolled out.'),
        state: z.string().max(32).describe('Its state.'),
        since: Timestamp.optional(),
      })
      .optional()
      .describe('The rollout in progress, or the last one.'),
    lastChangeTime: Timestamp.optional().describe(
      'When servetune last changed the target (apply or rollback).',
    ),
    lastRollbackTime: Timestamp.optional().describe('When servetune last rolled the target back.'),
    failedProposals: z
      .array(z.string().max(128))
      .max(16)
      .optional()
      .describe(
        'Digests of settings that failed verification; not proposed again until the workload drifts.',
      ),
    sweepReason: z
      .enum(['Schedule', 'WorkloadDrift'])
      .optional()
      .describe('Why the next (or running) sweep runs, when not just its schedule.'),
    drift: DriftStatusSchema.optional(),
    calibration: CalibrationStatusSchema.optional().describe(
      "How well the simulator predicts this deployment's live metrics (telemetry); gates the Automatic mode and widens prediction intervals.",
    ),
    lastSweep: z
      .object({
        candidates: z.number().int().min(0).describe('Configurations simulated.'),
        feasible: z.number().int().min(0).describe('Configurations meeting the SLOs within budget.'),
        durationSeconds: z.number().min(0),
        simulatorVersion: z.string().max(64),
      })
      .optional()
      .describe('Size and cost of the last sweep.'),
  })
  .describe('Observed state, written by the operator.');
export type DeploymentTuningStatus = z.infer<typeof DeploymentTuningStatusSchema>;

export const DEPLOYMENT_TUNING: CrdDefinition = {
  group: GROUP,
  version: VERSION,
  kind: 'DeploymentTuning',
  plural: 'deploymenttunings',
  singular: 'deploymenttuning',
  shortNames: ['dtune'],
  categories: ['servetune'],
  description:
    'DeploymentTuning declares a tuning goal for one serving deployment: the operator replays its recent traffic through simulated configurations on a schedule and records better ones as TuningRecommendations.',
  spec: DeploymentTuningSpecSchema,
  status: DeploymentTuningStatusSchema,
  printerColumns: [
    { name: 'Target', type: 'string', jsonPath: '.spec.targetRef.name' },
    { name: 'Mode', type: 'string', jsonPath: '.spec.updatePolicy.mode' },
    { name: 'Ready', type: 'string', jsonPath: '.status.conditions[?(@.type=="Ready")].status' },
    {
      name: 'Sweeping',
      type: 'string',
      jsonPath: '.status.conditions[?(@.type=="Sweeping")].status',
      priority: 1,
    },
    { name: 'Recommendation', type: 'string', jsonPath: '.status.currentRecommendation' },
    { name: 'Rollout', type: 'string', jsonPath: '.status.rollout.state' },
    { name: 'Last Sweep', type: 'date', jsonPath: '.status.lastSweepTime' },
    { name: 'Next Sweep', type: 'string', jsonPath: '.status.nextSweepTime', priority: 1 },
    { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' },
  ],
};

export interface DeploymentTuning {
  apiVersion: typeof API_VERSION;
  kind: 'DeploymentTuning';
  metadata: KubeMeta;
  spec: DeploymentTuningSpec;
  status?: DeploymentTuningStatus;
}

/** The metadata fields the operator reads. */
export interface KubeMeta {
  name: string;
  namespace?: string;
  uid?: string;
  generation?: number;
  resourceVersion?: string;
  creationTimestamp?: string;
  deletionTimestamp?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  ownerReferences?: {
    apiVersion: string;
    kind: string;
    name: string;
    uid: string;
    controller?: boolean;
    blockOwnerDeletion?: boolean;
  }[];
}
