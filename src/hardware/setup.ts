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
import type { ModelSpec } from './models.ts';

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
