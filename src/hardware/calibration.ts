import { readFileSync } from 'node:fs';
import { z } from 'zod';
import type { StepOverhead } from '../sim/timing/hardware.ts';
import type { Gpu } from './gpus.ts';

/**
 * What the kernel tables do not see, fitted on measured end-to-end benchmarks by hack/calibrate-timing.ts:
 * the per-pass overhead (scheduler, input preparation, sampling: stepMs + perSeqMs per sequence, plus
 * perPrefillMs per prefill request), prefillScale (served prefill over summed kernels) and moeScale, the ratio of a served MoE layer (routing, permutation,
 * imbalance) to the routed-expert kernels AIC times.
 */
export const CalibrationSchema = z
  .object({
    stepMs: z.number().nonnegative(),
    perSeqMs: z.number().nonnegative(),
    perPrefillMs: z.number().nonnegative(),
    moeScale: z.number().positive(),
    prefillScale: z.number().positive(),
  })
  .strict();
export type Calibration = z.infer<typeof CalibrationSchema>;

const FileSchema = z.object({
  default: CalibrationSchema,
  byGpu: z.record(z.string(), CalibrationSchema),
  byArch: z.record(z.string(), CalibrationSchema).default({}),
});

let cached: z.infer<typeof FileSchema> | undefined;

/** The bundled calibration (src/hardware/data/calibration.json). */
export function bundledCalibration(): z.infer<typeof FileSchema> {
  if (!cached) {
    const url = new URL('./data/calibration.json', import.meta.url);
    cached = FileSchema.parse(JSON.parse(readFileSync(url, 'utf8')));
  }
  return cached;
}

/** A GPU's calibration: its own fit, else its architecture's, else the pooled fit. */
export function calibrationFor(gpu: Gpu): Calibration {
  const c = bundledCalibration();
  return c.byGpu[gpu.kernelTables ?? gpu.id] ?? c.byGpu[gpu.id] ?? c.byArch[gpu.spec.arch] ?? c.default;
}

export function overheadOf(c: Calibration): StepOverhead {
  return {
    stepMs: c.stepMs,
    perSeqMs: c.perSeqMs,
    perPrefillMs: c.perPrefillMs,
    prefillScale: c.prefillScale,
  };
}
