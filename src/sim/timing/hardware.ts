import type { PassShape, TimingModel } from './timing-model.ts';

/**
 * The token axis the per-token curves are sampled on: every count up to 256, then steps of 8 to 2,048,
 * 64 to 16,384 and 1,024 to 262,144 (~950 points). Locating a count is arithmetic, not a search.
 */
const SEG_START = [1, 256, 2048, 16384, 262144];
const SEG_STEP = [1, 8, 64, 1024];
const SEG_BASE = [0, 255, 479, 703, 943];
export const TOKEN_AXIS_LENGTH = 944;

/** The token count at axis index i. */
export function tokenAxisAt(i: number): number {
  for (let s = SEG_BASE.length - 2; s >= 0; s--) {
    if (i >= SEG_BASE[s]) return SEG_START[s] + (i - SEG_BASE[s]) * SEG_STEP[s];
  }
  return 1;
}

/** Samples f on the token axis. */
export function sampleTokenAxis(f: (tokens: number) => number): Float64Array {
  const out = new Float64Array(TOKEN_AXIS_LENGTH);
  for (let i = 0; i < TOKEN_AXIS_LENGTH; i++) out[i] = f(tokenAxisAt(i));
  return out;
}

/**
 * Linear interpolation of a token-axis curve at t >= 0 (t < 1 reads the first point; beyond the axis the
 * last segment's slope continues). Segment arithmetic is spelled out: this runs in every decode step.
 */
export function tokenCurveAt(c: Float64Array, t: number): number {
  let x: number;
  let base: number;
  if (t < 256) {
    if (t <= 1) return c[0];
    x = t - 1;
    base = 0;
  } else if (t < 2048) {
    x = (t - 256) * 0.125;
    base = 255;
  } else if (t < 16384) {
    x = (t - 2048) * 0.015625;
    base = 479;
  } else if (t < 262144) {
    x = (t - 16384) * 0.0009765625;
    base = 703;
  } else {
    const n = TOKEN_AXIS_LENGTH;
    return c[n - 1] + ((c[n - 1] - c[n - 2]) * (t - 262144)) / 1024;
  }
  const j = x | 0;
  const i = base + j;
  const f = x - j;
  return f === 0 ? c[i] : c[i] + (c[i + 1] - c[i]) * f;
}

/** A batch x sequence grid of attention time (ms, all layers of one GPU). */
export interface AttentionGrid {
  /** Batch axis (increasing). */
  readonly batch: Float64Array;
  /** Sequence axis (increasing). */
  readonly seq: Float64Array;
  /** ms at index batch_i * |seq| + seq_i. */
  readonly ms: Float64Array;
}

/** Per-pass costs outside the kernel tables (scheduler, input preparation, sampling, launches), calibrated. */
export interface StepOverhead {
  stepMs: number;
  perSeqMs: number;
  perPrefillMs: number;
  /** Served prefill work / summed prefill kernels (unfused ops, quantisation, piecewise graphs); >= 1. */
  prefillScale: number;
}

/**
 * Everything a hardware-informed step price needs, precomputed for one (GPU, model, TP, dtype): curves over
 * the token axis and attention grids. Built by src/hardware/compose.ts from measured kernel tables or a
 * roofline; this module only reads it.
 */
export interface HardwareProfile {
  readonly label: string;
  /** Which tier answered: measured tables throughout, roofline throughout, or a mix. */
  readonly tier: 'measured' | 'mixed' | 'roofline';
  /** Token-linear work (GEMMs, MoE, all-reduce, element-wise, embedding) for t tokens in a pass. */
  readonly nonAttnMs: Float64Array;
  /** LM head for s sampled sequences. */
  readonly logitsMs: Float64Array;
  /** Prefill attention for b requests of s prompt tokens each, no prefix (causal). */
  readonly context: AttentionGrid;
  /** Decode attention for b requests with s tokens of context each. */
  readonly generation: AttentionGrid;
  /** ms to stream one context token's KV through all layers (prefix reads of chunked prefills). */
  readonly kvReadMsPerToken: number;
  readonly overhead: StepOverhead;
  /** Transformer layers (an MTP draft module costs about one). */
  readonly layers?: number;
}

/**
 * A bilinear reader of an AttentionGrid, as a closure over its arrays (cheaper to call than a method reading
 * fields). Axes that are powers of two (the decode grid's) are located with Math.clz32 instead of a search;
 * past the batch axis time grows in proportion to the batch, past the sequence axis the last segment's
 * slope continues.
 */
function gridReader(g: AttentionGrid): (b: number, s: number) => number {
  const batch = g.batch;
  const seq = g.seq;
  const ms = g.ms;
  const nb = batch.length;
  const ns = seq.length;
  const b0 = batch[0];
  const s0 = seq[0];
  const bMax = batch[nb - 1];
  const sMax = seq[ns - 1];
  const bPow = pow2Start(batch);
  const sPow = pow2Start(seq);
  const lastDs = seq[ns - 1] - seq[ns - 2];
  return (b: number, s: number): number => {
    let scale = 1;
    if (b > bMax) {
      scale = b / bMax;
      b = bMax;
    }
    let extra = 0;
    if (s > sMax) {
      extra = s - sMax;
      s = sMax;
    }
    let bi = 0;
    let fb = 0;
    if (b >= bMax) {
      bi = nb - 2;
      fb = 1;
    } else if (b > b0) {
      bi = bPow >= 0 ? 31 - Math.clz32(b) - bPow : search(batch, b);
      fb = (b - batch[bi]) / (batch[bi + 1] - batch[bi]);
    }
    let si = 0;
    let fs = 0;
    if (s >= sMax) {
      si = ns - 2;
      fs = 1;
    } else if (s > s0) {
      si = sPow >= 0 ? 31 - Math.clz32(s) - sPow : search(seq, s);
      fs = (s - seq[si]) / (seq[si + 1] - seq[si]);
    }
    const i0 = bi * ns + si;
    const i1 = i0 + ns;
    const lo = ms[i0] + (ms[i0 + 1] - ms[i0]) * fs;
    const hi = ms[i1] + (ms[i1 + 1] - ms[i1]) * fs;
    let v = lo + (hi - lo) * fb;
    if (extra > 0) {
      const j = bi * ns + ns - 2;
      const slope0 = (ms[j + 1] - ms[j]) / lastDs;
      const slope1 = (ms[j + ns + 1] - ms[j + ns]) / lastDs;
      v += extra * (slope0 + (slope1 - slope0) * fb);
    }
    return v * scale;
  };
}

/** The cell i with axis[i] <= x < axis[i + 1], for axis[0] < x < axis[last]. */
function search(axis: Float64Array, x: number): number {
  let lo = 0;
  let hi = axis.length - 1;
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1;
    if (axis[mid] <= x) lo = mid;
    else hi = mid;
  }
  return lo;
}

function pow2Start(axis: Float64Array): number {
  const k = Math.log2(axis[0]);
  if (!Number.isInteger(k)) return -1;
  for (let i = 0; i < axis.length; i++) if (axis[i] !== 2 ** (k + i)) return -1;
  return k;
}

/**
 * Prices forward passes from a HardwareProfile. The combined pass is priced as real vLLM runs it: one set of
 * token-linear kernels over all tokens of the pass (prefill chunks plus one token per decode), prefill and
 * decode attention separately, one LM head over every sampled sequence, plus a calibrated overhead.
 *
 * Split between the two calls (the engine calls prefillMs before it knows the decode batch, then decodeMs
 * with the same shape): prefillMs = prefillScale * [nonAttn(P) + logits(Np) + prefill attention] + stepMs +
 * perPrefillMs * Np;
 * decodeMs = [nonAttn(P + D) - nonAttn(P)] + [logits(Np + D) - logits(Np)] + decode attention + perSeqMs * D,
 * where a pure decode pass (P = 0) also carries stepMs. The sum is the combined pass; no call allocates.
 *
 * MTP (`speculativeTokens` k > 0): a decode forward verifies 1 + k tokens per request (token-linear work and
 * LM head over D (1 + k) tokens; attention reads each request's KV once for its 1 + k queries, so it is
 * priced as one decode step), after k sequential draft steps of the one-layer MTP module over D tokens
 * (1/L of a decode step's token-linear work and attention, plus an LM head each).
 */
export class HardwareTiming implements TimingModel {
  readonly name: string;
  readonly profile: HardwareProfile;
  private readonly nonAttn: Float64Array;
  private readonly logits: Float64Array;
  /** nonAttn(d) + logits(d) + stepMs + perSeqMs * d: a pure decode pass without attention. */
  private readonly decodeBase: Float64Array;
  private readonly ctx: (b: number, s: number) => number;
  private readonly gen: (b: number, s: number) => number;
  private readonly kvRead: number;
  private readonly o: StepOverhead;
  /** MTP draft tokens per forward (0: none). */
  readonly speculativeTokens: number;
  private readonly layers: number;

  constructor(profile: HardwareProfile, speculativeTokens = 0) {
    this.profile = profile;
    this.speculativeTokens = speculativeTokens;
    this.layers = Math.max(1, profile.layers ?? 1);
    this.name = `hardware(${profile.label}${speculativeTokens > 0 ? `, mtp${speculativeTokens}` : ''}, ${profile.tier})`;
    this.nonAttn = profile.nonAttnMs;
    this.logits = profile.logitsMs;
    this.ctx = gridReader(profile.context);
    this.gen = gridReader(profile.generation);
    this.kvRead = profile.kvReadMsPerToken;
    this.o = profile.overhead;
    const o = this.o;
    this.decodeBase = new Float64Array(this.nonAttn.length);
    for (let i = 0; i < this.decodeBase.length; i++) {
      this.decodeBase[i] = this.nonAttn[i] + this.logits[i] + o.stepMs + o.perSeqMs * tokenAxisAt(i);
    }
  }

  get tier(): string {
    return this.profile.tier;
  }

  prefillMs(s: PassShape): number {
    const n = s.prefillRequests;
    if (n === 0) return 0;
    const p = s.prefillNewTokens;
    // n requests of s_eq prompt tokens each have the same attention pairs as this pass's chunks.
    const sEq = (Math.sqrt((8 * s.prefillAttentionPairs) / n + 1) - 1) / 2;
    const attention = Math.max(this.ctx(n, sEq), this.kvRead * (s.prefillCachedTokens + p));
    const o = this.o;
    const kernels = tokenCurveAt(this.nonAttn, p) + tokenCurveAt(this.logits, n) + attention;
    return kernels * o.prefillScale + o.stepMs + o.perPrefillMs * n;
  }

  decodeMs(s: PassShape): number {
    const d = s.decodeRequests;
    if (d === 0) return 0;
    const attention = this.gen(d, s.decodeContextTokens / d);
    if (this.speculativeTokens > 0) return this.speculativeDecodeMs(s, d, attention);
    const n = s.prefillRequests;
    if (n === 0) return tokenCurveAt(this.decodeBase, d) + attention;
    const p = s.prefillNewTokens;
    return (
      tokenCurveAt(this.nonAttn, p + d) -
      tokenCurveAt(this.nonAttn, p) +
      tokenCurveAt(this.logits, n + d) -
      tokenCurveAt(this.logits, n) +
      attention +
      this.o.perSeqMs * d
    );
  }

  private speculativeDecodeMs(s: PassShape, d: number, attention: number): number {
    const k = this.speculativeTokens;
    const v = d * (1 + k);
    const n = s.prefillRequests;
    const p = s.prefillNewTokens;
    const verify =
      n === 0
        ? tokenCurveAt(this.nonAttn, v) + tokenCurveAt(this.logits, v) + this.o.stepMs
        : tokenCurveAt(this.nonAttn, p + v) -
          tokenCurveAt(this.nonAttn, p) +
          tokenCurveAt(this.logits, n + v) -
          tokenCurveAt(this.logits, n);
    const draft =
      k * ((tokenCurveAt(this.nonAttn, d) + attention) / this.layers + tokenCurveAt(this.logits, d));
    return verify + attention + this.o.perSeqMs * d + draft;
  }
}
