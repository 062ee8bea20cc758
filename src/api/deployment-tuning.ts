import { z } from 'zod';
import {
  type API_VERSION,
  Conditions,
  Duration,
  GROUP,
  Name,
  TargetRefSchema,
  Timestamp,
  VERSION,
} from './common.ts';
import { type CrdDefinition, cel, listMap } from './crd.ts';
import { RouterModeSchema } from './settings.ts';

/** DeploymentTuning: a user's tuning goal for one serving deployment (see docs in the README). */

const posInt = z.number().int().min(1);
const intList = (max: number) => z.array(posInt).min(1).max(max);

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
      min: posInt.describe('Fewest workers to try.'),
      max: posInt.describe('Most workers to try.'),
    })
    .describe('Inclusive range of worker counts.'),
  { rule: 'self.min <= self.max', message: 'min must not exceed max' },
);

export const SearchSpaceSchema = z
  .object({
    gpuTypes: z
      .array(z.string().max(64))
      .max(16)
      .optional()
      .describe('GPU types to consider (catalog ids such as h100_sxm); default: every type in the budget.'),
    topologies: z
      .array(z.enum(['Aggregated', 'Disaggregated']))
      .min(1)
      .max(2)
      .default(['Aggregated'])
      .describe(
        'Serving topologies to consider (Disaggregated is accepted; the simulator does not model it yet).',
      ),
    tensorParallel: z
      .object({
        aggregated: intList(8).optional(),
        prefill: intList(8).optional(),
        decode: intList(8).optional(),
      })
      .optional()
      .describe('Tensor-parallel degrees to try per role (default: 1, 2, 4, 8).'),
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
      .array(z.number().min(0))
      .min(1)
      .max(8)
      .optional()
      .describe('KV router overlap (prefill cost) weights to try (default: 0.5, 1, 2).'),
    blockSizes: intList(4).optional().describe('KV block sizes to try (default: the current one, else 64).'),
    backends: z
      .array(z.enum(['vLLM', 'SGLang']))
      .min(1)
      .max(2)
      .optional()
      .describe('Serving engines to try (default: the one the target runs).'),
    maxNumSeqs: intList(8).optional().describe('vLLM max_num_seqs values to try.'),
    maxNumBatchedTokens: intList(8).optional().describe('vLLM max_num_batched_tokens values to try.'),
    optimizer: z
      .enum(['Grid', 'Coordinate', 'Halving'])
      .default('Grid')
      .describe('Search strategy: exhaustive grid, coordinate descent, or successive halving.'),
  })
  .describe('The candidate configurations a sweep explores.');
export type SearchSpace = z.infer<typeof SearchSpaceSchema>;

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
            .regex(/^https?:\/\//, 'must be an http:// or https:// URL')
            .describe('URL serving the trace.'),
        })
        .optional()
        .describe('A trace served over HTTP(S).'),
    })
    .describe('Where the traffic trace comes from; exactly one source.'),
  {
    rule: '(has(self.configMap) ? 1 : 0) + (has(self.file) ? 1 : 0) + (has(self.url) ? 1 : 0) == 1',
    message: 'workload.source needs exactly one of configMap, file or url',
  },
);

export const WorkloadSpecSchema = z
  .object({
    source: WorkloadSourceSchema,
    format: z.enum(['MooncakeJSONL']).default('MooncakeJSONL').describe('Trace format.'),
    lookback: Duration.optional().describe(
      'Replay only the last part of the trace, measured back from its newest request (e.g. 1h).',
    ),
    traceBlockSize: posInt.default(512).describe('Tokens per hash id in the trace (Mooncake: 512).'),
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
      gpus: z
        .record(z.string().max(64), z.number().int().min(0))
        .optional()
        .describe('GPUs per type (catalog id such as h100_sxm): the budget when Explicit, a cap when Auto.'),
      maxTotalGPUs: posInt.optional().describe('Cap on GPUs of all types together.'),
    })
    .describe('GPUs a proposal may use.'),
  {
    rule: "self.mode == 'Auto' || (has(self.gpus) && size(self.gpus) > 0)",
    message: 'gpuBudget.gpus is required when mode is Explicit',
  },
);
export type GpuBudget = z.infer<typeof GpuBudgetSchema>;

export const UpdateModes = ['Off', 'Approval', 'Automatic'] as const;

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
    searchSpace: SearchSpaceSchema.default({
      topologies: ['Aggregated'],
      routers: ['RoundRobin', 'KV'],
      optimizer: 'Grid',
    }),
    workload: WorkloadSpecSchema,
    schedule: z
      .string()
      .max(128)
      .regex(
        /^(@(hourly|daily|weekly|monthly|yearly|annually)|(\S+\s+){4,5}\S+)$/,
        'must be a cron expression',
      )
      .default('0 * * * *')
      .describe('Cron expression (5 fields, or 6 with seconds) for sweeps, in UTC.'),
    suspend: z.boolean().default(false).describe('Stop scheduling sweeps (a running sweep finishes).'),
    updatePolicy: z
      .object({
        mode: z
          .enum(UpdateModes)
          .default('Off')
          .describe('Off: recommend only. Approval and Automatic are accepted but not acted on yet.'),
      })
      .default({ mode: 'Off' })
      .describe('What happens to recommendations.'),
    guardrails: z
      .object({
        minImprovementPercent: z
          .number()
          .min(0)
          .max(1000)
          .default(10)
          .describe('Propose only when the objective improves by at least this much.'),
        minProposalInterval: Duration.default('1h').describe('Least time between two proposals.'),
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
    lastProposalTime: Timestamp.optional().describe('When the last TuningRecommendation was created.'),
    currentRecommendation: z.string().max(253).optional().describe('The newest TuningRecommendation.'),
    history: z
      .array(HistoryEntrySchema)
      .max(10)
      .optional()
      .describe('Outcomes of the latest sweeps, newest first.'),
    gpuInventory: GpuInventorySchema.optional(),
    workload: WorkloadSummarySchema.optional(),
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
