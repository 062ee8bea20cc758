import { BlockPool } from '../kv/block-pool.ts';
import type { Collector } from '../metrics/collector.ts';
import { emptyPassShape, type PassShape, resetPassShape, type TimingModel } from '../timing/timing-model.ts';
import { IntDeque } from './int-deque.ts';
import { RequestStatus, type RequestTable } from './request-table.ts';

export interface VllmEngineConfig {
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
  /** Allow coalescing runs of identical decode passes into one event (same results, fewer events). */
  coalesceDecode: boolean;
}

const SCHEDULED = 0;
const BLOCKED = 1;
const CURRENT_PREEMPTED = 2;

/**
 * One vLLM-style engine (one data-parallel rank): waiting and running queues, a token budget per pass that
 * serves running requests first, chunked prefill, a prefix-cached block pool, LIFO preemption by recompute,
 * and no admissions in a pass that preempted.
 *
 * Passes are eager: `startPass` mutates the state at the pass start and returns its end time; tokens of the
 * pass are stamped at that end. Requests whose first token or completion happened in the pass are listed in
 * `firstTokens` / `finished` for the owner to act on at the pass end.
 *
 * Coalesced decode: when every running request is decoding and nothing can be admitted, consecutive passes
 * differ only by one token per request, so `startPass` plans a whole run of them (up to the first completion)
 * without touching request state. `materialize(t)` applies the planned passes that started before t (cutting
 * the run short when something external needs this engine at t); the result is identical to running the
 * passes one by one.
 */
export class VllmEngine {
  readonly pool: BlockPool;
  private readonly running: Int32Array;
  private runLen = 0;
  readonly waiting = new IntDeque();
  private readonly shape: PassShape = emptyPassShape();
  private readonly scratchSlots: Int32Array;
  private passId = 0;
  private preemptedInPass = false;
  private budget = 0;
  /** Whether the last plain pass changed anything (scheduled, admitted, rejected or preempted). */
  progressed = false;

  /** Requests that got their first token in the last finished pass, and requests that completed. */
  readonly firstTokens = new IntDeque();
  readonly finished = new IntDeque();

  // Planned coalesced run (inactive when runSteps === 0).
  private runSteps = 0;
  private runApplied = 0;
  private runEnds = new Float64Array(256);

  /** Time the current pass or run ends (NaN when idle). */
  busyUntil = Number.NaN;
  /** Statistics. */
  passes = 0;
  busyMs = 0;
  preemptions = 0;
  coalescedRuns = 0;

  readonly index: number;
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
  ) {
    this.index = index;
    this.config = config;
    this.timing = timing;
    this.req = req;
    this.collector = collector;
    this.pool = new BlockPool(config.numGpuBlocks);
    this.running = new Int32Array(Math.max(1, Math.min(config.maxNumSeqs, req.size)) + 1);
    this.shape.kvCapacityTokens = config.numGpuBlocks * config.blockSize;
    let maxBlocks = 1;
    for (let r = 0; r < req.size; r++) {
      const b = Math.ceil((req.promptLen[r] + req.outputLen[r]) / config.blockSize);
      if (b > maxBlocks) maxBlocks = b;
    }
    this.scratchSlots = new Int32Array(maxBlocks + 1);
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
    return this.runLen > 0 || this.waiting.length > 0;
  }
  /** True while a planned run has passes that are not applied yet. */
  get hasPendingRun(): boolean {
    return this.runSteps > this.runApplied;
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
   * Starts the next pass at `now` (the engine must be idle and have work). `horizon` is the earliest time at
   * which something outside may need this engine's state; a coalesced run is planned no further than the pass
   * that straddles it. Returns the end time of the pass or run.
   */
  startPass(now: number, horizon: number): number {
    this.firstTokens.clear();
    this.finished.clear();
    if (this.config.coalesceDecode && this.planRun(now, horizon)) {
      this.progressed = true;
      return this.busyUntil;
    }
    const end = this.runPlainPass(now);
    this.busyUntil = end;
    return end;
  }

  /** Marks the engine idle after its pass or run ended (the owner calls this at `busyUntil`). */
  endPass(): void {
    this.busyUntil = Number.NaN;
    this.runSteps = 0;
    this.runApplied = 0;
  }

  // ---------------------------------------------------------------------------------------------------------
  // Plain pass

  private runPlainPass(now: number): number {
    const req = this.req;
    const bs = this.config.blockSize;
    const shape = this.shape;
    resetPassShape(shape);
    this.passId++;
    this.preemptedInPass = false;
    this.progressed = false;
    this.budget = this.config.maxNumBatchedTokens;

    // 1. Running requests first, in order.
    let i = 0;
    while (i < this.runLen && this.budget > 0) {
      const r = this.running[i];
      const outcome = this.schedule(r, false, 0, 0, now);
      if (outcome === SCHEDULED) i++;
      else if (outcome === BLOCKED) break;
      // CURRENT_PREEMPTED: r left `running`; index i now holds the next request.
    }

    // 2. Admissions from waiting, unless this pass preempted.
    while (!this.preemptedInPass && this.runLen < this.config.maxNumSeqs && this.waiting.length > 0) {
      const r = this.waiting.front();
      // A request that can never fit (prompt plus output beyond the whole pool) is rejected, not left to
      // preempt itself forever.
      if (Math.ceil((req.promptLen[r] + req.outputLen[r] - 1) / bs) > this.config.numGpuBlocks) {
        this.waiting.popFront();
        req.status[r] = RequestStatus.Rejected;
        this.collector.onReject(r, now);
        this.finished.pushBack(r);
        this.progressed = true;
        continue;
      }
      const matched = this.matchPrefix(r);
      let activeHits = 0;
      for (let j = 0; j < matched; j++) if (this.pool.refOf(this.scratchSlots[j]) > 0) activeHits++;
      const needed = Math.ceil(req.seqLen(r) / bs) - activeHits;
      if (needed > this.pool.capacity - this.pool.activeBlocks) break; // wait for capacity
      const budgetBefore = this.budget;
      const outcome = this.schedule(r, true, matched, matched * bs, now);
      if (outcome !== SCHEDULED) break;
      if (budgetBefore === this.budget && this.budget === 0) break;
    }

    const ratio = this.config.speedupRatio;
    const prefillMs = this.timing.prefillMs(shape) / ratio;

    // 3. Sample one token for every request whose known tokens are all computed.
    let ready = 0;
    let context = 0;
    for (let k = 0; k < this.runLen; k++) {
      const r = this.running[k];
      if (req.computed[r] === req.seqLen(r)) {
        ready++;
        context += req.seqLen(r);
      }
    }
    let decodeMs = 0;
    if (ready > 0) {
      shape.decodeRequests = ready;
      shape.decodeContextTokens = context;
      shape.activeKvTokens = this.pool.activeBlocks * bs;
      decodeMs = this.timing.decodeMs(shape) / ratio;
    }
    const end = now + prefillMs + decodeMs;
    if (ready > 0) {
      let w = 0;
      for (let k = 0; k < this.runLen; k++) {
        const r = this.running[k];
        if (req.computed[r] === req.seqLen(r) && this.emit(r, end)) continue;
        this.running[w++] = r;
      }
      this.runLen = w;
    }
    this.passes++;
    this.busyMs += end - now;
    return end;
  }

  /**
   * Longest run of leading blocks of r (up to what a prefill may reuse) that are cached; their slots are left
   * in scratchSlots. vLLM always recomputes at least the last token, so a fully cached sequence reuses one
   * block less.
   */
  private matchPrefix(r: number): number {
    if (!this.config.enablePrefixCaching) return 0;
    const req = this.req;
    const limit = Math.floor((req.seqLen(r) - 1) / this.config.blockSize);
    let j = 0;
    for (; j < limit; j++) {
      const slot = this.pool.slotOf(req.blockKey(r, j));
      if (slot < 0) break;
      this.scratchSlots[j] = slot;
    }
    return j;
  }

  /**
   * Schedules up to the remaining budget of r's uncomputed tokens, allocating KV and preempting the newest
   * running request when KV runs out. `hitBlocks` prefix blocks (slots in scratchSlots) are pinned first for an
   * admission.
   */
  private schedule(r: number, fromWaiting: boolean, hitBlocks: number, cached: number, now: number): number {
    const req = this.req;
    const bs = this.config.blockSize;
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
    const target = before + desired;

    // Capacity: pinning inactive hits and allocating new blocks both consume free capacity. A running request
    // preempts the newest running request until it fits; an admission never preempts (the gate ran first).
    for (;;) {
      let inactiveHits = 0;
      for (let j = 0; j < hitBlocks; j++) if (this.pool.refOf(this.scratchSlots[j]) === 0) inactiveHits++;
      const held = fromWaiting ? hitBlocks : req.allocBlocks[r];
      const newBlocks = Math.max(0, Math.ceil(target / bs) - held);
      if (inactiveHits + newBlocks <= this.pool.capacity - this.pool.activeBlocks) {
        if (fromWaiting) {
          for (let j = 0; j < hitBlocks; j++) this.pool.pin(this.scratchSlots[j]);
          req.allocBlocks[r] = hitBlocks;
          req.hashedBlocks[r] = hitBlocks;
        }
        this.pool.allocate(newBlocks);
        req.allocBlocks[r] += newBlocks;
        break;
      }
      if (fromWaiting || this.runLen === 0) return BLOCKED;
      const victim = this.running[this.runLen - 1];
      this.preempt(victim);
      if (victim === r) return CURRENT_PREEMPTED;
    }

    const used = target - before;
    if (used === 0 && target < seqLen) return BLOCKED;
    req.computed[r] = target;
    this.progressed = true;
    // Full blocks whose tokens are now all computed become cached (visible to later requests, this pass too).
    const full = Math.min(Math.floor(target / bs), req.allocBlocks[r]);
    while (req.hashedBlocks[r] < full) {
      this.pool.promote(req.blockKey(r, req.hashedBlocks[r]));
      req.hashedBlocks[r]++;
    }
    const promptAfter = Math.min(target, promptLen);
    const promptTokens = promptAfter - promptBefore;
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

  /** Preempts running request `r` by recompute: frees its KV, requeues it at the front of waiting. */
  private preempt(r: number): void {
    const req = this.req;
    let idx = this.runLen - 1;
    while (idx >= 0 && this.running[idx] !== r) idx--;
    for (let k = idx; k < this.runLen - 1; k++) this.running[k] = this.running[k + 1];
    this.runLen--;
    this.releaseBlocks(r);
    if (req.passStamp[r] === this.passId) {
      this.budget += req.passTokens[r];
      const pt = req.passPromptTokens[r];
      if (pt > 0) {
        const s = this.shape;
        const pb = req.passPromptBefore[r];
        s.prefillRequests--;
        s.prefillNewTokens -= pt;
        s.prefillCachedTokens -= pb;
        s.prefillAttentionPairs -= pt * pb + (pt * (pt + 1)) / 2;
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

  /** Releases r's KV: private blocks are freed; cached blocks are unpinned last-to-first, so suffixes age first. */
  private releaseBlocks(r: number): void {
    const req = this.req;
    const hashed = req.hashedBlocks[r];
    this.pool.freePrivate(req.allocBlocks[r] - hashed);
    for (let j = hashed - 1; j >= 0; j--) this.pool.unpin(this.pool.slotOf(req.blockKey(r, j)));
    req.allocBlocks[r] = 0;
    req.hashedBlocks[r] = 0;
  }

  /** Samples one token for r at time t; returns true when r completed (and left the running set). */
  private emit(r: number, t: number): boolean {
    const req = this.req;
    const bs = this.config.blockSize;
    const g = ++req.generated[r];
    this.collector.onToken(r, t);
    if (g === 1) this.firstTokens.pushBack(r);
    // The sampled token may fill the block it lands in; that block (already allocated) becomes cached.
    const len = req.promptLen[r] + g;
    if (len % bs === 0 && len / bs <= req.allocBlocks[r] && req.hashedBlocks[r] === len / bs - 1) {
      this.pool.promote(req.blockKey(r, req.hashedBlocks[r]));
      req.hashedBlocks[r]++;
    }
    if (g >= req.outputLen[r]) {
      this.releaseBlocks(r);
      req.status[r] = RequestStatus.Done;
      this.collector.onComplete(r, t);
      this.finished.pushBack(r);
      return true;
    }
    return false;
  }

  // ---------------------------------------------------------------------------------------------------------
  // Coalesced decode runs

  /** Plans a run of >= 2 pure-decode passes starting at `now`; false when the state does not allow one. */
  private planRun(now: number, horizon: number): boolean {
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
      // Admission must stay impossible for the whole run: the KV gate only gets stricter as decode grows.
      const r = this.waiting.front();
      const matched = this.matchPrefix(r);
      let activeHits = 0;
      for (let j = 0; j < matched; j++) if (this.pool.refOf(this.scratchSlots[j]) > 0) activeHits++;
      const needed = Math.ceil(req.seqLen(r) / bs) - activeHits;
      if (needed <= this.pool.capacity - this.pool.activeBlocks) return false;
    }

    // Step j (1-based) computes token c+j-1 of each request and needs a new block when (c+j-1) % bs == 0.
    const maxSteps = kOut;
    if (this.runEnds.length < maxSteps + 1) {
      let cap = this.runEnds.length;
      while (cap < maxSteps + 1) cap *= 2;
      this.runEnds = new Float64Array(cap);
    }
    const avail = this.pool.capacity - this.pool.activeBlocks;
    const shape = this.shape;
    resetPassShape(shape);
    shape.decodeRequests = n;
    const ratio = cfg.speedupRatio;
    let t = now;
    let steps = 0;
    let active = this.pool.activeBlocks;
    let newBlocksTotal = 0;
    for (let j = 1; j <= maxSteps; j++) {
      if (j > 1 && t >= horizon) break; // the previous pass ended at/after the horizon: stop before this one
      // Requests whose computed count c satisfies (c + j - 1) % bs == 0 allocate a block at step j.
      let stepBlocks = 0;
      for (let k = 0; k < n; k++) {
        if ((req.computed[this.running[k]] + j - 1) % bs === 0) stepBlocks++;
      }
      if (newBlocksTotal + stepBlocks > avail) break; // would need a preemption: leave it to a plain pass
      newBlocksTotal += stepBlocks;
      active += stepBlocks;
      shape.decodeContextTokens = context + n * (j - 1);
      shape.activeKvTokens = active * bs;
      t = t + 0 + this.timing.decodeMs(shape) / ratio;
      this.runEnds[j] = t;
      steps = j;
    }
    if (steps < 2) return false;
    this.runEnds[0] = now;
    this.runSteps = steps;
    this.runApplied = 0;
    this.busyUntil = this.runEnds[steps];
    this.coalescedRuns++;
    return true;
  }

  /**
   * Applies the planned passes of the current run that started before `t`. When that is not all of them, the
   * run is cut after the last applied pass, whose end becomes `busyUntil`. Returns `busyUntil`.
   */
  materialize(t: number): number {
    if (this.runSteps <= this.runApplied) return this.busyUntil;
    // Passes applied: all j with start (runEnds[j-1]) < t.
    let upTo = this.runApplied;
    while (upTo < this.runSteps && this.runEnds[upTo] < t) upTo++;
    if (upTo > this.runApplied) this.applyRunSteps(upTo);
    if (upTo < this.runSteps) {
      this.runSteps = upTo;
      this.busyUntil = this.runEnds[upTo];
    }
    return this.busyUntil;
  }

  /** Applies steps runApplied+1 .. upTo of the planned run. */
  private applyRunSteps(upTo: number): void {
    const req = this.req;
    const bs = this.config.blockSize;
    const from = this.runApplied;
    const m = upTo - from;
    const n = this.runLen;
    const ends = this.runEnds;
    const col = this.collector;
    // KV: allocate all blocks the steps need (evictions come off the LRU head in the same order), then promote
    // blocks filled by sampled tokens.
    let newBlocks = 0;
    for (let k = 0; k < n; k++) {
      const r = this.running[k];
      const c = req.computed[r];
      newBlocks += Math.ceil((c + m) / bs) - Math.ceil(c / bs);
    }
    this.pool.allocate(newBlocks);
    const firstEnd = ends[from + 1];
    for (let k = 0; k < n; k++) {
      const r = this.running[k];
      const c = req.computed[r];
      req.allocBlocks[r] += Math.ceil((c + m) / bs) - Math.ceil(c / bs);
      req.computed[r] = c + m;
      // Tokens: the first applied step's gap differs per request; the rest are shared (added below).
      const prevLast = col.lastTokenMs[r];
      col.addGap(firstEnd - prevLast, 1);
      if (col.tokens[r] === 1) col.secondTokenMs[r] = firstEnd;
      col.tokens[r] += m;
      col.lastTokenMs[r] = ends[from + m];
      const g0 = req.generated[r];
      req.generated[r] = g0 + m;
      // Blocks filled by the sampled tokens become cached.
      const lenAfter = req.promptLen[r] + g0 + m;
      const full = Math.min(Math.floor(lenAfter / bs), req.allocBlocks[r]);
      while (req.hashedBlocks[r] < full) {
        this.pool.promote(req.blockKey(r, req.hashedBlocks[r]));
        req.hashedBlocks[r]++;
      }
    }
    for (let j = from + 2; j <= upTo; j++) col.addGap(ends[j] - ends[j - 1], n);
    this.passes += m;
    this.busyMs += ends[upTo] - ends[from];
    this.runApplied = upTo;
    // Completions happen only in the run's final pass.
    if (upTo === this.runSteps) {
      const t = ends[upTo];
      let w = 0;
      for (let k = 0; k < n; k++) {
        const r = this.running[k];
        if (req.generated[r] >= req.outputLen[r]) {
          this.releaseBlocks(r);
          req.status[r] = RequestStatus.Done;
          col.onComplete(r, t);
          this.finished.pushBack(r);
        } else {
          this.running[w++] = r;
        }
      }
      this.runLen = w;
    }
  }
}
