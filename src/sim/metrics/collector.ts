import { LogHistogram } from './log-histogram.ts';

/**
 * Records the timeline of every request as the simulation produces it: arrival, admissions, tokens,
 * completion. Per-request times live in typed arrays; pooled token-gap distributions in log histograms.
 */
export class Collector {
  readonly arrivalMs: Float64Array;
  readonly firstAdmitMs: Float64Array;
  readonly firstTokenMs: Float64Array;
  readonly secondTokenMs: Float64Array;
  readonly lastTokenMs: Float64Array;
  readonly terminalMs: Float64Array;
  readonly tokens: Int32Array;
  /** Prefix-cache reuse (tokens) at the best and at the first admission; -1 before any admission. */
  readonly reusedBest: Int32Array;
  readonly reusedFirst: Int32Array;
  readonly admissions: Int32Array;
  /** Every gap between consecutive tokens of a request, pooled over requests (ms). */
  readonly itl = new LogHistogram();
  /** Sum of 1000/gap over the same gaps (tokens per second per user, pooled). */
  userRateSum = 0;
  userRateSumSquares = 0;
  completed = 0;
  rejected = 0;

  readonly size: number;
  constructor(size: number) {
    this.size = size;
    this.arrivalMs = new Float64Array(size).fill(Number.NaN);
    this.firstAdmitMs = new Float64Array(size).fill(Number.NaN);
    this.firstTokenMs = new Float64Array(size).fill(Number.NaN);
    this.secondTokenMs = new Float64Array(size).fill(Number.NaN);
    this.lastTokenMs = new Float64Array(size).fill(Number.NaN);
    this.terminalMs = new Float64Array(size).fill(Number.NaN);
    this.tokens = new Int32Array(size);
    this.reusedBest = new Int32Array(size).fill(-1);
    this.reusedFirst = new Int32Array(size).fill(-1);
    this.admissions = new Int32Array(size);
  }

  onArrival(r: number, t: number): void {
    this.arrivalMs[r] = t;
  }

  onAdmit(r: number, t: number, reusedTokens: number): void {
    if (this.admissions[r]++ === 0) {
      this.firstAdmitMs[r] = t;
      this.reusedFirst[r] = reusedTokens;
    }
    if (reusedTokens > this.reusedBest[r]) this.reusedBest[r] = reusedTokens;
  }

  /** One token of request r stamped at time t. */
  onToken(r: number, t: number): void {
    const n = ++this.tokens[r];
    if (n === 1) {
      this.firstTokenMs[r] = t;
    } else {
      const gap = t - this.lastTokenMs[r];
      this.addGap(gap, 1);
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
  readonly rejectReasons = new Map<number, string>();

  onReject(r: number, reason: string): void {
    this.rejectReasons.set(r, reason);
    this.rejected++;
  }
}
