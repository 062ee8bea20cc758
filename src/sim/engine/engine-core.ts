import type { Collector } from '../metrics/collector.ts';
import { emptyPassShape, type PassShape, type TimingModel } from '../timing/timing-model.ts';
import type { Engine, EngineRole } from './engine.ts';
import { IntDeque } from './int-deque.ts';
import { KvEventLog } from './kv-event-log.ts';
import { type ForwardPassSnapshot, PassHistory } from './pass-metrics.ts';
import { RequestStatus, type RequestTable } from './request-table.ts';
import { type SpeculativeConfig, SpeculativeSampler } from './speculative.ts';

/** Settings every engine has; each engine's config adds its own policy knobs. */
export interface EngineCoreConfig {
  /** KV capacity in blocks (pages). */
  numGpuBlocks: number;
  /** Tokens per KV block (page). */
  blockSize: number;
  /** Cap on running requests. */
  maxNumSeqs: number;
  enablePrefixCaching: boolean;
  /** Every modelled duration is divided by this (> 0). */
  speedupRatio: number;
  /** Fast paths (coalesced decode runs and the like); results are identical either way. */
  coalesceDecode: boolean;
  /** MTP / speculative decoding (absent: one token per forward). */
  speculative?: SpeculativeConfig;
}

/**
 * What the engines share, below their policies (see README.md): the queues and the running set, pass start
 * and end bookkeeping, the coalesced decode run (planned by the engine, applied here with its token
 * accounting), and the disaggregation hand-off lifecycle. An engine subclass supplies admission, preemption
 * and its KV cache: `runPlainPass`, `planRun` and `applyRunKv`, and the KV side of a hand-off.
 *
 * The shared methods are the plain path's bookkeeping verbatim; a subclass's fast path must end in the same
 * state as stepping its plain passes (the equivalence tests run both).
 */
export abstract class EngineCore<C extends EngineCoreConfig> implements Engine {
  readonly index: number;
  readonly role: EngineRole;
  readonly gpus: number;
  readonly config: C;
  protected readonly timing: TimingModel;
  protected readonly req: RequestTable;
  protected readonly collector: Collector;

  readonly waiting = new IntDeque();
  /** Running requests in scheduling order: `running[0..runLen)`. */
  protected readonly running: Int32Array;
  protected runLen = 0;
  /** The pass being formed (what the timing model prices). */
  protected readonly shape: PassShape = emptyPassShape();

  /** Requests whose first token on this engine came in the last pass (prefill role: prefill finished). */
  readonly firstTokens = new IntDeque();
  /** Requests that completed or were rejected in the last pass (prefill role: prefill done, KV held). */
  readonly finished = new IntDeque();
  /** Prefix-cache changes, stamped with the time a KV-aware router may see them (null if unused). */
  kvEvents: KvEventLog | null;
  /** Its latest passes (forward-pass metrics for the planner). */
  readonly history: PassHistory;

  /** Time the current pass or run ends (NaN when idle). */
  busyUntil = Number.NaN;
  /** Whether the last pass changed anything (scheduled, admitted, rejected or preempted). */
  progressed = false;
  passes = 0;
  busyMs = 0;
  preemptions = 0;
  coalescedRuns = 0;
  /** Tokens scheduled for requests whose work in a pass included prompt tokens (reference parity). */
  committedPrefillTokens = 0;
  /** Tokens of r's prompt the last successful `reserveDestination` found already cached here. */
  lastReservedHitTokens = 0;
  /** MTP: burst lengths of decode forwards (null: one token per forward; prefill workers emit one). */
  protected readonly speculative: SpeculativeSampler | null;
  /** MTP draft tokens per forward (0 without MTP). */
  protected readonly draftTokens: number;

  // The planned coalesced run: passes 1..runSteps end at runEnds[1..]; runEnds[0] is its start. Inactive
  // when runSteps === runApplied.
  protected runSteps = 0;
  protected runApplied = 0;
  protected runEnds = new Float64Array(256);
  /** Whether the run evicts cached blocks (which changes what a KV-aware router sees). */
  protected runEvicts = false;
  /** Summed context of the running set at the run's first pass. */
  private runContext = 0;
  private stepBlockCounts = new Int32Array(256);
  private runDone: Int32Array;

  constructor(
    index: number,
    config: C,
    timing: TimingModel,
    req: RequestTable,
    collector: Collector,
    logKvEvents: boolean,
    role: EngineRole,
    gpus: number,
    seedOffset = index,
  ) {
    this.index = index;
    this.role = role;
    this.gpus = gpus;
    this.config = config;
    this.timing = timing;
    this.req = req;
    this.collector = collector;
    this.history = new PassHistory(this.waiting, req);
    const slots = config.maxNumSeqs + 1;
    this.running = new Int32Array(slots);
    this.runDone = new Int32Array(slots);
    this.shape.kvCapacityTokens = config.numGpuBlocks * config.blockSize;
    this.kvEvents = logKvEvents ? new KvEventLog() : null;
    this.speculative =
      config.speculative && role !== 'prefill'
        ? new SpeculativeSampler(config.speculative, seedOffset)
        : null;
    this.draftTokens = this.speculative !== null ? (config.speculative?.nextn ?? 0) : 0;
  }

  // ---------------------------------------------------------------------------------------------------------
  // The policy: what each engine decides.

  /** One plain pass at `now`: admission, scheduling, preemption, emission; returns its end. */
  protected abstract runPlainPass(now: number): number;
  /**
   * The two halves of a plain pass: `formPass` applies its start (scheduling, admission, preemption, KV) and
   * returns its own end; `emitPass` samples its tokens at `end` (a data-parallel group's, possibly later).
   */
  abstract formPass(now: number): number;
  abstract emitPass(now: number, end: number): number;
  /**
   * Plans a run of >= 2 identical decode passes starting at `now` (through `beginRun`); false when the next
   * pass may do anything else. A run that evicts, or any run when `horizonAlways`, ends at the pass
   * straddling `horizon`.
   */
  protected abstract planRun(now: number, horizon: number, horizonAlways: boolean): boolean;
  /**
   * KV side of applying run passes from+1..upTo: blocks allocated, filled blocks cached (KV events stamped
   * with the pass that makes them) and `computed` advanced, before the tokens are counted.
   */
  protected abstract applyRunKv(from: number, upTo: number): void;
  /** Frees (or caches) everything request r holds here once it is done. */
  protected abstract releaseKv(r: number): void;
  /** Prefill role: keeps r's KV after its prefill until `releaseHeld`, for the hand-off. */
  protected abstract holdKv(r: number): void;
  /** Decode role: reserves KV for r's transferred prompt; the tokens found cached here, or -1 if short. */
  protected abstract reserveKv(r: number): number;
  /** Decode role: r's reserved KV now holds its transferred prompt (`computed` set, blocks cached). */
  protected abstract installTransferredKv(r: number): void;
  /** Decode role: queues r, whose KV arrived, to decode. */
  protected abstract queueTransferred(r: number): void;
  /** Prefill role: releases the KV held for r since its prefill finished. */
  abstract releaseHeld(r: number): void;
  abstract hasWork(): boolean;
  /** KV blocks in use (by requests, hand-off holds or reservations). */
  abstract readonly activeBlocks: number;
  abstract readonly evictions: number;
  /** Runs before a pass is formed (e.g. onboards that landed rejoin the queue). */
  protected beforePass(_now: number): void {}

  // ---------------------------------------------------------------------------------------------------------
  // State as the simulation reads it.

  get runningCount(): number {
    return this.runLen;
  }
  get waitingCount(): number {
    return this.waiting.length;
  }
  get isIdle(): boolean {
    return Number.isNaN(this.busyUntil);
  }
  /** True while a planned run has passes that are not applied yet. */
  get hasPendingRun(): boolean {
    return this.runSteps > this.runApplied;
  }
  /** True while a planned run will evict cached blocks. */
  get pendingRunEvicts(): boolean {
    return this.runEvicts && this.runSteps > this.runApplied;
  }
  runningIds(): number[] {
    return Array.from(this.running.subarray(0, this.runLen));
  }

  get totalBlocks(): number {
    return this.config.numGpuBlocks;
  }

  /** Requests in its queues and running set. */
  residents(): number[] {
    const out = this.waiting.toArray();
    for (let k = 0; k < this.runLen; k++) out.push(this.running[k]);
    return out;
  }

  setKvEvents(on: boolean): void {
    this.kvEvents = on ? new KvEventLog() : null;
    this.installKeyEvents();
  }

  /** (Re)connects its KV cache's key events to `kvEvents` (and whatever else listens). */
  protected installKeyEvents(): void {}

  /** Tokens r generates here: a prefill worker stops after the one its prefill samples. */
  protected outputLimit(r: number): number {
    return this.role === 'prefill' ? 1 : this.req.outputLen[r];
  }

  /**
   * Forward-pass metrics at time t (the engine must be brought up to date to t): the last pass that ended by
   * t, with the queue it left waiting (recorded only while `trackQueue` is set).
   */
  snapshot(t: number, out: ForwardPassSnapshot): void {
    out.engine = this.index;
    this.history.writeAt(t, out);
  }

  // ---------------------------------------------------------------------------------------------------------
  // Pass lifecycle.

  /** Queues a newly routed request. */
  enqueue(r: number): void {
    this.req.status[r] = RequestStatus.Waiting;
    this.req.engine[r] = this.index;
    this.waiting.pushBack(r);
  }

  /**
   * Starts the next pass at `now` (the engine must be idle and have work) and returns its end time. `horizon`
   * is the next time something outside may look at this engine (see `planRun`).
   */
  startPass(now: number, horizon: number, horizonAlways = false): number {
    this.firstTokens.clear();
    this.finished.clear();
    this.beforePass(now);
    if (this.req.cancelPending > 0 && this.dropCancelled()) {
      // The cancelled requests leave now; the engine looks again right after (a pass of no duration).
      this.progressed = true;
      this.busyUntil = now;
      return now;
    }
    if (this.config.coalesceDecode && this.planRun(now, horizon, horizonAlways)) {
      this.progressed = true;
      return this.busyUntil;
    }
    const end = this.runPlainPass(now);
    this.busyUntil = end;
    return end;
  }

  /** Data-parallel rank: forms its plain pass at `now` (its worker ends it); returns the pass's own end. */
  beginRankPass(now: number): number {
    this.firstTokens.clear();
    this.finished.clear();
    this.beforePass(now);
    if (this.req.cancelPending > 0) this.dropCancelled();
    return this.formPass(now);
  }

  /** Data-parallel rank: its pass ends at `end`, the slowest rank's end. */
  finishRankPass(now: number, end: number): void {
    this.emitPass(now, end);
  }

  /** Marks the engine idle after its pass or run ended (the owner calls this at `busyUntil`). */
  endPass(): void {
    this.busyUntil = Number.NaN;
    this.runSteps = 0;
    this.runApplied = 0;
    this.runEvicts = false;
  }

  /** Counts a plain pass [now, end) and records it for the forward-pass metrics if it did anything. */
  protected recordPass(
    now: number,
    end: number,
    prefillRequests: number,
    prefillTokens: number,
    decodeRequests: number,
    decodeContext: number,
    prefillCachedTokens = 0,
  ): void {
    this.passes++;
    this.busyMs += end - now;
    if (this.progressed)
      this.history.record(
        now,
        end,
        prefillRequests,
        prefillTokens,
        decodeRequests,
        decodeContext,
        prefillCachedTokens,
      );
  }

  /** Request r can never run here: it leaves the head of waiting, rejected. */
  protected reject(r: number, reason: string): void {
    this.waiting.popFront();
    this.req.status[r] = RequestStatus.Rejected;
    this.collector.onReject(r, reason);
    this.finished.pushBack(r);
    this.progressed = true;
  }

  /** Completes r (its last token, if any, was stamped at t; NaN = the current pass's end). */
  protected complete(r: number, t: number): void {
    this.releaseKv(r);
    this.req.status[r] = RequestStatus.Done;
    this.collector.onComplete(r, t);
    this.finished.pushBack(r);
  }

  /**
   * Its scheduling point: requests cancelled by their clients leave the queues and the running set, their KV
   * released (blocks already computed stay cached). True when any left (listed in `finished`).
   */
  private dropCancelled(): boolean {
    // A prefill worker hands its requests on: a cancelled one is dropped where its hand-off lands.
    if (this.role === 'prefill') return false;
    const req = this.req;
    let dropped = false;
    for (let i = 0; i < this.waiting.length; ) {
      const r = this.waiting.get(i);
      if (req.cancelled[r] === 0) {
        i++;
        continue;
      }
      this.waiting.removeAt(i);
      this.dropWaiting(r);
      this.dropped(r);
      dropped = true;
    }
    let w = 0;
    for (let k = 0; k < this.runLen; k++) {
      const r = this.running[k];
      if (req.cancelled[r] === 0) {
        this.running[w++] = r;
        continue;
      }
      this.releaseKv(r);
      this.dropped(r);
      dropped = true;
    }
    this.runLen = w;
    return this.dropOtherCancelled() || dropped;
  }

  private dropped(r: number): void {
    this.req.status[r] = RequestStatus.Cancelled;
    this.finished.pushBack(r);
  }

  /** A cancelled request leaves `waiting`: releases what it holds there (reserved KV, counters). */
  protected dropWaiting(r: number): void {
    if (this.req.allocBlocks[r] > 0) this.releaseKv(r);
  }

  /** Cancelled requests in an engine's own queues (beyond waiting and running) leave them; true if any. */
  protected dropOtherCancelled(): boolean {
    return false;
  }

  // ---------------------------------------------------------------------------------------------------------
  // Coalesced decode runs.

  /** runEnds with room for a run of `steps` passes. */
  protected runEndsFor(steps: number): Float64Array {
    if (this.runEnds.length < steps + 1) {
      let cap = this.runEnds.length;
      while (cap < steps + 1) cap *= 2;
      this.runEnds = new Float64Array(cap);
    }
    return this.runEnds;
  }

  /**
   * Per step j = 1..steps of a run, the running requests whose token at that step starts a new block: step j
   * computes token c+j-1 of a request with c tokens computed, so it takes a block at steps j0, j0+bs, ...
   */
  protected countStepBlocks(steps: number): Int32Array {
    if (this.stepBlockCounts.length < steps + 1) {
      let cap = this.stepBlockCounts.length;
      while (cap < steps + 1) cap *= 2;
      this.stepBlockCounts = new Int32Array(cap);
    } else this.stepBlockCounts.fill(0, 0, steps + 1);
    const counts = this.stepBlockCounts;
    const bs = this.config.blockSize;
    const computed = this.req.computed;
    for (let k = 0; k < this.runLen; k++) {
      const c = computed[this.running[k]];
      let j = (((1 - c) % bs) + bs) % bs;
      if (j === 0) j = bs;
      for (; j <= steps; j += bs) counts[j]++;
    }
    return counts;
  }

  /** Commits a planned run of `steps` passes from `now` (their ends already in runEnds[1..steps]). */
  protected beginRun(now: number, steps: number, evicts: boolean, context: number): void {
    this.runEnds[0] = now;
    this.runSteps = steps;
    this.runApplied = 0;
    this.runEvicts = evicts;
    this.runContext = context;
    this.busyUntil = this.runEnds[steps];
    this.coalescedRuns++;
  }

  /**
   * Applies the planned passes of the current run that started before `t`. When that is not all of them, the
   * run is cut after the last applied pass, whose end becomes `busyUntil`. Returns `busyUntil`.
   */
  materialize(t: number): number {
    if (this.runSteps <= this.runApplied) return this.busyUntil;
    let upTo = this.runApplied;
    while (upTo < this.runSteps && this.runEnds[upTo] < t) upTo++;
    if (upTo > this.runApplied) this.applyRunSteps(upTo);
    if (upTo < this.runSteps) {
      this.runSteps = upTo;
      this.busyUntil = this.runEnds[upTo];
    }
    return this.busyUntil;
  }

  /** Applies passes runApplied+1 .. upTo of the planned run, exactly as plain passes would. */
  private applyRunSteps(upTo: number): void {
    const req = this.req;
    const from = this.runApplied;
    const n = this.runLen;
    const running = this.running;
    const ends = this.runEnds;
    const col = this.collector;
    const m = upTo - from;
    this.applyRunKv(from, upTo);
    // Tokens: the first applied step's gap differs per request; later gaps are shared by all n requests.
    const firstEnd = ends[from + 1];
    const lastEnd = ends[upTo];
    const observe = col.tokenObserver;
    if (observe !== null) {
      // Every token of the run, at its own pass end, for live observers.
      for (let k = 0; k < n; k++) {
        const r = running[k];
        const before = col.tokens[r];
        for (let j = from + 1; j <= upTo; j++) observe(r, before + j - from, ends[j]);
      }
    }
    // Gaps of warm-up requests are not pooled (Collector.measureFromMs): a shared gap weighs the measured ones.
    const measureFrom = col.measureFromMs;
    let measured = 0;
    for (let k = 0; k < n; k++) {
      const r = running[k];
      if (col.arrivalMs[r] >= measureFrom) {
        col.addGap(firstEnd - col.lastTokenMs[r], 1);
        measured++;
      }
      if (col.tokens[r] === 1) col.secondTokenMs[r] = firstEnd;
      col.tokens[r] += m;
      col.lastTokenMs[r] = lastEnd;
      req.generated[r] += m;
    }
    if (measured > 0) for (let j = from + 2; j <= upTo; j++) col.addGap(ends[j] - ends[j - 1], measured);
    this.passes += m;
    this.busyMs += lastEnd - ends[from];
    this.runApplied = upTo;
    // Pass records as stepping would leave them: step j decodes n requests over context + n (j - 1) tokens.
    if (m >= 2) {
      this.history.overwriteLatest(ends[upTo - 2], ends[upTo - 1], n, this.runContext + n * (upTo - 2));
    }
    this.history.record(ends[upTo - 1], lastEnd, 0, 0, n, this.runContext + n * (upTo - 1));
    // Completions happen only in the run's final pass.
    if (upTo === this.runSteps) {
      const done = this.runDone;
      let doneLen = 0;
      let w = 0;
      for (let k = 0; k < n; k++) {
        const r = running[k];
        if (req.generated[r] >= this.outputLimit(r)) done[doneLen++] = r;
        else running[w++] = r;
      }
      this.runLen = w;
      for (let i = 0; i < doneLen; i++) this.complete(done[i], lastEnd);
    }
  }

  // ---------------------------------------------------------------------------------------------------------
  // Disaggregated serving: the hand-off lifecycle (source holds, destination reserves, KV arrives, source
  // releases). The KV side is the engine's.

  /**
   * Prefill role: r's prompt is computed and its (hidden) first token sampled: it leaves with its KV held
   * here, and the request table follows it to its decode worker.
   */
  protected holdForHandoff(r: number): void {
    const req = this.req;
    this.holdKv(r);
    req.allocBlocks[r] = 0;
    req.computed[r] = 0;
    req.status[r] = RequestStatus.Transferring;
    this.firstTokens.pushBack(r);
    this.finished.pushBack(r);
  }

  /**
   * Decode role: reserves KV for r's transferred prompt, reusing its cached prefix here (all or nothing).
   * Evictions it makes are visible at once.
   */
  reserveDestination(r: number, now: number): boolean {
    const logStart = this.kvEvents?.length ?? 0;
    const hitTokens = this.reserveKv(r);
    if (this.kvEvents !== null) this.kvEvents.stamp(logStart, now);
    if (hitTokens < 0) return false;
    this.lastReservedHitTokens = hitTokens;
    return true;
  }

  /** Decode role: r's transferred KV arrived; it queues to decode here (cache changes visible at once). */
  activate(r: number, now: number): void {
    const req = this.req;
    const logStart = this.kvEvents?.length ?? 0;
    req.generated[r] = 0;
    req.remote[r] = 1;
    this.installTransferredKv(r);
    if (this.kvEvents !== null) this.kvEvents.stamp(logStart, now);
    req.status[r] = RequestStatus.Waiting;
    req.engine[r] = this.index;
    this.queueTransferred(r);
  }
}
