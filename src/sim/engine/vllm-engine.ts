import { BlockPool } from '../kv/block-pool.ts';
import { type OffloadConfig, OffloadTiers } from '../kv/offload.ts';
import type { Collector } from '../metrics/collector.ts';
import { resetPassShape, type TimingModel } from '../timing/timing-model.ts';
import type { EngineRole } from './engine.ts';
import { ns } from './engine.ts';
import { EngineCore, type EngineCoreConfig } from './engine-core.ts';
import { RequestStatus, type RequestTable } from './request-table.ts';

export interface VllmEngineConfig extends EngineCoreConfig {
  /** 'trtllm': TensorRT-LLM's scheduler on the same core (trtllm-engine.ts). */
  kind?: 'vllm' | 'trtllm';
  /** Token budget of one forward pass. */
  maxNumBatchedTokens: number;
  enableChunkedPrefill: boolean;
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
export class VllmEngine extends EngineCore<VllmEngineConfig> {
  readonly pool: BlockPool;
  /** Prefix hits found by the last lookup (grown to the longest sequence looked up). */
  private scratchSlots = new Int32Array(64);
  private passId = 0;
  private preemptedInPass = false;
  private budget = 0;

  /** Lower KV tiers and the requests parked while their lower-tier prefix is onboarded. */
  readonly offload: OffloadTiers | null;
  private parked = 0;
  private readonly onboarding = new Map<number, { start: number; lower: number; hits: number }>();
  /** Onboarding delays (ms) and lower-tier hit blocks, for the report. */
  readonly onboardMs: number[] = [];
  tierHitBlocks = [0, 0, 0, 0]; // index 2 = host, 3 = disk

  /** Prefill role: the blocks each request holds for its hand-off. */
  private readonly held = new Map<number, Int32Array>();
  /** Transferred requests in `waiting` (their KV is reserved here). */
  private reservedWaiting = 0;

  constructor(
    index: number,
    config: VllmEngineConfig,
    timing: TimingModel,
    req: RequestTable,
    collector: Collector,
    logKvEvents = false,
    role: EngineRole = 'aggregated',
    gpus = 1,
    seedOffset = index,
  ) {
    super(index, config, timing, req, collector, logKvEvents, role, gpus, seedOffset);
    this.pool = new BlockPool(config.numGpuBlocks, req.keys.indexDirectly, req.keys.capacity);
    this.offload = config.offload && config.offload.g2Blocks > 0 ? new OffloadTiers(config.offload) : null;
    this.installKeyEvents();
  }

  protected override installKeyEvents(): void {
    const log = this.kvEvents;
    const tiers = this.offload;
    const keys = this.req.keys;
    this.pool.onKeyEvent =
      log !== null || tiers !== null
        ? (key, stored) => {
            const prompt = keys.isPrompt(key);
            if (log !== null && prompt) log.push(key, stored);
            // Write-through stores prompt blocks when computed; on-evict writes back what the GPU drops.
            if (tiers !== null && (tiers.writeThrough ? stored && prompt : !stored)) tiers.offload(key);
          }
        : null;
  }

  override residents(): number[] {
    const out = super.residents();
    for (const r of this.onboarding.keys()) out.push(r);
    return out;
  }

  markCachedKeys(live: Uint8Array): void {
    this.pool.markKeys(live);
  }

  get evictions(): number {
    return this.pool.evictions;
  }

  ensureKeyCapacity(n: number): void {
    this.pool.ensureKeyCapacity(n);
  }

  markKeys(live: Uint8Array): void {
    this.pool.markKeys(live);
    this.offload?.markKeys(live);
    this.kvEvents?.markKeys(live);
  }

  remapKeys(map: Int32Array): void {
    this.pool.remapKeys(map);
    this.offload?.remapKeys(map);
    this.kvEvents?.remapKeys(map);
  }
  /** KV blocks referenced (by requests, holds for handoffs or reservations): 0 once a drained engine is empty. */
  get activeBlocks(): number {
    return this.pool.activeBlocks;
  }
  hasWork(): boolean {
    return this.runLen > 0 || this.waiting.length > 0 || this.parked > 0;
  }

  protected override beforePass(now: number): void {
    if (this.parked > 0) this.promoteOnboarded(now);
  }

  // ---------------------------------------------------------------------------------------------------------
  // Plain pass

  protected runPlainPass(now: number): number {
    const end = this.emitPass(now, this.formPass(now));
    if (!this.progressed && this.parked > 0) {
      // Nothing to run until an onboard lands: wake up then (not a forward pass).
      this.passes--;
      this.progressed = true;
      return Math.max(now, (this.offload as OffloadTiers).nextCompletion());
    }
    return end;
  }

  // The pass being formed, between `formPass` and `emitPass`.
  private passLogStart = 0;
  private passDecodeCount = 0;
  private passDecodeContext = 0;

  /**
   * Forms the pass at `now`: schedules running requests, admits waiting ones (with their KV allocations,
   * preemptions and prefix-cache entries), and prices it. Returns its end; `emitPass` then samples its
   * tokens at the end it is given (its own, or a data-parallel group's slowest rank's).
   */
  formPass(now: number): number {
    const req = this.req;
    const cfg = this.config;
    const bs = cfg.blockSize;
    const shape = this.shape;
    resetPassShape(shape);
    this.passId++;
    this.preemptedInPass = false;
    this.progressed = false;
    this.budget = cfg.maxNumBatchedTokens;
    this.passLogStart = this.kvEvents?.length ?? 0;

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
        this.reject(r, reason);
        continue;
      }
      this.prefixCost(r);
      if (!this.admissionFits(r)) break; // wait for capacity
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

    // 3. Pricing. Requests already at their output length are released without a token (zero-output
    // requests end here); every other request with all tokens computed samples at the pass end.
    if (this.role === 'prefill') return now + prefillMs; // a prefill worker's token comes out of its prefill
    let decodeCount = 0;
    let decodeContext = 0;
    // With MTP a prompt's first forward also runs the draft and verify step: it is priced as decode too.
    const speculative = this.speculative !== null;
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
      if (req.computed[r] === req.seqLen(r) && (req.generated[r] > 0 || req.remote[r] === 1 || speculative)) {
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
    this.passDecodeCount = decodeCount;
    this.passDecodeContext = decodeContext;
    return now + prefillMs + decodeMs;
  }

  /**
   * Ends the pass formed at `now` at `end`: every request with all tokens computed samples one token (with
   * MTP, a burst), stamped at `end`; completions release their KV. Returns `end`.
   */
  emitPass(now: number, end: number): number {
    if (this.role === 'prefill') return this.endPrefillPass(now, end);
    const req = this.req;
    const shape = this.shape;
    const sampler = this.speculative;
    let w = 0;
    for (let k = 0; k < this.runLen; k++) {
      const r = this.running[k];
      if (req.computed[r] === req.seqLen(r)) {
        let g = req.generated[r];
        const burst = sampler === null ? 1 : Math.min(sampler.sample(), req.outputLen[r] - g);
        for (let b = 0; b < burst; b++) this.collector.onToken(r, end);
        if (g === 0) this.firstTokens.pushBack(r);
        g += burst;
        req.generated[r] = g;
        if (burst > 1) {
          // Accepted drafts were computed by the verification: only the newest token is left to compute.
          const c = req.computed[r];
          req.computed[r] = c + burst - 1;
          this.finalize(r, c, c + burst - 1);
        }
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
    if (this.kvEvents !== null) this.kvEvents.stamp(this.passLogStart, end);
    this.recordPass(
      now,
      end,
      shape.prefillRequests,
      shape.prefillNewTokens,
      this.passDecodeCount,
      this.passDecodeContext,
      shape.prefillCachedTokens,
    );
    return end;
  }

  /**
   * Emission on a prefill worker: a request whose prompt is computed samples its (hidden) first token in the
   * prefill pass itself, at no decode cost, and leaves the running set with its KV held for the handoff.
   */
  private endPrefillPass(now: number, end: number): number {
    const req = this.req;
    const logStart = this.passLogStart;
    let w = 0;
    for (let k = 0; k < this.runLen; k++) {
      const r = this.running[k];
      if (req.computed[r] === req.seqLen(r)) {
        this.holdForHandoff(r);
        continue;
      }
      this.running[w++] = r;
    }
    this.runLen = w;
    if (this.kvEvents !== null) this.kvEvents.stamp(logStart, end);
    const s = this.shape;
    this.recordPass(now, end, s.prefillRequests, s.prefillNewTokens, 0, 0, s.prefillCachedTokens);
    return end;
  }

  // ---------------------------------------------------------------------------------------------------------
  // Disaggregated serving: the KV side of the hand-off

  /** Keeps r's blocks (in use) after its prefill, until `releaseHeld`; frees its slot list for the decode side. */
  protected holdKv(r: number): void {
    const req = this.req;
    const off = req.slotOffset[r];
    this.held.set(r, req.slots.slice(off, off + req.allocBlocks[r]));
  }

  releaseHeld(r: number): void {
    const slots = this.held.get(r);
    if (!slots) return;
    this.held.delete(r);
    for (let j = slots.length - 1; j >= 0; j--) this.pool.release(slots[j]);
  }

  /**
   * Reserves blocks for r's transferred prompt: cached prefix blocks are reused, the rest allocated (all or
   * nothing). The blocks hold KV once the transfer completes (`activate`).
   */
  protected reserveKv(r: number): number {
    const req = this.req;
    const bs = this.config.blockSize;
    const promptLen = req.promptLen[r];
    // Reuse cached prompt blocks; the last prompt token is recomputed here, so never reuse past it.
    let hits = 0;
    if (this.config.enablePrefixCaching) {
      const limit = Math.floor((promptLen - 1) / bs);
      this.scratchFor(limit);
      for (; hits < limit; hits++) {
        const slot = this.pool.slotOf(req.blockKey(r, hits));
        if (slot < 0) break;
        this.scratchSlots[hits] = slot;
      }
    }
    req.allocBlocks[r] = 0;
    return this.allocateUpTo(r, promptLen, hits) ? hits * bs : -1;
  }

  /** The transferred prompt but its last token counts as computed (that token is a decode step here). */
  protected installTransferredKv(r: number): void {
    const req = this.req;
    req.computed[r] = req.promptLen[r] - 1;
    this.finalize(r, 0, req.computed[r]);
  }

  protected queueTransferred(r: number): void {
    this.waiting.pushBack(r);
    this.reservedWaiting++;
  }

  // ---------------------------------------------------------------------------------------------------------
  // Lower KV tiers

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

  // ---------------------------------------------------------------------------------------------------------
  // Admission, scheduling, preemption

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
      this.onReservedAdmitted(r);
    }
  }

  /**
   * vLLM's capacity gate for the head of waiting (after `prefixCost`): the blocks of its current sequence,
   * less its cache hits on blocks in use, must fit in the blocks not in use.
   */
  protected admissionFits(r: number): boolean {
    const needed = Math.ceil(this.req.seqLen(r) / this.config.blockSize) - this.activeHitBlocks;
    return needed <= this.config.numGpuBlocks - this.pool.activeBlocks;
  }

  /** A transferred request whose KV was reserved here starts running. */
  protected onReservedAdmitted(_r: number): void {}

  /** Whether MTP gives up the last block of every prefix-cache hit (vLLM does; TensorRT-LLM does not). */
  protected readonly mtpRecomputesHitBlock: boolean = true;

  /** Whether a running request short of KV preempts the newest running one (vLLM) or just waits. */
  protected readonly preemptsForCapacity: boolean = true;

  /** Why request r (at the head of waiting) can never run here, or null. */
  protected rejection(r: number): string | null {
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
  protected activeHitBlocks = 0;

  /**
   * Prefix-cache lookup for an admission: leading blocks of r's sequence present in the cache (their primary
   * copies are left in scratchSlots), how many of those are in use, and the reusable tokens. The last token is
   * always recomputed, so a fully cached sequence reuses one block less.
   */
  /** Room for `n` prefix hits in scratchSlots. */
  private scratchFor(n: number): void {
    if (n < this.scratchSlots.length) return;
    let cap = this.scratchSlots.length;
    while (cap <= n) cap *= 2;
    this.scratchSlots = new Int32Array(cap);
  }

  private prefixCost(r: number): number {
    const req = this.req;
    const bs = this.config.blockSize;
    const len = req.seqLen(r);
    let overlap = 0;
    let active = 0;
    if (this.config.enablePrefixCaching) {
      const full = Math.floor(len / bs);
      this.scratchFor(full);
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
    if (this.config.speculative !== undefined && this.mtpRecomputesHitBlock && cached >= bs) {
      // vLLM's MTP drafter needs the hidden states of the last matched block: it is recomputed.
      cached -= bs;
      activeTokens = Math.min(activeTokens, cached);
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
    // MTP: a request that samples this pass verifies `nextn` drafts past its sequence; their KV slots are
    // allocated now (the accepted ones are computed by the verification).
    const lookahead =
      this.speculative !== null && target === seqLen
        ? Math.max(0, Math.min(this.draftTokens, req.outputLen[r] - req.generated[r] - 1))
        : 0;

    for (;;) {
      if (this.allocateUpTo(r, target + lookahead, hitBlocks)) break;
      if (this.runLen === 0 || !this.preemptsForCapacity) {
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
    // With MTP a decode step also reserves its drafts' slots (the general path).
    if (!this.config.coalesceDecode || this.speculative !== null) return false;
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
  protected allocateUpTo(r: number, target: number, hitBlocks: number): boolean {
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

  protected releaseKv(r: number): void {
    this.releaseBlocks(r);
  }

  protected override dropWaiting(r: number): void {
    // A transferred prompt's reserved KV (vLLM keeps it with the request in waiting).
    if (this.req.allocBlocks[r] > 0 && this.req.remote[r] === 1) this.reservedWaiting--;
    super.dropWaiting(r);
  }

  // ---------------------------------------------------------------------------------------------------------
  // Coalesced decode runs

  /** Plans a run of >= 2 pure-decode passes starting at `now`; false when the state does not allow one. */
  protected planRun(now: number, horizon: number, horizonAlways: boolean): boolean {
    const req = this.req;
    const cfg = this.config;
    const bs = cfg.blockSize;
    const n = this.runLen;
    // MTP bursts are random: consecutive passes are not identical.
    if (n === 0 || n > cfg.maxNumBatchedTokens || bs < 2 || this.speculative !== null) return false;
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
      if (this.admissionFits(r)) return false;
    }
    const runEnds = this.runEndsFor(kOut);
    const stepBlocks = this.countStepBlocks(kOut);
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
      runEnds[j] = t;
      steps = j;
    }
    if (steps < 2) return false;
    this.beginRun(now, steps, evicts, context);
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

  /** Blocks for the run's tokens, pass by pass when a KV router must see each pass's evictions. */
  protected applyRunKv(from: number, upTo: number): void {
    const req = this.req;
    const bs = this.config.blockSize;
    const pool = this.pool;
    const n = this.runLen;
    const ends = this.runEnds;
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
  }
}
