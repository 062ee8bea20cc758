import type { RequestTable } from '../engine/request-table.ts';
import type { VllmEngine } from '../engine/vllm-engine.ts';
import type { Rng } from '../random.ts';
import type { Router } from './router.ts';

export interface KvRouterConfig {
  /** Weight of the prefill cost (uncached prompt blocks plus queued prefill) against the decode load. */
  overlapWeight: number;
  /** 0 picks the cheapest engine; above 0, engines are sampled with softmax over normalised costs. */
  temperature: number;
}

/**
 * KV-cache-aware routing (Dynamo's KV router): for every engine, the cost of sending the request there is
 * `overlapWeight x prefill blocks + decode blocks`, where prefill blocks are the engine's queued prefill
 * tokens plus the request's uncached prompt (prompt minus the longest prefix cached on that engine), and
 * decode blocks are the distinct KV blocks of requests in flight there plus the request's blocks not among
 * them.
 */
export class KvRouter implements Router {
  readonly name = 'kv';
  readonly readsState = true;
  private readonly prefillTokens: Float64Array;
  private readonly activeBlocks: Float64Array;
  /** Per engine: refcounts of prompt block keys of in-flight requests (shared blocks counted once). */
  private readonly blockRefs: Map<number, number>[];
  private readonly routedPrefill: Float64Array;
  private readonly costs: Float64Array;
  private readonly overlaps: Int32Array;

  private readonly config: KvRouterConfig;
  private readonly req: RequestTable;
  private readonly rng: Rng;
  constructor(config: KvRouterConfig, req: RequestTable, engines: number, rng: Rng) {
    this.config = config;
    this.req = req;
    this.rng = rng;
    this.prefillTokens = new Float64Array(engines);
    this.activeBlocks = new Float64Array(engines);
    this.blockRefs = Array.from({ length: engines }, () => new Map<number, number>());
    this.routedPrefill = new Float64Array(req.size);
    this.costs = new Float64Array(engines);
    this.overlaps = new Int32Array(engines);
  }

  /** Leading prompt blocks of r cached on engine e. */
  overlap(r: number, engine: VllmEngine): number {
    const layout = this.req.layout;
    const f = layout.promptBlocks[r];
    const off = layout.offsets[r];
    let j = 0;
    while (j < f && engine.pool.slotOf(layout.keys[off + j]) >= 0) j++;
    return j;
  }

  route(r: number, engines: readonly VllmEngine[]): number {
    const req = this.req;
    const bs = req.layout.blockSize;
    const isl = req.promptLen[r];
    const f = req.layout.promptBlocks[r];
    const off = req.layout.offsets[r];
    const requestBlocks = Math.ceil(isl / bs);
    let min = Number.POSITIVE_INFINITY;
    let max = Number.NEGATIVE_INFINITY;
    for (let e = 0; e < engines.length; e++) {
      const ov = this.overlap(r, engines[e]);
      this.overlaps[e] = ov;
      const refs = this.blockRefs[e];
      let fresh = requestBlocks - f; // a partial tail block is never shared
      for (let j = 0; j < f; j++) if (!refs.has(req.layout.keys[off + j])) fresh++;
      const prefillBlocks = (this.prefillTokens[e] + isl - ov * bs) / bs;
      const decodeBlocks = this.activeBlocks[e] + fresh;
      const cost = this.config.overlapWeight * prefillBlocks + decodeBlocks;
      this.costs[e] = cost;
      if (cost < min) min = cost;
      if (cost > max) max = cost;
    }
    let chosen = -1;
    if (this.config.temperature > 0 && max > min) {
      let total = 0;
      for (let e = 0; e < engines.length; e++) {
        const w = Math.exp(-(this.costs[e] - min) / ((max - min) * this.config.temperature));
        this.costs[e] = w;
        total += w;
      }
      let x = this.rng.next() * total;
      for (let e = 0; e < engines.length; e++) {
        x -= this.costs[e];
        if (x < 0) {
          chosen = e;
          break;
        }
      }
      if (chosen < 0) chosen = engines.length - 1;
    } else {
      // Cheapest; ties to the engine with the smaller cache, then a seeded coin.
      let ties = 0;
      let bestTree = Number.POSITIVE_INFINITY;
      for (let e = 0; e < engines.length; e++) {
        if (this.costs[e] !== min) continue;
        const tree = engines[e].pool.cachedBlocks;
        if (tree < bestTree) {
          bestTree = tree;
          chosen = e;
          ties = 1;
        } else if (tree === bestTree) {
          ties++;
          if (this.rng.int(ties) === 0) chosen = e;
        }
      }
    }
    this.routedPrefill[r] = isl - this.overlaps[chosen] * bs;
    return chosen;
  }

  onRouted(r: number, e: number): void {
    const req = this.req;
    const bs = req.layout.blockSize;
    const f = req.layout.promptBlocks[r];
    const off = req.layout.offsets[r];
    this.prefillTokens[e] += this.routedPrefill[r];
    const refs = this.blockRefs[e];
    let fresh = Math.ceil(req.promptLen[r] / bs) - f;
    for (let j = 0; j < f; j++) {
      const k = req.layout.keys[off + j];
      const c = refs.get(k) ?? 0;
      if (c === 0) fresh++;
      refs.set(k, c + 1);
    }
    this.activeBlocks[e] += fresh;
  }

  onFirstToken(r: number, e: number): void {
    this.prefillTokens[e] -= this.routedPrefill[r];
    this.routedPrefill[r] = 0;
  }

  onFinished(r: number, e: number): void {
    if (this.routedPrefill[r] !== 0) this.onFirstToken(r, e);
    const req = this.req;
    const bs = req.layout.blockSize;
    const f = req.layout.promptBlocks[r];
    const off = req.layout.offsets[r];
    const refs = this.blockRefs[e];
    let gone = Math.ceil(req.promptLen[r] / bs) - f;
    for (let j = 0; j < f; j++) {
      const k = req.layout.keys[off + j];
      const c = refs.get(k) ?? 0;
      if (c <= 1) {
        refs.delete(k);
        gone++;
      } else refs.set(k, c - 1);
    }
    this.activeBlocks[e] -= gone;
  }
}
