import type { SimulationReport } from '../sim/metrics/report.ts';

/**
 * What a sweep optimises and which service levels a candidate must meet, and how candidates are scored and
 * ranked. Infeasible candidates are ranked by how far they miss their SLOs and never ahead of a feasible one.
 */
export const OBJECTIVES = {
  throughput_per_gpu: { label: 'output tok/s per GPU', better: 'higher' },
  goodput: { label: 'good requests/s (all SLOs met)', better: 'higher' },
  goodput_per_gpu: { label: 'good requests/s per GPU', better: 'higher' },
  requests_per_gpu_hour: { label: 'requests per GPU-hour', better: 'higher' },
  cost: { label: 'cost per 1k requests', better: 'lower' },
} as const;
export type Objective = keyof typeof OBJECTIVES;

export type SloMetric = 'ttft' | 'itl' | 'tpot' | 'e2e';
export type Percentile = 'mean' | 'p50' | 'p75' | 'p90' | 'p95' | 'p99';

/** A service-level objective: `metric` at `percentile` must stay at or below `maxMs`. */
export interface Slo {
  metric: SloMetric;
  percentile: Percentile;
  maxMs: number;
}

export function sloKey(s: Slo): string {
  return `${s.metric}_${s.percentile}`;
}

/** Parses `ttft_p90=2000ms,itl_p90=50ms,e2e_p99=30s`; throws Error with the offending part. */
export function parseSlos(text: string): Slo[] {
  const out: Slo[] = [];
  for (const raw of text.split(',')) {
    const part = raw.trim();
    if (part === '') continue;
    const m =
      /^(ttft|itl|tpot|e2e)(?:_(mean|p50|p75|p90|p95|p99))?\s*[=<]=?\s*([0-9]*\.?[0-9]+)\s*(ms|s)?$/i.exec(
        part,
      );
    if (!m) throw new Error(`cannot read '${part}' (expected e.g. ttft_p90=2000ms)`);
    const value = Number(m[3]) * (m[4]?.toLowerCase() === 's' ? 1000 : 1);
    if (!(value > 0)) throw new Error(`'${part}': the bound must be a positive duration`);
    out.push({
      metric: m[1].toLowerCase() as SloMetric,
      percentile: (m[2]?.toLowerCase() ?? 'p90') as Percentile,
      maxMs: value,
    });
  }
  if (out.length === 0) throw new Error('no SLO given');
  return out;
}

/**
 * Per-request bounds for goodput: a request is good when it meets each SLO's bound on its own metric (TPOT
 * and ITL both bound the request's token gaps); several SLOs on one metric keep the tightest bound.
 */
export function goodputThresholds(slos: readonly Slo[]): { ttftMs?: number; itlMs?: number; e2eMs?: number } {
  const out: { ttftMs?: number; itlMs?: number; e2eMs?: number } = {};
  for (const s of slos) {
    const key = s.metric === 'ttft' ? 'ttftMs' : s.metric === 'e2e' ? 'e2eMs' : 'itlMs';
    out[key] = Math.min(out[key] ?? Number.POSITIVE_INFINITY, s.maxMs);
  }
  return out;
}

/** The numbers a sweep keeps per evaluated candidate (a compact projection of the simulation report). */
export interface CandidateMetrics {
  gpus: number;
  completed: number;
  requests: number;
  duration_s: number;
  output_tok_s: number;
  throughput_per_gpu: number;
  user_tok_s: number;
  request_rps: number;
  goodput_rps: number;
  gpu_hours: number;
  requests_per_gpu_hour: number;
  cost_per_1k_requests: number;
  prefix_reuse: number;
  preemptions: number;
  /** Under the Planner: scaling decisions and mean GPUs held (otherwise 0 and the fixed GPU count). */
  scaling_events: number;
  mean_gpus: number;
  ttft: Record<Percentile, number>;
  itl: Record<Percentile, number>;
  tpot: Record<Percentile, number>;
  e2e: Record<Percentile, number>;
}

export function candidateMetrics(r: SimulationReport, pricePerGpuHour: number): CandidateMetrics {
  const pick = (d: SimulationReport['ttft_ms']): Record<Percentile, number> => ({
    mean: d.mean,
    p50: d.p50,
    p75: d.p75,
    p90: d.p90,
    p95: d.p95,
    p99: d.p99,
  });
  const gpuHours = r.gpu_hours;
  return {
    gpus: r.gpus,
    completed: r.completed_requests,
    requests: r.num_requests,
    duration_s: r.simulated_duration_s,
    output_tok_s: r.output_throughput_tok_s,
    throughput_per_gpu: r.output_throughput_tok_s_per_gpu,
    user_tok_s: r.tpot_ms.mean > 0 ? 1000 / r.tpot_ms.mean : Number.NaN,
    request_rps: r.request_throughput_rps,
    goodput_rps: r.goodput?.request_throughput_rps ?? r.request_throughput_rps,
    gpu_hours: gpuHours,
    requests_per_gpu_hour: gpuHours > 0 ? r.completed_requests / gpuHours : 0,
    cost_per_1k_requests:
      r.completed_requests > 0
        ? (gpuHours * pricePerGpuHour * 1000) / r.completed_requests
        : Number.POSITIVE_INFINITY,
    prefix_reuse: r.prefix_cache_reused_ratio,
    preemptions: r.preemptions,
    scaling_events: r.scaling_events?.total ?? 0,
    mean_gpus: r.planner?.mean_gpus_held ?? r.gpus,
    ttft: pick(r.ttft_ms),
    itl: pick(r.itl_ms),
    tpot: pick(r.tpot_ms),
    e2e: pick(r.e2e_ms),
  };
}

export function sloValue(m: CandidateMetrics, s: Slo): number {
  return m[s.metric][s.percentile];
}

/** Sum over SLOs of how far the metric exceeds its bound, relative to the bound; 0 = all met. */
export function violation(m: CandidateMetrics, slos: readonly Slo[]): number {
  let v = 0;
  for (const s of slos) {
    const x = sloValue(m, s);
    v += Number.isFinite(x) ? Math.max(0, x / s.maxMs - 1) : Number.POSITIVE_INFINITY;
  }
  // A candidate that could not finish its requests has not met anything.
  if (m.completed < m.requests) v += 1 + (m.requests - m.completed) / Math.max(1, m.requests);
  return v;
}

/** The objective as a number where higher is better. */
export function score(m: CandidateMetrics, objective: Objective): number {
  switch (objective) {
    case 'throughput_per_gpu':
      return m.throughput_per_gpu;
    case 'goodput':
      return m.goodput_rps;
    case 'goodput_per_gpu':
      return m.gpus > 0 ? m.goodput_rps / m.gpus : 0;
    case 'requests_per_gpu_hour':
      return m.requests_per_gpu_hour;
    case 'cost':
      return -m.cost_per_1k_requests;
  }
}

export interface Scored {
  id: number;
  metrics: CandidateMetrics;
  feasible: boolean;
  violation: number;
  score: number;
}

/**
 * Ranking: feasible candidates first, by objective (higher better), then fewer GPUs, then lower p90 TTFT, then
 * id; infeasible ones after, by violation (smaller first), then objective. Total and deterministic.
 */
export function compareScored(a: Scored, b: Scored): number {
  if (a.feasible !== b.feasible) return a.feasible ? -1 : 1;
  if (!a.feasible && a.violation !== b.violation) return a.violation - b.violation;
  if (a.score !== b.score) return b.score - a.score;
  if (a.metrics.gpus !== b.metrics.gpus) return a.metrics.gpus - b.metrics.gpus;
  const ta = a.metrics.ttft.p90;
  const tb = b.metrics.ttft.p90;
  if (ta !== tb && Number.isFinite(ta) && Number.isFinite(tb)) return ta - tb;
  return a.id - b.id;
}
