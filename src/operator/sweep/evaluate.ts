import pkg from '../../../package.json' with { type: 'json' };
import type { DeploymentTuningSpec, PredictedMetrics, ServingSettings, Slo } from '../../api/index.ts';
import { type SimulationConfig, SimulationConfigSchema } from '../../sim/config.ts';
import type { SimulationReport, SloThresholds } from '../../sim/metrics/report.ts';
import { runSimulation } from '../../sim/run.ts';
import type { Workload } from '../../sim/workload/workload.ts';

/** Simulates one serving configuration over a workload and scores it against the SLOs and objective. */

export const SIMULATOR_VERSION = `servetune-sim/${pkg.version}`;

export type Objective = DeploymentTuningSpec['objective'];

const ROUTER = {
  RoundRobin: 'round-robin',
  Random: 'random',
  LeastLoaded: 'least-loaded',
  KV: 'kv',
} as const;

export class NotSimulatableError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'NotSimulatableError';
  }
}

/** The simulator configuration of aggregated serving settings (disaggregation needs the sweep's model). */
export function simulationConfigFor(
  s: ServingSettings,
  traceBlockSize: number,
  slos: Slo[],
): SimulationConfig {
  if (s.topology !== 'Aggregated' || !s.aggregated) {
    throw new NotSimulatableError('disaggregated serving is not simulated yet');
  }
  if (s.aggregated.workers < 1) throw new NotSimulatableError('no workers to simulate');
  return SimulationConfigSchema.parse({
    workers: s.aggregated.workers,
    tensorParallelSize: s.aggregated.gpusPerWorker,
    engine: {
      ...(s.engine?.blockSize && { blockSize: s.engine.blockSize }),
      ...(s.engine?.maxNumSeqs && { maxNumSeqs: s.engine.maxNumSeqs }),
      ...(s.engine?.maxNumBatchedTokens && { maxNumBatchedTokens: s.engine.maxNumBatchedTokens }),
    },
    router: {
      mode: ROUTER[s.router.mode],
      ...(s.router.overlapWeight !== undefined && { overlapWeight: s.router.overlapWeight }),
      ...(s.router.temperature !== undefined && { temperature: s.router.temperature }),
    },
    workload: { trace: 'inline', traceBlockSize },
    slo: sloThresholds(slos),
  });
}

/** Per-request thresholds for goodput: the tightest target of each metric. */
export function sloThresholds(slos: Slo[]): SloThresholds | undefined {
  if (slos.length === 0) return undefined;
  const t: SloThresholds = {};
  for (const s of slos) {
    const k = s.metric === 'TTFT' ? 'ttftMs' : s.metric === 'ITL' ? 'itlMs' : 'e2eMs';
    t[k] = Math.min(t[k] ?? Number.POSITIVE_INFINITY, s.maxMs);
  }
  return t;
}

/** Whether each percentile target holds in the report (no data counts as a miss). */
export function meetsSlos(r: SimulationReport, slos: Slo[]): boolean {
  if (r.completed_requests < r.num_requests) return false;
  return slos.every((s) => {
    const d = s.metric === 'TTFT' ? r.ttft_ms : s.metric === 'ITL' ? r.itl_ms : r.e2e_ms;
    const v = d[`p${s.percentile}` as 'p50' | 'p90' | 'p99'];
    return Number.isFinite(v) && v <= s.maxMs;
  });
}

export function higherIsBetter(o: Objective): boolean {
  return o !== 'Cost';
}

export function objectiveValue(o: Objective, r: SimulationReport): number {
  const gpus = Math.max(1, r.gpus);
  switch (o) {
    case 'ThroughputPerGPU':
      return r.output_throughput_tok_s_per_gpu;
    case 'Goodput':
      return r.goodput?.request_throughput_rps ?? r.request_throughput_rps;
    case 'RequestsPerGPUHour':
      return (r.request_throughput_rps * 3600) / gpus;
    case 'Cost':
      // GPU-hours per 1000 requests.
      return r.request_throughput_rps > 0
        ? gpus / (r.request_throughput_rps * 3.6)
        : Number.POSITIVE_INFINITY;
  }
}

/** Relative improvement of `value` over `base` in percent, in the objective's direction. */
export function gainPercent(o: Objective, base: number, value: number): number {
  if (!Number.isFinite(base) || base === 0) return value === base ? 0 : 100;
  const g = ((higherIsBetter(o) ? value - base : base - value) / Math.abs(base)) * 100;
  return Number(g.toFixed(2));
}

const r3 = (x: number) => (Number.isFinite(x) ? Number(x.toFixed(3)) : 0);
const pct = (d: { p50: number; p90: number; p99: number }) => ({
  p50: r3(d.p50),
  p90: r3(d.p90),
  p99: r3(d.p99),
});

export function predictedMetrics(r: SimulationReport, slos: Slo[], o: Objective): PredictedMetrics {
  const v = objectiveValue(o, r);
  return {
    ttftMs: pct(r.ttft_ms),
    itlMs: pct(r.itl_ms),
    e2eMs: pct(r.e2e_ms),
    requestThroughputRps: r3(r.request_throughput_rps),
    outputTokensPerSecond: r3(r.output_throughput_tok_s),
    outputTokensPerSecondPerGpu: r3(r.output_throughput_tok_s_per_gpu),
    goodputFraction: r.goodput ? r3(r.goodput.fraction) : r.completed_requests === r.num_requests ? 1 : 0,
    meetsSlos: meetsSlos(r, slos),
    objectiveValue: Number.isFinite(v) ? r3(v) : 1e12,
  };
}

export function evaluateSettings(
  s: ServingSettings,
  workload: Workload,
  slos: Slo[],
  objective: Objective,
): PredictedMetrics {
  const config = simulationConfigFor(s, workload.traceBlockSize, slos);
  const { report } = runSimulation(config, workload);
  return predictedMetrics(report, slos, objective);
}
