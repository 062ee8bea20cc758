import type { IntDeque } from './int-deque.ts';
import type { KvEventLog } from './kv-event-log.ts';
import type { ForwardPassSnapshot, PassHistory } from './pass-metrics.ts';

/** Durations are kept at nanosecond resolution, as the reference does. */
export function ns(ms: number): number {
  return Math.round(ms * 1e6) / 1e6;
}

/** What an engine does in the cluster: serve whole requests, or one side of disaggregated serving. */
export type EngineRole = 'aggregated' | 'prefill' | 'decode';

/**
 * One serving engine (one data-parallel rank) as the simulation drives it. Passes are eager: `startPass`
 * applies a pass's effects at its start and returns its end; the owner calls `endPass` at that time after
 * reading `firstTokens` and `finished`. An engine may plan several identical passes at once (`hasPendingRun`)
 * and apply them lazily; `materialize(t)` brings it up to date with everything that started before t.
 */
export interface Engine {
  readonly index: number;
  readonly role: EngineRole;
  /** GPUs this engine occupies (tensor parallel x data parallel). */
  readonly gpus: number;
  readonly kvEvents: KvEventLog | null;
  /** Requests whose first token on this engine came in the last pass (prefill role: prefill finished). */
  readonly firstTokens: IntDeque;
  /** Requests that completed or were rejected in the last pass (prefill role: prefill done, KV held). */
  readonly finished: IntDeque;
  busyUntil: number;
  progressed: boolean;
  readonly isIdle: boolean;
  readonly hasPendingRun: boolean;
  readonly pendingRunEvicts: boolean;
  readonly runningCount: number;
  readonly waitingCount: number;
  hasWork(): boolean;
  enqueue(r: number): void;
  startPass(now: number, horizon: number, horizonAlways?: boolean): number;
  endPass(): void;
  materialize(t: number): number;

  /** Decode role: reserves KV for request r's transferred prompt; false when capacity is short. */
  reserveDestination?(r: number, now: number): boolean;
  /** Tokens of r's prompt the last successful reservation found already cached here. */
  readonly lastReservedHitTokens?: number;
  /** Decode role: r's transferred KV arrived; it joins the queue ready to decode. */
  activate?(r: number, now: number): void;
  /** Prefill role: releases the KV held for r since its prefill finished. */
  releaseHeld?(r: number): void;

  /** Its latest passes, read by `snapshot` (a planner sets `history.trackQueue`); none once retired. */
  readonly history?: PassHistory;
  /** Requests it holds in its queues and running set (a killed worker's, to migrate). */
  residents?(): number[];
  /** Its KV cache's prefix keys (not pending events): what a fresh KV router view starts from. */
  markCachedKeys?(live: Uint8Array): void;
  /** Starts (true) or stops logging KV events for a KV-aware router (a driven simulation's router change). */
  setKvEvents?(on: boolean): void;
  /** KV capacity in blocks (pages). */
  readonly totalBlocks?: number;
  /** Keys below `n` may be looked up from now on (see KeySpace.onCapacity). */
  ensureKeyCapacity?(n: number): void;
  /** Prefix-cache keys held (KV cache, lower tiers, events not yet read): see KeySpace compaction. */
  markKeys?(live: Uint8Array): void;
  remapKeys?(map: Int32Array): void;

  /** Forward-pass metrics at t (bring the engine up to date to t first). */
  snapshot(t: number, out: ForwardPassSnapshot): void;
  /** KV blocks in use (by requests, handoff holds or reservations). */
  readonly activeBlocks: number;

  // Statistics.
  readonly passes: number;
  readonly busyMs: number;
  readonly preemptions: number;
  readonly coalescedRuns: number;
  readonly committedPrefillTokens: number;
  readonly evictions: number;
}
