import type { PassShape, TimingModel } from './timing-model.ts';

/**
 * The reference mocker's default, uncalibrated timing: a quadratic in the pass's new prompt tokens for prefill
 * and a quadratic in KV-cache utilisation for decode (floored at 1 ms). Shipped so results can be compared
 * with the reference simulator; it knows nothing about GPUs or models.
 */
export class PolynomialTiming implements TimingModel {
  readonly name = 'polynomial';

  prefillMs(s: PassShape): number {
    const n = s.prefillRequests;
    if (n === 0) return 0;
    // The reference prices batch x (mean prompt position - mean cached prefix) with integer means.
    const meanIsl = Math.floor((s.prefillCachedTokens + s.prefillNewTokens) / n);
    const meanPrefix = Math.floor(s.prefillCachedTokens / n);
    const t = n * (meanIsl - meanPrefix);
    if (t <= 0) return 0;
    return 4.209989e-7 * t * t + 0.01518344 * t + 16.50142;
  }

  decodeMs(s: PassShape): number {
    if (s.decodeRequests === 0) return 0;
    // Utilisation by the decode batch's logical context (not physical blocks), as the reference computes it.
    const u = Math.min(1, s.decodeContextTokens / s.kvCapacityTokens);
    return Math.max(1, -25.74 * u * u + 54.01 * u + 5.74);
  }
}
