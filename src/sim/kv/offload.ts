import { TransferLink } from '../disagg/transfer-link.ts';
import { KeyLru } from './key-lru.ts';

/** Lower KV tiers of one engine: host memory (G2) and optionally disk (G3), with their links. */
export interface OffloadConfig {
  /** Blocks the host tier holds (0 = no offloading). */
  g2Blocks: number;
  /** GB/s between GPU and host, each direction. */
  g2Gbps: number;
  /** Blocks the disk tier holds (0 = none); written through with the host tier, or filled by its evictions. */
  g3Blocks: number;
  /** GB/s between host and disk. */
  g3Gbps: number;
  /** Bytes of one KV block (block size x KV bytes per token). */
  blockBytes: number;
  /**
   * When a block reaches host memory. `write-through` (vLLM's native offloading connector, the reference's
   * host tier): every full prompt block is stored once computed, and a request's prefix lookup refreshes
   * the host copies of its GPU hits, so host memory holds the most recently used prompts whether or not
   * the GPU still has them. `on-evict` (the earlier KVBM mocker): a block is written back when the GPU
   * cache evicts it, so the host tier extends the GPU cache instead of shadowing it.
   */
  policy: OffloadPolicy;
}

export type OffloadPolicy = 'write-through' | 'on-evict';

/**
 * Blocks are kept in host memory (written through when computed, or written back when the GPU evicts them;
 * see OffloadConfig.policy) and host evictions go to disk. A prefix hit in a lower tier is brought back (onboarded) over the tier's link, which
 * concurrent onboards of this engine share; disk hits are staged through host memory (disk link, then host
 * link). Write-back is asynchronous and does not delay the GPU.
 */
export class OffloadTiers {
  readonly g2: KeyLru;
  readonly g3: KeyLru | null;
  private readonly hostLink: TransferLink;
  private readonly diskLink: TransferLink;
  private readonly blockBytes: number;
  /** Per onboard id: blocks to move over the host link once its disk phase (if any) is done. */
  private readonly hostBlocks = new Map<number, number>();
  private readonly done: number[] = [];
  private readonly scratch: number[] = [];
  offloaded = 0;
  onboardedG2 = 0;
  onboardedG3 = 0;

  constructor(config: OffloadConfig) {
    this.g2 = new KeyLru(config.g2Blocks);
    this.g3 = config.g3Blocks > 0 ? new KeyLru(config.g3Blocks) : null;
    this.hostLink = new TransferLink(config.g2Gbps);
    this.diskLink = new TransferLink(config.g3Gbps);
    this.blockBytes = config.blockBytes;
    this.writeThrough = config.policy === 'write-through';
  }

  /** A prefix lookup used this block: its host copy, if any, becomes the newest. */
  touch(key: number): void {
    if (this.g2.has(key)) this.g2.insert(key);
  }

  readonly writeThrough: boolean;

  /**
   * Keeps a block in host memory as the newest. Written through, it goes to disk as well (each tier an LRU
   * of its own, as the reference's host and disk tiers); written back, the oldest host block spills to disk.
   */
  offload(key: number): void {
    this.offloaded++;
    const spilled = this.g2.insert(key);
    if (this.g3 === null) return;
    if (this.writeThrough) this.g3.insert(key);
    else if (spilled >= 0) this.g3.insert(spilled);
  }

  /** 2 when the block is in host memory, 3 on disk, 0 when in neither. */
  tierOf(key: number): number {
    if (this.g2.has(key)) return 2;
    if (this.g3?.has(key)) return 3;
    return 0;
  }

  markKeys(live: Uint8Array): void {
    this.g2.markKeys(live);
    this.g3?.markKeys(live);
  }

  remapKeys(map: Int32Array): void {
    this.g2.remapKeys(map);
    this.g3?.remapKeys(map);
  }

  /** Starts onboarding `g2` host blocks and `g3` disk blocks for request `id` at `now`. */
  onboard(id: number, g2: number, g3: number, now: number): void {
    this.onboardedG2 += g2;
    this.onboardedG3 += g3;
    if (g3 > 0) {
      this.hostBlocks.set(id, g2 + g3);
      this.diskLink.add(id, g3 * this.blockBytes, now);
    } else {
      this.hostLink.add(id, g2 * this.blockBytes, now);
    }
  }

  get pending(): number {
    return this.hostLink.active + this.diskLink.active;
  }

  /** Time the next onboard completes (Infinity when none). */
  nextCompletion(): number {
    let t = this.hostLink.nextCompletion();
    // A disk phase ending starts a host phase; that is when something changes.
    const d = this.diskLink.nextCompletion();
    if (d < t) t = d;
    return t;
  }

  /** Advances to `now`; returns ids whose onboarding finished, in completion order. */
  completeUpTo(now: number): number[] {
    const done = this.done;
    done.length = 0;
    for (;;) {
      const dt = this.diskLink.nextCompletion();
      const ht = this.hostLink.nextCompletion();
      const t = Math.min(dt, ht);
      if (t > now) break;
      if (dt <= ht) {
        this.diskLink.completeUpTo(dt, this.scratch);
        for (const id of this.scratch) {
          const blocks = this.hostBlocks.get(id) ?? 0;
          this.hostBlocks.delete(id);
          this.hostLink.add(id, blocks * this.blockBytes, dt);
        }
      } else {
        this.hostLink.completeUpTo(ht, this.scratch);
        done.push(...this.scratch);
      }
    }
    return done;
  }
}
