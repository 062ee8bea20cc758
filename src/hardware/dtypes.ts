import { z } from 'zod';

/** Weight (GEMM) precisions the timing model prices. fp4 = NVFP4/MXFP4 4-bit weights. */
export const WeightDtypeSchema = z.enum(['bf16', 'fp8', 'fp4']);
export type WeightDtype = z.infer<typeof WeightDtypeSchema>;

/** KV-cache element precisions. */
export const KvDtypeSchema = z.enum(['bf16', 'fp8']);
export type KvDtype = z.infer<typeof KvDtypeSchema>;

/** Bytes per element; fp4 carries block scales (one 8-bit scale per 16 or 32 values), hence ~0.53. */
export function weightBytes(d: WeightDtype): number {
  return d === 'bf16' ? 2 : d === 'fp8' ? 1 : 0.53;
}

export function kvBytes(d: KvDtype): number {
  return d === 'bf16' ? 2 : 1;
}

/** Accepted spellings on the command line and in files. */
export const DTYPE_ALIASES: Record<string, WeightDtype> = {
  bf16: 'bf16',
  bfloat16: 'bf16',
  fp16: 'bf16',
  half: 'bf16',
  fp8: 'fp8',
  fp4: 'fp4',
  nvfp4: 'fp4',
  mxfp4: 'fp4',
};

export const KV_DTYPE_ALIASES: Record<string, KvDtype> = {
  bf16: 'bf16',
  bfloat16: 'bf16',
  fp16: 'bf16',
  auto: 'bf16',
  fp8: 'fp8',
};
