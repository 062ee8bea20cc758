import type { Engine, EngineRole } from './engine.ts';
import { IntDeque } from './int-deque.ts';
import type { ForwardPassSnapshot } from './pass-metrics.ts';

/**
 * What remains of a worker the planner removed: its statistics for the report, nothing else. Replacing the
 * engine keeps the simulation's memory bounded by the workers alive, not by every worker ever started.
 */
export class RetiredEngine implements Engine {
  readonly index: number;
  readonly role: EngineRole;
  readonly gpus: number;
  readonly kvEvents = null;
  readonly firstTokens = new IntDeque(1);
  readonly finished = new IntDeque(1);
  busyUntil = Number.NaN;
  progressed = false;
  readonly isIdle = true;
  readonly hasPendingRun = false;
  readonly pendingRunEvicts = false;
  readonly runningCount = 0;
  readonly waitingCount = 0;
  readonly activeBlocks = 0;
  readonly passes: number;
  readonly busyMs: number;
  readonly preemptions: number;
  readonly coalescedRuns: number;
  readonly committedPrefillTokens: number;
  readonly evictions: number;
  /** KV offload statistics, when the worker had lower tiers. */
  readonly offload?: { offloaded: number };
  readonly tierHitBlocks?: number[];
  readonly onboardMs?: number[];
  readonly config?: { blockSize: number };

  constructor(e: Engine) {
    this.index = e.index;
    this.role = e.role;
    this.gpus = e.gpus;
    this.passes = e.passes;
    this.busyMs = e.busyMs;
    this.preemptions = e.preemptions;
    this.coalescedRuns = e.coalescedRuns;
    this.committedPrefillTokens = e.committedPrefillTokens;
    this.evictions = e.evictions;
    const t = e as unknown as {
      offload?: { offloaded: number } | null;
      tierHitBlocks?: number[];
      onboardMs?: number[];
      config?: { blockSize: number };
    };
    if (t.offload) {
      this.offload = { offloaded: t.offload.offloaded };
      this.tierHitBlocks = t.tierHitBlocks;
      this.onboardMs = t.onboardMs;
      this.config = t.config;
    }
  }

  hasWork(): boolean {
    return false;
  }
  enqueue(): void {
    throw new Error(`worker ${this.index} has left the cluster`);
  }
  startPass(): number {
    throw new Error(`worker ${this.index} has left the cluster`);
  }
  endPass(): void {}
  materialize(): number {
    return Number.NaN;
  }
  snapshot(_t: number, out: ForwardPassSnapshot): void {
    out.engine = this.index;
  }
}
