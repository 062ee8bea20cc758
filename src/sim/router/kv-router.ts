import type { Engine } from '../engine/engine.ts';
import { grown, type RequestTable } from '../engine/request-table.ts';
import type { Rng } from '../random.ts';
import { IntCountMap } from './int-count-map.ts';
import type { Router } from './router.ts';

export interface KvRouterConfig {
  /** Weight of the prefill term against the decode term (Dynamo's prefill load scale / overlap weight). */
  overlapWeight: number;
  /** Blocks of prefill credited per cached prefix block (Dynamo's overlap score credit). */
  overlapCredit: number;
  /** 0 picks the cheapest engine (random among equals); above 0, softmax sampling over normalised costs. */
  temperature: number;
  /**
   * Whether the decode term (blocks in flight) is scored; false leaves the prefill term alone, as Dynamo's
   * router does for a disaggregated prefill pool, whose workers hold no decode KV. Default true.
   */
  trackActiveBlocks?: boolean;
  /**
   * Whether blocks in flight are counted once however many requests share them, and a request's blocks
   * already in flight cost nothing (true, the default); false counts every request's blocks in full, as
   * Dynamo's router does for a disaggregated decode pool (`router_assume_kv_reuse = false`).
   */
  assumeKvReuse?: boolean;
}

/**
 * KV-cache-aware routing, as Dynamo's KV router scores workers. For engine w and a request with `isl` prompt
 * tokens and full prompt blocks B:
 *
 *   cost = overlapWeight x max((queued prefill tokens on w + isl) / blockSize - overlapCredit x overlap_w, 0)
 *        + |active blocks on w  union  B|
 *
 * where overlap_w is the longest prefix of B cached on w, queued prefill tokens are the uncached prompt tokens
 * of requests routed to w that have not produced their first token, and active blocks are the distinct full
 * prompt blocks of requests in flight on w (without `assumeKvReuse`: the sum of their full prompt blocks,
 * plus |B|; without `trackActiveBlocks`: no such term). The router learns of an engine's cache from its KV
 * events, at the end of the pass that produced them.
 */
export class KvRouter implements Router {
  readonly name = 'kv';
  readonly reads = 'kv-events';
  private prefillTokens: Float64Array;
  private activeCount: Float64Array;
  private readonly activeRefs: IntCountMap[];
  /** Per engine, a bit per prompt block key: cached there, as its KV events said (grown with the keys). */
  private readonly views: Uint32Array[];
  private routedPrefill = new Float64Array(0);
  /** Per request: 1 while this router counts it (routed here and not finished); a router that took over
   * from another at run time ignores the requests it never routed. */
  private counted = new Uint8Array(0);
  private costs: Float64Array;
  private overlaps: Int32Array;
  private words: number;
  private readonly config: KvRouterConfig;
  private readonly req: RequestTable;
  private readonly rng: Rng;
  private readonly trackActive: boolean;
  private readonly dedupe: boolean;

  constructor(config: KvRouterConfig, req: RequestTable, engines: number, rng: Rng) {
    this.config = config;
    this.trackActive = config.trackActiveBlocks ?? true;
    this.dedupe = config.assumeKvReuse ?? true;
    this.req = req;
    this.rng = rng;
    this.prefillTokens = new Float64Array(engines);
    this.activeCount = new Float64Array(engines);
    this.activeRefs = Array.from({ length: engines }, () => new IntCountMap(4096));
    const words = 1024;
    this.words = words;
    this.views = Array.from({ length: engines }, () => new Uint32Array(words));
    req.onGrow((n) => {
      this.routedPrefill = grown(this.routedPrefill, n);
      this.counted = grown(this.counted, n);
    });
    this.costs = new Float64Array(engines);
    this.overlaps = new Int32Array(engines);
  }

  /** Leading full prompt blocks of r that engine e is known to have cached. */
  overlap(r: number, e: number): number {
    const req = this.req;
    const f = req.promptBlocks[r];
    const off = req.keyOffset[r];
    const keys = req.promptKeys;
    const view = this.views[e];
    const words = this.words;
    let j = 0;
    while (j < f) {
      const k = keys[off + j];
      if (k >>> 5 >= words || (view[k >>> 5] & (1 << (k & 31))) === 0) break;
      j++;
    }
    return j;
  }

  /** Room in every view for keys below `space`. */
  private viewsFor(space: number): void {
    const need = Math.ceil(space / 32) + 1;
    if (need <= this.words) return;
    let words = this.words;
    while (words < need) words *= 2;
    for (let e = 0; e < this.views.length; e++) {
      const v = new Uint32Array(words);
      v.set(this.views[e]);
      this.views[e] = v;
    }
    this.words = words;
  }

  private syncViews(engines: readonly Engine[], now: number): void {
    this.viewsFor(this.req.keys.size);
    for (let e = 0; e < engines.length; e++) {
      const log = engines[e].kvEvents;
      if (log === null) continue;
      const view = this.views[e];
      log.consume(now, (key, stored) => {
        if (stored) view[key >>> 5] |= 1 << (key & 31);
        else view[key >>> 5] &= ~(1 << (key & 31));
      });
    }
  }

  addSlot(): void {
    const n = this.views.length + 1;
    const grow = <T extends Float64Array | Int32Array>(a: T, make: (len: number) => T): T => {
      if (a.length >= n) return a;
      const b = make(Math.max(n, a.length * 2));
      b.set(a);
      return b;
    };
    this.prefillTokens = grow(this.prefillTokens, (len) => new Float64Array(len));
    this.activeCount = grow(this.activeCount, (len) => new Float64Array(len));
    this.costs = grow(this.costs, (len) => new Float64Array(len));
    this.overlaps = grow(this.overlaps, (len) => new Int32Array(len));
    this.activeRefs.push(new IntCountMap(4096));
    this.views.push(new Uint32Array(this.words));
  }

  resetSlot(slot: number): void {
    // The previous occupant left with nothing in flight; only its cache view remains.
    this.views[slot].fill(0);
    this.activeRefs[slot] = new IntCountMap(4096);
    this.prefillTokens[slot] = 0;
    this.activeCount[slot] = 0;
  }

  /** Marks the keys it knows (see KeyHolder): cached per its views, in flight per its counts. */
  markKeys(live: Uint8Array): void {
    for (const view of this.views) {
      for (let w = 0; w < view.length; w++) {
        let bits = view[w];
        while (bits !== 0) {
          const b = 31 - Math.clz32(bits);
          live[w * 32 + b] = 1;
          bits &= ~(1 << b);
        }
      }
    }
    for (const refs of this.activeRefs) refs.markKeys(live);
  }

  remapKeys(map: Int32Array): void {
    for (let e = 0; e < this.views.length; e++) {
      const old = this.views[e];
      const view = new Uint32Array(old.length);
      for (let w = 0; w < old.length; w++) {
        let bits = old[w];
        while (bits !== 0) {
          const b = 31 - Math.clz32(bits);
          const k = map[w * 32 + b];
          view[k >>> 5] |= 1 << (k & 31);
          bits &= ~(1 << b);
        }
      }
      this.views[e] = view;
    }
    for (const refs of this.activeRefs) refs.remapKeys(map);
  }

  route(r: number, engines: readonly Engine[], now: number, eligible?: Uint8Array | null): number {
    this.syncViews(engines, now);
    const req = this.req;
    const bs = req.blockSize;
    const isl = req.promptLen[r];
    const f = req.promptBlocks[r];
    const off = req.keyOffset[r];
    const { overlapWeight, overlapCredit, temperature } = this.config;
    let min = Number.POSITIVE_INFINITY;
    let max = Number.NEGATIVE_INFINITY;
    const keys = req.promptKeys;
    const dedupe = this.dedupe;
    const trackActive = this.trackActive;
    for (let e = 0; e < engines.length; e++) {
      if (eligible && eligible[e] === 0) {
        this.costs[e] = Number.NaN;
        continue;
      }
      const view = this.views[e];
      const refs = this.activeRefs[e];
      // Overlap (leading blocks in the engine's cache) and blocks already in flight there, in one pass. Keys
      // are chained hashes and every in-flight request holds all its prompt blocks, so r's blocks in flight
      // form a prefix of its blocks: the walk stops once both runs have ended.
      let ov = 0;
      let inFlight = 0;
      let cached = true;
      let active = dedupe && trackActive && refs.size > 0;
      for (let j = 0; j < f && (cached || active); j++) {
        const k = keys[off + j];
        if (cached) {
          if ((view[k >>> 5] & (1 << (k & 31))) !== 0) ov++;
          else cached = false;
        }
        if (active) {
          if (refs.get(k) !== 0) inFlight++;
          else active = false;
        }
      }
      const fresh = f - inFlight;
      this.overlaps[e] = ov;
      const prefill = Math.max((this.prefillTokens[e] + isl) / bs - overlapCredit * ov, 0);
      const cost = overlapWeight * prefill + (trackActive ? this.activeCount[e] + fresh : 0);
      this.costs[e] = cost;
      if (cost < min) min = cost;
      if (cost > max) max = cost;
    }
    let chosen = -1;
    if (temperature > 0 && max > min) {
      let total = 0;
      let last = -1;
      for (let e = 0; e < engines.length; e++) {
        const c = this.costs[e];
        const w = Number.isNaN(c) ? 0 : Math.exp(-(c - min) / ((max - min) * temperature));
        if (w > 0) last = e;
        this.costs[e] = w;
        total += w;
      }
      let x = this.rng.next() * total;
      for (let e = 0; e < engines.length && chosen < 0; e++) {
        x -= this.costs[e];
        if (x < 0) chosen = e;
      }
      if (chosen < 0) chosen = eligible ? last : engines.length - 1;
    } else {
      // Cheapest engine; equal costs are broken uniformly at random (reservoir sampling), as the reference does.
      let ties = 0;
      for (let e = 0; e < engines.length; e++) {
        if (this.costs[e] !== min) continue;
        ties++;
        if (ties === 1 || this.rng.int(ties) === 0) chosen = e;
      }
    }
    this.routedPrefill[r] = Math.max(0, isl - this.overlaps[chosen] * bs);
    return chosen;
  }

  /** Starts engine slot e's view from what its cache holds now (a router taking over at run time). */
  seedView(e: number, engine: Engine): void {
    if (!engine.markCachedKeys) return;
    const keys = this.req.keys;
    this.viewsFor(keys.size);
    const live = new Uint8Array(keys.size);
    engine.markCachedKeys(live);
    const view = this.views[e];
    for (let k = 0; k < live.length; k++)
      if (live[k] === 1 && keys.isPrompt(k)) view[k >>> 5] |= 1 << (k & 31);
  }

  onRouted(r: number, e: number): void {
    this.counted[r] = 1;
    const req = this.req;
    const f = req.promptBlocks[r];
    const off = req.keyOffset[r];
    this.prefillTokens[e] += this.routedPrefill[r];
    if (!this.trackActive) return;
    if (!this.dedupe) {
      this.activeCount[e] += f;
      return;
    }
    const refs = this.activeRefs[e];
    const keys = req.promptKeys;
    for (let j = 0; j < f; j++) if (refs.increment(keys[off + j]) === 1) this.activeCount[e]++;
  }

  onFirstToken(r: number, e: number): void {
    if (this.counted[r] === 0) return;
    this.prefillTokens[e] -= this.routedPrefill[r];
    this.routedPrefill[r] = 0;
  }

  onFinished(r: number, e: number): void {
    if (this.counted[r] === 0) return;
    this.counted[r] = 0;
    if (this.routedPrefill[r] !== 0) this.onFirstToken(r, e);
    if (!this.trackActive) return;
    const req = this.req;
    const f = req.promptBlocks[r];
    const off = req.keyOffset[r];
    if (!this.dedupe) {
      this.activeCount[e] -= f;
      return;
    }
    const refs = this.activeRefs[e];
    const keys = req.promptKeys;
    for (let j = 0; j < f; j++) if (refs.decrement(keys[off + j]) === 0) this.activeCount[e]--;
  }
}
