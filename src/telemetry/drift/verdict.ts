import type { WorkloadProfile } from '../profile/profile.ts';
import { compareProfiles, DRIFT_DIMENSIONS, type DriftComparison, type DriftDimension } from './scores.ts';

/**
 * Thresholds per dimension, chosen from public traces (docs/telemetry.md has the table): the halves of one
 * stable trace (Mooncake conversation, Azure conversation, 30 minutes each) score well below them, and
 * different workloads (Mooncake conversation against Mooncake synthetic, Azure code, Azure conversation) far
 * above them on the dimensions where those workloads differ.
 *
 * - lengths 0.6 (log2 Wasserstein: the mass moved by ~50 % on average): halves 0.05-0.50 (0.23 on 30-minute
 *   windows), different workloads 0.68-3.9;
 * - rate 0.5 (a 41 % change): halves 0.02-0.20, except Azure code's, whose rate fell by a third (0.63): a
 *   change of that size is worth a re-tune for capacity whatever the cause;
 * - burstiness 1.0 ((1 + the Allan factor) doubled or halved): halves 0.04-0.63, workloads with different
 *   arrival patterns (Azure code's bursts against the others) 3.6-4.9;
 * - prefix reuse 0.15 (absolute share): conversation halves 0.00, conversation against synthetic 0.27;
 * - sessions 0.5 (turns per session x1.41): no public trace here records sessions; by analogy with rate.
 */
export const DEFAULT_THRESHOLDS: Record<DriftDimension, number> = {
  rate_level: 0.5,
  burstiness: 1,
  input_tokens: 0.6,
  output_tokens: 0.6,
  prefix_reuse: 0.15,
  sessions: 0.5,
};

export interface DriftVerdict extends DriftComparison {
  /** Largest score over its threshold (1 = at a threshold); 0 when nothing could be compared. */
  level: number;
  /** Some dimension reached its threshold. */
  drifted: boolean;
  /** Dimensions at or above their threshold, largest first. */
  moved: DriftDimension[];
  thresholds: Record<DriftDimension, number>;
}

export function driftVerdict(
  baseline: WorkloadProfile,
  current: WorkloadProfile,
  thresholds: Partial<Record<DriftDimension, number>> = {},
): DriftVerdict {
  const t = { ...DEFAULT_THRESHOLDS, ...thresholds };
  const c = compareProfiles(baseline, current);
  let level = 0;
  const ratios: [DriftDimension, number][] = [];
  for (const d of DRIFT_DIMENSIONS) {
    const s = c.scores[d];
    if (s === null) continue;
    const r = s / t[d];
    ratios.push([d, r]);
    if (r > level) level = r;
  }
  const moved = ratios
    .filter(([, r]) => r >= 1)
    .sort((a, b) => b[1] - a[1])
    .map(([d]) => d);
  return { ...c, level, drifted: moved.length > 0, moved, thresholds: t };
}

const fmt = (v: number | null) =>
  v === null
    ? 'unknown'
    : Number.isInteger(v) || Math.abs(v) >= 100
      ? v.toFixed(0)
      : Math.abs(v) >= 1
        ? v.toFixed(2)
        : v.toFixed(3);

/** One phrase per moved dimension, for Events and the CLI ("input_tokens 1200 -> 8000 tokens (p50), score 2.10 >= 0.5"). */
export function describeMoved(v: DriftVerdict, max = 6): string[] {
  return v.moved.slice(0, max).map((d) => {
    const det = v.details.find((x) => x.dimension === d);
    const s = v.scores[d] as number;
    return `${d} ${fmt(det?.baseline ?? null)} -> ${fmt(det?.current ?? null)} ${det?.unit ?? ''} (score ${fmt(s)} >= ${v.thresholds[d]})`;
  });
}
