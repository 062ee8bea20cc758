import { HardwareTiming } from '../sim/timing/hardware.ts';
import type { Workload } from '../sim/workload/workload.ts';
import { type Calibration, calibrationFor, overheadOf } from './calibration.ts';
import { type Catalog, CatalogError } from './catalog.ts';
import { type ComposedProfile, composeProfile } from './compose.ts';
import type { HardwareConfig } from './config.ts';
import type { KvDtype, WeightDtype } from './dtypes.ts';
import type { Gpu } from './gpus.ts';
import { loadKernelTables } from './kernels/load.ts';
import { type MemoryPlan, planMemory } from './memory.ts';
import { type ModelSpec, tensorParallelProblem } from './models.ts';

/** A resolved choice of what to price. */
export interface HardwareChoice {
  gpu: Gpu;
  model: ModelSpec;
  tp: number;
  weightDtype: WeightDtype;
  kvDtype: KvDtype;
  expertParallel?: boolean;
  /** Attention-data-parallel ranks per worker, and the MoE layers' expert-parallel size. */
  attentionDp?: number;
  moeEp?: number;
  /** MTP draft tokens per forward (prices the draft and verify work). */
  nextn?: number;
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
    c.attentionDp ?? 1,
    c.moeEp ?? '',
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
        attentionDp: c.attentionDp,
        moeEp: c.moeEp,
        overhead,
        moeScale: cal.moeScale,
      },
      tables,
    );
    m = { timing: new HardwareTiming(profile), profile };
    byKey.set(key, m);
  }
  // MTP changes only how passes are priced, not the profile.
  if ((c.nextn ?? 0) > 0) return { timing: new HardwareTiming(m.profile, c.nextn), profile: m.profile };
  return m;
}

/** A setup the simulation cannot run (it does not fit in memory): the sweep skips it with this reason. */
export class HardwareRejection extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'HardwareRejection';
  }
}

/** Tokens the longest request of a workload needs (prompt plus output). */
export function longestRequest(w: Workload): number {
  let max = 1;
  for (let r = 0; r < w.size; r++) max = Math.max(max, w.inputLength[r] + w.outputLength[r]);
  return max;
}

/** The engine settings the memory plan depends on. */
export interface EngineShape {
  blockSize: number;
  maxNumBatchedTokens: number;
  maxNumSeqs: number;
}

/** A worker's hardware resolved against a catalog: what prices its passes and how its memory is split. */
export interface ResolvedHardware extends HardwareModel {
  choice: HardwareChoice;
  memory: MemoryPlan;
}

/**
 * Resolves one worker's hardware (a `hardware` section, its tensor-parallel size and engine shape) against
 * a catalog: looks up the GPU and model, composes the timing model and plans its memory for requests of up to
 * `requiredTokens` (unless `hardware.maxModelLen` says otherwise). Throws CatalogError for unknown names;
 * whether a plan that does not fit is fatal is the caller's call (`memory.fits`).
 */
export function resolveHardware(
  hw: HardwareConfig | undefined,
  tp: number,
  engine: EngineShape,
  catalog: Catalog,
  requiredTokens: number,
  calibration?: Partial<Calibration>,
  parallel: { dataParallel?: number; nextn?: number } = {},
): ResolvedHardware {
  if (!hw?.gpu || !hw.model) throw new CatalogError('hardware timing needs hardware.gpu and hardware.model');
  const gpu = catalog.gpu(hw.gpu);
  const model = catalog.model(hw.model);
  const choice: HardwareChoice = {
    gpu,
    model,
    tp,
    weightDtype: hw.dtype ?? model.weightDtype,
    kvDtype: hw.kvDtype ?? model.kvDtype,
    expertParallel: hw.expertParallel,
    attentionDp: parallel.dataParallel ?? 1,
    ...(hw.expertParallelSize !== undefined ? { moeEp: hw.expertParallelSize } : {}),
    ...((parallel.nextn ?? 0) > 0 ? { nextn: parallel.nextn } : {}),
    tier: hw.tier,
    calibration: { ...hw.calibration, ...calibration },
  };
  if ((choice.expertParallel || hw.expertParallelSize !== undefined) && !model.moe) {
    throw new CatalogError(`hardware.expertParallel: ${model.name} has no experts`);
  }
  const shardProblem = tensorParallelProblem(model, tp);
  if (shardProblem) throw new HardwareRejection(shardProblem);
  const gpus = tp * (choice.attentionDp ?? 1);
  if (hw.expertParallelSize !== undefined && gpus % hw.expertParallelSize !== 0) {
    // moe_tp x moe_ep must cover the worker's GPUs (tp x attention dp).
    throw new CatalogError(
      `hardware.expertParallelSize: ${hw.expertParallelSize} does not divide the worker's ${gpus} GPUs (TP ${tp} x DP ${choice.attentionDp})`,
    );
  }
  const memory = planMemory({
    gpu,
    model,
    tp,
    moeGpus: gpus,
    weightDtype: choice.weightDtype,
    kvDtype: choice.kvDtype,
    gpuMemoryUtilization: hw.gpuMemoryUtilization,
    blockSize: engine.blockSize,
    maxNumBatchedTokens: engine.maxNumBatchedTokens,
    maxNumSeqs: engine.maxNumSeqs,
    requiredTokens: hw.maxModelLen ?? requiredTokens,
  });
  return { ...hardwareModel(choice), choice, memory };
}
