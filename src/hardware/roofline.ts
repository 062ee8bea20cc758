import type { Gpu } from './gpus.ts';

/** `lat = max(F / (peak * etaCompute), B / (bw * etaMem)) + t0Ms` for one kernel. */
export interface KernelEfficiency {
  etaCompute: number;
  etaMem: number;
  t0Ms: number;
}

/**
 * Fitted efficiency factors of the roofline tier, per GPU. Fits of these closed forms to AIConfigurator's
 * measured vLLM tables (least |log error|; ../shared/data/timing/calibration.json, in-sample median errors
 * 5-10 % for bf16 GEMMs, 7-23 % for decode attention). GPUs without tables borrow their architecture's.
 */
export interface RooflineParams {
  /** GEMM efficiency by kernel family: bf16, fp8, native fp4. */
  gemm: { bf16: KernelEfficiency; fp8: KernelEfficiency; fp4: KernelEfficiency };
  /** Prefill attention, per layer: F = 2 b s^2 heads d, B = Q/O and KV traffic. */
  context: KernelEfficiency;
  /** Decode attention, per layer: t0Ms + perSeqMs * b + bytes / (bw * etaMem). */
  generation: { etaMem: number; t0Ms: number; perSeqMs: number };
  /** Tensor-parallel all-reduce: alphaMs + 2 (g - 1) / g * bytes / (link bandwidth * busEfficiency[g]). */
  allReduce: { alphaMs: number; busEfficiency: Readonly<Record<number, number>> };
  /** Memory-bound element-wise ops: bytes / (bw * scale) + t0Ms (AIC's empirical constants). */
  memOp: { scale: number; t0Ms: number };
}

const eff = (etaCompute: number, etaMem: number, t0Ms: number): KernelEfficiency => ({
  etaCompute,
  etaMem,
  t0Ms,
});
const MEM_OP = { scale: 0.8, t0Ms: 0.003 };

const H100: RooflineParams = {
  gemm: {
    bf16: eff(0.8, 0.88, 0.004),
    fp8: eff(0.44, 0.82, 0.008),
    fp4: eff(0.4, 0.7, 0.008),
  },
  context: eff(0.54, 0.31, 0.012),
  generation: { etaMem: 0.9, t0Ms: 0.012, perSeqMs: 4e-5 },
  allReduce: { alphaMs: 0.005, busEfficiency: { 2: 0.56, 4: 0.61, 8: 0.75 } },
  memOp: MEM_OP,
};

const PARAMS: Record<string, RooflineParams> = {
  h100_sxm: H100,
  h200_sxm: {
    gemm: {
      bf16: eff(0.8, 0.82, 0.004),
      fp8: eff(0.46, 0.78, 0.008),
      fp4: eff(0.4, 0.7, 0.008),
    },
    context: eff(0.54, 0.22, 0.012),
    generation: { etaMem: 0.86, t0Ms: 0.012, perSeqMs: 4e-5 },
    allReduce: { alphaMs: 0.005, busEfficiency: { 2: 0.54, 4: 0.65, 8: 0.82 } },
    memOp: MEM_OP,
  },
  b200_sxm: {
    gemm: {
      bf16: eff(0.72, 0.82, 0.004),
      fp8: eff(0.4, 0.74, 0.008),
      fp4: eff(0.4, 0.68, 0.008),
    },
    context: eff(0.46, 0.19, 0.012),
    generation: { etaMem: 0.92, t0Ms: 0.009, perSeqMs: 2e-5 },
    allReduce: { alphaMs: 0.008, busEfficiency: { 2: 0.5, 4: 0.62, 8: 0.6 } },
    memOp: MEM_OP,
  },
  gb200: {
    gemm: {
      bf16: eff(0.72, 0.8, 0.004),
      fp8: eff(0.38, 0.74, 0.008),
      fp4: eff(0.4, 0.76, 0.009),
    },
    context: eff(0.4, 0.19, 0.012),
    generation: { etaMem: 0.94, t0Ms: 0.01, perSeqMs: 2e-5 },
    allReduce: { alphaMs: 0.005, busEfficiency: { 2: 0.2, 4: 0.55, 8: 0.55 } },
    memOp: MEM_OP,
  },
  a100_sxm: {
    gemm: {
      bf16: eff(0.78, 0.74, 0.007),
      fp8: eff(0.78, 0.74, 0.007),
      fp4: eff(0.78, 0.74, 0.007),
    },
    context: eff(0.5, 0.25, 0.012),
    generation: { etaMem: 0.72, t0Ms: 0.018, perSeqMs: 6e-5 },
    allReduce: { alphaMs: 0.006, busEfficiency: { 2: 0.61, 4: 0.61, 8: 0.64 } },
    memOp: MEM_OP,
  },
  l40s: {
    gemm: {
      bf16: eff(0.6, 0.76, 0),
      fp8: eff(0.42, 0.7, 0.004),
      fp4: eff(0.42, 0.7, 0.004),
    },
    context: eff(0.46, 0.7, 0.008),
    generation: { etaMem: 0.84, t0Ms: 0.009, perSeqMs: 2e-5 },
    // Measured on a host without PCIe peer-to-peer (AIC's L40S data); see the data README.
    allReduce: { alphaMs: 0.013, busEfficiency: { 2: 0.6, 4: 0.12, 8: 0.062 } },
    memOp: MEM_OP,
  },
};

/** PCIe-only GPUs without measurements: assume working peer-to-peer. */
const PCIE_ALL_REDUCE = { alphaMs: 0.01, busEfficiency: { 2: 0.6, 4: 0.5, 8: 0.45 } };

const BY_ARCH: Record<string, string> = {
  hopper: 'h100_sxm',
  blackwell: 'b200_sxm',
  ampere: 'a100_sxm',
  ada: 'l40s',
  other: 'h100_sxm',
};

/** The roofline parameters of a GPU: its own fit when measured, else its architecture's. */
export function rooflineParams(gpu: Gpu): RooflineParams {
  const own = PARAMS[gpu.kernelTables ?? ''] ?? PARAMS[gpu.id];
  if (own) return own;
  const base = PARAMS[BY_ARCH[gpu.spec.arch]];
  return gpu.spec.nvlinkGBps > 0 ? base : { ...base, allReduce: PCIE_ALL_REDUCE };
}

/** Bus efficiency of an all-reduce over g GPUs: the nearest measured group size at or below g. */
export function busEfficiency(p: RooflineParams, g: number): number {
  let best = 0;
  let eff0 = 0.5;
  for (const [k, v] of Object.entries(p.allReduce.busEfficiency)) {
    const kk = Number(k);
    if (kk <= g && kk > best) {
      best = kk;
      eff0 = v;
    }
  }
  return eff0;
}

/** Roofline all-reduce (ms) of `bytes` over g GPUs; groups beyond the NVLink domain go over the network. */
export function allReduceRooflineMs(gpu: Gpu, p: RooflineParams, g: number, bytes: number): number {
  if (g <= 1) return 0;
  const ring = (2 * (g - 1)) / g;
  if (g > gpu.nvlinkDomain) {
    // Hierarchical: intra-domain over the link, the rest over the network at ~80 % efficiency.
    return 0.02 + ((ring * bytes) / (gpu.interNodeBandwidth * 0.8)) * 1e3;
  }
  return p.allReduce.alphaMs + ((ring * bytes) / (gpu.linkBandwidth * busEfficiency(p, g))) * 1e3;
}

export function memOpMs(gpu: Gpu, p: RooflineParams, bytes: number): number {
  return (bytes / (gpu.hbmBandwidth * p.memOp.scale)) * 1e3 + p.memOp.t0Ms;
}
