import type { ForwardPassSnapshot } from '../engine/pass-metrics.ts';
import { BucketedRegression, MovingAverage } from './regression.ts';

/**
 * Performance models of one worker, learnt from forward-pass metrics: a pass's wall time as a linear function
 * of what it scheduled. They answer the planner's two questions: how long would the next request wait on this
 * engine (load scaling), and how many requests per second can one engine serve within the SLO (throughput
 * scaling). Times are in seconds, SLOs in milliseconds, as in the reference planner.
 */
export interface RegressionSettings {
  maxSamples: number;
  minObservations: number;
  bucketCount: number;
}

/** What the planner knows of an engine's limits. */
export interface EngineCapabilities {
  maxNumBatchedTokens: number;
  maxKvTokens: number;
  maxNumSeqs: number;
  contextLength: number;
}

function clampHit(h: number | null | undefined): number {
  return h === null || h === undefined || !Number.isFinite(h) ? 0 : Math.min(1, Math.max(0, h));
}

/** Prefill engine: wall = f(prefill tokens in the pass). */
export class PrefillModel {
  readonly reg: BucketedRegression;
  private readonly avgIsl: MovingAverage;
  constructor(s: RegressionSettings) {
    this.reg = new BucketedRegression(1, s.maxSamples, s.minObservations, s.bucketCount);
    this.avgIsl = new MovingAverage(s.maxSamples);
  }
  observe(f: ForwardPassSnapshot): void {
    if (f.numPrefillRequests > 0) this.avgIsl.add(f.sumPrefillTokens / f.numPrefillRequests);
    if (f.wallTimeS > 0) this.reg.add([f.sumPrefillTokens], f.wallTimeS);
  }
  get isl(): number {
    return this.avgIsl.value;
  }
  private wt(tokens: number): number {
    return this.reg.predict([tokens]);
  }
  /** Time to first token of a request arriving behind `queued` prompt tokens: chunked prefill, chunk by chunk. */
  estimateTtft(queued: number, mbt: number, kvHit: number | null): number | null {
    if (!this.reg.ensureFitted() || mbt <= 0) return null;
    let left = (queued + this.avgIsl.value) * (1 - clampHit(kvHit));
    if (left <= 0) return 0;
    let t = 0;
    while (left > 0) {
      const chunk = Math.min(left, mbt);
      t += this.wt(chunk);
      left -= chunk;
    }
    return t;
  }
  /** Requests per second one engine prefills at prompt length `isl`, and the TTFT of one such prefill (ms). */
  bestRps(isl: number, mbt: number): { rps: number; ttftMs: number } | null {
    if (!this.reg.ensureFitted() || isl <= 0) return null;
    let wt: number;
    if (mbt > 0 && isl > mbt) {
      const k = Math.ceil(isl / mbt);
      wt = (k - 1) * this.wt(mbt) + this.wt(isl - (k - 1) * mbt);
    } else wt = this.wt(isl);
    return { rps: 1 / wt, ttftMs: wt * 1000 };
  }
}

/** Decode engine: wall = f(decode requests, their KV tokens). */
export class DecodeModel {
  readonly reg: BucketedRegression;
  private readonly avgLen: MovingAverage;
  private readonly avgNum: MovingAverage;
  private maxSeenKv = 0;
  constructor(s: RegressionSettings) {
    // A negative per-request coefficient is noise from collinearity; a negative KV one is a bad fit.
    this.reg = new BucketedRegression(2, s.maxSamples, s.minObservations, s.bucketCount, [0]);
    this.avgLen = new MovingAverage(s.maxSamples);
    this.avgNum = new MovingAverage(s.maxSamples);
  }
  observe(f: ForwardPassSnapshot): void {
    if (f.numDecodeRequests > 0) this.avgLen.add(f.sumDecodeKvTokens / f.numDecodeRequests);
    this.avgNum.add(f.numDecodeRequests);
    if (f.sumDecodeKvTokens > this.maxSeenKv) this.maxSeenKv = f.sumDecodeKvTokens;
    if (f.wallTimeS > 0) this.reg.add([f.numDecodeRequests, f.sumDecodeKvTokens], f.wallTimeS);
  }
  /** Next decode step time with one more request of average length joining the scheduled and queued KV. */
  estimateItl(scheduledKv: number, queuedKv: number): number | null {
    if (!this.reg.ensureFitted()) return null;
    return this.reg.predict([this.avgNum.value + 1, scheduledKv + queuedKv + this.avgLen.value]);
  }
  /**
   * Largest batch whose step stays within the ITL SLO at context `ctx` (binary search up to the KV and
   * sequence caps), turned into requests per second by Little's law: batch / (osl x step time).
   */
  bestRps(
    itlMs: number,
    ctx: number,
    osl: number,
    caps: EngineCapabilities,
  ): { rps: number; itlMs: number } | null {
    if (!this.reg.ensureFitted() || ctx <= 0 || osl <= 0 || itlMs <= 0) return null;
    const kvCap =
      caps.maxKvTokens > 0
        ? Math.max(1, Math.floor(caps.maxKvTokens / ctx))
        : this.maxSeenKv > 0
          ? Math.max(1, Math.floor(this.maxSeenKv / ctx))
          : 256;
    const maxBatch = Math.max(1, Math.min(kvCap, caps.maxNumSeqs > 0 ? caps.maxNumSeqs : kvCap));
    let best = 1;
    let bestWt = this.reg.predict([1, ctx]);
    if (bestWt * 1000 > itlMs) return { rps: 1 / (osl * bestWt), itlMs: bestWt * 1000 };
    let lo = 1;
    let hi = maxBatch;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const wt = this.reg.predict([mid, mid * ctx]);
      if (wt * 1000 <= itlMs) {
        best = mid;
        bestWt = wt;
        lo = mid + 1;
      } else hi = mid - 1;
    }
    return { rps: best / (osl * bestWt), itlMs: bestWt * 1000 };
  }
}

/** Aggregated engine (chunked prefill piggybacked on decode): wall = f(prefill tokens, decode KV tokens). */
export class AggModel {
  readonly reg: BucketedRegression;
  private readonly avgIsl: MovingAverage;
  private readonly avgLen: MovingAverage;
  private readonly avgPrefill: MovingAverage;
  constructor(s: RegressionSettings) {
    this.reg = new BucketedRegression(2, s.maxSamples, s.minObservations, s.bucketCount);
    this.avgIsl = new MovingAverage(s.maxSamples);
    this.avgLen = new MovingAverage(s.maxSamples);
    this.avgPrefill = new MovingAverage(s.maxSamples);
  }
  observe(f: ForwardPassSnapshot): void {
    if (f.numPrefillRequests > 0) this.avgIsl.add(f.sumPrefillTokens / f.numPrefillRequests);
    if (f.numDecodeRequests > 0) this.avgLen.add(f.sumDecodeKvTokens / f.numDecodeRequests);
    this.avgPrefill.add(f.sumPrefillTokens);
    if (f.wallTimeS > 0) this.reg.add([f.sumPrefillTokens, f.sumDecodeKvTokens], f.wallTimeS);
  }
  estimateTtft(queued: number, mbt: number, decodeKv: number, kvHit: number | null): number | null {
    if (!this.reg.ensureFitted() || mbt <= 0) return null;
    let left = (queued + this.avgIsl.value) * (1 - clampHit(kvHit));
    if (left <= 0) return 0;
    let t = 0;
    while (left > 0) {
      const chunk = Math.min(left, mbt);
      t += this.reg.predict([chunk, decodeKv]);
      left -= chunk;
    }
    return t;
  }
  estimateItl(scheduledKv: number, queuedKv: number): number | null {
    if (!this.reg.ensureFitted()) return null;
    return this.reg.predict([this.avgPrefill.value, scheduledKv + queuedKv + this.avgLen.value]);
  }
  /**
   * Largest decode concurrency meeting both SLOs, where each step also carries the prefill of the requests that
   * replace finishing ones (batch x ISL / OSL tokens), capped by KV, `max_num_seqs` and the prefill budget
   * balance; turned into requests per second by Little's law.
   */
  bestRps(
    isl: number,
    osl: number,
    ttftMs: number,
    itlMs: number,
    caps: EngineCapabilities,
    kvHit: number | null,
  ): { rps: number; ttftMs: number; itlMs: number } | null {
    const mbt = caps.maxNumBatchedTokens;
    if (!this.reg.ensureFitted() || isl <= 0 || osl <= 0 || mbt <= 0) return null;
    const effIsl = isl * (1 - clampHit(kvHit));
    const ctx = isl + osl / 2;
    const kvCap = caps.maxKvTokens > 0 ? Math.max(1, Math.floor(caps.maxKvTokens / Math.max(1, ctx))) : 1024;
    const seqCap = caps.maxNumSeqs > 0 ? caps.maxNumSeqs : kvCap;
    const hard = Math.min(kvCap, seqCap, mbt - 1);
    // Steady state needs admissions to keep up with completions: isl / (mbt - x) <= osl.
    let lo = 1;
    let hi = Math.max(1, hard);
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (mbt - mid > 0 && isl / (mbt - mid) <= osl) lo = mid;
      else hi = mid - 1;
    }
    let best = { rps: 0, ttftMs: 0, itlMs: 0 };
    for (let bs = 1; bs <= lo; bs++) {
      const kv = bs * ctx;
      const prefill = Math.min((bs * effIsl) / Math.max(1, osl), mbt);
      const wt = this.reg.predict([prefill, kv]);
      const ttft = (this.estimateTtft(Math.floor(prefill), mbt, Math.floor(kv), null) ?? 0) * 1000;
      if (wt * 1000 > itlMs || ttft > ttftMs) {
        if (bs === 1) best = { rps: 1 / (osl * wt), ttftMs: ttft, itlMs: wt * 1000 };
        break;
      }
      best = { rps: bs / (osl * wt), ttftMs: ttft, itlMs: wt * 1000 };
    }
    return best.rps > 0 ? best : null;
  }
}
