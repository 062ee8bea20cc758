import { Rng } from '../random.ts';
import { type Workload, WorkloadBuilder } from './workload.ts';

export type ArrivalProcess =
  /** Exponential gaps (open loop). */
  | { kind: 'poisson'; ratePerS: number }
  /** Fixed gaps. */
  | { kind: 'constant'; ratePerS: number }
  /** Gamma gaps with the given shape; shape < 1 is burstier than Poisson, > 1 smoother. */
  | { kind: 'gamma'; ratePerS: number; shape: number }
  /** Everything at t = 0 (closed-loop replays stamp arrivals at dispatch anyway). */
  | { kind: 'burst' };

export interface LengthDistribution {
  mean: number;
  /** Normal spread (rounded, clamped to >= 1); 0 gives fixed lengths. */
  stddev?: number;
}

export interface SyntheticSpec {
  /** Sessions to generate (each has `turnsPerSession` requests). */
  sessions: number;
  inputTokens: LengthDistribution;
  outputTokens: LengthDistribution;
  arrival: ArrivalProcess;
  /** Share of each prompt's leading blocks drawn from one of `prefixGroups` shared prefixes. */
  sharedPrefixRatio?: number;
  prefixGroups?: number;
  turnsPerSession?: number;
  /** Think time between a turn's completion and the next turn: constant, or exponential with this mean. */
  interTurnDelayMs?: number;
  interTurnDelay?: 'constant' | 'exponential';
  /** Tokens per prefix block (the granularity of sharing). */
  blockSize?: number;
  seed?: number;
}

/**
 * Generates a synthetic workload. Later turns of a session carry the whole conversation so far as their
 * prompt prefix (previous prompt, previous answer, then the new user message of `inputTokens` length), so
 * multi-turn sessions reuse their own KV the way chat traffic does.
 */
export function generateSynthetic(spec: SyntheticSpec): Workload {
  const rng = new Rng(spec.seed ?? 42);
  const bs = spec.blockSize ?? 64;
  const turns = spec.turnsPerSession ?? 1;
  const ratio = spec.sharedPrefixRatio ?? 0;
  const groups = spec.prefixGroups ?? 0;
  const b = new WorkloadBuilder(bs);
  const groupIds: number[][] = [];
  const groupHash = (g: number, k: number): number => {
    if (groupIds[g] === undefined) groupIds[g] = [];
    const ids = groupIds[g];
    while (ids.length <= k) ids.push(b.freshHash());
    return ids[k];
  };
  const draw = (d: LengthDistribution): number =>
    Math.max(1, Math.round(d.stddev ? d.mean + d.stddev * rng.normal() : d.mean));
  const gap = (): number => {
    const a = spec.arrival;
    switch (a.kind) {
      case 'burst':
        return 0;
      case 'constant':
        return 1000 / a.ratePerS;
      case 'poisson':
        return rng.exponential(1000 / a.ratePerS);
      case 'gamma':
        return rng.gamma(a.shape, 1000 / a.ratePerS / a.shape);
    }
  };
  let t = 0;
  for (let s = 0; s < spec.sessions; s++) {
    if (s > 0) t += gap();
    const group = groups > 0 ? rng.int(groups) : -1;
    let context: number[] = [];
    let contextTokens = 0;
    for (let turn = 0; turn < turns; turn++) {
      const fresh = draw(spec.inputTokens);
      const out = draw(spec.outputTokens);
      const ids = context.slice();
      const blocks = Math.ceil(fresh / bs);
      const shared = turn === 0 && group >= 0 ? Math.min(blocks, Math.round(blocks * ratio)) : 0;
      for (let k = 0; k < blocks; k++) ids.push(k < shared ? groupHash(group, k) : b.freshHash());
      // Whole blocks only: the new message starts on a block boundary after the previous context.
      const input = contextTokens + fresh;
      b.add({
        arrivalMs: turn === 0 ? t : Number.NaN,
        inputLength: input,
        outputLength: out,
        hashIds: ids,
        denseHashIds: true,
        session: turns > 1 ? s : undefined,
        delayMs:
          turn === 0
            ? undefined
            : spec.interTurnDelay === 'exponential'
              ? rng.exponential(spec.interTurnDelayMs ?? 0)
              : (spec.interTurnDelayMs ?? 0),
      });
      // Next turn's prefix: this prompt, then the answer (fresh blocks).
      context = ids.slice();
      contextTokens = ids.length * bs;
      const answerBlocks = Math.ceil(out / bs);
      for (let k = 0; k < answerBlocks; k++) context.push(b.freshHash());
      contextTokens += answerBlocks * bs;
    }
  }
  return b.build();
}
