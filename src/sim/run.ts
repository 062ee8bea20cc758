import { DEFAULT_NUM_GPU_BLOCKS, type SimulationConfig } from './config.ts';
import { buildReport, type SimulationReport } from './metrics/report.ts';
import { type SimulationOptions, type SimulationResult, simulate } from './simulation.ts';
import { FixedTiming } from './timing/fixed.ts';
import { PolynomialTiming } from './timing/polynomial.ts';
import type { TimingModel } from './timing/timing-model.ts';
import { generateSynthetic } from './workload/synthetic.ts';
import type { Workload } from './workload/workload.ts';

/**
 * Turns a validated configuration into simulation options. `hardware` timing needs catalogs and kernel
 * tables, which the core does not load: build it with src/hardware/setup.ts and pass it in.
 */
export function toSimulationOptions(config: SimulationConfig, timing?: TimingModel): SimulationOptions {
  const e = config.engine;
  if (!timing && config.timing.model === 'hardware') {
    throw new Error('hardware timing must be built by the caller (src/hardware/setup.ts prepareHardware)');
  }
  const r = config.router;
  return {
    workers: config.workers,
    gpusPerWorker: config.tensorParallelSize,
    engine: {
      numGpuBlocks: e.numGpuBlocks ?? DEFAULT_NUM_GPU_BLOCKS,
      blockSize: e.blockSize,
      maxNumSeqs: e.maxNumSeqs,
      maxNumBatchedTokens: e.maxNumBatchedTokens,
      enableChunkedPrefill: e.enableChunkedPrefill,
      enablePrefixCaching: e.enablePrefixCaching,
      speedupRatio: e.speedupRatio,
      coalesceDecode: config.coalesceDecode,
    },
    timing:
      timing ??
      (config.timing.model === 'fixed'
        ? new FixedTiming(config.timing.prefillMs, config.timing.decodeMs)
        : new PolynomialTiming()),
    router:
      r.mode === 'kv'
        ? {
            kind: 'kv',
            overlapWeight: r.overlapWeight,
            overlapCredit: r.overlapCredit,
            temperature: r.temperature,
          }
        : { kind: r.mode },
    arrivals:
      config.workload.concurrency !== undefined
        ? { kind: 'closed-loop', concurrency: config.workload.concurrency }
        : { kind: 'trace', speedup: config.workload.arrivalSpeedupRatio },
    seed: config.seed,
    maxSimTimeMs: config.maxSimTimeS !== undefined ? config.maxSimTimeS * 1000 : undefined,
  };
}

/** Builds the synthetic workload a configuration describes (traces are loaded by the caller). */
export function syntheticWorkload(config: SimulationConfig): Workload {
  const s = config.workload.synthetic;
  if (!s) throw new Error('configuration has no synthetic workload');
  const rate = s.requestRate ?? 1;
  return generateSynthetic({
    sessions: s.requests,
    inputTokens: s.inputTokens,
    outputTokens: s.outputTokens,
    arrival:
      config.workload.concurrency !== undefined || s.arrival === 'burst'
        ? { kind: 'burst' }
        : s.arrival === 'gamma'
          ? { kind: 'gamma', ratePerS: rate, shape: s.burstiness }
          : { kind: s.arrival, ratePerS: rate },
    sharedPrefixRatio: s.sharedPrefixRatio,
    prefixGroups: s.numPrefixGroups,
    turnsPerSession: s.turnsPerSession,
    interTurnDelayMs: s.interTurnDelayMs,
    blockSize: config.engine.blockSize,
    seed: s.seed,
  });
}

/** Runs one simulation and reports it, timing the wall clock around the simulation only. */
export function runSimulation(
  config: SimulationConfig,
  workload: Workload,
  timing?: TimingModel,
): { result: SimulationResult; report: SimulationReport } {
  const options = toSimulationOptions(config, timing);
  const t0 = performance.now();
  const result = simulate(workload, options);
  const wall = performance.now() - t0;
  return { result, report: buildReport(result, wall, config.slo) };
}
