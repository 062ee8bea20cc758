import { z } from 'zod';
import type { Distribution } from './distribution.ts';

/**
 * A workload profile: what a window of traffic looked like, in the terms a serving configuration is sensitive
 * to (arrival rate over time, prompt and output lengths, prefix reuse, sessions, concurrency), built from a
 * trace, a request-trace directory or Prometheus histograms, and comparable across those sources. Its JSON
 * (snake_case, like the simulator's report) is what `servetune profile --json` prints and what
 * `servetune drift` accepts as either side.
 *
 * What a profile cannot capture (docs/telemetry.md): the per-request pairing of prompt and output lengths,
 * the exact prefix structure (which requests share what), session structure unless the source records it,
 * and arrivals finer than the rate curve's step.
 */

export const PROFILE_KIND = 'WorkloadProfile';

export type ProfileSourceKind = 'trace' | 'request-trace' | 'prometheus' | 'synthetic';

export interface RateCurve {
  /** Width of one bin (s): the scrape resolution for Prometheus, chosen for traces. */
  step_s: number;
  /** Arrivals per bin, from the window's start. */
  counts: number[];
  peak_rps: number;
  /**
   * Allan factor of the per-bin counts: mean squared difference of neighbouring bins over twice their mean.
   * 1 for Poisson arrivals, above for bursty ones; slow trends barely move it (unlike the variance).
   */
  burstiness: number;
}

export interface PrefixReuse {
  /** Share of prompt tokens that reuse an earlier request's prefix, 0-1; null when the source cannot tell. */
  share: number | null;
  /**
   * `blocks`: prompt blocks (hash ids) seen earlier in the window, i.e. what an unbounded cache could hit;
   * `cached_tokens`: what the deployment's caches did hit (Dynamo's cached_tokens over input tokens), which a
   * finite cache and the router's choices keep below the former; `none`: no prefix information.
   */
  basis: 'blocks' | 'cached_tokens' | 'none';
}

export interface SessionStats {
  sessions: number;
  /** Requests per session (mean). */
  turns_mean: number;
  /** Share of requests that belong to a session of two turns or more. */
  multi_turn_share: number;
}

export interface LatencySummary {
  ttft_ms?: Distribution;
  itl_ms?: Distribution;
  e2e_ms?: Distribution;
  /** Output tokens per second over the window. */
  output_tokens_per_s?: number;
  /** Requests queued at the frontend (mean of the gauge). */
  queued_mean?: number;
  /** Prompt tokens the deployment served from its prefix caches, over all prompt tokens. */
  cached_token_share?: number;
}

export interface WorkloadProfile {
  kind: typeof PROFILE_KIND;
  source: { kind: ProfileSourceKind; name: string; format?: string };
  /** Window covered: epoch ms when known (request traces, Prometheus), else trace-relative ms. */
  window: { start_ms: number; end_ms: number };
  requests: number;
  duration_s: number;
  request_rate_rps: number;
  rate: RateCurve;
  input_tokens: Distribution;
  output_tokens: Distribution;
  prefix_reuse: PrefixReuse;
  /** Session structure, when the source records sessions (null: unknown, not "none"). */
  sessions: SessionStats | null;
  /** Requests in flight (Prometheus), else null. */
  concurrency: { mean: number; peak: number } | null;
  /** What the deployment measured over the window (request traces, Prometheus), for calibration. */
  observed: LatencySummary | null;
  /** What this profile cannot say, one sentence each. */
  notes: string[];
}

const count = z.number().int().min(0).max(1e12);
const finite = z.number().min(0).max(1e15);

const DistributionSchema = z
  .object({
    count: finite,
    mean: finite,
    p50: finite,
    p90: finite,
    p99: finite,
    bounds: z.array(finite).max(1024),
    counts: z.array(finite).max(1025),
  })
  .refine((d) => d.counts.length === d.bounds.length + 1, 'counts must have one more entry than bounds')
  .refine((d) => d.bounds.every((b, i) => i === 0 || b > d.bounds[i - 1]), 'bounds must increase');

/** The profile JSON, bounded: a profile file is read back as input (`servetune drift`). */
export const WorkloadProfileSchema = z.object({
  kind: z.literal(PROFILE_KIND),
  source: z.object({
    kind: z.enum(['trace', 'request-trace', 'prometheus', 'synthetic']),
    name: z.string().max(4096),
    format: z.string().max(64).optional(),
  }),
  window: z.object({ start_ms: z.number().min(0).max(1e13), end_ms: z.number().min(0).max(1e13) }),
  requests: count,
  duration_s: finite,
  request_rate_rps: finite,
  rate: z.object({
    step_s: z.number().gt(0).max(1e7),
    counts: z.array(finite).max(100_000),
    peak_rps: finite,
    burstiness: finite,
  }),
  input_tokens: DistributionSchema,
  output_tokens: DistributionSchema,
  prefix_reuse: z.object({
    share: z.number().min(0).max(1).nullable(),
    basis: z.enum(['blocks', 'cached_tokens', 'none']),
  }),
  sessions: z
    .object({ sessions: count, turns_mean: finite, multi_turn_share: z.number().min(0).max(1) })
    .nullable(),
  concurrency: z.object({ mean: finite, peak: finite }).nullable(),
  observed: z
    .object({
      ttft_ms: DistributionSchema.optional(),
      itl_ms: DistributionSchema.optional(),
      e2e_ms: DistributionSchema.optional(),
      output_tokens_per_s: finite.optional(),
      queued_mean: finite.optional(),
      cached_token_share: z.number().min(0).max(1).optional(),
    })
    .nullable(),
  notes: z.array(z.string().max(1024)).max(32),
});

/** Allan factor of bin counts (see RateCurve.burstiness); 1 when there is too little to tell. */
export function allanFactor(counts: readonly number[]): number {
  if (counts.length < 3) return 1;
  let sum = 0;
  let sq = 0;
  for (let i = 0; i < counts.length; i++) sum += counts[i];
  for (let i = 1; i < counts.length; i++) sq += (counts[i] - counts[i - 1]) ** 2;
  const mean = sum / counts.length;
  if (mean <= 0) return 1;
  return sq / (counts.length - 1) / (2 * mean);
}

/** Merges neighbouring bins by `factor` (the last, partial group counts as it is). */
export function rebin(counts: readonly number[], factor: number): number[] {
  if (factor <= 1) return [...counts];
  const out: number[] = [];
  for (let i = 0; i < counts.length; i += factor) {
    let s = 0;
    for (let j = i; j < Math.min(counts.length, i + factor); j++) s += counts[j];
    out.push(s);
  }
  return out;
}

/** A rate curve from its counts and step. */
export function rateCurve(counts: number[], stepS: number): RateCurve {
  let peak = 0;
  for (const c of counts) peak = Math.max(peak, c);
  return { step_s: stepS, counts, peak_rps: peak / stepS, burstiness: allanFactor(counts) };
}
