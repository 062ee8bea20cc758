import { DEFAULT_ACCEPT_RATES } from '../sim/engine/speculative.ts';
import { buildReport, type SimulationReport } from '../sim/metrics/report.ts';
import { plannerSpec } from '../sim/planner/spec.ts';
import {
  type DisaggregationSpec,
  type EngineSpec,
  type PoolSpec,
  type SimulationOptions,
  type SimulationResult,
  simulate,
  type TokenTap,
} from '../sim/simulation.ts';
import { FixedTiming } from '../sim/timing/fixed.ts';
import { PolynomialTiming } from '../sim/timing/polynomial.ts';
import type { TimingModel } from '../sim/timing/timing-model.ts';
import { generateSynthetic } from '../sim/workload/synthetic.ts';
import type { Workload } from '../sim/workload/workload.ts';
import { DEFAULT_KV_BYTES_PER_TOKEN, DEFAULT_NUM_GPU_BLOCKS, type SimulationConfig } from './schema.ts';

/** Timing models per pool (disaggregated pools may run on different tensor-parallel shapes). */
export interface PoolTimings {
  aggregated?: TimingModel;
  prefill?: TimingModel;
  decode?: TimingModel;
}

/**
 * Turns a validated configuration into the simulator's own input. `hardware` timing needs catalogs and
 * kernel tables, which the simulation core does not load: build it with prepareCluster (./hardware.ts) and
 * pass it in.
 */
export function toSimulationOptions(
  config: SimulationConfig,
  timings?: TimingModel | PoolTimings,
): SimulationOptions {
  const perPool: PoolTimings =
    timings === undefined
      ? {}
      : 'prefillMs' in timings
        ? { aggregated: timings, prefill: timings, decode: timings }
        : timings;
  const timing = perPool.aggregated ?? perPool.decode;
  if (!timing && config.timing.model === 'hardware') {
    throw new Error('hardware timing must be built by the caller (src/config/hardware.ts prepareCluster)');
  }
  const r = config.router;
  const engineOf = (over: Partial<SimulationConfig['engine']> = {}): EngineSpec => {
    const e = { ...config.engine, ...over };
    const speculative =
      e.nextn > 0
        ? {
            speculative: {
              nextn: e.nextn,
              acceptRates: e.nextnAcceptRates ?? DEFAULT_ACCEPT_RATES,
              seed: e.mtpSeed,
            },
          }
        : {};
    if (e.engine === 'sglang') {
      return {
        ...speculative,
        kind: 'sglang',
        numGpuBlocks: e.numGpuBlocks ?? DEFAULT_NUM_GPU_BLOCKS,
        blockSize: e.blockSize,
        maxNumSeqs: e.maxNumSeqs,
        enablePrefixCaching: e.enablePrefixCaching,
        speedupRatio: e.speedupRatio,
        schedulePolicy: e.schedulePolicy,
        maxPrefillTokens: e.maxPrefillTokens,
        chunkedPrefillSize: e.chunkedPrefillSize,
        clipMaxNewTokens: e.clipMaxNewTokens,
        scheduleConservativeness: e.scheduleConservativeness,
        coalesceDecode: config.coalesceDecode,
      };
    }
    return {
      ...(e.engine === 'trtllm' ? { kind: 'trtllm' as const } : {}),
      ...speculative,
      numGpuBlocks: e.numGpuBlocks ?? DEFAULT_NUM_GPU_BLOCKS,
      blockSize: e.blockSize,
      maxNumSeqs: e.maxNumSeqs,
      maxNumBatchedTokens: e.maxNumBatchedTokens,
      enableChunkedPrefill: e.enableChunkedPrefill,
      enablePrefixCaching: e.enablePrefixCaching,
      speedupRatio: e.speedupRatio,
      coalesceDecode: config.coalesceDecode,
      ...(e.g2Blocks > 0
        ? {
            offload: {
              g2Blocks: e.g2Blocks,
              g2Gbps: e.g2Gbps,
              g3Blocks: e.g3Blocks,
              g3Gbps: e.g3Gbps,
              blockBytes: e.blockSize * (e.kvBytesPerToken ?? DEFAULT_KV_BYTES_PER_TOKEN),
              policy: e.offloadPolicy,
            },
          }
        : {}),
    };
  };
  const model =
    timing ??
    (config.timing.model === 'fixed'
      ? new FixedTiming(config.timing.prefillMs, config.timing.decodeMs)
      : new PolynomialTiming());
  const d = config.disaggregation;
  const disaggregation: DisaggregationSpec | undefined = d
    ? {
        prefill: {
          workers: d.prefill.workers,
          gpusPerWorker: d.prefill.tensorParallelSize,
          engine: engineOf(d.prefill.engine),
          timing: perPool.prefill ?? model,
        },
        decode: {
          workers: d.decode.workers,
          gpusPerWorker: d.decode.tensorParallelSize,
          engine: engineOf(d.decode.engine),
          timing: perPool.decode ?? model,
        },
        kvBytesPerToken: d.kvBytesPerToken ?? config.engine.kvBytesPerToken ?? DEFAULT_KV_BYTES_PER_TOKEN,
        kvTransferGbps: d.kvTransferGbps,
        kvLinkShared: d.kvLink === 'shared',
        transferMode: d.transferMode,
        ...(d.conditional === false
          ? {}
          : {
              conditional:
                d.conditional === true ? { maxUncachedTokens: 2048, maxUncachedRatio: 0.7 } : d.conditional,
            }),
      }
    : undefined;
  const aggregated: PoolSpec = {
    workers: config.workers,
    gpusPerWorker: config.tensorParallelSize * config.dataParallelSize,
    dataParallelSize: config.dataParallelSize,
    engine: engineOf(),
    timing: model,
  };
  const planner = config.planner
    ? plannerSpec(config.planner, config.startupTimeS, disaggregation ?? null, aggregated)
    : undefined;
  return {
    workers: config.workers,
    gpusPerWorker: config.tensorParallelSize * config.dataParallelSize,
    ...(config.dataParallelSize > 1 ? { dataParallelSize: config.dataParallelSize } : {}),
    engine: engineOf(),
    ...(disaggregation ? { disaggregation } : {}),
    ...(planner ? { planner } : {}),
    timing: model,
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
export function syntheticWorkload(config: Pick<SimulationConfig, 'workload' | 'engine'>): Workload {
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
  timing?: TimingModel | PoolTimings,
  measureFromMs?: number,
  onToken?: TokenTap,
): { result: SimulationResult; report: SimulationReport } {
  const options = toSimulationOptions(config, timing);
  if (measureFromMs !== undefined) options.measureFromMs = measureFromMs;
  const t0 = performance.now();
  const result = simulate(workload, options, onToken);
  const wall = performance.now() - t0;
  return { result, report: buildReport(result, wall, config.slo) };
}
