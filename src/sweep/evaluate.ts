import { prepareCluster } from '../config/hardware.ts';
import { type PoolTimings, runSimulation, toSimulationOptions } from '../config/run.ts';
import { type SimulationConfig, SimulationConfigSchema } from '../config/schema.ts';
import { Catalog, CatalogError } from '../hardware/catalog.ts';
import type { HardwareConfig } from '../hardware/config.ts';
import { HardwareRejection } from '../hardware/setup.ts';
import type { SimulationOptions } from '../sim/simulation.ts';
import { ScaledTiming } from '../sim/timing/scaled.ts';
import type { TimingModel } from '../sim/timing/timing-model.ts';
import { sliceWorkload } from '../sim/workload/slice.ts';
import type { Workload } from '../sim/workload/workload.ts';
import { type CandidateMetrics, candidateMetrics, goodputThresholds, type Slo } from './objective.ts';
import type { Candidate, WorkerParallelism } from './space.ts';

/**
 * Hardware-informed timing for a sweep: every candidate is priced on its own GPU type and tensor-parallel
 * shape, with KV sized from HBM. Extra catalog entries travel as parsed documents so worker threads can
 * rebuild the catalog without reading files.
 */
export interface HardwareBase {
  model: string;
  dtype?: HardwareConfig['dtype'];
  kvDtype?: HardwareConfig['kvDtype'];
  gpuMemoryUtilization?: number;
  extraGpus?: { where: string; doc: unknown };
  extraModels?: { where: string; doc: unknown };
}

/** The catalog a sweep prices against: built-in entries plus the user's. */
export function sweepCatalog(h: HardwareBase): Catalog {
  const c = Catalog.builtin();
  if (h.extraGpus) c.addGpusFrom(h.extraGpus.where, h.extraGpus.doc);
  if (h.extraModels) c.addModelsFrom(h.extraModels.where, h.extraModels.doc);
  return c;
}

/** Settings every candidate of a sweep shares: how to replay the workload and how to time passes. */
export interface SimulationBase {
  timing: SimulationConfig['timing'];
  traceBlockSize: number;
  arrivalSpeedupRatio: number;
  concurrency?: number;
  seed: number;
  maxSimTimeS?: number;
  /** Set: hardware timing per candidate (GPU type x TP); unset: `timing` for every candidate. */
  hardware?: HardwareBase;
  /** GPU price per hour, by GPU type (cost objective). */
  prices: Record<string, number>;
  slos: Slo[];
  /**
   * Live calibration's correction for this deployment: every candidate's prefill and decode pass times are
   * scaled by these factors (src/telemetry/calibration/). Unset: the model as it is.
   */
  timingScale?: { prefill: number; decode: number };
}

/** The simulation configuration of one candidate. */
export function candidateConfig(c: Candidate, base: SimulationBase): SimulationConfig {
  const slo = goodputThresholds(base.slos);
  return SimulationConfigSchema.parse({
    workers: c.workers,
    tensorParallelSize: c.tensorParallel,
    ...(c.dataParallel !== undefined && c.dataParallel > 1 ? { dataParallelSize: c.dataParallel } : {}),
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
      ...(c.engine.nextn ? { nextn: c.engine.nextn } : {}),
      ...(c.engine.nextnAcceptRates ? { nextnAcceptRates: c.engine.nextnAcceptRates } : {}),
    },
    router: {
      mode: c.router.mode,
      overlapWeight: c.router.overlapWeight,
      overlapCredit: c.router.overlapCredit,
      temperature: c.router.temperature,
    },
    timing: base.hardware ? { model: 'hardware' } : base.timing,
    ...(base.hardware
      ? {
          hardware: {
            gpu: c.gpuType,
            model: base.hardware.model,
            ...(base.hardware.dtype ? { dtype: base.hardware.dtype } : {}),
            ...(base.hardware.kvDtype ? { kvDtype: base.hardware.kvDtype } : {}),
            ...(base.hardware.gpuMemoryUtilization
              ? { gpuMemoryUtilization: base.hardware.gpuMemoryUtilization }
              : {}),
            ...(c.expertParallel ? { expertParallel: true } : {}),
          },
        }
      : {}),
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
  readonly workload: Workload;
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

  private catalog: Catalog | null = null;

  /** The timing models with the calibration's correction applied (unchanged without one). */
  private scaled<T extends TimingModel | PoolTimings>(t: T): T | PoolTimings {
    const f = this.base.timingScale;
    if (!f || (f.prefill === 1 && f.decode === 1)) return t;
    const wrap = (m: TimingModel | undefined) => (m ? new ScaledTiming(m, f.prefill, f.decode) : undefined);
    if ('prefillMs' in t) return { aggregated: wrap(t) };
    return { aggregated: wrap(t.aggregated), prefill: wrap(t.prefill), decode: wrap(t.decode) };
  }

  /**
   * The simulator's options for a candidate over the whole workload, as `evaluate` runs it (hardware timing and
   * KV sizing, the calibration's correction), for callers driving the simulation themselves.
   */
  options(c: Candidate): SimulationOptions {
    const config = candidateConfig(c, this.base);
    if (this.base.hardware) {
      this.catalog ??= sweepCatalog(this.base.hardware);
      const prepared = prepareCluster(config, this.catalog, this.workload);
      return toSimulationOptions(prepared.config, this.scaled(prepared.timings));
    }
    const timing = this.base.timingScale ? this.scaled(toSimulationOptions(config).timing) : undefined;
    return toSimulationOptions(config, timing);
  }

  evaluate(c: Candidate, fraction: number): CandidateMetrics {
    const config = candidateConfig(c, this.base);
    const workload = this.slice(fraction);
    if (this.base.hardware) {
      this.catalog ??= sweepCatalog(this.base.hardware);
      // Sized against the whole workload, so a slice never fits a shape the full trace would not.
      const prepared = prepareCluster(config, this.catalog, this.workload);
      const { report } = runSimulation(prepared.config, workload, this.scaled(prepared.timings));
      return candidateMetrics(report, this.base.prices[c.gpuType] ?? 1);
    }
    const timing = this.base.timingScale ? this.scaled(toSimulationOptions(config).timing) : undefined;
    const { report } = runSimulation(config, workload, timing);
    return candidateMetrics(report, this.base.prices[c.gpuType] ?? 1);
  }
}

/**
 * Memory check for enumeration: whether one worker of `tp` GPUs of `gpuType` holds the model and a KV cache
 * for the workload's longest request with these engine settings; the reason when not.
 */
export function hardwareFits(base: SimulationBase & { hardware: HardwareBase }, workload: Workload) {
  const catalog = sweepCatalog(base.hardware);
  return (
    gpuType: string,
    tp: number,
    engine: Candidate['engine'],
    parallel?: WorkerParallelism,
  ): string | null => {
    const probe: Candidate = {
      id: -1,
      gpuType,
      topology: 'aggregated',
      tensorParallel: tp,
      workers: 1,
      ...(parallel && parallel.dataParallel > 1 ? { dataParallel: parallel.dataParallel } : {}),
      ...(parallel?.expertParallel ? { expertParallel: true } : {}),
      router: { mode: 'round-robin', overlapWeight: 1, overlapCredit: 1, temperature: 0 },
      engine,
    };
    try {
      prepareCluster(candidateConfig(probe, base), catalog, workload);
      return null;
    } catch (e) {
      if (e instanceof HardwareRejection || e instanceof CatalogError) return e.message;
      throw e;
    }
  };
}
