import type { DriftBaseline } from '../../api/index.ts';
import { type Distribution, quantile } from '../../telemetry/profile/distribution.ts';
import { PROFILE_KIND, type WorkloadProfile } from '../../telemetry/profile/profile.ts';

/**
 * A workload profile as status keeps it for drift (DriftBaseline): the numbers the drift scores read (the
 * length histograms on their own buckets, so comparisons are those of the full profile) and no rate curve
 * (its burstiness and step instead). A few KB per DeploymentTuning.
 */

const MAX_BUCKETS = 128;

/**
 * The histogram as it is when it fits (trace profiles have 89 buckets, Prometheus ones Dynamo's dozen);
 * beyond MAX_BUCKETS, neighbouring buckets with the least mass are merged.
 */
function compact(d: Distribution): { bounds: number[]; counts: number[] } {
  const bounds = [...d.bounds];
  const counts = [...d.counts];
  while (bounds.length > MAX_BUCKETS) {
    let at = 0;
    for (let i = 1; i < bounds.length; i++)
      if (counts[i] + counts[i + 1] < counts[at] + counts[at + 1]) at = i;
    counts.splice(at, 2, counts[at] + counts[at + 1]);
    bounds.splice(at, 1);
  }
  return { bounds, counts };
}

function expand(h: { bounds: number[]; counts: number[] }): Distribution {
  const count = h.counts.reduce((a, b) => a + b, 0);
  const d: Distribution = {
    count,
    mean: 0,
    p50: 0,
    p90: 0,
    p99: 0,
    bounds: [...h.bounds],
    counts: [...h.counts],
  };
  // Summary statistics are not kept: read back from the histogram (for messages; drift reads the buckets).
  d.p50 = Math.round(quantile(d, 0.5));
  d.p90 = Math.round(quantile(d, 0.9));
  d.p99 = Math.round(quantile(d, 0.99));
  return d;
}

/** Into [lo, hi]; not a number becomes lo. Status must pass the CRD's bounds or the whole write is refused. */
const clamp = (v: number, lo: number, hi: number) => (Number.isNaN(v) ? lo : Math.min(hi, Math.max(lo, v)));

export function baselineOf(p: WorkloadProfile, time: Date): DriftBaseline {
  return {
    time: time.toISOString().replace(/\.\d{3}Z$/, 'Z'),
    requests: p.requests,
    requestRate: clamp(p.request_rate_rps, 0, 1e15),
    burstiness: clamp(p.rate.burstiness, 0, 1e15),
    stepSeconds: clamp(p.rate.step_s, 1e-3, 1e7),
    inputTokens: compact(p.input_tokens),
    outputTokens: compact(p.output_tokens),
    ...(p.prefix_reuse.share !== null && { prefixReuse: p.prefix_reuse.share }),
    prefixReuseBasis: p.prefix_reuse.basis,
    ...(p.sessions && { turnsPerSession: p.sessions.turns_mean }),
  };
}

/** A profile drift can compare against (rate curve empty: its burstiness stands as measured). */
export function profileOfBaseline(b: DriftBaseline): WorkloadProfile {
  return {
    kind: PROFILE_KIND,
    source: { kind: 'trace', name: 'baseline' },
    window: { start_ms: 0, end_ms: 0 },
    requests: b.requests,
    duration_s: b.requestRate > 0 ? b.requests / b.requestRate : 0,
    request_rate_rps: b.requestRate,
    rate: { step_s: b.stepSeconds, counts: [], peak_rps: 0, burstiness: b.burstiness },
    input_tokens: expand(b.inputTokens),
    output_tokens: expand(b.outputTokens),
    prefix_reuse: { share: b.prefixReuse ?? null, basis: b.prefixReuseBasis },
    sessions:
      b.turnsPerSession !== undefined
        ? { sessions: 0, turns_mean: b.turnsPerSession, multi_turn_share: 0 }
        : null,
    concurrency: null,
    observed: null,
    notes: [],
  };
}
