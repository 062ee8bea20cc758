import { ksDistance, log2Wasserstein } from '../profile/distribution.ts';
import { allanFactor, rebin, type WorkloadProfile } from '../profile/profile.ts';

/**
 * How far the current window's traffic has moved from a baseline's, dimension by dimension, each on a scale
 * where 0 is "the same" and the default thresholds (thresholds.ts, chosen from public traces) mark a change
 * worth re-tuning for:
 *
 * - `rate_level`: |log2(current / baseline)| of the mean request rate (1 = doubled or halved);
 * - `burstiness`: |log2| of the ratio of the rate curves' (1 + Allan factor), both re-binned to a common
 *   step (the 1 is Poisson's level: between very regular arrivals, whose factors are near 0, a ratio of two
 *   small numbers would be noise, not drift);
 * - `input_tokens`, `output_tokens`: Wasserstein-1 distance between the length distributions on a log2 scale
 *   (by how many doublings the mass moved on average; the KS distance is reported alongside);
 * - `prefix_reuse`: absolute difference of the prefix-reuse shares (0-1);
 * - `sessions`: |log2| of the ratio of mean turns per session, when both sides record sessions.
 *
 * A dimension either side cannot measure scores null and never triggers.
 */

export const DRIFT_DIMENSIONS = [
  'rate_level',
  'burstiness',
  'input_tokens',
  'output_tokens',
  'prefix_reuse',
  'sessions',
] as const;
export type DriftDimension = (typeof DRIFT_DIMENSIONS)[number];

export type DriftScores = Record<DriftDimension, number | null>;

/** The quantity each score compares, on each side, for messages ("rate 2.0 -> 4.1 rps"). */
export interface DriftDetail {
  dimension: DriftDimension;
  baseline: number | null;
  current: number | null;
  unit: string;
}

export interface DriftComparison {
  scores: DriftScores;
  /** KS distances of the length distributions (0-1), for reference. */
  ks: { input_tokens: number; output_tokens: number };
  details: DriftDetail[];
  notes: string[];
}

const log2Ratio = (a: number, b: number) => {
  if (a <= 0 && b <= 0) return 0;
  // A side with nothing at all is as far as 2^10 from anything: bounded, so scores stay finite.
  const lo = 2 ** -10;
  return Math.abs(Math.log2(Math.max(a, lo) / Math.max(b, lo)));
};

/**
 * Allan factors of both curves at a common step (the coarser one; the finer re-binned to it). A profile
 * without its curve (a baseline kept in status) stands with the factor it was measured at.
 */
export function commonBurstiness(
  a: WorkloadProfile,
  b: WorkloadProfile,
): { a: number; b: number; stepS: number } {
  const step = Math.max(a.rate.step_s, b.rate.step_s);
  const at = (p: WorkloadProfile) =>
    p.rate.counts.length === 0
      ? p.rate.burstiness
      : allanFactor(rebin(p.rate.counts, Math.max(1, Math.round(step / p.rate.step_s))));
  return { a: at(a), b: at(b), stepS: step };
}

export function compareProfiles(baseline: WorkloadProfile, current: WorkloadProfile): DriftComparison {
  const notes: string[] = [];
  const burst = commonBurstiness(baseline, current);
  const pb = baseline.prefix_reuse;
  const pc = current.prefix_reuse;
  let prefix: number | null = null;
  if (pb.share !== null && pc.share !== null) {
    prefix = Math.abs(pc.share - pb.share);
    if (pb.basis !== pc.basis)
      notes.push(
        `prefix reuse compares ${pb.basis} (baseline) with ${pc.basis} (current): an unbounded cache's reuse against a real cache's hits`,
      );
  } else notes.push('prefix reuse: unknown on at least one side, not compared');
  const sb = baseline.sessions;
  const sc = current.sessions;
  const sessions = sb !== null && sc !== null ? log2Ratio(sc.turns_mean, sb.turns_mean) : null;
  if (sessions === null) notes.push('sessions: not recorded on both sides, not compared');
  const scores: DriftScores = {
    rate_level: log2Ratio(current.request_rate_rps, baseline.request_rate_rps),
    burstiness: log2Ratio(1 + burst.b, 1 + burst.a),
    input_tokens: log2Wasserstein(baseline.input_tokens, current.input_tokens),
    output_tokens: log2Wasserstein(baseline.output_tokens, current.output_tokens),
    prefix_reuse: prefix,
    sessions,
  };
  const details: DriftDetail[] = [
    {
      dimension: 'rate_level',
      baseline: baseline.request_rate_rps,
      current: current.request_rate_rps,
      unit: 'rps',
    },
    {
      dimension: 'burstiness',
      baseline: burst.a,
      current: burst.b,
      unit: `Allan factor at ${burst.stepS} s`,
    },
    {
      dimension: 'input_tokens',
      baseline: baseline.input_tokens.p50,
      current: current.input_tokens.p50,
      unit: 'tokens (p50)',
    },
    {
      dimension: 'output_tokens',
      baseline: baseline.output_tokens.p50,
      current: current.output_tokens.p50,
      unit: 'tokens (p50)',
    },
    { dimension: 'prefix_reuse', baseline: pb.share, current: pc.share, unit: 'share' },
    {
      dimension: 'sessions',
      baseline: sb?.turns_mean ?? null,
      current: sc?.turns_mean ?? null,
      unit: 'turns per session',
    },
  ];
  return {
    scores,
    ks: {
      input_tokens: ksDistance(baseline.input_tokens, current.input_tokens),
      output_tokens: ksDistance(baseline.output_tokens, current.output_tokens),
    },
    details,
    notes,
  };
}
