import { grown, type RequestTable } from '../engine/request-table.ts';
import { LogHistogram } from './log-histogram.ts';

/**
 * Records the timeline of every request alive as the simulation produces it: arrival, admissions, tokens,
 * completion. Per-request times live in typed arrays indexed like the request table (slots, recycled: a
 * request's row is read into its results when it ends, see records.ts); pooled token-gap distributions in log
 * histograms.
 */
export class Collector {
  arrivalMs = new Float64Array(0);
  firstAdmitMs = new Float64Array(0);
  firstTokenMs = new Float64Array(0);
  secondTokenMs = new Float64Array(0);
  lastTokenMs = new Float64Array(0);
  terminalMs = new Float64Array(0);
  tokens = new Int32Array(0);
  /** Prefix-cache reuse (tokens) at the best and at the first admission; -1 before any admission. */
  reusedBest = new Int32Array(0);
  reusedFirst = new Int32Array(0);
  admissions = new Int32Array(0);
  /** Requests arriving before this time are a warm-up: their token gaps are not pooled (see measured). */
  measureFromMs = Number.NEGATIVE_INFINITY;
  /** Every gap between consecutive tokens of a measured request, pooled over requests (ms). */
  readonly itl = new LogHistogram();
  /** Sum of 1000/gap over the same gaps (tokens per second per user, pooled). */
  userRateSum = 0;
  userRateSumSquares = 0;
  completed = 0;
  rejected = 0;
  /** Why each rejected request alive was rejected. */
  readonly rejectReasons = new Map<number, string>();
  /**
   * Told of every token as it is stamped (request, its count so far, time), for a live simulation's
   * observers; null in batch runs (which then pay one null check per token).
   */
  tokenObserver: ((r: number, index: number, t: number) => void) | null = null;
  /** Per engine: prompt tokens admitted, and those found in its prefix cache (all admissions). */
  admittedTokens = new Float64Array(16);
  cachedTokens = new Float64Array(16);
  private readonly req: RequestTable;

  constructor(req: RequestTable) {
    this.req = req;
    req.onGrow((n) => {
      this.arrivalMs = grown(this.arrivalMs, n);
      this.firstAdmitMs = grown(this.firstAdmitMs, n);
      this.firstTokenMs = grown(this.firstTokenMs, n);
      this.secondTokenMs = grown(this.secondTokenMs, n);
      this.lastTokenMs = grown(this.lastTokenMs, n);
      this.terminalMs = grown(this.terminalMs, n);
      this.tokens = grown(this.tokens, n);
      this.reusedBest = grown(this.reusedBest, n);
      this.reusedFirst = grown(this.reusedFirst, n);
      this.admissions = grown(this.admissions, n);
    });
  }

  /** Request r arrives at t (its slot was just taken): its row starts afresh. */
  onArrival(r: number, t: number): void {
    this.arrivalMs[r] = t;
    this.firstAdmitMs[r] = Number.NaN;
    this.firstTokenMs[r] = Number.NaN;
    this.secondTokenMs[r] = Number.NaN;
    this.lastTokenMs[r] = Number.NaN;
    this.terminalMs[r] = Number.NaN;
    this.tokens[r] = 0;
    this.reusedBest[r] = -1;
    this.reusedFirst[r] = -1;
    this.admissions[r] = 0;
  }

  onAdmit(r: number, t: number, reusedTokens: number): void {
    const e = this.req.engine[r];
    if (e >= this.admittedTokens.length) {
      this.admittedTokens = grown(this.admittedTokens, e * 2 + 1);
      this.cachedTokens = grown(this.cachedTokens, e * 2 + 1);
    }
    this.admittedTokens[e] += this.req.promptLen[r];
    this.cachedTokens[e] += reusedTokens;
    if (this.admissions[r]++ === 0) {
      this.firstAdmitMs[r] = t;
      this.reusedFirst[r] = reusedTokens;
    }
    if (reusedTokens > this.reusedBest[r]) this.reusedBest[r] = reusedTokens;
  }

  /** One token of request r stamped at time t. */
  onToken(r: number, t: number): void {
    const n = ++this.tokens[r];
    if (this.tokenObserver !== null) this.tokenObserver(r, n, t);
    if (n === 1) {
      this.firstTokenMs[r] = t;
    } else {
      const gap = t - this.lastTokenMs[r];
      if (this.arrivalMs[r] >= this.measureFromMs) this.addGap(gap, 1);
      if (n === 2) this.secondTokenMs[r] = t;
    }
    this.lastTokenMs[r] = t;
  }

  /** `weight` gaps of the same length (a coalesced decode step shared by `weight` requests). */
  addGap(gap: number, weight: number): void {
    this.itl.add(gap, weight);
    if (gap > 0) {
      const rate = 1000 / gap;
      this.userRateSum += rate * weight;
      this.userRateSumSquares += rate * rate * weight;
    }
  }

  onComplete(r: number, t: number): void {
    this.terminalMs[r] = t;
    this.completed++;
  }

  /** Rejected requests: the reason per request (terminal time is stamped with the pass end). */
  onReject(r: number, reason: string): void {
    this.rejectReasons.set(r, reason);
    this.rejected++;
  }
}
