import type { Calibration } from '../hardware/calibration.ts';
import type { Catalog } from '../hardware/catalog.ts';
import type { MemoryPlan } from '../hardware/memory.ts';
import { kvBytesPerToken } from '../hardware/models.ts';
import {
  type HardwareChoice,
  type HardwareModel,
  HardwareRejection,
  longestRequest,
  resolveHardware,
} from '../hardware/setup.ts';
import type { HardwareTiming } from '../sim/timing/hardware.ts';
import type { Workload } from '../sim/workload/workload.ts';
import type { SimulationConfig } from './schema.ts';

/**
 * A configuration with `timing.model: hardware` resolved against a catalog: every pool priced and its KV
 * cache sized on its own GPU, model and tensor-parallel size (src/hardware does the pricing; this module
 * only maps the user's configuration onto it).
 */
export interface PreparedHardware extends HardwareModel {
  /** The configuration to run: numGpuBlocks filled in from the memory plan unless the user set it. */
  config: SimulationConfig;
  choice: HardwareChoice;
  memory: MemoryPlan;
  /** True when numGpuBlocks came from the memory plan. */
  derivedBlocks: boolean;
}

/**
 * Resolves a `timing.model: hardware` configuration against a catalog: looks up the GPU and model, composes
 * the timing model, and sizes the KV cache from HBM unless `engine.numGpuBlocks` was given. Throws
 * CatalogError for unknown names and HardwareRejection when the setup does not fit. `workload`: the requests
 * to size for, or the tokens (prompt plus output) of the longest one.
 */
export function prepareHardware(
  config: SimulationConfig,
  catalog: Catalog,
  workload: Workload | number,
  calibration?: Partial<Calibration>,
): PreparedHardware {
  const e = config.engine;
  const resolved0 = resolveHardware(
    config.hardware,
    config.tensorParallelSize,
    e,
    catalog,
    typeof workload === 'number' ? workload : longestRequest(workload),
    calibration,
    { dataParallel: config.dataParallelSize, nextn: e.nextn },
  );
  const { memory } = resolved0;
  const derivedBlocks = e.numGpuBlocks === undefined;
  if (derivedBlocks && !memory.fits) throw new HardwareRejection(memory.reason ?? 'does not fit');
  const resolved: SimulationConfig = derivedBlocks
    ? { ...config, engine: { ...e, numGpuBlocks: memory.numGpuBlocks } }
    : config;
  return { ...resolved0, config: resolved, derivedBlocks };
}

/** Hardware models of every pool of a cluster, and the configuration to run with KV sized per pool. */
export interface PreparedCluster {
  config: SimulationConfig;
  /** Per pool; `aggregated` also set for a disaggregated cluster (its decode pool) for single-model callers. */
  timings: { aggregated: HardwareTiming; prefill?: HardwareTiming; decode?: HardwareTiming };
  /** The aggregated pool's (or the decode pool's) preparation, for summaries. */
  primary: PreparedHardware;
  pools: { role: 'aggregated' | 'prefill' | 'decode'; prepared: PreparedHardware }[];
}

/**
 * Resolves `timing.model: hardware` for a whole cluster: each pool is priced and sized at its own
 * tensor-parallel size and engine settings (a disaggregated cluster's prefill and decode pools may differ),
 * and KV bytes per token come from the model unless configured. Throws like `prepareHardware`.
 */
export function prepareCluster(
  config: SimulationConfig,
  catalog: Catalog,
  workload: Workload | number,
  calibration?: Partial<Calibration>,
): PreparedCluster {
  const d = config.disaggregation;
  if (!d) {
    const prepared = prepareHardware(config, catalog, workload, calibration);
    const resolved = withKvBytes(prepared.config, prepared);
    return {
      config: resolved,
      timings: { aggregated: prepared.timing },
      primary: { ...prepared, config: resolved },
      pools: [{ role: 'aggregated', prepared }],
    };
  }
  const pools: PreparedCluster['pools'] = [];
  const disaggregation = { ...d };
  for (const role of ['prefill', 'decode'] as const) {
    const pool = d[role];
    const poolConfig: SimulationConfig = {
      ...config,
      disaggregation: undefined,
      tensorParallelSize: pool.tensorParallelSize,
      engine: { ...config.engine, ...pool.engine } as SimulationConfig['engine'],
    };
    let prepared: PreparedHardware;
    try {
      prepared = prepareHardware(poolConfig, catalog, workload, calibration);
    } catch (e) {
      if (e instanceof HardwareRejection) throw new HardwareRejection(`${role} workers: ${e.message}`);
      throw e;
    }
    pools.push({ role, prepared });
    if (prepared.derivedBlocks) {
      disaggregation[role] = {
        ...pool,
        engine: { ...pool.engine, numGpuBlocks: prepared.memory.numGpuBlocks },
      };
    }
  }
  const decode = pools[1].prepared;
  const resolved = withKvBytes({ ...config, disaggregation }, decode);
  return {
    config: resolved,
    timings: { aggregated: decode.timing, prefill: pools[0].prepared.timing, decode: decode.timing },
    primary: { ...decode, config: resolved },
    pools,
  };
}

/** Fills the model's KV bytes per token (at the KV dtype) unless the configuration sets it. */
function withKvBytes(config: SimulationConfig, p: PreparedHardware): SimulationConfig {
  if (config.engine.kvBytesPerToken !== undefined) return config;
  return {
    ...config,
    engine: { ...config.engine, kvBytesPerToken: kvBytesPerToken(p.choice.model, p.choice.kvDtype) },
  };
}
