import { z } from 'zod';
import { cel } from './crd.ts';

/** Serving settings and predicted metrics, shared by recommendations and the tuning status. */

const count = z.number().int().min(0);

export const RouterModes = ['RoundRobin', 'Random', 'LeastLoaded', 'KV'] as const;
export type RouterMode = (typeof RouterModes)[number];
export const RouterModeSchema = z.enum(RouterModes);

export const RoleSettingsSchema = z
  .object({
    workers: count.describe('Worker replicas of this role.'),
    tensorParallel: z.number().int().min(1).describe('Tensor-parallel degree of one worker.'),
    dataParallel: z
      .number()
      .int()
      .min(1)
      .max(64)
      .optional()
      .describe('Attention-data-parallel ranks of one worker (default 1).'),
    gpusPerWorker: z.number().int().min(1).describe('GPUs one worker uses (TP x DP).'),
  })
  .describe('Worker count and parallelism of one role.');
export type RoleSettings = z.infer<typeof RoleSettingsSchema>;

export const Backends = ['vLLM', 'SGLang', 'TRTLLM'] as const;
export type Backend = (typeof Backends)[number];

export const EngineSettingsSchema = z
  .object({
    backend: z.enum(Backends).optional().describe('Serving engine of the workers (default vLLM).'),
    maxNumSeqs: z.number().int().min(1).optional().describe('vLLM max_num_seqs.'),
    maxNumBatchedTokens: z.number().int().min(1).optional().describe('vLLM max_num_batched_tokens.'),
    blockSize: z.number().int().min(1).optional().describe('KV block size in tokens.'),
    expertParallel: z
      .boolean()
      .optional()
      .describe("MoE experts split across the worker's GPUs (expert parallelism)."),
    speculative: z
      .object({
        method: z.string().max(32).describe('Speculative decoding method (e.g. mtp, eagle).'),
        draftTokens: z.number().int().min(1).max(5).describe('Draft tokens per forward.'),
      })
      .optional()
      .describe('MTP / speculative decoding.'),
  })
  .describe('Serving engine and the knobs that differ from its defaults.');

/**
 * The Dynamo Planner and the replica bounds servetune tunes on it (its `min_endpoint` and `max_gpu_budget`):
 * with a Planner the worker counts are its to move, so the bounds are the knobs for replicas.
 */
const PlannerSettingsSchema = z
  .object({
    enabled: z.boolean().describe('Whether the Dynamo Planner autoscales the workers.'),
    minEndpoint: z
      .number()
      .int()
      .min(1)
      .max(4096)
      .optional()
      .describe("The Planner's min_endpoint: fewest replicas of each worker role it scales."),
    maxGpuBudget: z
      .number()
      .int()
      .min(-1)
      .max(100_000)
      .optional()
      .describe("The Planner's max_gpu_budget: most GPUs its workers may hold (-1: no limit)."),
    config: z
      .string()
      .max(16_384)
      .optional()
      .describe(
        "The Planner's configuration as the target gives it (planner-file JSON): the deployment is priced under it.",
      ),
  })
  .describe('Dynamo Planner.');

export const ServingSettingsSchema = cel(
  z
    .object({
      model: z.string().max(253).optional().describe('Model served.'),
      gpuType: z.string().max(64).describe('GPU type from the simulator catalog (e.g. h100_sxm).'),
      gpus: count.describe('Total GPUs the deployment uses.'),
      topology: z
        .enum(['Aggregated', 'Disaggregated'])
        .describe('Aggregated workers, or disaggregated prefill and decode workers.'),
      aggregated: RoleSettingsSchema.optional().describe('Workers when the topology is Aggregated.'),
      prefill: RoleSettingsSchema.optional().describe('Prefill workers when Disaggregated.'),
      decode: RoleSettingsSchema.optional().describe('Decode workers when Disaggregated.'),
      router: z
        .object({
          mode: RouterModeSchema.describe('Request routing policy of the frontend.'),
          overlapWeight: z.number().min(0).optional().describe('KV router: weight of the prefill cost.'),
          temperature: z.number().min(0).optional().describe('KV router: softmax temperature.'),
        })
        .describe('Frontend router.'),
      planner: PlannerSettingsSchema,
      engine: EngineSettingsSchema.optional(),
    })
    .describe('A serving configuration: topology, parallelism, worker counts, router and Planner.'),
  {
    rule: "self.topology == 'Aggregated' ? has(self.aggregated) : (has(self.prefill) && has(self.decode))",
    message: 'Aggregated needs aggregated workers; Disaggregated needs prefill and decode workers',
  },
);
export type ServingSettings = z.infer<typeof ServingSettingsSchema>;

const ms = z.number().min(0);
export const PercentilesSchema = z
  .object({ p50: ms, p90: ms, p99: ms })
  .describe('Percentiles in milliseconds.');

export const PredictedMetricsSchema = z
  .object({
    ttftMs: PercentilesSchema.describe('Time to first token.'),
    itlMs: PercentilesSchema.describe('Inter-token latency.'),
    e2eMs: PercentilesSchema.describe('End-to-end latency.'),
    requestThroughputRps: z.number().min(0).describe('Completed requests per second.'),
    outputTokensPerSecond: z.number().min(0).describe('Output tokens per second.'),
    outputTokensPerSecondPerGpu: z.number().min(0).describe('Output tokens per second per GPU.'),
    goodputFraction: z.number().min(0).max(1).describe('Fraction of requests meeting every SLO.'),
    meetsSlos: z.boolean().describe('Whether every SLO percentile target holds.'),
    objectiveValue: z.number().describe('Value of the objective, in its own unit.'),
  })
  .describe('Simulated metrics of one configuration over the trace window.');
export type PredictedMetrics = z.infer<typeof PredictedMetricsSchema>;
