import { z } from 'zod';
import {
  type KvDtype,
  KvDtypeSchema,
  kvBytes,
  type WeightDtype,
  WeightDtypeSchema,
  weightBytes,
} from './dtypes.ts';

const posInt = z.number().int('must be an integer').positive('must be positive');
const nonNegInt = z.number().int('must be an integer').nonnegative('must not be negative');
const id = z
  .string()
  .regex(/^[a-z0-9][a-z0-9._-]*$/, 'must be lowercase letters, digits, ".", "_" or "-"')
  .max(64);

const MoeSchema = z
  .object({
    experts: posInt,
    expertsPerToken: posInt,
    intermediate: posInt.describe('FFN width of one expert'),
    sharedExperts: nonNegInt.default(0),
    firstDenseLayers: nonNegInt.default(0).describe('leading layers with a dense FFN instead of experts'),
  })
  .strict()
  .refine((m) => m.expertsPerToken <= m.experts, {
    message: 'expertsPerToken must not exceed experts',
    path: ['expertsPerToken'],
  });

/** Multi-head latent attention (DeepSeek-V2/V3): the KV cache holds one compressed latent per token. */
const MlaSchema = z
  .object({
    qLoraRank: posInt,
    kvLoraRank: posInt,
    qkNopeHeadDim: posInt,
    qkRopeHeadDim: posInt,
    vHeadDim: posInt,
  })
  .strict();

/** A model as users write it in a catalog file: the architecture facts of its HF `config.json`. */
export const ModelSpecSchema = z
  .object({
    id,
    name: z.string().min(1),
    aliases: z.array(z.string().min(1)).default([]),
    hfId: z.string().optional().describe('Hugging Face repository id'),
    layers: posInt,
    hidden: posInt,
    heads: posInt,
    kvHeads: posInt,
    headDim: posInt.optional().describe('defaults to hidden / heads; unused with mla'),
    intermediate: posInt.describe('dense FFN width (of the dense layers for MoE models)'),
    vocab: posInt,
    tieEmbeddings: z.boolean().default(false),
    moe: MoeSchema.optional(),
    mla: MlaSchema.optional(),
    slidingWindow: z
      .object({ window: posInt, layerFraction: z.number().gt(0).max(1).default(1) })
      .strict()
      .optional()
      .describe('sliding-window attention on this fraction of layers (gpt-oss: 128 on every other layer)'),
    weightDtype: WeightDtypeSchema.default('bf16').describe('checkpoint precision of the linear layers'),
    quantizedLayers: z
      .enum(['all', 'experts'])
      .default('all')
      .describe('which linear layers carry weightDtype (gpt-oss quantizes only the experts)'),
    kvDtype: KvDtypeSchema.default('bf16'),
    maxContext: posInt,
    source: z.string().optional(),
  })
  .strict()
  .superRefine((m, ctx) => {
    if (m.heads % m.kvHeads !== 0) {
      ctx.addIssue({ code: 'custom', message: 'heads must be a multiple of kvHeads', path: ['kvHeads'] });
    }
    if (!m.mla && m.headDim === undefined && m.hidden % m.heads !== 0) {
      ctx.addIssue({
        code: 'custom',
        message: 'give headDim (hidden is not a multiple of heads)',
        path: ['headDim'],
      });
    }
    if (m.moe && m.moe.firstDenseLayers > m.layers) {
      ctx.addIssue({ code: 'custom', message: 'must not exceed layers', path: ['moe', 'firstDenseLayers'] });
    }
  });

export type ModelSpec = z.infer<typeof ModelSpecSchema>;

export function headDim(m: ModelSpec): number {
  return m.headDim ?? m.hidden / m.heads;
}

/** KV heads each GPU stores at tensor-parallel size tp: GQA heads are split, and replicated when tp > kvHeads. */
export function kvHeadsPerGpu(m: ModelSpec, tp: number): number {
  return Math.max(1, Math.ceil(m.kvHeads / tp));
}

/**
 * Why vLLM refuses to shard a model over `tp` GPUs, if it does: the attention heads must divide evenly
 * (ModelConfig.verify_with_parallel_config), and so must the KV heads, or TP must be a multiple of them
 * (QKVParallelLinear replicates KV heads). MLA keeps one latent per token on every rank.
 */
export function tensorParallelProblem(m: ModelSpec, tp: number): string | undefined {
  if (m.heads % tp !== 0) {
    return `${m.name} has ${m.heads} attention heads, not divisible by tensor-parallel size ${tp} (vLLM refuses it)`;
  }
  if (m.mla) return undefined;
  if (tp <= m.kvHeads ? m.kvHeads % tp !== 0 : tp % m.kvHeads !== 0) {
    return `${m.name} has ${m.kvHeads} KV heads, which tensor-parallel size ${tp} neither divides nor is a multiple of (vLLM refuses it)`;
  }
  return undefined;
}

/**
 * KV-cache bytes one token occupies across the whole model (all layers, all KV heads): what a disaggregated
 * transfer or an offload moves per token. MLA stores one latent (kvLoraRank + rope dims) per layer.
 */
export function kvBytesPerToken(m: ModelSpec, kvDtype: KvDtype = m.kvDtype): number {
  const b = kvBytes(kvDtype);
  if (m.mla) return m.layers * (m.mla.kvLoraRank + m.mla.qkRopeHeadDim) * b;
  return 2 * m.layers * m.kvHeads * headDim(m) * b;
}

/** KV bytes per token on one GPU of a tensor-parallel group (MLA latents are replicated on every rank). */
export function kvBytesPerTokenPerGpu(m: ModelSpec, tp: number, kvDtype: KvDtype = m.kvDtype): number {
  const b = kvBytes(kvDtype);
  if (m.mla) return m.layers * (m.mla.kvLoraRank + m.mla.qkRopeHeadDim) * b;
  return 2 * m.layers * kvHeadsPerGpu(m, tp) * headDim(m) * b;
}

/** Parameter counts by kind (embeddings, attention, dense FFN, routed experts, shared experts, router). */
export interface ParamCounts {
  embedding: number;
  attention: number;
  denseFfn: number;
  experts: number;
  sharedExperts: number;
  router: number;
  total: number;
  /** Parameters a token touches (top-k experts instead of all). */
  active: number;
}

export function paramCounts(m: ModelSpec): ParamCounts {
  const h = m.hidden;
  const embedding = m.vocab * h * (m.tieEmbeddings ? 1 : 2);
  let attnPerLayer: number;
  if (m.mla) {
    const a = m.mla;
    attnPerLayer =
      h * (a.qLoraRank + a.kvLoraRank + a.qkRopeHeadDim) +
      a.qLoraRank * m.heads * (a.qkNopeHeadDim + a.qkRopeHeadDim) +
      a.kvLoraRank * m.heads * (a.qkNopeHeadDim + a.vHeadDim) +
      m.heads * a.vHeadDim * h;
  } else {
    const d = headDim(m);
    attnPerLayer = h * (m.heads + 2 * m.kvHeads) * d + m.heads * d * h;
  }
  const attention = attnPerLayer * m.layers;
  const moe = m.moe;
  const denseLayers = moe ? moe.firstDenseLayers : m.layers;
  const moeLayers = m.layers - denseLayers;
  const denseFfn = denseLayers * 3 * h * m.intermediate;
  const perExpert = 3 * h * (moe?.intermediate ?? 0);
  const experts = moe ? moeLayers * moe.experts * perExpert : 0;
  const sharedExperts = moe ? moeLayers * moe.sharedExperts * perExpert : 0;
  const router = moe ? moeLayers * h * moe.experts : 0;
  const total = embedding + attention + denseFfn + experts + sharedExperts + router;
  const activeExperts = moe ? moeLayers * moe.expertsPerToken * perExpert : 0;
  return {
    embedding,
    attention,
    denseFfn,
    experts,
    sharedExperts,
    router,
    total,
    active: total - experts + activeExperts,
  };
}

/** The dtype of the non-expert linear layers for a run at weight dtype `w`. */
export function denseDtype(m: ModelSpec, w: WeightDtype): WeightDtype {
  return m.quantizedLayers === 'experts' ? 'bf16' : w;
}

/**
 * Weight bytes held by one GPU at tensor-parallel size tp: linear layers in their dtype split tp ways,
 * embeddings and LM head in bf16 (vocab-parallel), MLA's latent down-projections replicated. With
 * attention data parallelism the routed experts are split over all `moeGpus` GPUs of the worker
 * (moe_tp x moe_ep = tp x dp) while the rest is split tp ways within each rank.
 */
export function weightBytesPerGpu(m: ModelSpec, tp: number, w: WeightDtype, moeGpus = tp): number {
  const p = paramCounts(m);
  const dense = weightBytes(denseDtype(m, w));
  const expert = weightBytes(w);
  let replicated = 0;
  if (m.mla) {
    const a = m.mla;
    replicated = m.layers * m.hidden * (a.qLoraRank + a.kvLoraRank + a.qkRopeHeadDim) * dense;
  }
  const split =
    (p.attention + p.denseFfn + p.sharedExperts) * dense - replicated + p.router * 2 + p.embedding * 2;
  return split / tp + (p.experts * expert) / moeGpus + replicated;
}

const AIC = 'ai-dynamo/aiconfigurator@095f58a5 model_configs/';

/**
 * Built-in models, from the Hugging Face configs AIConfigurator bundles (Apache-2.0; see
 * src/hardware/data/README.md). `weightDtype` is the precision of the published checkpoint.
 */
export const BUILTIN_MODELS: readonly z.input<typeof ModelSpecSchema>[] = [
  {
    id: 'llama-3.1-8b',
    name: 'Llama-3.1-8B',
    hfId: 'meta-llama/Llama-3.1-8B',
    aliases: ['meta-llama/Meta-Llama-3.1-8B', 'llama3.1-8b', 'llama-3-8b'],
    layers: 32,
    hidden: 4096,
    heads: 32,
    kvHeads: 8,
    headDim: 128,
    intermediate: 14336,
    vocab: 128256,
    maxContext: 131072,
    source: `${AIC}meta-llama--Meta-Llama-3.1-8B_config.json`,
  },
  {
    id: 'llama-3.1-70b',
    name: 'Llama-3.1-70B',
    hfId: 'meta-llama/Llama-3.1-70B',
    aliases: ['meta-llama/Meta-Llama-3.1-70B', 'llama3.1-70b', 'llama-3-70b', 'llama-3.3-70b'],
    layers: 80,
    hidden: 8192,
    heads: 64,
    kvHeads: 8,
    headDim: 128,
    intermediate: 28672,
    vocab: 128256,
    maxContext: 131072,
    source: `${AIC}meta-llama--Meta-Llama-3.1-70B_config.json`,
  },
  {
    id: 'llama-3.1-405b',
    name: 'Llama-3.1-405B',
    hfId: 'meta-llama/Llama-3.1-405B',
    aliases: ['meta-llama/Meta-Llama-3.1-405B', 'llama3.1-405b'],
    layers: 126,
    hidden: 16384,
    heads: 128,
    kvHeads: 8,
    headDim: 128,
    intermediate: 53248,
    vocab: 128256,
    maxContext: 131072,
    source: `${AIC}meta-llama--Meta-Llama-3.1-405B_config.json`,
  },
  {
    id: 'qwen3-8b',
    name: 'Qwen3-8B',
    hfId: 'Qwen/Qwen3-8B',
    layers: 36,
    hidden: 4096,
    heads: 32,
    kvHeads: 8,
    headDim: 128,
    intermediate: 12288,
    vocab: 151936,
    maxContext: 40960,
    source: `${AIC}Qwen--Qwen3-8B_config.json`,
  },
  {
    id: 'qwen3-32b',
    name: 'Qwen3-32B',
    hfId: 'Qwen/Qwen3-32B',
    layers: 64,
    hidden: 5120,
    heads: 64,
    kvHeads: 8,
    headDim: 128,
    intermediate: 25600,
    vocab: 151936,
    maxContext: 40960,
    source: `${AIC}Qwen--Qwen3-32B_config.json`,
  },
  {
    id: 'qwen3-30b-a3b',
    name: 'Qwen3-30B-A3B',
    hfId: 'Qwen/Qwen3-30B-A3B',
    layers: 48,
    hidden: 2048,
    heads: 32,
    kvHeads: 4,
    headDim: 128,
    intermediate: 6144,
    vocab: 151936,
    moe: { experts: 128, expertsPerToken: 8, intermediate: 768 },
    maxContext: 40960,
    source: `${AIC}Qwen--Qwen3-30B-A3B_config.json`,
  },
  {
    id: 'qwen3-235b-a22b',
    name: 'Qwen3-235B-A22B',
    hfId: 'Qwen/Qwen3-235B-A22B',
    layers: 94,
    hidden: 4096,
    heads: 64,
    kvHeads: 4,
    headDim: 128,
    intermediate: 12288,
    vocab: 151936,
    moe: { experts: 128, expertsPerToken: 8, intermediate: 1536 },
    maxContext: 40960,
    source: `${AIC}Qwen--Qwen3-235B-A22B_config.json`,
  },
  {
    id: 'deepseek-v3',
    name: 'DeepSeek-V3',
    hfId: 'deepseek-ai/DeepSeek-V3',
    aliases: ['deepseek-v3-0324'],
    layers: 61,
    hidden: 7168,
    heads: 128,
    kvHeads: 128,
    intermediate: 18432,
    vocab: 129280,
    moe: { experts: 256, expertsPerToken: 8, intermediate: 2048, sharedExperts: 1, firstDenseLayers: 3 },
    mla: { qLoraRank: 1536, kvLoraRank: 512, qkNopeHeadDim: 128, qkRopeHeadDim: 64, vHeadDim: 128 },
    weightDtype: 'fp8',
    maxContext: 163840,
    source: `${AIC}deepseek-ai--DeepSeek-V3_config.json`,
  },
  {
    id: 'deepseek-r1',
    name: 'DeepSeek-R1',
    hfId: 'deepseek-ai/DeepSeek-R1',
    aliases: ['deepseek-r1-0528'],
    layers: 61,
    hidden: 7168,
    heads: 128,
    kvHeads: 128,
    intermediate: 18432,
    vocab: 129280,
    moe: { experts: 256, expertsPerToken: 8, intermediate: 2048, sharedExperts: 1, firstDenseLayers: 3 },
    mla: { qLoraRank: 1536, kvLoraRank: 512, qkNopeHeadDim: 128, qkRopeHeadDim: 64, vHeadDim: 128 },
    weightDtype: 'fp8',
    maxContext: 163840,
    source: `${AIC}deepseek-ai--DeepSeek-R1_config.json`,
  },
  {
    id: 'minimax-m2.5',
    name: 'MiniMax-M2.5',
    hfId: 'MiniMaxAI/MiniMax-M2.5',
    aliases: ['minimax-m2'],
    layers: 62,
    hidden: 3072,
    heads: 48,
    kvHeads: 8,
    headDim: 128,
    intermediate: 1536,
    vocab: 200064,
    moe: { experts: 256, expertsPerToken: 8, intermediate: 1536 },
    weightDtype: 'fp8',
    maxContext: 196608,
    source: `${AIC}MiniMaxAI--MiniMax-M2.5_config.json`,
  },
  {
    id: 'gpt-oss-120b',
    name: 'gpt-oss-120b',
    hfId: 'openai/gpt-oss-120b',
    layers: 36,
    hidden: 2880,
    heads: 64,
    kvHeads: 8,
    headDim: 64,
    intermediate: 2880,
    vocab: 201088,
    moe: { experts: 128, expertsPerToken: 4, intermediate: 2880 },
    slidingWindow: { window: 128, layerFraction: 0.5 },
    weightDtype: 'fp4',
    quantizedLayers: 'experts',
    maxContext: 131072,
    source: `${AIC}openai--gpt-oss-120b_config.json`,
  },
  {
    id: 'gpt-oss-20b',
    name: 'gpt-oss-20b',
    hfId: 'openai/gpt-oss-20b',
    layers: 24,
    hidden: 2880,
    heads: 64,
    kvHeads: 8,
    headDim: 64,
    intermediate: 2880,
    vocab: 201088,
    moe: { experts: 32, expertsPerToken: 4, intermediate: 2880 },
    slidingWindow: { window: 128, layerFraction: 0.5 },
    weightDtype: 'fp4',
    quantizedLayers: 'experts',
    maxContext: 131072,
    source: `${AIC}openai--gpt-oss-20b_config.json`,
  },
  {
    id: 'mixtral-8x7b',
    name: 'Mixtral-8x7B',
    hfId: 'mistralai/Mixtral-8x7B-v0.1',
    layers: 32,
    hidden: 4096,
    heads: 32,
    kvHeads: 8,
    headDim: 128,
    intermediate: 14336,
    vocab: 32000,
    moe: { experts: 8, expertsPerToken: 2, intermediate: 14336 },
    maxContext: 32768,
    source: `${AIC}mistralai--Mixtral-8x7B-v0.1_config.json`,
  },
];

/** The longest context of any built-in model (tokens): the bound on one prompt or output a run accepts. */
export const LARGEST_CATALOGUED_CONTEXT = Math.max(...BUILTIN_MODELS.map((m) => m.maxContext));
