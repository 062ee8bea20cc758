import { z } from 'zod';
import { CalibrationSchema } from './calibration-schema.ts';
import { KvDtypeSchema, WeightDtypeSchema } from './dtypes.ts';

/**
 * The `hardware` section of a simulation: which GPU and model the `hardware` timing model prices, at which
 * precision, and how vLLM sizes the KV cache. The tensor-parallel size is the simulation's
 * `tensorParallelSize`.
 */
export const HardwareConfigSchema = z
  .object({
    gpu: z.string().min(1).optional().describe('GPU id, alias or nvidia.com/gpu.product label'),
    model: z.string().min(1).optional().describe('model id, name or Hugging Face id'),
    dtype: WeightDtypeSchema.optional().describe("weight precision (the model's checkpoint dtype)"),
    kvDtype: KvDtypeSchema.optional().describe("KV-cache precision (the model's default, bf16)"),
    gpuMemoryUtilization: z
      .number()
      .gt(0, 'must be above 0')
      .max(1, 'must be at most 1')
      .default(0.9)
      .describe('share of HBM for weights, activations and KV (vLLM default 0.9)'),
    maxModelLen: z
      .number()
      .int('must be an integer')
      .positive('must be positive')
      .optional()
      .describe('tokens one request may need (default: the longest request of the workload)'),
    expertParallel: z
      .boolean()
      .default(false)
      .describe("split MoE experts across the worker's GPUs (TP x DP) instead of each expert's width"),
    expertParallelSize: z
      .number()
      .int('must be an integer')
      .positive('must be positive')
      .max(1024)
      .optional()
      .describe(
        'MoE expert-parallel size; moe_tp x moe_ep = TP x DP (default: all GPUs with expertParallel, else 1)',
      ),
    tier: z
      .enum(['auto', 'roofline'])
      .default('auto')
      .describe('auto = measured kernel tables where they exist; roofline = specs only'),
    gpusFile: z.string().min(1).optional().describe('YAML/JSON file of extra GPUs'),
    modelsFile: z.string().min(1).optional().describe('YAML/JSON file of extra models'),
    calibration: CalibrationSchema.partial()
      .optional()
      .describe('override bundled calibration terms (e.g. fitted on your own cluster)'),
  })
  .strict();

export type HardwareConfig = z.infer<typeof HardwareConfigSchema>;
