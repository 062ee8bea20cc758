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

/** Linear interpolation of a token-axis curve at t >= 0 (t < 1 reads the first point; beyond the axis the
 * last segment's slope continues). */
export function tokenCurveAt(c: Float64Array, t: number): number {
  if (t <= 1) return c[0];
  let s = 0;
  if (t >= 256) s = t >= 16384 ? (t >= 262144 ? 4 : 3) : t >= 2048 ? 2 : 1;
  if (s === 4) {
    const n = TOKEN_AXIS_LENGTH;
    return c[n - 1] + ((c[n - 1] - c[n - 2]) * (t - 262144)) / 1024;
  }
  const x = (t - SEG_START[s]) / SEG_STEP[s];
  const j = Math.floor(x);
  const i = SEG_BASE[s] + j;
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
}

/** Index and weight of x on a small increasing axis (held at the ends). */
function locate(axis: Float64Array, x: number, out: Float64Array): void {
  const n = axis.length;
  if (x <= axis[0]) {
    out[0] = 0;
    out[1] = 0;
    return;
  }
  if (x >= axis[n - 1]) {
    out[0] = n - 2;
    out[1] = 1;
    return;
  }
  let i = 0;
  while (axis[i + 1] <= x) i++;
  out[0] = i;
  out[1] = (x - axis[i]) / (axis[i + 1] - axis[i]);
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
 */
export class HardwareTiming implements TimingModel {
  readonly name: string;
  readonly profile: HardwareProfile;
  private readonly nonAttn: Float64Array;
  private readonly logits: Float64Array;
  /** nonAttn(d) + logits(d) + stepMs + perSeqMs * d: a pure decode pass without attention. */
  private readonly decodeBase: Float64Array;
  private readonly ctx: AttentionGrid;
  private readonly gen: AttentionGrid;
  private readonly kvRead: number;
  private readonly o: StepOverhead;
  private readonly bi = new Float64Array(2);
  private readonly si = new Float64Array(2);

  constructor(profile: HardwareProfile) {
    this.profile = profile;
    this.name = `hardware(${profile.label}, ${profile.tier})`;
    this.nonAttn = profile.nonAttnMs;
    this.logits = profile.logitsMs;
    this.ctx = profile.context;
    this.gen = profile.generation;
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
    const attention = Math.max(this.grid(this.ctx, n, sEq), this.kvRead * (s.prefillCachedTokens + p));
    const o = this.o;
    const kernels = tokenCurveAt(this.nonAttn, p) + tokenCurveAt(this.logits, n) + attention;
    return kernels * o.prefillScale + o.stepMs + o.perPrefillMs * n;
  }

  decodeMs(s: PassShape): number {
    const d = s.decodeRequests;
    if (d === 0) return 0;
    const attention = this.grid(this.gen, d, s.decodeContextTokens / d);
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

  /** Bilinear lookup; past the batch axis time grows in proportion to the batch. */
  private grid(g: AttentionGrid, b: number, seq: number): number {
    const nb = g.batch.length;
    const bMax = g.batch[nb - 1];
    let scale = 1;
    if (b > bMax) {
      scale = b / bMax;
      b = bMax;
    }
    const bi = this.bi;
    const si = this.si;
    locate(g.batch, b, bi);
    const ns = g.seq.length;
    const sMax = g.seq[ns - 1];
    let sx = 0;
    if (seq > sMax) {
      sx = seq - sMax;
      seq = sMax;
    }
    locate(g.seq, seq, si);
    const i0 = bi[0] * ns + si[0];
    const i1 = i0 + ns;
    const fb = bi[1];
    const fs = si[1];
    const ms = g.ms;
    const lo = ms[i0] + (ms[i0 + 1] - ms[i0]) * fs;
    const hi = ms[i1] + (ms[i1 + 1] - ms[i1]) * fs;
    let v = lo + (hi - lo) * fb;
    if (sx > 0) {
      // Beyond the sequence axis: continue the last segment's slope.
      const j = ns - 2;
      const r0 = bi[0] * ns;
      const r1 = r0 + ns;
      const slope0 = (ms[r0 + j + 1] - ms[r0 + j]) / (g.seq[j + 1] - g.seq[j]);
      const slope1 = (ms[r1 + j + 1] - ms[r1 + j]) / (g.seq[j + 1] - g.seq[j]);
      v += sx * (slope0 + (slope1 - slope0) * fb);
    }
    return v * scale;
  }
}
