/**
 * The GPU KV-cache block pool of one engine with prefix caching (vLLM-style).
 *
 * Blocks are either private (allocated to one request, not yet full or not yet hashed) or cached: full blocks
 * registered under their key (a chained hash, see `BlockLayout`). A cached block is active while at least one
 * request references it and inactive otherwise; inactive blocks stay reusable until evicted in LRU order.
 *
 * Everything lives in typed arrays indexed by slot; the key -> slot index is an open-addressing table with
 * linear probing and backward-shift deletion, so lookups, pins and evictions allocate nothing.
 */
export class BlockPool {
  readonly capacity: number;
  private readonly keyOf: Int32Array;
  private readonly ref: Int32Array;
  private readonly prev: Int32Array;
  private readonly next: Int32Array;
  private readonly freeSlots: Int32Array;
  private freeSlotCount: number;
  private readonly table: Int32Array; // slot + 1, 0 = empty
  private readonly tableMask: number;
  private readonly tableShift: number;
  private lruHead = -1; // oldest inactive
  private lruTail = -1; // newest inactive
  private cached = 0; // slots in the table
  private activeCached = 0; // cached with ref > 0
  private privateCount = 0;
  /** Called with the key of each cached block evicted to make room (lower KV tiers hook in here). */
  onEvict: ((key: number) => void) | null = null;
  /** Blocks evicted since creation. */
  evictions = 0;

  constructor(capacity: number) {
    if (!Number.isInteger(capacity) || capacity < 1)
      throw new RangeError('KV pool capacity must be >= 1 block');
    this.capacity = capacity;
    this.keyOf = new Int32Array(capacity);
    this.ref = new Int32Array(capacity);
    this.prev = new Int32Array(capacity);
    this.next = new Int32Array(capacity);
    this.freeSlots = new Int32Array(capacity);
    for (let i = 0; i < capacity; i++) this.freeSlots[i] = capacity - 1 - i;
    this.freeSlotCount = capacity;
    let bits = 4;
    while (1 << bits < capacity * 2) bits++;
    this.table = new Int32Array(1 << bits);
    this.tableMask = (1 << bits) - 1;
    this.tableShift = 32 - bits;
  }

  /** Blocks referenced by at least one request (cached active + private). */
  get activeBlocks(): number {
    return this.activeCached + this.privateCount;
  }
  /** Cached blocks (active and inactive). */
  get cachedBlocks(): number {
    return this.cached;
  }
  get inactiveBlocks(): number {
    return this.cached - this.activeCached;
  }
  get privateBlocks(): number {
    return this.privateCount;
  }
  /** Blocks holding nothing at all. */
  get freeBlocks(): number {
    return this.capacity - this.cached - this.privateCount;
  }

  private hash(key: number): number {
    return Math.imul(key ^ (key >>> 16), 0x9e3779b1) >>> this.tableShift;
  }

  /** Slot of a cached key, or -1. */
  slotOf(key: number): number {
    let i = this.hash(key);
    for (;;) {
      const s = this.table[i];
      if (s === 0) return -1;
      if (this.keyOf[s - 1] === key) return s - 1;
      i = (i + 1) & this.tableMask;
    }
  }

  /** Reference count of a cached slot. */
  refOf(slot: number): number {
    return this.ref[slot];
  }

  /** Adds a reference to a cached slot (a prefix hit), reactivating it if it was inactive. */
  pin(slot: number): void {
    if (this.ref[slot]++ === 0) {
      this.lruUnlink(slot);
      this.activeCached++;
    }
  }

  /** Drops a reference; the block becomes the newest inactive block when the last reference goes. */
  unpin(slot: number): void {
    if (--this.ref[slot] === 0) {
      this.activeCached--;
      this.lruAppend(slot);
    }
  }

  /** True when n private blocks can be allocated, evicting inactive blocks if needed. */
  canAllocate(n: number): boolean {
    return n <= this.capacity - this.activeBlocks;
  }

  /** Allocates n private blocks, evicting the oldest inactive blocks as needed; false (and no change) if short. */
  allocate(n: number): boolean {
    if (n <= 0) return true;
    if (n > this.capacity - this.activeBlocks) return false;
    let shortfall = n - this.freeBlocks;
    while (shortfall-- > 0) this.evictOldest();
    this.privateCount += n;
    return true;
  }

  /** Returns n private blocks to the free pool. */
  freePrivate(n: number): void {
    this.privateCount -= n;
  }

  /**
   * Turns one of the caller's private blocks into the cached block `key` with one reference. If `key` is already
   * cached the private block is freed and the existing copy gains the reference instead. Returns the slot.
   */
  promote(key: number): number {
    this.privateCount--;
    const existing = this.slotOf(key);
    if (existing >= 0) {
      this.pin(existing);
      return existing;
    }
    const slot = this.freeSlots[--this.freeSlotCount];
    this.keyOf[slot] = key;
    this.ref[slot] = 1;
    this.cached++;
    this.activeCached++;
    let i = this.hash(key);
    while (this.table[i] !== 0) i = (i + 1) & this.tableMask;
    this.table[i] = slot + 1;
    return slot;
  }

  /** Evicts the least recently used inactive block. */
  private evictOldest(): void {
    const slot = this.lruHead;
    if (slot < 0) throw new Error('BlockPool: nothing to evict');
    this.lruUnlink(slot);
    const key = this.keyOf[slot];
    this.tableDelete(slot);
    this.cached--;
    this.freeSlots[this.freeSlotCount++] = slot;
    this.evictions++;
    if (this.onEvict !== null) this.onEvict(key);
  }

  /** Evicts n inactive blocks in LRU order (used by the coalesced decode path). */
  evict(n: number): void {
    while (n-- > 0) this.evictOldest();
  }

  private tableDelete(slot: number): void {
    let i = this.hash(this.keyOf[slot]);
    while (this.table[i] !== slot + 1) i = (i + 1) & this.tableMask;
    // Backward-shift deletion keeps probe chains intact without tombstones.
    let j = i;
    for (;;) {
      j = (j + 1) & this.tableMask;
      const s = this.table[j];
      if (s === 0) break;
      const home = this.hash(this.keyOf[s - 1]);
      const dist = (j - home) & this.tableMask;
      const gap = (j - i) & this.tableMask;
      if (dist >= gap) {
        this.table[i] = s;
        i = j;
      }
    }
    this.table[i] = 0;
  }

  private lruAppend(slot: number): void {
    this.prev[slot] = this.lruTail;
    this.next[slot] = -1;
    if (this.lruTail >= 0) this.next[this.lruTail] = slot;
    else this.lruHead = slot;
    this.lruTail = slot;
  }

  private lruUnlink(slot: number): void {
    const p = this.prev[slot];
    const n = this.next[slot];
    if (p >= 0) this.next[p] = n;
    else this.lruHead = n;
    if (n >= 0) this.prev[n] = p;
    else this.lruTail = p;
  }

  /** Keys of inactive blocks from oldest to newest (tests and diagnostics). */
  inactiveKeys(): number[] {
    const out: number[] = [];
    for (let s = this.lruHead; s >= 0; s = this.next[s]) out.push(this.keyOf[s]);
    return out;
  }

  /** Checks internal consistency; throws with a description when broken (tests). */
  assertInvariants(): void {
    let inactive = 0;
    for (let s = this.lruHead; s >= 0; s = this.next[s]) {
      if (this.ref[s] !== 0) throw new Error(`slot ${s} in LRU with ref ${this.ref[s]}`);
      inactive++;
    }
    if (inactive !== this.cached - this.activeCached) throw new Error('LRU length != inactive count');
    let inTable = 0;
    for (let i = 0; i < this.table.length; i++) {
      const s = this.table[i];
      if (s === 0) continue;
      inTable++;
      if (this.slotOf(this.keyOf[s - 1]) !== s - 1) throw new Error(`key ${this.keyOf[s - 1]} not findable`);
    }
    if (inTable !== this.cached) throw new Error('table size != cached count');
    if (this.cached + this.privateCount > this.capacity) throw new Error('pool over capacity');
    if (this.privateCount < 0 || this.activeCached < 0) throw new Error('negative counts');
    if (this.freeSlotCount !== this.capacity - this.cached) throw new Error('free slot stack out of sync');
  }
}
