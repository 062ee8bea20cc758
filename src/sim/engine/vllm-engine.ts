import { BlockPool } from '../kv/block-pool.ts';
import { type OffloadConfig, OffloadTiers } from '../kv/offload.ts';
import type { Collector } from '../metrics/collector.ts';
import { emptyPassShape, type PassShape, resetPassShape, type TimingModel } from '../timing/timing-model.ts';
import { type Engine, type EngineRole, ns } from './engine.ts';
import { IntDeque } from './int-deque.ts';
import { KvEventLog } from './kv-event-log.ts';
import { type ForwardPassSnapshot, PassHistory } from './pass-metrics.ts';
import { RequestStatus, type RequestTable } from './request-table.ts';

export interface VllmEngineConfig {
  kind?: 'vllm';
  /** KV capacity in blocks. */
  numGpuBlocks: number;
  /** Tokens per KV block. */
  blockSize: number;
  /** Cap on concurrently running requests. */
  maxNumSeqs: number;
  /** Token budget of one forward pass. */
  maxNumBatchedTokens: number;
  enableChunkedPrefill: boolean;
  enablePrefixCaching: boolean;
  /** Every modelled duration is divided by this (> 0). */
  speedupRatio: number;
  /**
   * Fast paths: runs of identical decode passes coalesced into one event, and decode steps within a held
   * block scheduled in place. Same results either way (tests run both); off = every step on the plain path.
   */
  coalesceDecode: boolean;
  /** Lower KV tiers (host memory, disk); absent = blocks evicted from the GPU are lost. */
  offload?: OffloadConfig;
}

const SCHEDULED = 0;
const BLOCKED = 1;
const CURRENT_PREEMPTED = 2;

/**
 * One vLLM-style engine (one data-parallel rank).
 *
 * A pass at time `now`: running requests are scheduled first, in order, each taking up to the remaining token
 * budget (chunked prefill); then, unless the pass preempted, waiting requests are admitted in FIFO order while
 * slots and KV capacity allow (only cache hits on blocks in use are discounted). When a running request needs a
 * KV block and none is free or evictable, the newest running request is preempted by recompute. Blocks whose
 * tokens are all computed enter the prefix cache at once (visible to later requests of the same pass);
 * releases go last block first, so suffixes age before shared prefixes. Every request whose tokens are all
 * computed samples one token, stamped at the pass end; the decode part of the pass is priced over the requests
 * that had sampled before (a prefill's first token comes out of its prefill).
 *
 * Passes are eager: `startPass` mutates the state at the pass start and returns the end time. Requests whose
 * first token or completion happened in the pass are listed in `firstTokens` / `finished` for the owner to act
 * on at the pass end.
 *
 * Coalesced decode: when every running request is decoding and nothing can be admitted, consecutive passes
 * differ only by one token per request, so `startPass` plans a whole run of them (up to the first completion)
 * without touching request state, and `materialize(t)` applies the planned passes that started before t,
 * cutting the run short when the owner needs this engine at t. Results are identical to stepping every pass.
 */
export class VllmEngine implements Engine {
  readonly pool: BlockPool;
  private readonly running: Int32Array;
  private runLen = 0;
  readonly waiting = new IntDeque();
  private readonly shape: PassShape = emptyPassShape();
  private readonly scratchSlots: Int32Array;
  private readonly promptKeySpace: number;
  private passId = 0;
  private preemptedInPass = false;
  private budget = 0;
  /** Whether the last pass changed anything (scheduled, admitted, rejected or preempted). */
  progressed = false;

  /** Requests that got their first token in the last pass, and requests that completed or were rejected. */
  readonly firstTokens = new IntDeque();
  readonly finished = new IntDeque();
  /** Prefix-cache changes of prompt blocks, stamped with the end of the pass that made them (null if unused). */
  readonly kvEvents: KvEventLog | null;

  // Planned coalesced run (inactive when runSteps === runApplied).
  private runSteps = 0;
  private runApplied = 0;
  private runEnds = new Float64Array(256);
  private runEvicts = false;
  private stepBlockCounts = new Int32Array(256);
  private runContext = 0; // its summed context at the first step

  /** Its latest passes (forward-pass metrics for the planner). */
  readonly history: PassHistory;

  /** Lower KV tiers and the requests parked while their lower-tier prefix is onboarded. */
  readonly offload: OffloadTiers | null;
  private parked = 0;
  private readonly onboarding = new Map<number, { start: number; lower: number; hits: number }>();
  /** Onboarding delays (ms) and lower-tier hit blocks, for the report. */
  readonly onboardMs: number[] = [];
  tierHitBlocks = [0, 0, 0, 0]; // index 2 = host, 3 = disk

  /** Time the current pass or run ends (NaN when idle). */
  busyUntil = Number.NaN;
  passes = 0;
  busyMs = 0;
  preemptions = 0;
  coalescedRuns = 0;
  /** Tokens scheduled for requests whose work in a pass included prompt tokens (reference parity). */
  committedPrefillTokens = 0;

  readonly index: number;
  readonly role: EngineRole;
  readonly gpus: number;
  readonly config: VllmEngineConfig;
  private readonly timing: TimingModel;
  private readonly req: RequestTable;
  private readonly collector: Collector;

  constructor(
    index: number,
    config: VllmEngineConfig,
    timing: TimingModel,
    req: RequestTable,
    collector: Collector,
    logKvEvents = false,
    role: EngineRole = 'aggregated',
    gpus = 1,
  ) {
    this.index = index;
    this.role = role;
    this.gpus = gpus;
    this.config = config;
    this.timing = timing;
    this.req = req;
    this.history = new PassHistory(this.waiting, req);
    this.collector = collector;
    this.pool = new BlockPool(config.numGpuBlocks, req.layout.keySpace);
    this.running = new Int32Array(Math.max(1, Math.min(config.maxNumSeqs, req.size)) + 1);
    this.shape.kvCapacityTokens = config.numGpuBlocks * config.blockSize;
    this.promptKeySpace = req.layout.promptKeySpace;
    let maxBlocks = 1;
    for (let r = 0; r < req.size; r++) {
      const b = Math.ceil((req.promptLen[r] + req.outputLen[r]) / config.blockSize);
      if (b > maxBlocks) maxBlocks = b;
    }
    this.scratchSlots = new Int32Array(maxBlocks + 1);
    this.kvEvents = logKvEvents ? new KvEventLog() : null;
    this.offload = config.offload && config.offload.g2Blocks > 0 ? new OffloadTiers(config.offload) : null;
    const log = this.kvEvents;
    const tiers = this.offload;
    const space = this.promptKeySpace;
    if (log !== null || tiers !== null) {
      this.pool.onKeyEvent = (key, stored) => {
        if (log !== null && key < space) log.push(key, stored);
        // Write-through stores prompt blocks when computed; on-evict writes back what the GPU drops.
        if (tiers !== null && (tiers.writeThrough ? stored && key < space : !stored)) tiers.offload(key);
      };
    }
  }

  get evictions(): number {
    return this.pool.evictions;
  }

  /** Tokens r generates here: a prefill worker stops after the one its prefill samples. */
  private outputLimit(r: number): number {
    return this.role === 'prefill' ? 1 : this.req.outputLen[r];
  }

  get runningCount(): number {
    return this.runLen;
  }
  get waitingCount(): number {
    return this.waiting.length;
  }
  get isIdle(): boolean {
    return Number.isNaN(this.busyUntil);
  }
  hasWork(): boolean {
    return this.runLen > 0 || this.waiting.length > 0 || this.parked > 0;
  }
  /** True while a planned run has passes that are not applied yet. */
  get hasPendingRun(): boolean {
    return this.runSteps > this.runApplied;
  }
  /** True while a planned run will evict cached blocks (which changes what a KV-aware router sees). */
  get pendingRunEvicts(): boolean {
    return this.runEvicts && this.runSteps > this.runApplied;
  }
  runningIds(): number[] {
    return Array.from(this.running.subarray(0, this.runLen));
  }

  /** Queues a newly routed request. */
  enqueue(r: number): void {
    this.req.status[r] = RequestStatus.Waiting;
    this.req.engine[r] = this.index;
    this.waiting.pushBack(r);
  }

  /**
   * Starts the next pass at `now` (the engine must be idle and have work) and returns its end time. `horizon`
   * is the next time something outside may look at this engine; a run is planned no further than the pass
   * straddling it when it evicts blocks or when the horizon is finite for every run (`horizonAlways`).
   */
  startPass(now: number, horizon: number, horizonAlways = false): number {
    this.firstTokens.clear();
    this.finished.clear();
    if (this.parked > 0) this.promoteOnboarded(now);
    if (this.config.coalesceDecode && this.planRun(now, horizon, horizonAlways)) {
      this.progressed = true;
      return this.busyUntil;
    }
    let end = this.runPlainPass(now);
    if (!this.progressed && this.parked > 0) {
      // Nothing to run until an onboard lands: wake up then (not a forward pass).
      this.passes--;
      end = Math.max(now, (this.offload as OffloadTiers).nextCompletion());
      this.progressed = true;
    }
    this.busyUntil = end;
    return end;
  }

  /** Marks the engine idle after its pass or run ended (the owner calls this at `busyUntil`). */
  endPass(): void {
    this.busyUntil = Number.NaN;
    this.runSteps = 0;
    this.runApplied = 0;
    this.runEvicts = false;
  }

  // ---------------------------------------------------------------------------------------------------------
  // Plain pass

  private runPlainPass(now: number): number {
    const req = this.req;
    const cfg = this.config;
    const bs = cfg.blockSize;
    const shape = this.shape;
    resetPassShape(shape);
    this.passId++;
    this.preemptedInPass = false;
    this.progressed = false;
    this.budget = cfg.maxNumBatchedTokens;
    const logStart = this.kvEvents?.length ?? 0;

    // 1. Running requests first, in order.
    let i = 0;
    while (i < this.runLen && this.budget > 0) {
      const r = this.running[i];
      if (this.decodeInPlace(r)) {
        i++;
        continue;
      }
      const outcome = this.schedule(r, false, 0, 0, now);
      if (outcome === SCHEDULED) i++;
      else if (outcome === BLOCKED) break;
      // CURRENT_PREEMPTED: the request left `running`; index i now holds the next one.
    }

    // 2. Admissions from waiting, unless this pass preempted. Requests whose KV is already here (transferred
    // prompts) go first: they need no capacity, and holding them back behind a request that waits for
    // capacity they hold would deadlock.
    if (this.reservedWaiting > 0) this.admitReserved(now);
    while (!this.preemptedInPass && this.runLen < cfg.maxNumSeqs && this.waiting.length > 0) {
      const r = this.waiting.front();
      const reason = this.rejection(r);
      if (reason !== null) {
        this.waiting.popFront();
        req.status[r] = RequestStatus.Rejected;
        this.collector.onReject(r, reason);
        this.finished.pushBack(r);
        this.progressed = true;
        continue;
      }
      this.prefixCost(r);
      const needed = Math.ceil(req.seqLen(r) / bs) - this.activeHitBlocks;
      if (needed > cfg.numGpuBlocks - this.pool.activeBlocks) break; // wait for capacity
      if (this.offload !== null) {
        const parked = this.tryPark(r, now);
        if (parked === 1) continue;
        if (parked === -1) break;
      }
      const budgetBefore = this.budget;
      const outcome = this.schedule(r, true, this.hitBlocks, this.hitTokens, now);
      if (outcome !== SCHEDULED) break;
      if (budgetBefore === this.budget && this.budget === 0) break;
    }

    const ratio = cfg.speedupRatio;
    const prefillMs = shape.prefillRequests > 0 ? ns(this.timing.prefillMs(shape) / ratio) : 0;

    // 3. Emission. Requests already at their output length are released without a token (zero-output
    // requests end here); every other request with all tokens computed samples one.
    if (this.role === 'prefill') return this.endPrefillPass(now, prefillMs, logStart);
    let decodeCount = 0;
    let decodeContext = 0;
    let w = 0;
    for (let k = 0; k < this.runLen; k++) {
      const r = this.running[k];
      if (req.computed[r] === req.seqLen(r) && req.generated[r] >= req.outputLen[r]) {
        this.complete(r, Number.NaN);
        continue;
      }
      this.running[w++] = r;
      // Priced as decode: requests past their first token, and transferred prompts (their first token is a
      // decode step on this worker).
      if (req.computed[r] === req.seqLen(r) && (req.generated[r] > 0 || req.remote[r] === 1)) {
        decodeCount++;
        decodeContext += req.seqLen(r);
      }
    }
    this.runLen = w;
    let decodeMs = 0;
    if (decodeCount > 0) {
      shape.decodeRequests = decodeCount;
      shape.decodeContextTokens = decodeContext;
      shape.activeKvTokens = this.pool.activeBlocks * bs;
      decodeMs = ns(this.timing.decodeMs(shape) / ratio);
    }
    const end = now + prefillMs + decodeMs;
    w = 0;
    for (let k = 0; k < this.runLen; k++) {
      const r = this.running[k];
      if (req.computed[r] === req.seqLen(r)) {
        const g = ++req.generated[r];
        this.collector.onToken(r, end);
        if (g === 1) this.firstTokens.pushBack(r);
        if (g >= req.outputLen[r]) {
          this.complete(r, end);
          continue;
        }
      }
      this.running[w++] = r;
    }
    this.runLen = w;
    // Terminal times of zero-output completions and rejections are this pass's end.
    for (let k = 0; k < this.finished.length; k++) {
      const r = this.finished.get(k);
      if (Number.isNaN(this.collector.terminalMs[r])) this.collector.terminalMs[r] = end;
    }
    if (this.kvEvents !== null) this.kvEvents.stamp(logStart, end);
    this.passes++;
    this.busyMs += end - now;
    if (this.progressed)
      this.history.record(
        now,
        end,
        shape.prefillRequests,
        shape.prefillNewTokens,
        decodeCount,
        decodeContext,
        shape.prefillCachedTokens,
      );
    return end;
  }

  /**
   * Forward-pass metrics at time t (the engine must be brought up to date to t): the last pass that ended by
   * t, with the queue it left waiting (recorded only while `trackQueue` is set).
   */
  snapshot(t: number, out: ForwardPassSnapshot): void {
    out.engine = this.index;
    this.history.writeAt(t, out);
  }

  /**
   * Emission on a prefill worker: a request whose prompt is computed samples its (hidden) first token in the
   * prefill pass itself, at no decode cost, and leaves the running set with its KV held for the handoff.
   */
  private endPrefillPass(now: number, prefillMs: number, logStart: number): number {
    const req = this.req;
    const end = now + prefillMs;
    let w = 0;
    for (let k = 0; k < this.runLen; k++) {
      const r = this.running[k];
      if (req.computed[r] === req.seqLen(r)) {
        this.hold(r);
        this.firstTokens.pushBack(r);
        this.finished.pushBack(r);
        continue;
      }
      this.running[w++] = r;
    }
    this.runLen = w;
    if (this.kvEvents !== null) this.kvEvents.stamp(logStart, end);
    this.passes++;
    this.busyMs += end - now;
    if (this.progressed)
      this.history.record(
        now,
        end,
        this.shape.prefillRequests,
        this.shape.prefillNewTokens,
        0,
        0,
        this.shape.prefillCachedTokens,
      );
    return end;
  }

  /** KV blocks referenced (by requests, holds for handoffs or reservations): 0 once a drained engine is empty. */
  get activeBlocks(): number {
    return this.pool.activeBlocks;
  }

  private readonly held = new Map<number, Int32Array>();

  /** Keeps r's blocks (in use) after its prefill, until `releaseHeld`; frees its slot list for the decode side. */
  private hold(r: number): void {
    const req = this.req;
    const off = req.slotOffset[r];
    this.held.set(r, req.slots.slice(off, off + req.allocBlocks[r]));
    req.allocBlocks[r] = 0;
    req.computed[r] = 0;
    req.status[r] = RequestStatus.Transferring;
  }

  releaseHeld(r: number): void {
    const slots = this.held.get(r);
    if (!slots) return;
    this.held.delete(r);
    for (let j = slots.length - 1; j >= 0; j--) this.pool.release(slots[j]);
  }

  /** Tokens of the prompt found cached at the last successful reservation. */
  lastReservedHitTokens = 0;

  /**
   * Reserves blocks for r's transferred prompt: cached prefix blocks are reused, the rest allocated (all or
   * nothing). The blocks hold KV once the transfer completes (`activate`).
   */
  reserveDestination(r: number, now: number): boolean {
    const req = this.req;
    const logStart = this.kvEvents?.length ?? 0;
    const bs = this.config.blockSize;
    const promptLen = req.promptLen[r];
    // Reuse cached prompt blocks; the last prompt token is recomputed here, so never reuse past it.
    let hits = 0;
    if (this.config.enablePrefixCaching) {
      const limit = Math.floor((promptLen - 1) / bs);
      for (; hits < limit; hits++) {
        const slot = this.pool.slotOf(req.blockKey(r, hits));
        if (slot < 0) break;
        this.scratchSlots[hits] = slot;
      }
    }
    req.allocBlocks[r] = 0;
    const ok = this.allocateUpTo(r, promptLen, hits);
    if (this.kvEvents !== null) this.kvEvents.stamp(logStart, now); // evictions are visible at once
    if (!ok) return false;
    this.lastReservedHitTokens = hits * bs;
    return true;
  }

  /** r's transferred KV arrived: its prompt but the last token counts as computed; it queues to decode. */
  activate(r: number, now: number): void {
    const req = this.req;
    req.computed[r] = req.promptLen[r] - 1;
    req.generated[r] = 0;
    req.remote[r] = 1;
    const logStart = this.kvEvents?.length ?? 0;
    this.finalize(r, 0, req.computed[r]);
    if (this.kvEvents !== null) this.kvEvents.stamp(logStart, now);
    req.status[r] = RequestStatus.Waiting;
    req.engine[r] = this.index;
    this.waiting.pushBack(r);
    this.reservedWaiting++;
  }

  /**
   * If r's prefix continues in a lower tier past its GPU hits, reserves GPU blocks for those blocks, pins the GPU
   * hits, starts the onboard and parks r off the queue. 1 = parked, 0 = nothing to onboard, -1 = no room.
   */
  private tryPark(r: number, now: number): number {
    const req = this.req;
    const bs = this.config.blockSize;
    const tiers = this.offload as OffloadTiers;
    const hits = this.hitBlocks;
    const limit = Math.floor((req.seqLen(r) - 1) / bs);
    if (tiers.writeThrough) for (let k = 0; k < hits; k++) tiers.touch(req.blockKey(r, k));
    let g2 = 0;
    let g3 = 0;
    for (let k = hits; k < limit; k++) {
      const tier = tiers.tierOf(req.blockKey(r, k));
      if (tier === 2) g2++;
      else if (tier === 3) g3++;
      else break;
    }
    const lower = g2 + g3;
    if (lower === 0) return 0;
    if (!this.allocateUpTo(r, (hits + lower) * bs, hits)) return -1;
    this.waiting.popFront();
    req.status[r] = RequestStatus.Waiting;
    this.parked++;
    this.onboarding.set(r, { start: now, lower, hits });
    tiers.onboard(r, g2, g3, now);
    this.tierHitBlocks[2] += g2;
    this.tierHitBlocks[3] += g3;
    this.progressed = true;
    return 1;
  }

  /**
   * Onboards that finished by `now`: their blocks join the GPU cache (newest in LRU) and the requests go back
   * to the front of the queue, in completion order, to be admitted with those blocks as hits.
   */
  private promoteOnboarded(now: number): void {
    const req = this.req;
    const done = (this.offload as OffloadTiers).completeUpTo(now);
    for (const r of done) {
      const o = this.onboarding.get(r);
      if (!o) continue;
      this.onboarding.delete(r);
      this.onboardMs.push(now - o.start);
      const off = req.slotOffset[r];
      for (let k = o.hits; k < o.hits + o.lower; k++) {
        const slot = req.slots[off + k];
        if (this.pool.keyOfSlot(slot) < 0) this.pool.cache(slot, req.blockKey(r, k));
      }
      this.releaseBlocks(r);
      this.parked--;
    }
    for (let i = done.length - 1; i >= 0; i--) this.waiting.pushFront(done[i]);
  }

  /** Transferred requests in `waiting` (their KV is reserved here). */
  private reservedWaiting = 0;

  /** Admits waiting requests whose KV is already reserved here, in queue order. */
  private admitReserved(now: number): void {
    const req = this.req;
    for (
      let i = 0;
      i < this.waiting.length && this.runLen < this.config.maxNumSeqs && !this.preemptedInPass;
    ) {
      const r = this.waiting.get(i);
      if (req.allocBlocks[r] === 0) {
        i++;
        continue;
      }
      this.waiting.removeAt(i);
      this.waiting.pushFront(r); // schedule() admits from the front
      this.reservedWaiting--;
      if (this.schedule(r, true, 0, 0, now) !== SCHEDULED) {
        this.reservedWaiting++;
        break;
      }
    }
  }

  /** Why request r (at the head of waiting) can never run here, or null. */
  private rejection(r: number): string | null {
    const req = this.req;
    const cfg = this.config;
    const bs = cfg.blockSize;
    const fresh = req.preemptions[r] === 0;
    if (fresh && Math.ceil(req.seqLen(r) / bs) > cfg.numGpuBlocks) return 'prompt larger than the KV cache';
    // The reference aborts the whole replay on these; a request that can never finish is rejected instead.
    if (Math.ceil((req.promptLen[r] + this.outputLimit(r) - 1) / bs) > cfg.numGpuBlocks) {
      return 'prompt plus output larger than the KV cache';
    }
    if (!cfg.enableChunkedPrefill && req.promptLen[r] > cfg.maxNumBatchedTokens) {
      return 'prompt longer than max_num_batched_tokens without chunked prefill';
    }
    return null;
  }

  // Results of the last prefixCost() call.
  private hitBlocks = 0;
  private hitTokens = 0;
  private activeHitBlocks = 0;

  /**
   * Prefix-cache lookup for an admission: leading blocks of r's sequence present in the cache (their primary
   * copies are left in scratchSlots), how many of those are in use, and the reusable tokens. The last token is
   * always recomputed, so a fully cached sequence reuses one block less.
   */
  private prefixCost(r: number): number {
    const req = this.req;
    const bs = this.config.blockSize;
    const len = req.seqLen(r);
    let overlap = 0;
    let active = 0;
    if (this.config.enablePrefixCaching) {
      const full = Math.floor(len / bs);
      for (; overlap < full; overlap++) {
        const slot = this.pool.slotOf(req.blockKey(r, overlap));
        if (slot < 0) break;
        this.scratchSlots[overlap] = slot;
        if (this.pool.refOf(slot) > 0) active++;
      }
    }
    let cached = Math.min(overlap * bs, len);
    let activeTokens = Math.min(active * bs, len);
    if (req.generated[r] < this.outputLimit(r)) {
      const max = Math.floor((len - 1) / bs) * bs;
      if (cached > max) {
        cached = max;
        activeTokens = Math.min(activeTokens, max);
      }
    }
    this.hitTokens = cached;
    this.hitBlocks = cached / bs;
    this.activeHitBlocks = Math.floor(activeTokens / bs);
    return cached;
  }

  /**
   * Schedules up to the remaining budget of r's uncomputed tokens. KV for them is allocated first (pinning
   * `hitBlocks` prefix hits for an admission); when it runs out, the newest running request is preempted and
   * the allocation retried.
   */
  private schedule(r: number, fromWaiting: boolean, hitBlocks: number, cached: number, now: number): number {
    const req = this.req;
    const before = req.computed[r] + cached;
    const seqLen = req.seqLen(r);
    const promptLen = req.promptLen[r];
    const remaining = seqLen - before;
    const promptBefore = Math.min(before, promptLen);
    const promptRemaining = promptLen - promptBefore;
    if (promptRemaining > 0 && !this.config.enableChunkedPrefill && promptRemaining > this.budget)
      return BLOCKED;
    const desired = Math.min(remaining, this.budget);
    if (desired === 0 && remaining > 0) return BLOCKED;
    let target = before + desired;

    for (;;) {
      if (this.allocateUpTo(r, target, hitBlocks)) break;
      if (this.runLen === 0) {
        target = before;
        break;
      }
      const victim = this.running[this.runLen - 1];
      this.preempt(victim);
      if (victim === r) return CURRENT_PREEMPTED;
    }
    const used = target - before;
    if (used === 0 && target < seqLen) return BLOCKED;
    req.computed[r] = target;
    this.progressed = true;
    this.finalize(r, before, target);

    // A transferred prompt's last token is computed here as a decode step, not as prefill work.
    const promptTokens =
      req.remote[r] === 1 && before === promptLen - 1 ? 0 : Math.min(target, promptLen) - promptBefore;
    req.passStamp[r] = this.passId;
    req.passTokens[r] = used;
    req.passPromptTokens[r] = promptTokens;
    req.passPromptBefore[r] = promptBefore;
    if (promptTokens > 0) {
      const s = this.shape;
      s.prefillRequests++;
      s.prefillNewTokens += promptTokens;
      s.prefillCachedTokens += promptBefore;
      s.prefillAttentionPairs += promptTokens * promptBefore + (promptTokens * (promptTokens + 1)) / 2;
      this.committedPrefillTokens += used;
    }
    if (fromWaiting) {
      this.waiting.popFront();
      req.status[r] = RequestStatus.Running;
      this.running[this.runLen++] = r;
      this.collector.onAdmit(r, now, cached);
    }
    this.budget -= used;
    return SCHEDULED;
  }

  /**
   * `schedule` for the commonest case, a running request's decode token whose block it already holds: the
   * same bookkeeping without the general path (no allocation, no preemption, no prefill). False when r is
   * not in that case; `schedule` then handles it. Off with the other fast paths
   * (`coalesceDecode: false`), which every equivalence test compares against.
   */
  private decodeInPlace(r: number): boolean {
    if (!this.config.coalesceDecode) return false;
    const req = this.req;
    const before = req.computed[r];
    const promptLen = req.promptLen[r];
    const seqLen = promptLen + req.generated[r];
    if (before !== seqLen - 1 || before < promptLen) return false;
    const bs = this.config.blockSize;
    if (Math.ceil(seqLen / bs) > req.allocBlocks[r]) return false;
    req.computed[r] = seqLen;
    this.progressed = true;
    if (seqLen % bs === 0) this.finalize(r, before, seqLen);
    req.passStamp[r] = this.passId;
    req.passTokens[r] = 1;
    req.passPromptTokens[r] = 0;
    req.passPromptBefore[r] = promptLen;
    this.budget -= 1;
    return true;
  }

  /**
   * Makes r hold blocks for `target` tokens: the first `hitBlocks` positions reuse the cached copies in
   * scratchSlots (admissions only), the rest are fresh copies, evicting inactive copies when nothing is free.
   * All or nothing: false when free plus evictable copies fall short.
   */
  private allocateUpTo(r: number, target: number, hitBlocks: number): boolean {
    const req = this.req;
    const pool = this.pool;
    const held = req.allocBlocks[r];
    const want = Math.ceil(target / this.config.blockSize);
    if (want <= held) return true;
    const hits = Math.max(0, hitBlocks - held);
    const fresh = want - held - hits;
    let inactiveHits = 0;
    for (let j = held; j < held + hits; j++) if (pool.refOf(this.scratchSlots[j]) === 0) inactiveHits++;
    if (fresh > pool.freeBlocks + pool.inactiveBlocks - inactiveHits) return false;
    const off = req.slotOffset[r];
    for (let j = held; j < held + hits; j++) {
      const slot = this.scratchSlots[j];
      pool.pin(slot);
      req.slots[off + j] = slot;
    }
    for (let j = held + hits; j < want; j++) req.slots[off + j] = pool.allocate();
    req.allocBlocks[r] = want;
    return true;
  }

  /** Blocks fully computed by the tokens [before, after) enter the prefix cache. */
  private finalize(r: number, before: number, after: number): void {
    const req = this.req;
    const bs = this.config.blockSize;
    const last = Math.min(Math.floor(after / bs), req.allocBlocks[r]);
    const off = req.slotOffset[r];
    for (let k = Math.floor(before / bs); k < last; k++) {
      const slot = req.slots[off + k];
      if (this.pool.keyOfSlot(slot) < 0) this.pool.cache(slot, req.blockKey(r, k));
    }
  }

  /** Preempts running request r by recompute: frees its KV and requeues it at the front of waiting. */
  private preempt(r: number): void {
    const req = this.req;
    let idx = this.runLen - 1;
    while (idx >= 0 && this.running[idx] !== r) idx--;
    for (let k = idx; k < this.runLen - 1; k++) this.running[k] = this.running[k + 1];
    this.runLen--;
    this.releaseBlocks(r);
    if (req.passStamp[r] === this.passId) {
      // Undo the work already scheduled for the victim in this pass.
      this.budget += req.passTokens[r];
      const pt = req.passPromptTokens[r];
      if (pt > 0) {
        const s = this.shape;
        const pb = req.passPromptBefore[r];
        s.prefillRequests--;
        s.prefillNewTokens -= pt;
        s.prefillCachedTokens -= pb;
        s.prefillAttentionPairs -= pt * pb + (pt * (pt + 1)) / 2;
        this.committedPrefillTokens -= req.passTokens[r];
      }
      req.passStamp[r] = -1;
    }
    req.computed[r] = 0;
    req.preemptions[r]++;
    req.status[r] = RequestStatus.Waiting;
    this.waiting.pushFront(r);
    this.preemptedInPass = true;
    this.progressed = true;
    this.preemptions++;
  }

  /** Releases r's blocks last-first: private copies are freed, cached ones age into the LRU. */
  private releaseBlocks(r: number): void {
    const req = this.req;
    const off = req.slotOffset[r];
    for (let j = req.allocBlocks[r] - 1; j >= 0; j--) this.pool.release(req.slots[off + j]);
    req.allocBlocks[r] = 0;
  }

  /** Completes r (its last token, if any, was stamped at t; NaN = the current pass's end). */
  private complete(r: number, t: number): void {
    this.releaseBlocks(r);
    this.req.status[r] = RequestStatus.Done;
    this.collector.onComplete(r, t);
    this.finished.pushBack(r);
  }

  // ---------------------------------------------------------------------------------------------------------
  // Coalesced decode runs

  /** Plans a run of >= 2 pure-decode passes starting at `now`; false when the state does not allow one. */
  private planRun(now: number, horizon: number, horizonAlways: boolean): boolean {
    const req = this.req;
    const cfg = this.config;
    const bs = cfg.blockSize;
    const n = this.runLen;
    if (n === 0 || n > cfg.maxNumBatchedTokens || bs < 2) return false;
    let kOut = Number.POSITIVE_INFINITY;
    let context = 0;
    for (let k = 0; k < n; k++) {
      const r = this.running[k];
      const len = req.seqLen(r);
      // Pure decode: the whole prompt and every sampled token but the newest are computed.
      if (req.computed[r] !== len - 1 || req.generated[r] === 0) return false;
      const left = req.outputLen[r] - req.generated[r];
      if (left < kOut) kOut = left;
      context += len;
    }
    if (kOut < 2) return false;
    if (this.waiting.length > 0 && n < cfg.maxNumSeqs) {
      if (this.reservedWaiting > 0) return false; // a transferred request would be admitted
      // Admission must stay impossible for the whole run: the KV gate only gets stricter as decode grows.
      const r = this.waiting.front();
      if (this.rejection(r) !== null) return false;
      this.prefixCost(r);
      const needed = Math.ceil(req.seqLen(r) / bs) - this.activeHitBlocks;
      if (needed <= cfg.numGpuBlocks - this.pool.activeBlocks) return false;
    }
    if (this.runEnds.length < kOut + 1) {
      let cap = this.runEnds.length;
      while (cap < kOut + 1) cap *= 2;
      this.runEnds = new Float64Array(cap);
    }
    // Step j (1-based) computes token c+j-1 of each request and needs a new block when (c+j-1) % bs == 0,
    // i.e. at steps j0, j0+bs, ... with j0 = ((1-c) mod bs) or bs. Count allocations per step up front.
    const stepBlocks = this.stepBlocksFor(kOut);
    for (let k = 0; k < n; k++) {
      const c = req.computed[this.running[k]];
      let j = (((1 - c) % bs) + bs) % bs;
      if (j === 0) j = bs;
      for (; j <= kOut; j += bs) stepBlocks[j]++;
    }
    const avail = this.pool.freeBlocks + this.pool.inactiveBlocks;
    const free = this.pool.freeBlocks;
    const shape = this.shape;
    resetPassShape(shape);
    shape.decodeRequests = n;
    const ratio = cfg.speedupRatio;
    let t = now;
    let steps = 0;
    let active = this.pool.activeBlocks;
    let newBlocks = 0;
    let evicts = false;
    const onboardAt =
      this.parked > 0 ? (this.offload as OffloadTiers).nextCompletion() : Number.POSITIVE_INFINITY;
    for (let j = 1; j <= kOut; j++) {
      // A run that evicts changes what a KV-aware router sees, so it stops at the horizon; an onboard that
      // lands would be admitted at the next pass start.
      if (j > 1 && (evicts || horizonAlways) && t >= horizon) break;
      if (j > 1 && t >= onboardAt) break;
      const b = stepBlocks[j];
      if (newBlocks + b > avail) break; // would need a preemption: leave it to a plain pass
      newBlocks += b;
      active += b;
      if (newBlocks > free) evicts = true;
      shape.decodeContextTokens = context + n * (j - 1);
      shape.activeKvTokens = active * bs;
      t = t + 0 + ns(this.timing.decodeMs(shape) / ratio);
      this.runEnds[j] = t;
      steps = j;
    }
    if (steps < 2) return false;
    this.runEnds[0] = now;
    this.runSteps = steps;
    this.runApplied = 0;
    this.runEvicts = evicts;
    this.runContext = context;
    this.busyUntil = this.runEnds[steps];
    this.coalescedRuns++;
    return true;
  }

  /** Computes the next `m` decode tokens of running request r: blocks allocated, then filled blocks cached. */
  private decodeOneToken(r: number, m: number): void {
    const req = this.req;
    const bs = this.config.blockSize;
    const pool = this.pool;
    const off = req.slotOffset[r];
    const c = req.computed[r];
    const want = Math.ceil((c + m) / bs);
    for (let b = req.allocBlocks[r]; b < want; b++) req.slots[off + b] = pool.allocate();
    req.allocBlocks[r] = want;
    req.computed[r] = c + m;
    const last = Math.floor((c + m) / bs);
    for (let b = Math.floor(c / bs); b < last; b++) {
      const slot = req.slots[off + b];
      if (pool.keyOfSlot(slot) < 0) pool.cache(slot, req.blockKey(r, b));
    }
  }

  /** A zeroed per-step counter array of at least `steps + 1` entries. */
  private stepBlocksFor(steps: number): Int32Array {
    if (this.stepBlockCounts.length < steps + 1) {
      let cap = this.stepBlockCounts.length;
      while (cap < steps + 1) cap *= 2;
      this.stepBlockCounts = new Int32Array(cap);
    } else this.stepBlockCounts.fill(0, 0, steps + 1);
    return this.stepBlockCounts;
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

  /** Applies steps runApplied+1 .. upTo of the planned run, exactly as plain passes would. */
  private applyRunSteps(upTo: number): void {
    const req = this.req;
    const bs = this.config.blockSize;
    const pool = this.pool;
    const from = this.runApplied;
    const n = this.runLen;
    const ends = this.runEnds;
    const col = this.collector;
    const log = this.kvEvents;
    const m = upTo - from;
    let growth = 0;
    for (let k = 0; k < n; k++) {
      const c = req.computed[this.running[k]];
      growth += Math.ceil((c + m) / bs) - Math.ceil(c / bs);
    }
    if (log !== null && growth > pool.freeBlocks) {
      // Evictions must be stamped with the pass that makes them: step pass by pass.
      for (let j = from + 1; j <= upTo; j++) {
        const logStart = log.length;
        for (let k = 0; k < n; k++) this.decodeOneToken(this.running[k], 1);
        log.stamp(logStart, ends[j]);
      }
    } else {
      for (let k = 0; k < n; k++) this.decodeOneToken(this.running[k], m);
    }
    // Tokens: the first applied step's gap differs per request; later gaps are shared by all n requests.
    const firstEnd = ends[from + 1];
    const lastEnd = ends[upTo];
    for (let k = 0; k < n; k++) {
      const r = this.running[k];
      col.addGap(firstEnd - col.lastTokenMs[r], 1);
      if (col.tokens[r] === 1) col.secondTokenMs[r] = firstEnd;
      col.tokens[r] += m;
      col.lastTokenMs[r] = lastEnd;
      req.generated[r] += m;
    }
    for (let j = from + 2; j <= upTo; j++) col.addGap(ends[j] - ends[j - 1], n);
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
      let w = 0;
      for (let k = 0; k < n; k++) {
        const r = this.running[k];
        if (req.generated[r] >= req.outputLen[r]) this.complete(r, lastEnd);
        else this.running[w++] = r;
      }
      this.runLen = w;
    }
  }
}
