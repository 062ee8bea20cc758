import { RadixCache } from '../kv/radix-cache.ts';
import type { Collector } from '../metrics/collector.ts';
import { resetPassShape, type TimingModel } from '../timing/timing-model.ts';
import { type EngineRole, ns } from './engine.ts';
import { EngineCore, type EngineCoreConfig } from './engine-core.ts';
import { IntDeque } from './int-deque.ts';
import { grown, RequestStatus, type RequestTable } from './request-table.ts';

/** numGpuBlocks counts pages of blockSize tokens (SGLang's page_size); maxNumSeqs is max_running_requests. */
export interface SglangEngineConfig extends EngineCoreConfig {
  kind: 'sglang';
  /** 'fifo' or 'lpm' (longest prefix match first, with in-batch prefix deduplication). */
  schedulePolicy: 'fifo' | 'lpm';
  /** Tokens one prefill batch may compute. */
  maxPrefillTokens: number;
  /** Tokens of one prompt chunk; longer prompts are prefilled over several passes. */
  chunkedPrefillSize: number;
  /** Output tokens reserved per request at admission are clipped to this. */
  clipMaxNewTokens: number;
  /** Scales the initial new-token ratio (0.7) of the admission reserve. */
  scheduleConservativeness: number;
}

/** SGLang constants the reference mirrors (sglang 0.5.6 defaults). */
const INIT_NEW_TOKEN_RATIO = 0.7;
const MIN_NEW_TOKEN_RATIO_FACTOR = 0.14;
const NEW_TOKEN_RATIO_DECAY_STEPS = 600;
const RETRACT_DECODE_STEPS = 20;
const LPM_FALLBACK_THRESHOLD = 128;
const IN_BATCH_PREFIX_THRESHOLD = 32;
/** Passes one coalesced run plans at most (a longer stretch continues as the next run). */
const RUN_PLAN_LIMIT = 128;

/**
 * One SGLang-style engine (one data-parallel rank), after the reference mocker's SGLang scheduler (which
 * models sglang 0.5.6's `get_next_batch_to_run`).
 *
 * KV lives in a page pool plus a radix prefix cache (`RadixCache`). A pass at time `now`:
 * - Prefill first: waiting requests are admitted in queue order (or longest cached prefix first under `lpm`)
 *   while three budgets hold: KV (free + evictable tokens, minus each running request's remaining output,
 *   clipped, times `new_token_ratio`; an admission also reserves its own clipped output), `max_prefill_tokens`
 *   and `chunked_prefill_size`. A prompt longer than the chunk left is cut at a page boundary; its computed
 *   pages enter the cache and it goes back to the queue front to continue next pass.
 * - A pass that prefilled anything runs only that batch: requests already running make no progress (mixed
 *   chunks are off), and the requests whose prompt completed get their first token at the prefill's end.
 * - Otherwise it is a decode pass over every running request. When free plus evictable KV cannot take the
 *   step's new pages, the running request with the fewest output tokens is retracted (its KV freed, its
 *   cached prefix kept) and requeued at the back until it fits; `new_token_ratio` is then re-estimated,
 *   else it decays linearly to its floor on every decode pass.
 * Every generated token's page enters the cache once complete; a finished request's whole sequence (whole
 * pages) stays cached. Tokens are stamped at the pass end; prefix-cache changes are visible to a KV-aware
 * router at the pass end.
 *
 * Disaggregated serving: a prefill worker holds a request's KV after its prefill (the first token is hidden)
 * until the handoff completes; a decode worker reserves pages for the prompt (reusing its cached prefix),
 * and once the KV has arrived the request joins the running set at the next pass without an admission
 * budget, sampling its first token in a decode pass.
 *
 * Coalesced decode: a run of decode passes in which nothing can be admitted, retracted or finished is
 * planned at once and applied lazily (`materialize`), with results identical to stepping every pass.
 */
export class SglangEngine extends EngineCore<SglangEngineConfig> {
  readonly cache: RadixCache;
  /** Per request: the radix node its KV path ends at (-1: no KV), and its pages in the tree. */
  private lastNode = new Int32Array(0);
  private cachedPages = new Int32Array(0);
  private readonly page: number;
  private readonly initRatio: number;
  private readonly minRatio: number;
  private readonly ratioDecay: number;
  /** SGLang's `new_token_ratio`: the share of each running request's remaining output reserved at admission. */
  newTokenRatio: number;

  // Scratch for one pass.
  private admitted: Int32Array;
  private admittedLen = 0;
  private done: Int32Array;
  private doneLen = 0;
  private retracted: number[] = [];
  private retractedRatio = 0;

  /** Prefill role, per held request: pages outside the cache (its partial last page). */
  private heldPages = new Int32Array(0);
  /** Decode role, per request: pages reserved for its transferred prompt, until it arrives. */
  private reservedPages = new Int32Array(0);
  /** Requests whose transferred KV arrived, waiting for a running slot (they need no admission budget). */
  private readonly ready = new IntDeque();

  // Coalesced runs: cached pages the plain pass would evict at the start of each planned step; per running
  // slot, tokens at the run's start; pages filled during applied steps, as step * n + slot.
  private runEvict = new Int32Array(256);
  private runBase = new Int32Array(16);
  private fills = new Int32Array(64);
  /** Tokens the head of waiting would charge (chunk + output reserve) and the pages it would take; -1: none. */
  private headNeed = -1;
  private headPages = 0;
  private joinAt = new Int32Array(256);

  constructor(
    index: number,
    config: SglangEngineConfig,
    timing: TimingModel,
    req: RequestTable,
    collector: Collector,
    logKvEvents = false,
    role: EngineRole = 'aggregated',
    gpus = 1,
    seedOffset = index,
  ) {
    if (req.blockSize !== config.blockSize)
      throw new RangeError('SGLang page size must equal the block layout size');
    super(index, config, timing, req, collector, logKvEvents, role, gpus, seedOffset);
    this.page = config.blockSize;
    this.cache = new RadixCache(config.numGpuBlocks, req);
    const slots = config.maxNumSeqs + 1;
    this.admitted = new Int32Array(slots);
    this.done = new Int32Array(slots);
    req.onGrow((n) => {
      const from = this.lastNode.length;
      this.lastNode = grown(this.lastNode, n);
      this.lastNode.fill(-1, from);
      this.cachedPages = grown(this.cachedPages, n);
      if (role === 'prefill') this.heldPages = grown(this.heldPages, n);
      if (role === 'decode') this.reservedPages = grown(this.reservedPages, n);
    });
    this.initRatio = INIT_NEW_TOKEN_RATIO * config.scheduleConservativeness;
    this.minRatio = this.initRatio * MIN_NEW_TOKEN_RATIO_FACTOR;
    this.ratioDecay = (this.initRatio - this.minRatio) / NEW_TOKEN_RATIO_DECAY_STEPS;
    this.newTokenRatio = this.initRatio;
    this.installKeyEvents();
  }

  get evictions(): number {
    return this.cache.evictedPages;
  }

  ensureKeyCapacity(n: number): void {
    this.cache.ensureKeyCapacity(n);
  }

  markKeys(live: Uint8Array): void {
    this.cache.markKeys(live);
    this.kvEvents?.markKeys(live);
  }

  remapKeys(map: Int32Array): void {
    this.cache.remapKeys(map);
    this.kvEvents?.remapKeys(map);
  }
  override get waitingCount(): number {
    return this.waiting.length + this.ready.length;
  }
  hasWork(): boolean {
    return this.runLen > 0 || this.waiting.length > 0 || this.ready.length > 0;
  }

  /** True when no request holds KV pages or a tree lock here (tests). */
  holdsNothing(): boolean {
    for (let r = 0; r < this.req.capacity; r++)
      if (this.lastNode[r] >= 0 || (this.req.engine[r] === this.index && this.req.allocBlocks[r] !== 0))
        return false;
    return true;
  }

  /** Pages in use (not free, not evictable). */
  get activeBlocks(): number {
    return this.cache.totalPages - this.cache.freePages - this.cache.evictablePages;
  }

  // ---------------------------------------------------------------------------------------------------------
  // Plain pass

  protected runPlainPass(now: number): number {
    return this.emitPass(now, this.formPass(now));
  }

  // The pass being formed, between `formPass` and `emitPass`.
  private passLogStart = 0;
  private passPrefill = false;
  private passStalled = 0;
  /** The pass's own end (a data-parallel group may end it later) and whether its decode step runs. */
  private passOwnEnd = 0;
  private passDecodes = false;

  /**
   * Forms the pass at `now`: admission and chunking (a prefill pass), or retraction and eviction (a decode
   * pass), and its price. Returns its end; `emitPass` then samples its tokens at the end it is given (its
   * own, or a data-parallel group's slowest rank's).
   */
  formPass(now: number): number {
    const req = this.req;
    const cfg = this.config;
    const shape = this.shape;
    resetPassShape(shape);
    this.progressed = false;
    this.passLogStart = this.kvEvents?.length ?? 0;

    const readyWaiting = this.ready.length > 0 && this.promoteReady(now);
    if (cfg.schedulePolicy === 'lpm') this.applyLpm();
    this.admittedLen = 0;
    if (!readyWaiting) this.admit(now);
    const prefillPass = this.admittedLen > 0;
    let prefillMs = 0;
    if (prefillPass) {
      const n = shape.prefillRequests;
      const perRequest =
        Math.floor((shape.prefillCachedTokens + shape.prefillNewTokens) / n) -
        Math.floor(shape.prefillCachedTokens / n);
      if (perRequest > 0) prefillMs = ns(this.timing.prefillMs(shape) / cfg.speedupRatio);
    }

    // Chunked prompts wait at the queue front; completed prompts join the running set after the stalled ones.
    const stalled = this.runLen;
    for (let i = 0; i < this.admittedLen; i++) {
      const r = this.admitted[i];
      if (req.computed[r] < req.seqLen(r)) {
        this.cacheMaterialized(r);
        this.waiting.pushFront(r);
      } else {
        req.status[r] = RequestStatus.Running;
        this.running[this.runLen++] = r;
      }
    }
    this.doneLen = 0;
    this.retracted.length = 0;
    this.passPrefill = prefillPass;
    this.passStalled = stalled;
    const end = prefillPass ? now + prefillMs : now + this.formDecodeStep();
    this.passOwnEnd = end;
    return end;
  }

  /** Ends the pass formed at `now` at `end`: first tokens or a decode step's tokens, stamped at `end`. */
  emitPass(now: number, end: number): number {
    const req = this.req;
    const shape = this.shape;
    const prefillPass = this.passPrefill;
    if (prefillPass) this.firstTokenStep(this.passStalled, end);
    else if (this.passDecodes) this.emitDecodeStep(end);
    for (let i = 0; i < this.doneLen; i++) this.complete(this.done[i], end);
    for (const r of this.retracted) {
      req.status[r] = RequestStatus.Waiting;
      this.waiting.pushBack(r);
    }
    if (this.passOwnEnd > now || this.doneLen > 0 || prefillPass) this.progressed = true;
    // The ratio decays on decode passes (an empty pass, which leaves the engine idle, changes nothing).
    if (this.retracted.length > 0) this.newTokenRatio = this.retractedRatio;
    else if (!prefillPass && this.progressed)
      this.newTokenRatio = Math.max(this.newTokenRatio - this.ratioDecay, this.minRatio);
    if (this.kvEvents !== null) this.kvEvents.stamp(this.passLogStart, end);
    // Only passes that did something count (the reference's engine idles instead).
    if (this.progressed) {
      if (prefillPass)
        this.recordPass(
          now,
          end,
          shape.prefillRequests,
          shape.prefillNewTokens,
          0,
          0,
          shape.prefillCachedTokens,
        );
      else this.recordPass(now, end, 0, 0, shape.decodeRequests, shape.decodeContextTokens);
    }
    return end;
  }

  /** LPM: waiting requests by cached prefix, longest first; duplicates of an earlier uncached prefix last. */
  private applyLpm(): void {
    const w = this.waiting;
    const n = w.length;
    if (!this.config.enablePrefixCaching || n < 2 || n > LPM_FALLBACK_THRESHOLD) return;
    const req = this.req;
    const p = this.page;
    const dupPages = Math.ceil(IN_BATCH_PREFIX_THRESHOLD / p);
    const seen = new Set<number>();
    const items: { r: number; match: number; dup: boolean; i: number }[] = [];
    for (let i = 0; i < n; i++) {
      const r = w.get(i);
      const len = req.seqLen(r);
      const match = this.cache.matchPages(r, Math.floor(len / p)) * p;
      let dup = false;
      if (match <= IN_BATCH_PREFIX_THRESHOLD && len >= dupPages * p) {
        const key = req.blockKey(r, dupPages - 1);
        dup = seen.has(key);
        seen.add(key);
      }
      items.push({ r, match, dup, i });
    }
    items.sort((a, b) => Number(a.dup) - Number(b.dup) || b.match - a.match || a.i - b.i);
    w.clear();
    for (const it of items) w.pushBack(it.r);
  }

  /** Remaining output of r (its last token needs no KV: the request finishes as it is sampled). */
  private remaining(r: number): number {
    return Math.max(0, this.outputLimit(r) - this.req.generated[r]);
  }

  /** SGLang's `get_new_batch_prefill`: admits and chunks waiting requests into this pass's prefill batch. */
  private admit(now: number): void {
    const req = this.req;
    const cfg = this.config;
    const p = this.page;
    const cache = this.cache;
    const shape = this.shape;
    if (this.waiting.length === 0) return;
    let reserve = 0;
    for (let k = 0; k < this.runLen; k++)
      reserve += Math.min(this.remaining(this.running[k]), cfg.clipMaxNewTokens) * this.newTokenRatio;
    let remTotal = (cache.freePages + cache.evictablePages) * p - reserve;
    let remInput = cfg.maxPrefillTokens;
    let remChunk = cfg.chunkedPrefillSize;
    const slots = cfg.maxNumSeqs - this.runLen;
    while (this.admittedLen < slots && this.waiting.length > 0) {
      const r = this.waiting.front();
      const mat = req.computed[r];
      const len = req.seqLen(r);
      if (mat === 0 && req.preemptions[r] === 0) {
        const reason = this.rejection(r);
        if (reason !== null) {
          this.reject(r, reason);
          continue;
        }
      }
      let cached = 0;
      if (mat === 0 && cfg.enablePrefixCaching) {
        // The match stops one token short so a request that must sample computes at least its last token.
        const matchLen = this.outputLimit(r) === 0 ? len : len - 1;
        cached = cache.matchPages(r, Math.floor(matchLen / p)) * p;
      }
      const start = Math.max(mat, cached);
      const extend = len - start;
      if (extend === 0 && mat > 0) break;
      let chunk = extend;
      if (Math.ceil(extend / p) * p > remChunk) {
        chunk = Math.floor(remChunk / p) * p;
        if (chunk === 0) break;
        chunk = Math.min(chunk, extend);
      }
      const charged = Math.ceil(chunk / p) * p;
      const outReserve = chunk < extend ? 0 : Math.min(this.remaining(r), cfg.clipMaxNewTokens);
      if (charged + outReserve >= remTotal) break;
      if (charged > remInput || charged > remChunk) break;
      const chunkEnd = start + chunk;
      const wantPages = Math.ceil(chunkEnd / p);
      let node = this.lastNode[r];
      let prefix: number;
      if (mat > 0) {
        // A chunk continuation extends the request's own pages; it never re-matches.
        const fresh = wantPages - req.allocBlocks[r];
        if (fresh > cache.freePages + cache.evictablePages) break;
        this.allocatePages(fresh);
        prefix = mat;
      } else {
        node = cfg.enablePrefixCaching ? cache.matchAndLock(r, start / p) : RadixCache.ROOT;
        prefix = cache.depthOf(node) * p;
        const fresh = wantPages - prefix / p;
        if (fresh > cache.freePages + cache.evictablePages) {
          cache.unlock(node);
          break;
        }
        this.allocatePages(fresh);
        this.lastNode[r] = node;
        this.cachedPages[r] = prefix / p;
        this.collector.onAdmit(r, now, prefix);
      }
      this.waiting.popFront();
      req.computed[r] = chunkEnd;
      req.allocBlocks[r] = wantPages;
      this.admitted[this.admittedLen++] = r;
      const computed = chunkEnd - prefix;
      shape.prefillRequests++;
      shape.prefillNewTokens += computed;
      shape.prefillCachedTokens += prefix;
      shape.prefillAttentionPairs += computed * prefix + (computed * (computed + 1)) / 2;
      this.committedPrefillTokens += computed;
      this.progressed = true;
      remTotal -= charged + outReserve;
      remInput -= charged;
      remChunk -= charged;
      if (remChunk <= 0) break;
    }
  }

  /** Takes `pages` free pages, evicting cached ones first when free pages fall short. */
  private allocatePages(pages: number): void {
    const cache = this.cache;
    if (pages > cache.freePages) cache.evict(pages - cache.freePages);
    cache.freePages -= pages;
  }

  /** Why fresh request r (at the head of waiting) can never run here, or null. */
  private rejection(r: number): string | null {
    const req = this.req;
    const cfg = this.config;
    const p = this.page;
    const total = cfg.numGpuBlocks * p;
    const prompt = req.promptLen[r];
    const out = this.outputLimit(r);
    // The reference aborts the whole replay on these (an effect-free pass); such a request is rejected instead.
    if (Math.ceil((out >= 2 ? prompt + out : prompt) / p) * p > total)
      return 'prompt plus output larger than the KV cache';
    const whole = Math.ceil(prompt / p) * p;
    const firstChunk = whole <= cfg.chunkedPrefillSize ? whole : Math.floor(cfg.chunkedPrefillSize / p) * p;
    if (firstChunk === 0) return 'chunked_prefill_size smaller than a page';
    if (firstChunk > cfg.maxPrefillTokens) return 'prompt chunk larger than max_prefill_tokens';
    if (whole + Math.min(out, cfg.clipMaxNewTokens) >= total)
      return 'prompt plus reserved output larger than the KV cache';
    return null;
  }

  /** Inserts r's whole materialized pages into the cache (SGLang's `cache_unfinished_req`). */
  private cacheMaterialized(r: number): void {
    if (!this.config.enablePrefixCaching) return;
    const aligned = Math.floor(this.req.computed[r] / this.page);
    const from = this.cachedPages[r];
    if (aligned <= from) return;
    const cache = this.cache;
    const old = this.lastNode[r];
    const node = cache.insert(r, old, from, aligned);
    // Pages another request cached meanwhile replace r's copies, which are freed.
    if (node !== old) cache.lock(node);
    cache.freePages += cache.duplicates;
    if (node !== old) cache.unlock(old);
    this.lastNode[r] = node;
    this.cachedPages[r] = aligned;
  }

  /**
   * First tokens of the requests whose prompt completed in this (prefill) pass, at no decode cost: one whose
   * first token is its last finishes without a KV slot; the others get a slot (cached pages are evicted to make
   * room; if even that fails they sample in the next decode pass instead).
   */
  private firstTokenStep(from: number, end: number): void {
    const req = this.req;
    const p = this.page;
    const cache = this.cache;
    let w = from;
    for (let k = from; k < this.runLen; k++) {
      const r = this.running[k];
      if (this.remaining(r) === 0) this.done[this.doneLen++] = r;
      else this.running[w++] = r;
    }
    this.runLen = w;
    w = from;
    for (let k = from; k < this.runLen; k++) {
      const r = this.running[k];
      if (this.role === 'prefill') {
        this.holdForHandoff(r);
      } else if (this.remaining(r) === 1) {
        req.generated[r]++;
        this.emit(r, end);
        this.done[this.doneLen++] = r;
      } else this.running[w++] = r;
    }
    this.runLen = w;
    let needed = 0;
    for (let k = from; k < this.runLen; k++) if (req.seqLen(this.running[k]) % p === 0) needed++;
    if (needed > cache.freePages) cache.evict(needed - cache.freePages);
    if (needed > cache.freePages) return;
    for (let k = from; k < this.runLen; k++) this.appendToken(this.running[k], end);
  }

  /** Generates one token of running request r (its KV slot included) and caches a page it completes. */
  private appendToken(r: number, end: number): void {
    const req = this.req;
    if (req.computed[r] % this.page === 0) {
      this.cache.freePages--;
      req.allocBlocks[r]++;
    }
    req.computed[r]++;
    req.generated[r]++;
    this.emit(r, end);
    this.cacheMaterialized(r);
  }

  private emit(r: number, end: number): void {
    this.collector.onToken(r, end);
    if (this.req.generated[r] === 1) this.firstTokens.pushBack(r);
  }

  /** A decode pass over the running set: retraction under KV pressure, then one token each. Returns its ms. */
  /** Pages r needs for the tokens this decode step may append (with MTP, a whole burst). */
  private stepGrowth(r: number): number {
    const req = this.req;
    const p = this.page;
    const len = req.seqLen(r);
    if (this.speculative === null) return len % p === 0 ? 1 : 0;
    const width = Math.min(this.draftTokens + 1, this.outputLimit(r) - req.generated[r]);
    return Math.ceil((len + width) / p) - Math.ceil(len / p);
  }

  /** Forms a decode pass over the running set: retraction under KV pressure and eviction; returns its ms. */
  private formDecodeStep(): number {
    const req = this.req;
    const p = this.page;
    const cache = this.cache;
    this.passDecodes = false;
    if (this.runLen === 0) return 0;
    // Pages the step needs: one per request whose next token starts a page (with MTP, its burst's pages).
    let growth = 0;
    for (let k = 0; k < this.runLen; k++) growth += this.stepGrowth(this.running[k]);
    while (cache.freePages + cache.evictablePages < growth && this.runLen > 1) {
      let v = 0;
      for (let k = 1; k < this.runLen; k++)
        if (req.generated[this.running[k]] < req.generated[this.running[v]]) v = k;
      const r = this.running[v];
      this.running.copyWithin(v, v + 1, this.runLen);
      this.runLen--;
      growth -= this.stepGrowth(r);
      this.retract(r);
      this.retracted.push(r);
      this.progressed = true;
    }
    // Re-estimated from the survivors before they sample (SGLang's `retract_decode`).
    if (this.retracted.length > 0) this.retractedRatio = this.retractionRatio();
    if (growth > cache.freePages) cache.evict(growth - cache.freePages);
    let context = 0;
    for (let k = 0; k < this.runLen; k++) context += req.seqLen(this.running[k]);
    const shape = this.shape;
    shape.decodeRequests = this.runLen;
    shape.decodeContextTokens = context;
    shape.activeKvTokens = (cache.totalPages - cache.freePages - cache.evictablePages) * p;
    if (growth > cache.freePages) return 0; // cannot grow even alone: no forward (the reference stalls too)
    this.passDecodes = true;
    return ns(this.timing.decodeMs(shape) / this.config.speedupRatio);
  }

  /** The decode step's tokens, at `end`: one per running request (with MTP, a burst of them). */
  private emitDecodeStep(end: number): void {
    const req = this.req;
    const p = this.page;
    const cache = this.cache;
    const sampler = this.speculative;
    let w = 0;
    for (let k = 0; k < this.runLen; k++) {
      const r = this.running[k];
      const burst = sampler === null ? 1 : Math.min(sampler.sample(), this.outputLimit(r) - req.generated[r]);
      let finished = false;
      for (let b = 0; b < burst; b++) {
        if (req.computed[r] % p === 0) {
          cache.freePages--;
          req.allocBlocks[r]++;
        }
        req.computed[r]++;
        req.generated[r]++;
        this.emit(r, end);
        if (req.generated[r] >= this.outputLimit(r)) {
          finished = true;
          break;
        }
        this.cacheMaterialized(r);
      }
      if (finished) this.done[this.doneLen++] = r;
      else this.running[w++] = r;
    }
    this.runLen = w;
    this.progressed = true;
  }

  /** `retract_decode`'s estimate from the survivors: decoded + 20 steps each over their output budgets. */
  private retractionRatio(): number {
    const req = this.req;
    let decoded = 0;
    let maxNew = 0;
    for (let k = 0; k < this.runLen; k++) {
      const r = this.running[k];
      decoded += req.generated[r];
      maxNew += this.outputLimit(r);
    }
    return Math.min(1, (decoded + RETRACT_DECODE_STEPS * this.runLen) / (maxNew + 1));
  }

  /** Retracts r: its pages outside the cache are freed, its cached prefix stays (unlocked); it keeps its tokens. */
  private retract(r: number): void {
    const req = this.req;
    this.cache.freePages += req.allocBlocks[r] - this.cachedPages[r];
    this.cache.unlock(this.lastNode[r]);
    this.lastNode[r] = -1;
    this.cachedPages[r] = 0;
    req.allocBlocks[r] = 0;
    req.computed[r] = 0;
    req.preemptions[r]++;
    this.preemptions++;
  }

  /** Caches r's whole pages (SGLang's `cache_finished_req`) and frees the rest of its KV. */
  protected override installKeyEvents(): void {
    const log = this.kvEvents;
    const keys = this.req.keys;
    this.cache.onKeyEvent =
      log !== null
        ? (key, stored) => {
            if (keys.isPrompt(key)) log.push(key, stored);
          }
        : null;
  }

  override residents(): number[] {
    const out = super.residents();
    for (let i = 0; i < this.ready.length; i++) out.push(this.ready.get(i));
    return out;
  }

  markCachedKeys(live: Uint8Array): void {
    this.cache.markKeys(live);
  }

  protected override dropWaiting(r: number): void {
    // A chunked prompt part-way through holds its pages and a tree lock.
    if (this.lastNode[r] >= 0) this.releaseKv(r);
  }

  protected override dropOtherCancelled(): boolean {
    const req = this.req;
    let dropped = false;
    for (let i = 0; i < this.ready.length; ) {
      const r = this.ready.get(i);
      if (req.cancelled[r] === 0) {
        i++;
        continue;
      }
      this.ready.removeAt(i);
      this.releaseKv(r);
      req.status[r] = RequestStatus.Cancelled;
      this.finished.pushBack(r);
      dropped = true;
    }
    return dropped;
  }

  protected releaseKv(r: number): void {
    const req = this.req;
    const cache = this.cache;
    const complete = Math.floor(Math.min(req.seqLen(r), req.computed[r]) / this.page);
    const node = this.lastNode[r];
    if (this.config.enablePrefixCaching && complete > 0) {
      cache.freePages += req.allocBlocks[r] - complete;
      const from = this.cachedPages[r];
      cache.insert(r, node, from, complete);
      cache.freePages += cache.duplicates;
    } else {
      cache.freePages += req.allocBlocks[r] - this.cachedPages[r];
    }
    cache.unlock(node);
    this.lastNode[r] = -1;
    this.cachedPages[r] = 0;
    req.allocBlocks[r] = 0;
    req.computed[r] = 0;
  }

  // ---------------------------------------------------------------------------------------------------------
  // Disaggregated serving: the KV side of the hand-off

  /**
   * Prefill role: r's whole pages are already cached (a KV-aware router sees them at this pass end); the
   * rest of its KV stays held here until `releaseHeld`.
   */
  protected holdKv(r: number): void {
    this.cacheMaterialized(r);
    this.heldPages[r] = this.req.allocBlocks[r] - this.cachedPages[r];
  }

  /** The handoff is done: the held pages are freed and the cached prompt unlocked (no cache events). */
  releaseHeld(r: number): void {
    if (this.lastNode[r] < 0) return;
    this.cache.freePages += this.heldPages[r];
    this.heldPages[r] = 0;
    this.cache.unlock(this.lastNode[r]);
    this.lastNode[r] = -1;
    this.cachedPages[r] = 0;
  }

  /**
   * Decode role: reserves pages for r's transferred prompt (SGLang's destination lease): its cached prefix is
   * locked, the rest allocated, evicting cached pages when free ones fall short. All or nothing.
   */
  protected reserveKv(r: number): number {
    const req = this.req;
    const cache = this.cache;
    const p = this.page;
    const prompt = req.promptLen[r];
    const node = this.config.enablePrefixCaching
      ? cache.matchAndLock(r, Math.floor(prompt / p))
      : RadixCache.ROOT;
    const prefix = cache.depthOf(node);
    const pages = Math.ceil(prompt / p);
    const fresh = pages - prefix;
    if (fresh > cache.freePages + cache.evictablePages) {
      cache.unlock(node);
      return -1;
    }
    this.allocatePages(fresh);
    this.lastNode[r] = node;
    this.cachedPages[r] = prefix;
    // Kept here until the KV arrives: with SGLang's handoff order the reservation comes before the prefill,
    // which uses the request table meanwhile.
    this.reservedPages[r] = pages;
    return prefix * p;
  }

  /** The transferred prompt is materialized and cached here. */
  protected installTransferredKv(r: number): void {
    const req = this.req;
    req.allocBlocks[r] = this.reservedPages[r];
    this.reservedPages[r] = 0;
    req.computed[r] = req.promptLen[r];
    this.cacheMaterialized(r);
  }

  protected queueTransferred(r: number): void {
    this.ready.pushBack(r);
  }

  /** Moves arrived transfers into the running set while slots allow; true if some are still waiting. */
  private promoteReady(now: number): boolean {
    const req = this.req;
    while (this.ready.length > 0 && this.runLen < this.config.maxNumSeqs) {
      const r = this.ready.popFront();
      req.status[r] = RequestStatus.Running;
      this.running[this.runLen++] = r;
      this.collector.onAdmit(r, now, 0);
      this.progressed = true;
    }
    return this.ready.length > 0;
  }

  // ---------------------------------------------------------------------------------------------------------
  // Coalesced decode runs

  /**
   * Plans a run of >= 2 decode passes starting at `now`; false when the next pass may do anything else. Every
   * running request is past its first token; no pass of the run may admit (the head of waiting is watched: the
   * admission reserve shrinks as outputs progress and `new_token_ratio` decays), need a page that is not free
   * (which would evict or retract), or finish a request before its last pass.
   */
  protected planRun(now: number, horizon: number, horizonAlways: boolean): boolean {
    const req = this.req;
    const cfg = this.config;
    const p = this.page;
    const n = this.runLen;
    // MTP bursts are random: consecutive passes are not identical.
    if (n === 0 || this.ready.length > 0 || this.speculative !== null) return false;
    let kOut = Number.POSITIVE_INFINITY;
    let context = 0;
    for (let k = 0; k < n; k++) {
      const r = this.running[k];
      if (req.generated[r] === 0) return false;
      const left = this.remaining(r);
      if (left < kOut) kOut = left;
      context += req.seqLen(r);
    }
    if (kOut < 2) return false;
    kOut = Math.min(kOut, RUN_PLAN_LIMIT); // plan in bounded slices: most runs are cut by an arrival
    this.headNeed = -1;
    if (this.waiting.length > 0 && n < cfg.maxNumSeqs) {
      if (cfg.schedulePolicy === 'lpm') this.applyLpm(); // what the next pass does first (idempotent)
      const r = this.waiting.front();
      if (req.computed[r] === 0 && req.preemptions[r] === 0 && this.rejection(r) !== null) return false;
      this.watchHead(r);
    }
    const runEnds = this.runEndsFor(kOut);
    if (this.runEvict.length < runEnds.length) this.runEvict = new Int32Array(runEnds.length);
    const stepPages = this.countStepBlocks(kOut);
    // The admission reserve: sum of min(remaining, clip) falls by the requests already under the clip.
    // A request's term min(remaining - (j-1), clip) starts falling at step remaining - clip + 1.
    const clip = cfg.clipMaxNewTokens;
    let reserveSum = 0;
    let underClip = 0;
    if (this.headNeed >= 0) {
      if (this.joinAt.length < kOut + 2)
        this.joinAt = new Int32Array(Math.max(kOut + 2, this.joinAt.length * 2));
      else this.joinAt.fill(0, 0, kOut + 2);
      for (let k = 0; k < n; k++) {
        const left = this.remaining(this.running[k]);
        reserveSum += Math.min(left, clip);
        if (left <= clip) underClip++;
        else if (left - clip + 1 <= kOut) this.joinAt[left - clip + 1]++;
      }
    }
    // Cached pages may be evicted inside a run unless a waiting request could be admitted: eviction can
    // change its prefix match (and under lpm the queue order).
    const mayEvict = this.waiting.length === 0 || n >= cfg.maxNumSeqs;
    const cache = this.cache;
    let evictable = cache.evictablePages;
    let free = cache.freePages;
    let ratio = this.newTokenRatio;
    const shape = this.shape;
    resetPassShape(shape);
    shape.decodeRequests = n;
    const speedup = cfg.speedupRatio;
    let t = now;
    let steps = 0;
    let evicts = false;
    for (let j = 1; j <= kOut; j++) {
      if (j > 1 && (evicts || horizonAlways) && t >= horizon) break;
      if (this.headNeed >= 0 && this.headPages <= free + evictable) {
        const approx = (free + evictable) * p - reserveSum * ratio;
        if (approx > this.headNeed - 1e-3 && this.headNeed < this.remTotalAt(j, free + evictable, ratio))
          break;
      }
      const b = stepPages[j];
      let evict = 0;
      if (b > free) {
        if (!mayEvict || b > free + evictable) break; // the plain pass handles it (or retracts)
        evict = b - free;
        free += evict;
        evictable -= evict;
        evicts = true;
      }
      this.runEvict[j] = evict;
      shape.decodeContextTokens = context + n * (j - 1);
      shape.activeKvTokens = (cache.totalPages - free - evictable) * p;
      free -= b;
      t = t + ns(this.timing.decodeMs(shape) / speedup);
      runEnds[j] = t;
      steps = j;
      ratio = Math.max(ratio - this.ratioDecay, this.minRatio);
      if (this.headNeed >= 0) {
        reserveSum -= underClip;
        underClip += this.joinAt[j + 1];
      }
    }
    if (steps < 2) return false;
    this.beginRun(now, steps, evicts, context);
    if (this.runBase.length < n) this.runBase = new Int32Array(Math.max(n, this.runBase.length * 2));
    for (let k = 0; k < n; k++) this.runBase[k] = req.computed[this.running[k]];
    return true;
  }

  /** Records what the head of waiting would need to be admitted as the first of a batch (-1: it cannot). */
  private watchHead(r: number): void {
    const req = this.req;
    const cfg = this.config;
    const p = this.page;
    const mat = req.computed[r];
    const len = req.seqLen(r);
    let cached = 0;
    if (mat === 0 && cfg.enablePrefixCaching) {
      const matchLen = this.outputLimit(r) === 0 ? len : len - 1;
      cached = this.cache.matchPages(r, Math.floor(matchLen / p)) * p;
    }
    const start = Math.max(mat, cached);
    const extend = len - start;
    if (extend === 0 && mat > 0) return;
    let chunk = extend;
    if (Math.ceil(extend / p) * p > cfg.chunkedPrefillSize) {
      chunk = Math.min(Math.floor(cfg.chunkedPrefillSize / p) * p, extend);
      if (chunk === 0) return;
    }
    const charged = Math.ceil(chunk / p) * p;
    if (charged > cfg.maxPrefillTokens || charged > cfg.chunkedPrefillSize) return;
    const outReserve = chunk < extend ? 0 : Math.min(this.remaining(r), cfg.clipMaxNewTokens);
    this.headNeed = charged + outReserve;
    const wantPages = Math.ceil((start + chunk) / p);
    this.headPages = mat > 0 ? wantPages - req.allocBlocks[r] : wantPages - cached / p;
  }

  /** The admission KV budget at step j of a planned run, computed exactly as a plain pass would. */
  private remTotalAt(j: number, pages: number, ratio: number): number {
    const clip = this.config.clipMaxNewTokens;
    let reserve = 0;
    for (let k = 0; k < this.runLen; k++)
      reserve += Math.min(this.remaining(this.running[k]) - (j - 1), clip) * ratio;
    return pages * this.page - reserve;
  }

  /** Pages for the run's tokens; pages it fills enter the cache in (pass, slot) order, as stepping would. */
  protected applyRunKv(from: number, upTo: number): void {
    const req = this.req;
    const p = this.page;
    const cache = this.cache;
    const n = this.runLen;
    const ends = this.runEnds;
    const m = upTo - from;
    const last = upTo === this.runSteps;
    // Pages: allocated in bulk.
    for (let k = 0; k < n; k++) {
      const r = this.running[k];
      const want = Math.ceil((this.runBase[k] + upTo) / p);
      cache.freePages -= want - req.allocBlocks[r];
      req.allocBlocks[r] = want;
    }
    let nf = 0;
    for (let k = 0; k < n; k++) {
      // Step j fills a page of slot k when (base + j) % p == 0.
      const base = this.runBase[k];
      let j = from + 1 + (((-(base + from + 1) % p) + p) % p);
      for (; j <= upTo; j += p) {
        if (nf === this.fills.length) {
          const grown = new Int32Array(nf * 2);
          grown.set(this.fills);
          this.fills = grown;
        }
        this.fills[nf++] = j * n + k;
      }
    }
    const fills = this.fills;
    if (nf > 1) fills.subarray(0, nf).sort();
    // Step by step where it matters: evictions at a step's start, then the pages it fills, in slot order.
    const log = this.kvEvents;
    let i = 0;
    for (let j = from + 1; j <= upTo; j++) {
      const logStart = log?.length ?? 0;
      if (this.runEvict[j] > 0) cache.evict(this.runEvict[j]);
      for (; i < nf && fills[i] < (j + 1) * n; i++) {
        const k = fills[i] - j * n;
        const r = this.running[k];
        if (last && j === upTo && req.generated[r] + m >= this.outputLimit(r)) continue; // finishes instead
        req.computed[r] = this.runBase[k] + j;
        this.cacheMaterialized(r);
      }
      if (log !== null && log.length > logStart) log.stamp(logStart, ends[j]);
    }
    for (let k = 0; k < n; k++) req.computed[this.running[k]] = this.runBase[k] + upTo;
    for (let j = 0; j < m; j++)
      this.newTokenRatio = Math.max(this.newTokenRatio - this.ratioDecay, this.minRatio);
  }
}
