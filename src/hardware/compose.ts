import {
  type AttentionGrid,
  type HardwareProfile,
  type StepOverhead,
  sampleTokenAxis,
} from '../sim/timing/hardware.ts';
import type { KvDtype, WeightDtype } from './dtypes.ts';
import { weightBytes } from './dtypes.ts';
import type { Gpu } from './gpus.ts';
import { GemmLookup } from './kernels/gemm.ts';
import { linearCurve, logLogCurve, makeNonDecreasing } from './kernels/interp.ts';
import type { AttentionTable, KernelTables, MoeTable } from './kernels/tables.ts';
import { denseDtype, headDim, kvBytesPerTokenPerGpu, kvHeadsPerGpu, type ModelSpec } from './models.ts';
import {
  allReduceRooflineMs,
  type KernelEfficiency,
  memOpMs,
  type RooflineParams,
  rooflineParams,
} from './roofline.ts';

/** One serving setup to price: a model on a GPU type at a tensor-parallel size and precision. */
export interface HardwareSetup {
  gpu: Gpu;
  model: ModelSpec;
  tp: number;
  weightDtype: WeightDtype;
  kvDtype: KvDtype;
  /** vLLM --enable-expert-parallel: experts split across the worker's GPUs instead of each expert's width. */
  expertParallel?: boolean;
  /**
   * Attention-data-parallel ranks per worker (default 1): attention and dense layers run per rank at `tp`,
   * the routed experts over all tp x dp GPUs (moe_tp x moe_ep = tp x dp) on every rank's tokens.
   */
  attentionDp?: number;
  /** Expert-parallel size of the MoE layers (default: tp x dp with `expertParallel`, else 1). */
  moeEp?: number;
  overhead: StepOverhead;
  /** Served MoE layer / measured routed-expert kernels (calibrated; 1 = the kernels alone). */
  moeScale?: number;
}

export type Source = 'measured' | 'roofline';

/** A composed profile plus which source priced each component, and the token-linear work by kind. */
export interface ComposedProfile extends HardwareProfile {
  readonly parts: { gemm: Source; attention: Source; moe: Source | 'none'; allReduce: Source | 'none' };
  /** nonAttnMs split by kind (before smoothing), on the token axis: for explanations and tests. */
  readonly breakdown: {
    gemm: Float64Array;
    moe: Float64Array;
    allReduce: Float64Array;
    memory: Float64Array;
  };
}

type Fn = (x: number) => number;

const CTX_BATCH = [1, 2, 4, 8, 16, 32, 64, 128, 256];
const CTX_SEQ = [1, 16, 32, 64, 128, 256, 512, 1024, 1536, 2048, 3072, 4096, 6144, 8192, 10240, 12288, 16384];
const CTX_SEQ_EXT = [24576, 32768, 65536, 131072, 262144];
const GEN_BATCH = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048];
const GEN_SEQ = [2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768, 65536, 131072];
const GEN_SEQ_EXT = [262144, 524288, 1048576];
/** Routing skew of real traffic over a balanced roofline (AIC measures MoE with power-law 1.2 routing). */
const MOE_SKEW = 1.15;

/**
 * Composes the step-time profile of a setup. Each component comes from the GPU's measured vLLM kernel tables
 * where they cover it (GEMMs interpolated in utilisation space, attention grids by heads per GPU, MoE curves
 * by expert shape and TP/EP split, custom all-reduce by group size) and from the fitted roofline otherwise,
 * so every catalogued GPU and model gets an answer. Pure: `tables` are passed in (null = roofline only).
 */
export function composeProfile(setup: HardwareSetup, tables: KernelTables | null): ComposedProfile {
  const { gpu, model, tp } = setup;
  const dp = setup.attentionDp ?? 1;
  const p = rooflineParams(gpu);
  const gemms = new GemmPricer(gpu, p, tables);
  const L = model.layers;
  const h = model.hidden;
  const qh = Math.ceil(model.heads / tp);
  const moe = model.moe;
  const denseLayers = moe ? moe.firstDenseLayers : L;
  const moeLayers = L - denseLayers;
  const dd = denseDtype(model, setup.weightDtype);
  const ceilDiv = (a: number, b: number) => Math.ceil(a / b);

  // Token-linear ops, each with its count of occurrences per pass and its kind.
  const ops: { count: number; f: Fn; kind?: 'moe' | 'allReduce' | 'memory' }[] = [];
  if (model.mla) {
    const a = model.mla;
    ops.push({ count: L, f: gemms.fn(a.qLoraRank + a.kvLoraRank + a.qkRopeHeadDim, h, dd) });
    ops.push({ count: L, f: gemms.fn(qh * (a.qkNopeHeadDim + a.qkRopeHeadDim), a.qLoraRank, dd) });
    ops.push({ count: L, f: gemms.fn(qh * (a.qkNopeHeadDim + a.vHeadDim), a.kvLoraRank, dd) });
    ops.push({ count: L, f: gemms.fn(h, qh * a.vHeadDim, dd) });
  } else {
    const d = headDim(model);
    const kvh = kvHeadsPerGpu(model, tp);
    ops.push({ count: L, f: gemms.fn((qh + 2 * kvh) * d, h, dd) });
    ops.push({ count: L, f: gemms.fn(h, qh * d, dd) });
  }
  if (denseLayers > 0) {
    const i = ceilDiv(model.intermediate, tp);
    ops.push({ count: denseLayers, f: gemms.fn(2 * i, h, dd) });
    ops.push({ count: denseLayers, f: gemms.fn(h, i, dd) });
    ops.push({ count: denseLayers, f: (t) => memOpMs(gpu, p, t * 6 * i), kind: 'memory' });
  }
  let moeSource: Source | 'none' = 'none';
  if (moe && moeLayers > 0) {
    ops.push({ count: moeLayers, f: gemms.fn(moe.experts, h, 'bf16') });
    const experts = moePricer(setup, p, tables);
    moeSource = experts.source;
    const scale = setup.moeScale ?? 1;
    // With attention DP every rank's tokens meet at the experts: a rank's pass is priced as if its peers
    // brought as many (the worker's pass takes the slowest rank's time anyway).
    ops.push({ count: moeLayers, f: (t) => scale * experts.f(t * dp), kind: 'moe' });
    if (dp > 1) {
      // Hidden states gathered across the worker before the experts and scattered back after: about one
      // all-reduce of the worker's tokens per MoE layer.
      const gather = allReducePricer(gpu, p, tables, tp * dp);
      ops.push({ count: moeLayers, f: (t) => gather.f(t * dp * h), kind: 'allReduce' });
    }
    if (moe.sharedExperts > 0) {
      const i = ceilDiv(moe.sharedExperts * moe.intermediate, tp);
      ops.push({ count: moeLayers, f: gemms.fn(2 * i, h, dd) });
      ops.push({ count: moeLayers, f: gemms.fn(h, i, dd) });
    }
  }
  // Two add+RMSNorm per layer (8 bytes per hidden element per token each), the embedding lookup once.
  ops.push({ count: 2 * L, f: (t) => memOpMs(gpu, p, t * 8 * h), kind: 'memory' });
  ops.push({ count: 1, f: (t) => memOpMs(gpu, p, t * 2 * h), kind: 'memory' });
  let arSource: Source | 'none' = 'none';
  if (tp > 1) {
    const ar = allReducePricer(gpu, p, tables, tp);
    arSource = ar.source;
    // Two all-reduces of the hidden state per layer (after attention and after the FFN), one after embedding.
    ops.push({ count: 2 * L + 1, f: (t) => ar.f(t * h), kind: 'allReduce' });
  }
  const byKind = (kind: string | undefined) =>
    sampleTokenAxis((t) => {
      let sum = 0;
      for (const op of ops) if (op.kind === kind) sum += op.count * op.f(t);
      return sum;
    });
  const breakdown = {
    gemm: byKind(undefined),
    moe: byKind('moe'),
    allReduce: byKind('allReduce'),
    memory: byKind('memory'),
  };
  const nonAttnMs = new Float64Array(breakdown.gemm.length);
  for (let i = 0; i < nonAttnMs.length; i++) {
    nonAttnMs[i] = breakdown.gemm[i] + breakdown.moe[i] + breakdown.allReduce[i] + breakdown.memory[i];
  }
  makeNonDecreasing(nonAttnMs);
  const lmHead = gemms.fn(ceilDiv(model.vocab, tp), h, 'bf16');
  const logitsMs = sampleTokenAxis((s) => lmHead(s));
  makeNonDecreasing(logitsMs);

  const attn = attentionGrids(setup, p, tables);
  const kvBytes = kvBytesPerTokenPerGpu(model, tp, setup.kvDtype);
  const parts = {
    gemm: gemms.source(dd),
    attention: attn.source,
    moe: moeSource,
    allReduce: arSource,
  };
  const sources = Object.values(parts).filter((s) => s !== 'none');
  const tier = sources.every((s) => s === 'measured')
    ? 'measured'
    : sources.every((s) => s === 'roofline')
      ? 'roofline'
      : 'mixed';
  return {
    label: `${gpu.id}/${model.id}/tp${tp}${dp > 1 ? `/dp${dp}` : ''}/${setup.weightDtype}${moeEpOf(setup) > 1 ? `/ep${moeEpOf(setup)}` : ''}`,
    layers: L,
    tier,
    parts,
    breakdown,
    nonAttnMs,
    logitsMs,
    context: attn.context,
    generation: attn.generation,
    kvReadMsPerToken: (kvBytes / (gpu.hbmBandwidth * p.generation.etaMem)) * 1e3,
    overhead: setup.overhead,
  };
}

/** Which kernel family (table name and roofline efficiency) runs a GEMM with weights of dtype w. */
interface GemmKind {
  tables: string[];
  eff: KernelEfficiency;
  flops: number;
  /** Weight bytes of the query (differs from the table's own for weight-only quantisation). */
  wBytes: number;
}

const TABLE_SOL: Record<string, { dtype: WeightDtype; bytes: number }> = {
  bfloat16: { dtype: 'bf16', bytes: 2 },
  fp8: { dtype: 'fp8', bytes: 1 },
  fp8_block: { dtype: 'fp8', bytes: 1 },
  nvfp4: { dtype: 'fp4', bytes: 0.5 },
};

/** Prices GEMMs from the measured grids (utilisation-space interpolation) or the fitted roofline. */
class GemmPricer {
  private readonly lookups = new Map<string, GemmLookup>();
  private readonly gpu: Gpu;
  private readonly p: RooflineParams;
  private readonly tables: KernelTables | null;

  constructor(gpu: Gpu, p: RooflineParams, tables: KernelTables | null) {
    this.gpu = gpu;
    this.p = p;
    this.tables = tables;
  }

  kind(w: WeightDtype): GemmKind {
    const g = this.gpu;
    const p = this.p;
    if (w === 'bf16' || !g.nativeMath[w]) {
      // bf16, or weight-only quantisation on a GPU without that math: bf16 kernels reading narrower weights.
      return { tables: ['bfloat16'], eff: p.gemm.bf16, flops: g.flops.bf16, wBytes: weightBytes(w) };
    }
    if (w === 'fp8') {
      // Per-tensor FP8 tables price block-scaled checkpoints too: AIC's block-scaled GEMM tables carry a
      // 0.06-0.27 ms floor per GEMM (H200/B200) that no shape explains, so we treat it as a collection artefact.
      return { tables: ['fp8', 'fp8_block'], eff: p.gemm.fp8, flops: g.flops.fp8, wBytes: 1 };
    }
    return { tables: ['nvfp4'], eff: p.gemm.fp4, flops: g.flops.fp4, wBytes: 0.5 };
  }

  private lookup(kind: GemmKind): GemmLookup | null {
    if (!this.tables) return null;
    for (const name of kind.tables) {
      const t = this.tables.gemm.get(name);
      if (!t) continue;
      let l = this.lookups.get(name);
      if (!l) {
        const sol = TABLE_SOL[name];
        l = new GemmLookup(t, {
          flops: this.gpu.flops[sol.dtype],
          bandwidth: this.gpu.hbmBandwidth,
          bytes: sol.bytes,
        });
        this.lookups.set(name, l);
      }
      return l;
    }
    return null;
  }

  source(w: WeightDtype): Source {
    return this.lookup(this.kind(w)) ? 'measured' : 'roofline';
  }

  /** Latency (ms) of a GEMM with n outputs and k inputs as a function of m (tokens). */
  fn(n: number, k: number, w: WeightDtype): Fn {
    const kind = this.kind(w);
    const l = this.lookup(kind);
    const roof = (m: number) => gemmRooflineMs(m, n, k, kind, this.gpu.hbmBandwidth);
    if (!l) return roof;
    // Native kernels query at the table's own widths; weight-only kinds borrow bf16 utilisation.
    const measured = l.curve(n, k, kind.wBytes);
    return (m: number) => {
      const v = measured(m);
      return Number.isFinite(v) ? v : roof(m);
    };
  }
}

export function gemmRooflineMs(m: number, n: number, k: number, kind: GemmKind, bw: number): number {
  const e = kind.eff;
  const compute = (2 * m * n * k) / (kind.flops * e.etaCompute);
  const memory = (kind.wBytes * n * k + 2 * (m * k + m * n)) / (bw * e.etaMem);
  return Math.max(compute, memory) * 1e3 + e.t0Ms;
}

/** The MoE layers' expert-parallel size (moe_tp x moe_ep = tp x attention dp). */
export function moeEpOf(
  setup: Pick<HardwareSetup, 'tp' | 'attentionDp' | 'expertParallel' | 'moeEp'>,
): number {
  const gpus = setup.tp * (setup.attentionDp ?? 1);
  return setup.moeEp ?? (setup.expertParallel ? gpus : 1);
}

/** Routed-expert compute of one MoE layer on one GPU, per input-token count. */
function moePricer(
  setup: HardwareSetup,
  p: RooflineParams,
  tables: KernelTables | null,
): { f: Fn; source: Source } {
  const { gpu, model, weightDtype: w } = setup;
  const moe = model.moe!;
  const ep = moeEpOf(setup);
  const tpE = (setup.tp * (setup.attentionDp ?? 1)) / ep;
  const h = model.hidden;
  const kind = new GemmPricer(gpu, p, null).kind(w);
  const roof = (t: number, tpx: number, epx: number) => {
    const assignments = (t * moe.expertsPerToken) / epx;
    const expertsHere = moe.experts / epx;
    const active = expertsHere * (1 - (1 - 1 / moe.experts) ** (t * moe.expertsPerToken));
    const inter = moe.intermediate / tpx;
    const flops = 2 * assignments * 3 * h * inter;
    const bytes = kind.wBytes * active * 3 * h * inter + 2 * assignments * (2 * h + 3 * inter);
    const e = kind.eff;
    const ms = Math.max(flops / (kind.flops * e.etaCompute), bytes / (gpu.hbmBandwidth * e.etaMem)) * 1e3;
    return ms * MOE_SKEW + 2 * e.t0Ms;
  };
  const names =
    w === 'bf16'
      ? ['bfloat16']
      : w === 'fp8'
        ? // The per-tensor FP8 MoE kernel AIC measured (modelopt/flashinfer-cutlass) is slower than bf16 on
          // Hopper; vLLM serves FP8 MoE checkpoints with the block-scaled kernels, so those come first.
          ['fp8_block', 'fp8']
        : gpu.nativeMath.fp4
          ? ['nvfp4', 'w4a16_mxfp4']
          : ['w4a16_mxfp4'];
  if (tables) {
    for (const name of names) {
      const cands = tables.moe.filter(
        (t) =>
          t.dtype === name &&
          t.hidden === h &&
          t.inter === moe.intermediate &&
          t.topk === moe.expertsPerToken &&
          t.experts === moe.experts,
      );
      if (cands.length === 0) continue;
      const exact = cands.find((t) => t.tp === tpE && t.ep === ep);
      if (exact) return { f: (t) => linearCurve(exact.curve, t), source: 'measured' };
      // Another split of the same layer: transfer its utilisation with the roofline's ratio.
      const near = nearestSplit(cands, tpE, ep);
      return {
        f: (t) => (linearCurve(near.curve, t) * roof(t, tpE, ep)) / roof(t, near.tp, near.ep),
        source: 'measured',
      };
    }
  }
  return { f: (t) => roof(t, tpE, ep), source: 'roofline' };
}

/** The measured split closest to (tpE, ep): same mode (TP or EP) first, then the nearest GPU count. */
function nearestSplit(cands: MoeTable[], tpE: number, ep: number): MoeTable {
  let best = cands[0];
  let bestScore = Number.POSITIVE_INFINITY;
  const mode = ep > 1 ? 'ep' : 'tp';
  for (const t of cands) {
    const tMode = t.ep > 1 ? 'ep' : 'tp';
    const score = (tMode === mode ? 0 : 10) + Math.abs(Math.log2((t.tp * t.ep) / (tpE * ep)));
    if (score < bestScore) {
      bestScore = score;
      best = t;
    }
  }
  return best;
}

/** All-reduce of `elems` bf16 elements over the TP group: the measured custom all-reduce or the roofline. */
function allReducePricer(
  gpu: Gpu,
  p: RooflineParams,
  tables: KernelTables | null,
  g: number,
): { f: Fn; source: Source } {
  const curve = tables?.allReduce.get(g);
  if (curve && g <= gpu.nvlinkDomain) return { f: (e) => logLogCurve(curve, e), source: 'measured' };
  return { f: (e) => allReduceRooflineMs(gpu, p, g, 2 * e), source: 'roofline' };
}

/** Prefill and decode attention grids (all layers of one GPU). */
function attentionGrids(
  setup: HardwareSetup,
  p: RooflineParams,
  tables: KernelTables | null,
): { context: AttentionGrid; generation: AttentionGrid; source: Source } {
  const { gpu, model, tp, kvDtype } = setup;
  const L = model.layers;
  const qh = Math.ceil(model.heads / tp);
  const kvLayerBytes = kvBytesPerTokenPerGpu(model, tp, kvDtype) / L;
  const mla = model.mla;
  const dqk = mla ? mla.qkNopeHeadDim + mla.qkRopeHeadDim : headDim(model);
  const dv = mla ? mla.vHeadDim : headDim(model);
  const bw = gpu.hbmBandwidth;
  const flops = gpu.flops.bf16;
  // Roofline per layer.
  const ctxRoof = (b: number, s: number, heads = qh, kvb = kvLayerBytes) => {
    const pairs = (s * (s + 1)) / 2;
    const f = 2 * b * pairs * heads * (dqk + dv);
    const bytes = 2 * b * s * heads * (dqk + dv) + kvb * b * s;
    const e = p.context;
    return Math.max(f / (flops * e.etaCompute), bytes / (bw * e.etaMem)) * 1e3 + e.t0Ms;
  };
  const genRoof = (b: number, s: number, heads = qh, kvb = kvLayerBytes) => {
    // MLA decode runs absorbed: scores and values against the latent (kvLoraRank + rope dims).
    const dot = mla ? 2 * mla.kvLoraRank + mla.qkRopeHeadDim : dqk + dv;
    const f = 2 * b * s * heads * dot;
    const bytes = 2 * b * heads * (dqk + dv) + kvb * b * s;
    const e = p.generation;
    const compute = f / (flops * p.context.etaCompute);
    return Math.max(compute, bytes / (bw * e.etaMem)) * 1e3 + e.t0Ms + e.perSeqMs * b;
  };
  let ctxLayer: (b: number, s: number) => number = ctxRoof;
  let genLayer: (b: number, s: number) => number = genRoof;
  let source: Source = 'roofline';
  const measurable = !mla && headDim(model) === 128;
  const ctxTable = measurable
    ? (tables?.contextAttention.get(kvDtype) ?? tables?.contextAttention.get('bf16'))
    : undefined;
  const genTable = measurable
    ? (tables?.generationAttention.get(kvDtype) ?? tables?.generationAttention.get('bf16'))
    : undefined;
  const kvh = kvHeadsPerGpu(model, tp);
  if (ctxTable && genTable) {
    // A borrowed head split's KV traffic scales with its kv heads.
    ctxLayer = tableFn(ctxTable, qh, kvh, (b, s, q, k) => ctxRoof(b, s, q, (kvLayerBytes * k) / kvh));
    genLayer = tableFn(genTable, qh, kvh, (b, s, q, k) => genRoof(b, s, q, (kvLayerBytes * k) / kvh));
    source = 'measured';
  }
  const win = model.slidingWindow;
  const windowLayers = win ? Math.round(L * win.layerFraction) : 0;
  const fullLayers = L - windowLayers;
  const ctxAll = (b: number, s: number) => {
    let v = fullLayers * ctxLayer(b, s);
    if (windowLayers > 0) {
      const w = win!.window;
      const full = ctxLayer(b, s);
      v += windowLayers * (s <= w ? full : full * Math.min(1, (2 * w) / s - (w * w) / (s * s)));
    }
    return v;
  };
  const genAll = (b: number, s: number) =>
    fullLayers * genLayer(b, s) +
    (windowLayers > 0 ? windowLayers * genLayer(b, Math.min(s, win!.window)) : 0);
  return {
    context: grid(CTX_BATCH, [...CTX_SEQ, ...CTX_SEQ_EXT], ctxAll),
    generation: grid(GEN_BATCH, [...GEN_SEQ, ...GEN_SEQ_EXT], genAll),
    source,
  };
}

function grid(batch: number[], seq: number[], f: (b: number, s: number) => number): AttentionGrid {
  const ms = new Float64Array(batch.length * seq.length);
  for (let i = 0; i < batch.length; i++) {
    const row = new Float64Array(seq.length);
    for (let j = 0; j < seq.length; j++) row[j] = f(batch[i], seq[j]);
    makeNonDecreasing(row);
    ms.set(row, i * seq.length);
  }
  // Non-decreasing in batch too.
  for (let j = 0; j < seq.length; j++) {
    for (let i = 1; i < batch.length; i++) {
      const a = ms[(i - 1) * seq.length + j];
      if (ms[i * seq.length + j] < a) ms[i * seq.length + j] = a;
    }
  }
  return { batch: Float64Array.from(batch), seq: Float64Array.from(seq), ms };
}

/**
 * One layer's attention from a measured grid for (q heads, kv heads) per GPU. A missing head split borrows
 * the nearest measured split scaled by the roofline ratio; unmeasured cells (large batch x long sequence
 * corners, sequences past the grid) borrow the nearest measured cell of the same row or column the same way.
 */
function tableFn(
  t: AttentionTable,
  qh: number,
  kvh: number,
  roof: (b: number, s: number, q: number, kv: number) => number,
): (b: number, s: number) => number {
  let key = `${qh},${kvh}`;
  let hq = qh;
  let hkv = kvh;
  if (!t.heads.has(key)) {
    let best = Number.POSITIVE_INFINITY;
    for (const k of t.heads.keys()) {
      const [q, kv] = k.split(',').map(Number);
      const score = Math.abs(Math.log(q / qh)) + Math.abs(Math.log(kv / kvh));
      if (score < best) {
        best = score;
        key = k;
        hq = q;
        hkv = kv;
      }
    }
  }
  const base = t.heads.get(key)! * t.batch.length * t.seq.length;
  const S = t.seq.length;
  const at = (bi: number, si: number) => t.lat[base + bi * S + si];
  return (b: number, s: number) => {
    // The cell itself, or the nearest measured cell at or below (b, s) in the same column, then row.
    const bi = indexAtOrBelow(t.batch, b);
    const si = indexAtOrBelow(t.seq, s);
    for (let i = bi; i >= 0; i--) {
      const v = at(i, si);
      if (Number.isFinite(v)) {
        const mb = t.batch[i];
        const ms = t.seq[si];
        const exact = mb === b && ms === s && hq === qh && hkv === kvh;
        return exact ? v : (v * roof(b, s, qh, kvh)) / roof(mb, ms, hq, hkv);
      }
    }
    for (let j = si - 1; j >= 0; j--) {
      const v = at(bi, j);
      if (Number.isFinite(v)) return (v * roof(b, s, qh, kvh)) / roof(t.batch[bi], t.seq[j], hq, hkv);
    }
    return roof(b, s, qh, kvh);
  };
}

function indexAtOrBelow(axis: Float64Array, x: number): number {
  let i = 0;
  while (i + 1 < axis.length && axis[i + 1] <= x) i++;
  return i;
}
