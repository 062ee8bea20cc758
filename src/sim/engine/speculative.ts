import { Rng } from '../random.ts';

/**
 * MTP / speculative decoding (Dynamo's `aic_nextn`): each decode forward proposes `nextn` draft tokens per
 * request and verifies them; the i-th draft is accepted with probability `acceptRates[i]` given the ones
 * before it were, and the first rejection ends the chain. A forward therefore emits 1 + (accepted drafts)
 * tokens, all at the pass end.
 */
export interface SpeculativeConfig {
  /** Draft tokens per forward, 1..5. */
  nextn: number;
  /** Conditional acceptance probabilities, one per draft position (missing ones are 0). */
  acceptRates: number[];
  /** Seed of the acceptance draws; each worker (and rank) offsets it, as the reference does. */
  seed: number;
}

/** The reference's rates when none are given (AI Configurator's CLI default). */
export const DEFAULT_ACCEPT_RATES = [0.85, 0.3, 0, 0, 0];

/** Expected tokens per forward: 1 + r1 + r1 r2 + ... */
export function expectedTokensPerForward(config: Pick<SpeculativeConfig, 'nextn' | 'acceptRates'>): number {
  let p = 1;
  let total = 1;
  for (let i = 0; i < config.nextn; i++) {
    p *= config.acceptRates[i] ?? 0;
    total += p;
  }
  return total;
}

/** Draws burst lengths from a seeded stream (one draw per request per decode forward). */
export class SpeculativeSampler {
  private readonly rates: Float64Array;
  private readonly rng: Rng;

  /** `offset` distinguishes workers and ranks (the reference adds worker x dp_size + rank to the seed). */
  constructor(config: SpeculativeConfig, offset: number) {
    this.rates = new Float64Array(config.nextn);
    for (let i = 0; i < config.nextn; i++) this.rates[i] = config.acceptRates[i] ?? 0;
    this.rng = new Rng(config.seed + offset);
  }

  /** Tokens one forward emits for one request: 1 plus the accepted drafts. */
  sample(): number {
    const rates = this.rates;
    let tokens = 1;
    for (let i = 0; i < rates.length; i++) {
      const p = rates[i];
      // Certain outcomes draw nothing, so deterministic profiles do not depend on the stream.
      if (p <= 0 || (p < 1 && this.rng.next() >= p)) break;
      tokens++;
    }
    return tokens;
  }
}
