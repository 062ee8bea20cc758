import type { SimulationConfig } from '../sim/config.ts';
import { HardwareTiming } from '../sim/timing/hardware.ts';
import type { Workload } from '../sim/workload/workload.ts';
import { type Calibration, calibrationFor, overheadOf } from './calibration.ts';
import { type Catalog, CatalogError } from './catalog.ts';
import { type ComposedProfile, composeProfile } from './compose.ts';
import type { KvDtype, WeightDtype } from './dtypes.ts';
import type { Gpu } from './gpus.ts';
import { loadKernelTables } from './kernels/load.ts';
import { type MemoryPlan, planMemory } from './memory.ts';
import { kvBytesPerToken, type ModelSpec } from './models.ts';

/** A resolved choice of what to price. */
export interface HardwareChoice {
  gpu: Gpu;
  model: ModelSpec;
  tp: number;
  weightDtype: WeightDtype;
  kvDtype: KvDtype;
  expertParallel?: boolean;
  /** 'roofline' ignores measured tables (for comparison). */
  tier?: 'auto' | 'roofline';
  /** Overrides of the bundled calibration. */
  calibration?: Partial<Calibration>;
}

export interface HardwareModel {
  timing: HardwareTiming;
  profile: ComposedProfile;
}

const cache = new WeakMap<Gpu, WeakMap<ModelSpec, Map<string, HardwareModel>>>();

/**
 * The hardware timing model of a choice, composed once per (GPU, model, TP, dtypes, options) and cached for
 * the process: a sweep asks for the same few setups many times.
 */
export function hardwareModel(c: HardwareChoice): HardwareModel {
  const cal = { ...calibrationFor(c.gpu), ...c.calibration };
  const overhead = overheadOf(cal);
  const key = [
    c.tp,
    c.weightDtype,
    c.kvDtype,
    c.expertParallel ? 'ep' : 'tp',
    c.tier ?? 'auto',
    overhead.stepMs,
    overhead.perSeqMs,
    overhead.perPrefillMs,
    overhead.prefillScale,
    cal.moeScale,
  ].join('|');
  let byModel = cache.get(c.gpu);
  if (!byModel) {
    byModel = new WeakMap();
    cache.set(c.gpu, byModel);
  }
  let byKey = byModel.get(c.model);
  if (!byKey) {
    byKey = new Map();
    byModel.set(c.model, byKey);
  }
  let m = byKey.get(key);
  if (!m) {
    const tables = c.tier !== 'roofline' && c.gpu.kernelTables ? loadKernelTables(c.gpu.kernelTables) : null;
    const profile = composeProfile(
      {
        gpu: c.gpu,
        model: c.model,
        tp: c.tp,
        weightDtype: c.weightDtype,
        kvDtype: c.kvDtype,
        expertParallel: c.expertParallel,
        overhead,
        moeScale: cal.moeScale,
      },
      tables,
    );
    m = { timing: new HardwareTiming(profile), profile };
    byKey.set(key, m);
  }
  return m;
}

/** A setup the simulation cannot run (it does not fit in memory): the sweep skips it with this reason. */
export class HardwareRejection extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'HardwareRejection';
  }
}

export interface PreparedHardware extends HardwareModel {
  /** The configuration to run: numGpuBlocks filled in from the memory plan unless the user set it. */
  config: SimulationConfig;
  choice: HardwareChoice;
  memory: MemoryPlan;
  /** True when numGpuBlocks came from the memory plan. */
  derivedBlocks: boolean;
}

/** Tokens the longest request of a workload needs (prompt plus output). */
export function longestRequest(w: Workload): number {
  let max = 1;
  for (let r = 0; r < w.size; r++) max = Math.max(max, w.inputLength[r] + w.outputLength[r]);
  return max;
}

/**
 * Resolves a `timing.model: hardware` configuration against a catalog: looks up the GPU and model, composes
 * the timing model, and sizes the KV cache from HBM unless `engine.numGpuBlocks` was given. Throws
 * CatalogError for unknown names and HardwareRejection when the setup does not fit.
 */
export function prepareHardware(
  config: SimulationConfig,
  catalog: Catalog,
  workload: Workload,
  calibration?: Partial<Calibration>,
): PreparedHardware {
  const hw = config.hardware;
  if (!hw?.gpu || !hw.model) throw new CatalogError('hardware timing needs hardware.gpu and hardware.model');
  const gpu = catalog.gpu(hw.gpu);
  const model = catalog.model(hw.model);
  const choice: HardwareChoice = {
    gpu,
    model,
    tp: config.tensorParallelSize,
    weightDtype: hw.dtype ?? model.weightDtype,
    kvDtype: hw.kvDtype ?? model.kvDtype,
    expertParallel: hw.expertParallel,
    tier: hw.tier,
    calibration: { ...hw.calibration, ...calibration },
  };
  if (choice.expertParallel && !model.moe) {
    throw new CatalogError(`hardware.expertParallel: ${model.name} has no experts`);
  }
  const e = config.engine;
  const memory = planMemory({
    gpu,
    model,
    tp: choice.tp,
    weightDtype: choice.weightDtype,
    kvDtype: choice.kvDtype,
    gpuMemoryUtilization: hw.gpuMemoryUtilization,
    blockSize: e.blockSize,
    maxNumBatchedTokens: e.maxNumBatchedTokens,
    maxNumSeqs: e.maxNumSeqs,
    requiredTokens: hw.maxModelLen ?? longestRequest(workload),
  });
  const derivedBlocks = e.numGpuBlocks === undefined;
  if (derivedBlocks && !memory.fits) throw new HardwareRejection(memory.reason ?? 'does not fit');
  const resolved: SimulationConfig = derivedBlocks
    ? { ...config, engine: { ...e, numGpuBlocks: memory.numGpuBlocks } }
    : config;
  return { ...hardwareModel(choice), config: resolved, choice, memory, derivedBlocks };
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
  workload: Workload,
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
