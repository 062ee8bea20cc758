/** The comparison's figures (docs/fidelity.json) and the summary statistics drawn from them. */
import type { CaseGroup } from './cases.ts';

export const METRICS = [
  { key: 'ttft_mean', label: 'mean TTFT', unit: 'ms' },
  { key: 'ttft_p90', label: 'p90 TTFT', unit: 'ms' },
  { key: 'tpot_mean', label: 'mean TPOT', unit: 'ms' },
  { key: 'e2e_mean', label: 'mean E2E', unit: 'ms' },
  { key: 'output_tok_s', label: 'output tok/s', unit: 'tok/s' },
  { key: 'prefix_reuse', label: 'prefix reuse', unit: '' },
] as const;

export type MetricKey = (typeof METRICS)[number]['key'];
export type Metrics = Record<MetricKey, number>;

export interface RunRecord {
  /** servetune's --seed (the reference's KV-router tie-breaks cannot be seeded). */
  seed?: number;
  metrics: Metrics;
  completed: number;
  /** Simulated span, s. */
  duration_s: number;
  /**
   * Host seconds of the simulation alone: servetune's report `wall_s` (the event loop, after the trace is
   * loaded; no report building), the reference's summary `wall_time_ms` (Rust runtime construction and
   * execution, per its API docstring).
   */
  sim_wall_s: number;
  /** Host seconds of the whole process: interpreter start, imports, trace loading, simulation, report. */
  process_wall_s: number;
  /** The reference only: host seconds around its API call (trace parsing included). */
  call_wall_s?: number;
  /** GPU-hours (planner cases: GPUs held over time) and, with a planner, its scaling decisions. */
  gpu_hours?: number;
  scaling_events?: number;
  /** 1-minute load average when the run started. */
  load1: number;
  started: string;
}

export interface CaseResult {
  id: string;
  /** servetune commit the case ran at. */
  commit?: string;
  group: CaseGroup;
  label: string;
  requests: number;
  random: boolean;
  settings: { servetune: string[]; reference: Record<string, unknown> };
  servetune: RunRecord[];
  reference: RunRecord[];
}

export interface ResultsFile {
  generated: string;
  command: string;
  runs: number;
  /** Wall minutes of the invocation that wrote the file. */
  minutes: number;
  reference: Record<string, string | null>;
  servetune: { commit: string; node: string };
  machine: { cpu: string; cpus: number; memory_gib: number; os: string };
  cases: CaseResult[];
}

export const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const n = s.length;
  if (n === 0) return Number.NaN;
  return n % 2 ? s[(n - 1) / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
};

/** Relative difference of a from b; 0 when both are 0. */
export const relDiff = (a: number, b: number): number =>
  a === b ? 0 : b === 0 ? Math.sign(a) * Number.POSITIVE_INFINITY : (a - b) / Math.abs(b);

export const TOLERANCE = 0.03;

export interface MetricSummary {
  servetune: number;
  reference: number;
  /** Relative difference of the medians. */
  diff: number;
  servetuneRange: [number, number];
  referenceRange: [number, number];
  /** ok: within 3 %; spread: beyond 3 % but the run ranges of a random case overlap; out: beyond. */
  verdict: 'ok' | 'spread' | 'out';
}

export interface CaseSummary {
  metrics: Record<MetricKey, MetricSummary>;
  worst: { key: MetricKey; diff: number };
  wall: {
    servetune: { sim: number; process: number };
    reference: { sim: number; process: number; call: number };
    /** reference / servetune, medians. */
    speedSim: number;
    speedProcess: number;
  };
  load: [number, number];
}

export function summarize(c: CaseResult): CaseSummary {
  const metrics = {} as Record<MetricKey, MetricSummary>;
  let worst: { key: MetricKey; diff: number } = { key: METRICS[0].key, diff: 0 };
  for (const { key } of METRICS) {
    const st = c.servetune.map((r) => r.metrics[key]);
    const ref = c.reference.map((r) => r.metrics[key]);
    const a = median(st);
    const b = median(ref);
    const diff = relDiff(a, b);
    const sr: [number, number] = [Math.min(...st), Math.max(...st)];
    const rr: [number, number] = [Math.min(...ref), Math.max(...ref)];
    const overlap = sr[0] <= rr[1] && rr[0] <= sr[1];
    metrics[key] = {
      servetune: a,
      reference: b,
      diff,
      servetuneRange: sr,
      referenceRange: rr,
      verdict: Math.abs(diff) <= TOLERANCE ? 'ok' : c.random && overlap ? 'spread' : 'out',
    };
    if (Math.abs(diff) > Math.abs(worst.diff)) worst = { key, diff };
  }
  const st = {
    sim: median(c.servetune.map((r) => r.sim_wall_s)),
    process: median(c.servetune.map((r) => r.process_wall_s)),
  };
  const ref = {
    sim: median(c.reference.map((r) => r.sim_wall_s)),
    process: median(c.reference.map((r) => r.process_wall_s)),
    call: median(c.reference.map((r) => r.call_wall_s ?? Number.NaN)),
  };
  const loads = [...c.servetune, ...c.reference].map((r) => r.load1);
  return {
    metrics,
    worst,
    wall: {
      servetune: st,
      reference: ref,
      speedSim: ref.sim / st.sim,
      speedProcess: ref.process / st.process,
    },
    load: [Math.min(...loads), Math.max(...loads)],
  };
}
