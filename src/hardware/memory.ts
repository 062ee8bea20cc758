import type { KvDtype, WeightDtype } from './dtypes.ts';
import type { Gpu } from './gpus.ts';
import {
  headDim,
  kvBytesPerTokenPerGpu,
  kvHeadsPerGpu,
  type ModelSpec,
  weightBytesPerGpu,
} from './models.ts';

export interface MemoryInput {
  gpu: Gpu;
  model: ModelSpec;
  tp: number;
  /** GPUs the routed experts are split over (tp x attention dp; default tp). */
  moeGpus?: number;
  weightDtype: WeightDtype;
  kvDtype: KvDtype;
  /** Share of HBM the engine may use (vLLM --gpu-memory-utilization). */
  gpuMemoryUtilization: number;
  blockSize: number;
  maxNumBatchedTokens: number;
  maxNumSeqs: number;
  /** Tokens (prompt + output) the longest request needs; the KV cache must hold at least one. */
  requiredTokens: number;
}

/** How one GPU's memory splits, and the KV capacity that leaves (or why the setup does not fit). */
export interface MemoryPlan {
  hbmBytes: number;
  budgetBytes: number;
  weightBytes: number;
  /** CUDA context, graphs, NCCL buffers and the peak activations of a full pass. */
  reserveBytes: number;
  kvBytes: number;
  kvBytesPerTokenPerGpu: number;
  numGpuBlocks: number;
  capacityTokens: number;
  fits: boolean;
  reason?: string;
}

/** Fixed per-GPU reserve: CUDA context, cuBLAS/NCCL workspaces, CUDA graphs (vLLM's non-torch memory). */
const FIXED_RESERVE = 1.5 * 2 ** 30;
const GiB = 2 ** 30;

/**
 * Activation peak of one forward pass at the token budget: the residual stream, the widest projection
 * output and the FFN intermediate in bf16 (x2 for the temporaries that coexist), plus fp32 logits of
 * every sequence. A deliberately simple stand-in for vLLM's profiling run.
 */
function activationBytes(m: ModelSpec, tp: number, tokens: number, seqs: number): number {
  const h = m.hidden;
  const qkv = m.mla ? h : (Math.ceil(m.heads / tp) + 2 * kvHeadsPerGpu(m, tp)) * headDim(m);
  const ffn = (2 * (m.moe ? m.moe.intermediate * m.moe.expertsPerToken : m.intermediate)) / tp;
  const perToken = 2 * (4 * h + qkv + ffn) * 2;
  return tokens * perToken + seqs * Math.ceil(m.vocab / tp) * 4;
}

/**
 * vLLM's KV sizing: blocks = floor((HBM x utilisation - weights / TP - reserve) / (KV bytes per token per
 * GPU x block size)). The setup does not fit when nothing is left or the KV cache cannot hold one request
 * of `requiredTokens`.
 */
export function planMemory(x: MemoryInput): MemoryPlan {
  const hbm = x.gpu.hbmBytes;
  const budget = hbm * x.gpuMemoryUtilization;
  const weights = weightBytesPerGpu(x.model, x.tp, x.weightDtype, x.moeGpus ?? x.tp);
  const reserve = FIXED_RESERVE + activationBytes(x.model, x.tp, x.maxNumBatchedTokens, x.maxNumSeqs);
  const kv = budget - weights - reserve;
  const perToken = kvBytesPerTokenPerGpu(x.model, x.tp, x.kvDtype);
  const blocks = kv > 0 ? Math.floor(kv / (perToken * x.blockSize)) : 0;
  const plan: MemoryPlan = {
    hbmBytes: hbm,
    budgetBytes: budget,
    weightBytes: weights,
    reserveBytes: reserve,
    kvBytes: Math.max(0, kv),
    kvBytesPerTokenPerGpu: perToken,
    numGpuBlocks: blocks,
    capacityTokens: blocks * x.blockSize,
    fits: true,
  };
  const where = `${x.model.name} (${x.weightDtype}) on ${x.tp} x ${x.gpu.spec.name}`;
  const gib = (b: number) => `${(b / GiB).toFixed(1)} GiB`;
  if (blocks <= 0) {
    plan.fits = false;
    plan.reason =
      `${where} does not fit: weights ${gib(weights)} + reserve ${gib(reserve)} per GPU exceed ` +
      `${gib(budget)} (${Math.round(x.gpuMemoryUtilization * 100)} % of ${gib(hbm)})`;
  } else if (Math.ceil(x.requiredTokens / x.blockSize) > blocks) {
    plan.fits = false;
    plan.reason =
      `${where}: KV cache holds ${plan.capacityTokens} tokens (${gib(kv)}), less than one request of ` +
      `${x.requiredTokens} tokens`;
  }
  return plan;
}
