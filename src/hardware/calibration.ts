import { readFileSync } from 'node:fs';
import { z } from 'zod';
import type { StepOverhead } from '../sim/timing/hardware.ts';
import { type Calibration, CalibrationSchema } from './calibration-schema.ts';
import type { Gpu } from './gpus.ts';

export type { Calibration };

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
