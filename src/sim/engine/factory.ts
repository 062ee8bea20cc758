import type { Collector } from '../metrics/collector.ts';
import type { EngineSpec } from '../pool.ts';
import type { TimingModel } from '../timing/timing-model.ts';
import { DpWorker } from './dp-worker.ts';
import type { EngineRole } from './engine.ts';
import type { EngineCore, EngineCoreConfig } from './engine-core.ts';
import type { RequestTable } from './request-table.ts';
import { SglangEngine } from './sglang-engine.ts';
import { TrtllmEngine } from './trtllm-engine.ts';
import { VllmEngine } from './vllm-engine.ts';

/** What every engine of a pool shares. */
export interface EngineContext {
  req: RequestTable;
  collector: Collector;
  timing: TimingModel;
  /** Whether a router reads the engines' prefix-cache events. */
  logKvEvents: boolean;
  role: EngineRole;
  /** GPUs one worker occupies (all its ranks). */
  gpusPerWorker: number;
}

/** One engine (one scheduler and KV pool) of the kind `spec` names. */
export function createEngine(
  index: number,
  spec: EngineSpec,
  ctx: EngineContext,
  seedOffset = index,
): EngineCore<EngineCoreConfig> {
  const { req, collector, timing, logKvEvents, role, gpusPerWorker } = ctx;
  const args = [req, collector, logKvEvents, role, gpusPerWorker, seedOffset] as const;
  if (spec.kind === 'sglang') return new SglangEngine(index, spec, timing, ...args);
  if (spec.kind === 'trtllm') return new TrtllmEngine(index, { ...spec, kind: 'trtllm' }, timing, ...args);
  return new VllmEngine(index, spec, timing, ...args);
}

/**
 * A worker with `ranks` attention-data-parallel ranks: each an engine of its own (plain path only), stepping
 * together. `workerId` numbers the worker in its pool (rank seeds are workerId x ranks + rank, as the
 * reference seeds them).
 */
export function createDpWorker(
  index: number,
  spec: EngineSpec,
  ctx: EngineContext,
  ranks: number,
  workerId: number,
): DpWorker {
  const rankSpec: EngineSpec =
    spec.kind === 'sglang'
      ? {
          ...spec,
          coalesceDecode: false,
          // SGLang's launch-time DP-attention normalization (handle_data_parallelism), as the reference
          // applies it per rank: the chunk is split across ranks and the admission reserve scaled down.
          chunkedPrefillSize: Math.max(1, Math.floor(spec.chunkedPrefillSize / ranks)),
          scheduleConservativeness: spec.scheduleConservativeness * 0.3,
        }
      : { ...spec, coalesceDecode: false };
  const engines: EngineCore<EngineCoreConfig>[] = [];
  for (let k = 0; k < ranks; k++) engines.push(createEngine(index, rankSpec, ctx, workerId * ranks + k));
  return new DpWorker(index, ctx.role, ctx.gpusPerWorker, engines, ctx.req);
}
