import { z } from 'zod';
import { decodeLatencies } from './encoding.ts';

/**
 * Measured kernel tables of one GPU (vLLM kernels, from AIConfigurator; see src/hardware/data/README.md),
 * decoded into typed arrays. Unmeasured entries are NaN.
 */
export interface GemmTable {
  readonly dtype: string;
  readonly m: Float64Array;
  readonly n: Float64Array;
  readonly k: Float64Array;
  /** Latency (ms) at index (n_i * |k| + k_i) * |m| + m_i. */
  readonly lat: Float64Array;
}

export interface AttentionTable {
  readonly batch: Float64Array;
  readonly seq: Float64Array;
  /** "<q heads per GPU>,<kv heads per GPU>" -> index of its grid. */
  readonly heads: ReadonlyMap<string, number>;
  /** Latency (ms, one layer) at index (head_i * |batch| + batch_i) * |seq| + seq_i. */
  readonly lat: Float64Array;
}

export interface Curve {
  readonly x: Float64Array;
  readonly y: Float64Array;
}

export interface MoeTable {
  readonly hidden: number;
  readonly inter: number;
  readonly topk: number;
  readonly experts: number;
  readonly dtype: string;
  readonly tp: number;
  readonly ep: number;
  /** One MoE layer's routed-expert latency (ms) on one GPU vs input tokens. */
  readonly curve: Curve;
}

export interface KernelTables {
  readonly id: string;
  readonly device: string;
  readonly version: string;
  readonly gemm: ReadonlyMap<string, GemmTable>;
  readonly contextAttention: ReadonlyMap<string, AttentionTable>;
  readonly generationAttention: ReadonlyMap<string, AttentionTable>;
  /** vLLM custom all-reduce (bf16) latency vs elements, by group size. */
  readonly allReduce: ReadonlyMap<number, Curve>;
  readonly moe: readonly MoeTable[];
}

const nums = z.array(z.number());
const GemmSchema = z.object({ m: nums, n: nums, k: nums, lat: z.string() });
const AttnSchema = z.object({ batch: nums, seq: nums, heads: z.array(z.string()), lat: z.string() });
const CurveSchema = z.object({ sizeElems: nums, latMs: nums });
const MoeSchema = z.object({
  hidden: z.number(),
  inter: z.number(),
  topk: z.number(),
  experts: z.number(),
  dtype: z.string(),
  tp: z.number(),
  ep: z.number(),
  tokens: nums,
  latMs: nums,
});

/** The bundled file format (src/hardware/data/kernels/<gpu>.json, written by hack/extract-timing-data.ts). */
export const KernelBundleSchema = z.object({
  gpu: z.string(),
  device: z.string(),
  version: z.string(),
  gemm: z.record(z.string(), GemmSchema),
  contextAttention: z.record(z.string(), AttnSchema),
  generationAttention: z.record(z.string(), AttnSchema),
  allReduce: z.object({ byGpus: z.record(z.string(), CurveSchema) }),
  moe: z.object({ tables: z.array(MoeSchema) }),
});

const KV_NAMES: Record<string, string> = { bfloat16: 'bf16', fp8: 'fp8' };

/** Decodes a validated bundle. */
export function decodeKernelBundle(doc: z.infer<typeof KernelBundleSchema>): KernelTables {
  const gemm = new Map<string, GemmTable>();
  for (const [dtype, t] of Object.entries(doc.gemm)) {
    gemm.set(dtype, {
      dtype,
      m: Float64Array.from(t.m),
      n: Float64Array.from(t.n),
      k: Float64Array.from(t.k),
      lat: decodeLatencies(t.lat, t.m.length * t.n.length * t.k.length),
    });
  }
  const attention = (src: Record<string, z.infer<typeof AttnSchema>>) => {
    const out = new Map<string, AttentionTable>();
    for (const [kv, t] of Object.entries(src)) {
      out.set(KV_NAMES[kv] ?? kv, {
        batch: Float64Array.from(t.batch),
        seq: Float64Array.from(t.seq),
        heads: new Map(t.heads.map((h, i) => [h, i])),
        lat: decodeLatencies(t.lat, t.heads.length * t.batch.length * t.seq.length),
      });
    }
    return out;
  };
  const allReduce = new Map<number, Curve>();
  for (const [g, c] of Object.entries(doc.allReduce.byGpus)) {
    allReduce.set(Number(g), { x: Float64Array.from(c.sizeElems), y: Float64Array.from(c.latMs) });
  }
  return {
    id: doc.gpu,
    device: doc.device,
    version: doc.version,
    gemm,
    contextAttention: attention(doc.contextAttention),
    generationAttention: attention(doc.generationAttention),
    allReduce,
    moe: doc.moe.tables.map((t) => ({
      hidden: t.hidden,
      inter: t.inter,
      topk: t.topk,
      experts: t.experts,
      dtype: t.dtype,
      tp: t.tp,
      ep: t.ep,
      curve: { x: Float64Array.from(t.tokens), y: Float64Array.from(t.latMs) },
    })),
  };
}
