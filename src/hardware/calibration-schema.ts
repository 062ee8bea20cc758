import { z } from 'zod';

/**
 * What the kernel tables do not see, fitted on measured end-to-end benchmarks by hack/calibrate-timing.ts:
 * the per-pass overhead (scheduler, input preparation, sampling: stepMs + perSeqMs per sequence, plus
 * perPrefillMs per prefill request), prefillScale (served prefill over the summed kernels: unfused ops,
 * activation quantisation, piecewise CUDA graphs) and moeScale (a served MoE layer, with routing,
 * permutation and imbalance, over the routed-expert kernels AIC times).
 */
export const CalibrationSchema = z
  .object({
    stepMs: z.number().nonnegative('must not be negative'),
    perSeqMs: z.number().nonnegative('must not be negative'),
    perPrefillMs: z.number().nonnegative('must not be negative'),
    moeScale: z.number().positive('must be positive'),
    prefillScale: z.number().positive('must be positive'),
  })
  .strict();
export type Calibration = z.infer<typeof CalibrationSchema>;
