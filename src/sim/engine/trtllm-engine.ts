import type { Collector } from '../metrics/collector.ts';
import type { TimingModel } from '../timing/timing-model.ts';
import type { EngineRole } from './engine.ts';
import type { RequestTable } from './request-table.ts';
import { grown } from './request-table.ts';
import { VllmEngine, type VllmEngineConfig } from './vllm-engine.ts';

/** TensorRT-LLM's engine settings: vLLM's, with `kind: 'trtllm'` (its default block size is 32). */
export type TrtllmEngineConfig = VllmEngineConfig & { kind: 'trtllm' };

/**
 * One TensorRT-LLM engine (one data-parallel rank), as the reference models it: vLLM's scheduling core
 * (running first, chunked prefill, the same block pool and prefix cache) under TensorRT-LLM's
 * `GUARANTEED_NO_EVICT` capacity policy. A request is admitted only if the blocks it needs to run to
 * completion (prompt plus all its output, less its cache hits on blocks in use) fit in the blocks left once
 * every running request's remaining to-completion footprint and every transferred prompt's completion tail
 * are set aside; so nothing ever needs preempting, and nothing is. A request that could never fit is
 * rejected (the reference instead trims its output to what the pool holds).
 *
 * Disaggregated decode: source first as vLLM, but the destination reserves the request's full to-completion
 * footprint with no prefix credit, and waits while it does not fit.
 */
export class TrtllmEngine extends VllmEngine {
  protected override readonly preemptsForCapacity = false;
  protected override readonly mtpRecomputesHitBlock = false;
  /** Decode role: completion tails (blocks beyond the prompt) of transferred requests not running yet. */
  private pendingTailBlocks = 0;
  private tailOf = new Int32Array(0);

  constructor(
    index: number,
    config: TrtllmEngineConfig,
    timing: TimingModel,
    req: RequestTable,
    collector: Collector,
    logKvEvents = false,
    role: EngineRole = 'aggregated',
    gpus = 1,
    seedOffset = index,
  ) {
    super(index, config, timing, req, collector, logKvEvents, role, gpus, seedOffset);
    if (role === 'decode')
      req.onGrow((n) => {
        this.tailOf = grown(this.tailOf, n);
      });
  }

  /** Blocks r needs from its first token to its last. */
  private toCompletionBlocks(r: number): number {
    return Math.ceil((this.req.promptLen[r] + this.outputLimit(r)) / this.config.blockSize);
  }

  /** Blocks left once running requests' and pending transfers' to-completion footprints are set aside. */
  private reservableBlocks(): number {
    const req = this.req;
    let reserved = this.pendingTailBlocks;
    for (let k = 0; k < this.runLen; k++) {
      const r = this.running[k];
      reserved += Math.max(0, this.toCompletionBlocks(r) - req.allocBlocks[r]);
    }
    return this.config.numGpuBlocks - this.pool.activeBlocks - reserved;
  }

  protected override admissionFits(r: number): boolean {
    const allocated = this.req.allocBlocks[r];
    const needed =
      allocated === 0
        ? this.toCompletionBlocks(r) - this.activeHitBlocks
        : this.toCompletionBlocks(r) - allocated;
    return needed <= this.reservableBlocks();
  }

  protected override rejection(r: number): string | null {
    if (this.req.preemptions[r] === 0 && this.toCompletionBlocks(r) > this.config.numGpuBlocks)
      return 'prompt plus output larger than the KV cache';
    return super.rejection(r);
  }

  /** The transferred prompt's blocks, all fresh, once its whole completion footprint fits. */
  protected override reserveKv(r: number): number {
    const req = this.req;
    const full = this.toCompletionBlocks(r);
    if (full > this.reservableBlocks()) return -1;
    req.allocBlocks[r] = 0;
    if (!this.allocateUpTo(r, req.promptLen[r], 0)) return -1;
    const tail = full - req.allocBlocks[r];
    this.tailOf[r] = tail;
    this.pendingTailBlocks += tail;
    return 0;
  }

  protected override onReservedAdmitted(r: number): void {
    this.pendingTailBlocks -= this.tailOf[r];
    this.tailOf[r] = 0;
  }
}
