import type { KeyHolder, KeySpace } from '../kv/key-space.ts';
import { Slab } from './slab.ts';

/** Lifecycle of a request in a simulation. */
export const RequestStatus = {
  Pending: 0,
  Waiting: 1,
  Running: 2,
  Done: 3,
  Rejected: 4,
  /** Prefill done on a prefill worker; KV on its way to a decode worker. */
  Transferring: 5,
  /** Ended by its client (live simulations). */
  Cancelled: 6,
} as const;

/** A request entering the cluster: its lengths, its prompt's content ids and where it came from. */
export interface RequestSpec {
  inputLength: number;
  outputLength: number;
  /** Content ids of the prompt (`traceBlockSize` tokens each) are `hashIds[hashFrom ..]`. */
  hashIds: ArrayLike<number>;
  hashFrom: number;
  /** The source's own index of the request (workload index, live id): results are reported under it. */
  source: number;
  /**
   * A session turn whose next turn's prompt continues this prompt and its output (delta and agentic session
   * traces): the blocks through `sharedBlocks` take the keys of the next turn's prompt, whose content ids are
   * `hashIds[nextFrom ..]`, so that turn finds the blocks this one generated. Absent: the prompt's full blocks.
   */
  sharedBlocks?: number;
  nextFrom?: number;
}

/**
 * Per-request simulation state, column-wise, for the requests alive in the cluster. A request lives on one
 * engine at a time, so one table serves every engine; engines index it by request id, a slot that is taken
 * when the request arrives and recycled after it ends, so the table is as large as the requests alive at once,
 * not as the workload. Columns grow by doubling (holders must read them through the table, never keep them);
 * components with per-request state of their own grow with it (`onGrow`).
 *
 * Prefix-cache keys: a request's prompt block keys (interned in the shared `KeySpace` when it arrives) and its
 * private range for generated blocks form a key region. A region outlives its request while a radix cache node
 * names pages through it (`retainRegion` / `releaseRegion`).
 */
export class RequestTable implements KeyHolder {
  readonly blockSize: number;
  readonly keys: KeySpace;
  /** Slots (request ids) available; alive ones are `live`. */
  capacity = 0;
  live = 0;

  promptLen = new Int32Array(0);
  outputLen = new Int32Array(0);
  /** Tokens whose KV has been computed (a decoding request has one uncomputed, just-sampled token). */
  computed = new Int32Array(0);
  generated = new Int32Array(0);
  /** KV block copies held; their pool slots are `slots[slotOffset[r] .. slotOffset[r] + allocBlocks[r])`. */
  allocBlocks = new Int32Array(0);
  slotOffset = new Int32Array(0);
  preemptions = new Int32Array(0);
  status = new Uint8Array(0);
  engine = new Int32Array(0);
  /** Pass bookkeeping so a preemption can undo work already scheduled for its victim in the same pass. */
  passStamp = new Int32Array(0);
  passTokens = new Int32Array(0);
  passPromptTokens = new Int32Array(0);
  passPromptBefore = new Int32Array(0);
  /** 1 when the request's prompt was computed on a prefill worker and its KV transferred here. */
  remote = new Uint8Array(0);
  /** The source's index of the request. */
  source = new Int32Array(0);
  /** 1 once its client cancelled it: engines drop it at their next scheduling point (`cancelPending`). */
  cancelled = new Uint8Array(0);
  /** Requests alive with `cancelled` set (0 in batch runs: engines then skip the scan). */
  cancelPending = 0;
  /**
   * Its key region, and (copied from it for speed) its prompt keys' offset, full prompt blocks, blocks with
   * shareable keys (the prompt's, or more when a next turn continues its output: see RequestSpec) and private base.
   */
  region = new Int32Array(0);
  keyOffset = new Int32Array(0);
  promptBlocks = new Int32Array(0);
  sharedBlocks = new Int32Array(0);
  uniqueBase = new Int32Array(0);

  /** Pool slots of every request's KV block copies (`slots` is its array, refreshed when it grows). */
  private readonly slotSlab = new Slab(4096);
  /** Prompt block keys of every key region (`promptKeys` is its array). */
  private readonly keySlab = new Slab(4096);
  /** The backing array of `slotOffset` (a field, not a getter: engines read it in their inner loops). */
  slots: Int32Array = this.slotSlab.data;
  /** Prompt block j of r is at `promptKeys[keyOffset[r] + j]`. */
  promptKeys: Int32Array = this.keySlab.data;
  private readonly freeIds: number[] = [];

  // Key regions: prompt keys at regKeyOffset (regPromptBlocks of them), private keys from regUniqueBase
  // (regPrivate of them); alive while regRefs > 0.
  private regKeyOffset = new Int32Array(0);
  private regPromptBlocks = new Int32Array(0);
  private regUniqueBase = new Int32Array(0);
  private regPrivate = new Int32Array(0);
  private regRefs = new Int32Array(0);
  private regionCapacity = 0;
  private regionTop = 0;
  private readonly freeRegions: number[] = [];

  private readonly growListeners: ((capacity: number) => void)[] = [];

  constructor(keys: KeySpace, initialCapacity = 64) {
    this.keys = keys;
    this.blockSize = keys.blockSize;
    this.grow(Math.max(4, initialCapacity));
  }

  /** Calls `listener(capacity)` whenever the slots grow (and at once with the current capacity). */
  onGrow(listener: (capacity: number) => void): void {
    this.growListeners.push(listener);
    listener(this.capacity);
  }

  seqLen(r: number): number {
    return this.promptLen[r] + this.generated[r];
  }

  /** Key of block j of request r: a prompt block's interned key, or r's private key for a generated block. */
  blockKey(r: number, j: number): number {
    const f = this.sharedBlocks[r];
    return j < f ? this.promptKeys[this.keyOffset[r] + j] : this.uniqueBase[r] + (j - f);
  }

  /** Takes a slot for a request arriving now: state cleared, prefix keys interned. Returns its id. */
  admit(spec: RequestSpec): number {
    if (this.freeIds.length === 0) this.grow(this.capacity * 2);
    const r = this.freeIds.pop() as number;
    this.live++;
    const bs = this.blockSize;
    const input = spec.inputLength;
    const output = spec.outputLength;
    this.promptLen[r] = input;
    this.outputLen[r] = output;
    this.computed[r] = 0;
    this.generated[r] = 0;
    this.allocBlocks[r] = 0;
    this.preemptions[r] = 0;
    this.status[r] = 0;
    this.engine[r] = -1;
    this.passStamp[r] = -1;
    this.passTokens[r] = 0;
    this.passPromptTokens[r] = 0;
    this.passPromptBefore[r] = 0;
    this.remote[r] = 0;
    this.cancelled[r] = 0;
    this.source[r] = spec.source;
    const blocks = Math.ceil((input + output) / bs) + 1;
    this.slotOffset[r] = this.slotSlab.alloc(blocks);
    this.slots = this.slotSlab.data;
    const g = this.newRegion();
    const f = Math.floor(input / bs);
    const shared = spec.sharedBlocks ?? f;
    const at = this.keySlab.alloc(Math.max(1, shared));
    this.promptKeys = this.keySlab.data;
    this.keys.promptKeys(spec.hashIds, spec.hashFrom, input, this.promptKeys, at);
    if (shared > f) this.continuationKeys(spec, f, shared, at);
    const privateKeys = blocks - shared;
    const base = this.keys.privateRange(privateKeys);
    this.regKeyOffset[g] = at;
    this.regPromptBlocks[g] = shared;
    this.regUniqueBase[g] = base;
    this.regPrivate[g] = privateKeys;
    this.regRefs[g] = 1;
    this.region[r] = g;
    this.keyOffset[r] = at;
    this.promptBlocks[r] = f;
    this.sharedBlocks[r] = shared;
    this.uniqueBase[r] = base;
    return r;
  }

  private continuationScratch = new Int32Array(64);

  /** Keys of blocks [f, shared) of a continued turn: those of its next turn's prompt (see RequestSpec). */
  private continuationKeys(spec: RequestSpec, f: number, shared: number, at: number): void {
    if (this.continuationScratch.length < shared) this.continuationScratch = new Int32Array(shared * 2);
    const scratch = this.continuationScratch;
    this.keys.promptKeys(spec.hashIds, spec.nextFrom ?? 0, shared * this.blockSize, scratch, 0);
    for (let j = f; j < shared; j++) this.promptKeys[at + j] = scratch[j];
  }

  /** Gives back r's slot (the request ended and nothing refers to it any more). */
  /** Flags r as cancelled by its client (engines drop it at their next scheduling point). */
  cancel(r: number): void {
    if (this.cancelled[r] === 1) return;
    this.cancelled[r] = 1;
    this.cancelPending++;
  }

  release(r: number): void {
    if (this.cancelled[r] === 1) {
      this.cancelled[r] = 0;
      this.cancelPending--;
    }
    this.slotSlab.release(
      this.slotOffset[r],
      Math.ceil((this.promptLen[r] + this.outputLen[r]) / this.blockSize) + 1,
    );
    this.releaseRegion(this.region[r]);
    this.region[r] = -1;
    this.status[r] = RequestStatus.Pending;
    this.freeIds.push(r);
    this.live--;
  }

  // ---------------------------------------------------------------------------------------------------------
  // Key regions (see the class comment).

  /** Key of block j of region g (as `blockKey` for the request that made it). */
  regionKey(g: number, j: number): number {
    const f = this.regPromptBlocks[g];
    return j < f ? this.promptKeys[this.regKeyOffset[g] + j] : this.regUniqueBase[g] + (j - f);
  }

  retainRegion(g: number): void {
    this.regRefs[g]++;
  }

  releaseRegion(g: number): void {
    if (--this.regRefs[g] > 0) return;
    this.keySlab.release(this.regKeyOffset[g], Math.max(1, this.regPromptBlocks[g]));
    this.freeRegions.push(g);
  }

  /** Key regions alive (requests plus those kept by caches). */
  get regions(): number {
    return this.regionTop - this.freeRegions.length;
  }

  private newRegion(): number {
    if (this.freeRegions.length > 0) return this.freeRegions.pop() as number;
    if (this.regionTop === this.regionCapacity) {
      const cap = Math.max(64, this.regionCapacity * 2);
      this.regKeyOffset = grown(this.regKeyOffset, cap);
      this.regPromptBlocks = grown(this.regPromptBlocks, cap);
      this.regUniqueBase = grown(this.regUniqueBase, cap);
      this.regPrivate = grown(this.regPrivate, cap);
      this.regRefs = grown(this.regRefs, cap);
      this.regionCapacity = cap;
    }
    return this.regionTop++;
  }

  markKeys(live: Uint8Array): void {
    const keys = this.keySlab.data;
    const free = new Uint8Array(this.regionTop);
    for (const g of this.freeRegions) free[g] = 1;
    for (let g = 0; g < this.regionTop; g++) {
      if (free[g] === 1) continue;
      const at = this.regKeyOffset[g];
      for (let j = 0; j < this.regPromptBlocks[g]; j++) live[keys[at + j]] = 1;
      const base = this.regUniqueBase[g];
      for (let j = 0; j < this.regPrivate[g]; j++) live[base + j] = 1;
    }
  }

  remapKeys(map: Int32Array): void {
    const keys = this.keySlab.data;
    const free = new Uint8Array(this.regionTop);
    for (const g of this.freeRegions) free[g] = 1;
    for (let g = 0; g < this.regionTop; g++) {
      if (free[g] === 1) continue;
      const at = this.regKeyOffset[g];
      for (let j = 0; j < this.regPromptBlocks[g]; j++) keys[at + j] = map[keys[at + j]];
      if (this.regPrivate[g] > 0) this.regUniqueBase[g] = map[this.regUniqueBase[g]];
    }
    for (let r = 0; r < this.capacity; r++) {
      const g = this.region[r];
      if (g >= 0) this.uniqueBase[r] = this.regUniqueBase[g];
    }
  }

  private grow(capacity: number): void {
    const old = this.capacity;
    this.promptLen = grown(this.promptLen, capacity);
    this.outputLen = grown(this.outputLen, capacity);
    this.computed = grown(this.computed, capacity);
    this.generated = grown(this.generated, capacity);
    this.allocBlocks = grown(this.allocBlocks, capacity);
    this.slotOffset = grown(this.slotOffset, capacity);
    this.preemptions = grown(this.preemptions, capacity);
    this.status = grown(this.status, capacity);
    this.engine = grown(this.engine, capacity);
    this.passStamp = grown(this.passStamp, capacity);
    this.passTokens = grown(this.passTokens, capacity);
    this.passPromptTokens = grown(this.passPromptTokens, capacity);
    this.passPromptBefore = grown(this.passPromptBefore, capacity);
    this.remote = grown(this.remote, capacity);
    this.source = grown(this.source, capacity);
    this.cancelled = grown(this.cancelled, capacity);
    this.region = grown(this.region, capacity);
    this.region.fill(-1, old);
    this.keyOffset = grown(this.keyOffset, capacity);
    this.promptBlocks = grown(this.promptBlocks, capacity);
    this.sharedBlocks = grown(this.sharedBlocks, capacity);
    this.uniqueBase = grown(this.uniqueBase, capacity);
    // Lowest ids first: the free list is a stack.
    for (let r = capacity - 1; r >= old; r--) this.freeIds.push(r);
    this.capacity = capacity;
    for (const l of this.growListeners) l(capacity);
  }
}

/** A copy of `a` with room for `n` entries (the tail zeroed). */
export function grown<T extends Int32Array | Uint8Array | Float64Array>(a: T, n: number): T {
  if (a.length >= n) return a;
  const b = new (a.constructor as new (n: number) => T)(n);
  b.set(a);
  return b;
}
