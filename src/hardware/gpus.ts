import { z } from 'zod';
import type { WeightDtype } from './dtypes.ts';

const positive = z.number().positive('must be positive');
const nonNegative = z.number().nonnegative('must not be negative');
const id = z
  .string()
  .regex(/^[a-z0-9][a-z0-9._-]*$/, 'must be lowercase letters, digits, ".", "_" or "-"')
  .max(64);

/**
 * A GPU as users write it in a catalog file (and as the built-in catalog is written): spec-sheet units.
 * Bandwidths are per GPU per direction; FLOP/s are dense (no sparsity).
 */
export const GpuSpecSchema = z
  .object({
    id,
    name: z.string().min(1),
    aliases: z.array(z.string().min(1)).default([]),
    /** `nvidia.com/gpu.product` node-label values that identify this GPU. */
    productLabels: z.array(z.string().min(1)).default([]),
    arch: z.enum(['ampere', 'ada', 'hopper', 'blackwell', 'other']).default('other'),
    hbmGiB: positive.describe('HBM capacity, GiB'),
    hbmBandwidthGBps: positive.describe('HBM bandwidth, GB/s'),
    tflops: z
      .object({ bf16: positive, fp8: positive.optional(), fp4: positive.optional() })
      .strict()
      .describe('dense tensor TFLOP/s per dtype; missing fp8/fp4 means weight-only (bf16 math)'),
    nvlinkGBps: nonNegative.default(0).describe('NVLink (or fabric) GB/s per direction; 0 = none'),
    pcieGBps: positive.default(32),
    interNodeGBps: positive.default(50).describe('network GB/s per GPU per direction'),
    gpusPerNode: z.number().int().positive().default(8),
    /** GPUs in one NVLink domain (72 for NVL72 racks); defaults to gpusPerNode. */
    nvlinkDomain: z.number().int().positive().optional(),
    source: z.string().optional(),
  })
  .strict();

export type GpuSpec = z.infer<typeof GpuSpecSchema>;

/** A catalogued GPU in SI units, as the timing and memory models use it. */
export interface Gpu {
  readonly spec: GpuSpec;
  readonly id: string;
  readonly hbmBytes: number;
  readonly hbmBandwidth: number;
  /** Dense FLOP/s of the tensor cores for math in this dtype (fp4/fp8 fall back to bf16 when absent). */
  readonly flops: Readonly<Record<WeightDtype, number>>;
  /** Whether the dtype has native tensor-core math (otherwise weight-only: low-bit weights, bf16 math). */
  readonly nativeMath: Readonly<Record<WeightDtype, boolean>>;
  /** Bandwidth of the link tensor-parallel collectives use inside a node (NVLink, else PCIe), B/s. */
  readonly linkBandwidth: number;
  readonly interNodeBandwidth: number;
  readonly nvlinkDomain: number;
  /** Id of bundled measured kernel tables for this GPU, if any. */
  readonly kernelTables: string | null;
}

export function toGpu(spec: GpuSpec, kernelTables: string | null = null): Gpu {
  const t = spec.tflops;
  return {
    spec,
    id: spec.id,
    hbmBytes: spec.hbmGiB * 2 ** 30,
    hbmBandwidth: spec.hbmBandwidthGBps * 1e9,
    flops: { bf16: t.bf16 * 1e12, fp8: (t.fp8 ?? t.bf16) * 1e12, fp4: (t.fp4 ?? t.fp8 ?? t.bf16) * 1e12 },
    nativeMath: { bf16: true, fp8: t.fp8 !== undefined, fp4: t.fp4 !== undefined },
    linkBandwidth: (spec.nvlinkGBps > 0 ? spec.nvlinkGBps : spec.pcieGBps) * 1e9,
    interNodeBandwidth: spec.interNodeGBps * 1e9,
    nvlinkDomain: spec.nvlinkGBps > 0 ? (spec.nvlinkDomain ?? spec.gpusPerNode) : 1,
    kernelTables,
  };
}

const AIC = 'ai-dynamo/aiconfigurator@095f58a5 systems/';

/**
 * Built-in GPUs. Figures from AIConfigurator's system files (Apache-2.0; see src/hardware/data/README.md),
 * label values from NVIDIA GPU feature discovery (device name with spaces as dashes) and AIC's generator.
 * `tables` names the bundled measured kernel tables (vLLM) where they exist.
 */
export const BUILTIN_GPUS: readonly { spec: z.input<typeof GpuSpecSchema>; tables?: string }[] = [
  {
    tables: 'h100_sxm',
    spec: {
      id: 'h100_sxm',
      name: 'NVIDIA H100 SXM 80GB',
      aliases: ['h100', 'h100-sxm', 'h100-sxm5', 'h100-80gb'],
      productLabels: ['NVIDIA-H100-80GB-HBM3', 'NVIDIA-H100-SXM5-80GB'],
      arch: 'hopper',
      hbmGiB: 80,
      hbmBandwidthGBps: 3350,
      tflops: { bf16: 989, fp8: 1978 },
      nvlinkGBps: 450,
      pcieGBps: 64,
      interNodeGBps: 50,
      source: `${AIC}h100_sxm.yaml`,
    },
  },
  {
    tables: 'h200_sxm',
    spec: {
      id: 'h200_sxm',
      name: 'NVIDIA H200 SXM 141GB',
      aliases: ['h200', 'h200-sxm'],
      productLabels: ['NVIDIA-H200', 'NVIDIA-H200-141GB-HBM3e'],
      arch: 'hopper',
      hbmGiB: 141,
      hbmBandwidthGBps: 4800,
      tflops: { bf16: 989, fp8: 1978 },
      nvlinkGBps: 450,
      pcieGBps: 64,
      interNodeGBps: 50,
      source: `${AIC}h200_sxm.yaml`,
    },
  },
  {
    tables: 'b200_sxm',
    spec: {
      id: 'b200_sxm',
      name: 'NVIDIA B200 (HGX) 180GB',
      aliases: ['b200', 'b200-sxm'],
      productLabels: ['NVIDIA-B200'],
      arch: 'blackwell',
      hbmGiB: 180,
      hbmBandwidthGBps: 7700,
      tflops: { bf16: 2250, fp8: 4500, fp4: 9000 },
      nvlinkGBps: 900,
      pcieGBps: 128,
      interNodeGBps: 100,
      source: `${AIC}b200_sxm.yaml`,
    },
  },
  {
    tables: 'gb200',
    spec: {
      id: 'gb200',
      name: 'NVIDIA GB200 NVL72 (per GPU)',
      aliases: ['gb200-nvl72'],
      productLabels: ['NVIDIA-GB200'],
      arch: 'blackwell',
      hbmGiB: 185.03,
      hbmBandwidthGBps: 8000,
      tflops: { bf16: 2500, fp8: 5000, fp4: 10000 },
      nvlinkGBps: 900,
      pcieGBps: 64,
      interNodeGBps: 100,
      gpusPerNode: 4,
      nvlinkDomain: 72,
      source: `${AIC}gb200.yaml`,
    },
  },
  {
    tables: 'a100_sxm',
    spec: {
      id: 'a100_sxm',
      name: 'NVIDIA A100 SXM 80GB',
      aliases: ['a100', 'a100-sxm', 'a100-80gb', 'a100-sxm4-80gb'],
      productLabels: ['NVIDIA-A100-SXM4-80GB'],
      arch: 'ampere',
      hbmGiB: 80,
      hbmBandwidthGBps: 2039,
      tflops: { bf16: 312 },
      nvlinkGBps: 300,
      pcieGBps: 32,
      interNodeGBps: 25,
      source: `${AIC}a100_sxm.yaml`,
    },
  },
  {
    tables: 'l40s',
    spec: {
      id: 'l40s',
      name: 'NVIDIA L40S 48GB',
      aliases: ['l40s-48gb'],
      productLabels: ['NVIDIA-L40S'],
      arch: 'ada',
      hbmGiB: 44.99,
      hbmBandwidthGBps: 864,
      tflops: { bf16: 362.05, fp8: 733 },
      pcieGBps: 32,
      interNodeGBps: 50,
      source: `${AIC}l40s.yaml`,
    },
  },
  {
    spec: {
      id: 'b300_sxm',
      name: 'NVIDIA B300 (HGX) 288GB',
      aliases: ['b300', 'b300-sxm'],
      productLabels: ['NVIDIA-B300-SXM6-AC', 'NVIDIA-B300'],
      arch: 'blackwell',
      hbmGiB: 268.59,
      hbmBandwidthGBps: 7750,
      tflops: { bf16: 2250, fp8: 4500, fp4: 14000 },
      nvlinkGBps: 900,
      pcieGBps: 128,
      interNodeGBps: 100,
      source: `${AIC}b300_sxm.yaml`,
    },
  },
  {
    spec: {
      id: 'gb300',
      name: 'NVIDIA GB300 NVL72 (per GPU)',
      aliases: ['gb300-nvl72'],
      productLabels: ['NVIDIA-GB300'],
      arch: 'blackwell',
      hbmGiB: 277.55,
      hbmBandwidthGBps: 8000,
      tflops: { bf16: 2500, fp8: 5000, fp4: 15000 },
      nvlinkGBps: 900,
      pcieGBps: 64,
      interNodeGBps: 100,
      gpusPerNode: 4,
      nvlinkDomain: 72,
      source: `${AIC}gb300.yaml`,
    },
  },
  {
    spec: {
      id: 'h100_pcie',
      name: 'NVIDIA H100 PCIe 80GB',
      aliases: ['h100-pcie'],
      productLabels: ['NVIDIA-H100-PCIe'],
      arch: 'hopper',
      hbmGiB: 80,
      hbmBandwidthGBps: 2000,
      tflops: { bf16: 756.5, fp8: 1513 },
      pcieGBps: 64,
      interNodeGBps: 50,
      source: `${AIC}h100_pcie.yaml`,
    },
  },
  {
    spec: {
      id: 'a100_pcie',
      name: 'NVIDIA A100 PCIe 80GB',
      aliases: ['a100-pcie', 'a100-80gb-pcie'],
      productLabels: ['NVIDIA-A100-80GB-PCIe'],
      arch: 'ampere',
      hbmGiB: 80,
      hbmBandwidthGBps: 1935,
      tflops: { bf16: 312 },
      pcieGBps: 32,
      interNodeGBps: 25,
      source: `${AIC}a100_pcie.yaml`,
    },
  },
  {
    spec: {
      id: 'l4',
      name: 'NVIDIA L4 24GB',
      productLabels: ['NVIDIA-L4'],
      arch: 'ada',
      hbmGiB: 24,
      hbmBandwidthGBps: 300,
      tflops: { bf16: 121, fp8: 242 },
      pcieGBps: 32,
      interNodeGBps: 25,
      source: `${AIC}l4.yaml`,
    },
  },
  {
    spec: {
      id: 'a30',
      name: 'NVIDIA A30 24GB',
      productLabels: ['NVIDIA-A30'],
      arch: 'ampere',
      hbmGiB: 24,
      hbmBandwidthGBps: 933,
      tflops: { bf16: 165 },
      pcieGBps: 32,
      interNodeGBps: 25,
      source: `${AIC}a30.yaml`,
    },
  },
  {
    spec: {
      id: 'rtx_pro_6000_server',
      name: 'NVIDIA RTX PRO 6000 Blackwell Server 96GB',
      aliases: ['rtx-pro-6000', 'rtx-pro-6000-server'],
      productLabels: ['NVIDIA-RTX-PRO-6000-Blackwell-Server-Edition'],
      arch: 'blackwell',
      hbmGiB: 95.59,
      hbmBandwidthGBps: 1792,
      tflops: { bf16: 467.8, fp8: 935.6, fp4: 1871.2 },
      pcieGBps: 64,
      interNodeGBps: 50,
      source: `${AIC}rtx_pro_6000_server.yaml`,
    },
  },
];
