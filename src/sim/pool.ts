import type { DpWorker } from './engine/dp-worker.ts';
import type { Engine, EngineRole } from './engine/engine.ts';
import type { SglangEngineConfig } from './engine/sglang-engine.ts';
import type { VllmEngineConfig } from './engine/vllm-engine.ts';
import type { Router } from './router/router.ts';
import type { TimingModel } from './timing/timing-model.ts';

/** Engine settings: a vLLM engine (no `kind`, or 'vllm'), a TensorRT-LLM one ('trtllm') or an SGLang one. */
export type EngineSpec = VllmEngineConfig | SglangEngineConfig;

/** One pool of identical engines. */
export interface PoolSpec {
  workers: number;
  engine: EngineSpec;
  timing: TimingModel;
  /** GPUs one worker occupies (tensor-parallel size x data-parallel size). */
  gpusPerWorker: number;
  /** Attention-data-parallel ranks per worker, each with its own scheduler and KV pool (default 1). */
  dataParallelSize?: number;
}

/**
 * A set of engines behind one router, by slot. With a planner the set changes: `eligible` marks the slots
 * that take new requests (ready, not draining), and the slot of a departed worker is reused by the next new
 * one, so per-slot router state stays as large as the pool at its largest.
 */
export interface Pool {
  readonly role: EngineRole;
  /** New workers get this spec (a driven simulation replaces it for a rolling restart). */
  spec: PoolSpec;
  readonly engines: Engine[];
  /** A driven simulation may replace it at run time. */
  router: Router;
  eligible: Uint8Array | null;
  readonly freeSlots: number[];
  /**
   * What the router picks among: the engines, or with data-parallel ranks every rank, rank-major (rank 0 of
   * each worker, then rank 1, ...), so that round robin alternates workers first, as the reference does.
   */
  readonly targets: Engine[];
  /** The pool's workers when they have data-parallel ranks (null: one engine per worker). */
  readonly dpWorkers: DpWorker[] | null;
}
