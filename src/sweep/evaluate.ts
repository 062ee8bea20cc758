import { type SimulationConfig, SimulationConfigSchema } from '../sim/config.ts';
import { runSimulation } from '../sim/run.ts';
import { sliceWorkload } from '../sim/workload/slice.ts';
import type { Workload } from '../sim/workload/workload.ts';
import { type CandidateMetrics, candidateMetrics, type Slo } from './objective.ts';
import type { Candidate } from './space.ts';

/** Settings every candidate of a sweep shares: how to replay the workload and how to time passes. */
export interface SimulationBase {
  timing: SimulationConfig['timing'];
  traceBlockSize: number;
  arrivalSpeedupRatio: number;
  concurrency?: number;
  seed: number;
  maxSimTimeS?: number;
  /** GPU price per hour, by GPU type (cost objective). */
  prices: Record<string, number>;
  slos: Slo[];
}

/** The simulation configuration of one candidate. */
export function candidateConfig(c: Candidate, base: SimulationBase): SimulationConfig {
  // A request is "good" when it meets each SLO's bound individually (goodput).
  const slo: Record<string, number> = {};
  for (const s of base.slos) {
    const key = s.metric === 'ttft' ? 'ttftMs' : s.metric === 'e2e' ? 'e2eMs' : 'itlMs';
    slo[key] = Math.min(slo[key] ?? Number.POSITIVE_INFINITY, s.maxMs);
  }
  return SimulationConfigSchema.parse({
    workers: c.workers,
    tensorParallelSize: c.tensorParallel,
    ...(c.prefill && c.disagg
      ? {
          disaggregation: {
            prefill: { workers: c.prefill.workers, tensorParallelSize: c.prefill.tensorParallel },
            decode: { workers: c.workers, tensorParallelSize: c.tensorParallel },
            kvTransferGbps: c.disagg.kvTransferGbps,
            conditional: c.disagg.conditional,
          },
        }
      : {}),
    engine: {
      engine: c.engine.engine,
      blockSize: c.engine.blockSize,
      maxNumSeqs: c.engine.maxNumSeqs,
      maxNumBatchedTokens: c.engine.maxNumBatchedTokens,
      ...(c.engine.numGpuBlocks !== undefined ? { numGpuBlocks: c.engine.numGpuBlocks } : {}),
    },
    router: {
      mode: c.router.mode,
      overlapWeight: c.router.overlapWeight,
      overlapCredit: c.router.overlapCredit,
      temperature: c.router.temperature,
    },
    timing: base.timing,
    workload: {
      trace: 'sweep',
      traceBlockSize: base.traceBlockSize,
      arrivalSpeedupRatio: base.arrivalSpeedupRatio,
      ...(base.concurrency !== undefined ? { concurrency: base.concurrency } : {}),
    },
    seed: base.seed,
    ...(c.planner ? { planner: c.planner.settings, startupTimeS: c.planner.startupTimeS } : {}),
    ...(base.maxSimTimeS !== undefined ? { maxSimTimeS: base.maxSimTimeS } : {}),
    ...(Object.keys(slo).length > 0 ? { slo } : {}),
  });
}

/** Evaluates candidates against (slices of) one workload; slices are built once and reused. */
export class Evaluator {
  private readonly slices = new Map<number, Workload>();
  private readonly workload: Workload;
  private readonly base: SimulationBase;

  constructor(workload: Workload, base: SimulationBase) {
    this.workload = workload;
    this.base = base;
  }

  slice(fraction: number): Workload {
    if (fraction >= 1) return this.workload;
    let w = this.slices.get(fraction);
    if (!w) {
      w = sliceWorkload(this.workload, fraction);
      this.slices.set(fraction, w);
    }
    return w;
  }

  evaluate(c: Candidate, fraction: number): CandidateMetrics {
    const { report } = runSimulation(candidateConfig(c, this.base), this.slice(fraction));
    return candidateMetrics(report, this.base.prices[c.gpuType] ?? 1);
  }
}
