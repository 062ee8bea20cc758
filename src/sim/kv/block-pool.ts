/**
 * The GPU KV-cache block pool of one engine with prefix caching (vLLM-style), at the granularity of physical
 * block copies.
 *
 * A copy is private (being filled; key -1) or cached under a key (a chained block hash, see `BlockLayout`). A
 * cached copy is active while requests reference it and inactive otherwise; inactive copies stay reusable until
 * evicted in LRU order of release. Two requests that compute the same block concurrently each hold a copy
 * (as vLLM does); the first copy of a key is its primary, the one prefix lookups return.
 *
 * Everything lives in typed arrays indexed by slot. The key -> primary index is an array indexed by the key
 * (`direct`: keys are dense, so this is fastest; it grows with the largest key cached, up to DIRECT_KEY_LIMIT)
 * or an open-addressing table with linear probing and backward-shift deletion (any keys; 8 bytes per block
 * whatever the key range, for clusters of many engines); either way lookups, allocations and evictions
 * allocate nothing.
 */
/** Largest key range indexed directly (4 bytes per key per engine); a larger key switches to hashing. */
export const DIRECT_KEY_LIMIT = 1 << 23;

export class BlockPool {
  readonly capacity: number;
  private readonly keyOf: Int32Array;
  private readonly ref: Int32Array;
  private readonly prev: Int32Array; // LRU links
  private readonly next: Int32Array;
  private readonly dupNext: Int32Array; // next copy of the same key (-1 = none)
  private readonly freeSlots: Int32Array;
  private freeCount: number;
  private table: Int32Array; // primary slot + 1, 0 = empty
  private readonly tableMask: number;
  private readonly tableShift: number;
  /** The table is indexed by the key itself: no probing, no hashing. */
  private direct: boolean;
  private lruHead = -1; // oldest inactive
  private lruTail = -1; // newest inactive
  private inactive = 0;
  /** Called when a key becomes cached (first copy) or stops being cached (last copy evicted). */
  onKeyEvent: ((key: number, stored: boolean) => void) | null = null;
  /** Copies evicted since creation. */
  evictions = 0;

  /**
   * `direct`: index keys directly (see the class comment), with room for keys below `keyCapacity`; the owner
   * grows it (`ensureKeyCapacity`) before any larger key is looked up.
   */
  constructor(capacity: number, direct = false, keyCapacity = 1024) {
    if (!Number.isInteger(capacity) || capacity < 1)
      throw new RangeError('KV pool capacity must be >= 1 block');
    this.capacity = capacity;
    this.keyOf = new Int32Array(capacity).fill(-1);
    this.ref = new Int32Array(capacity);
    this.prev = new Int32Array(capacity);
    this.next = new Int32Array(capacity);
    this.dupNext = new Int32Array(capacity).fill(-1);
    this.freeSlots = new Int32Array(capacity);
    for (let i = 0; i < capacity; i++) this.freeSlots[i] = capacity - 1 - i;
    this.freeCount = capacity;
    let bits = 4;
    while (1 << bits < capacity * 2) bits++;
    this.direct = direct && keyCapacity <= DIRECT_KEY_LIMIT;
    this.table = new Int32Array(this.direct ? keyCapacity : 1 << bits);
    this.tableMask = (1 << bits) - 1;
    this.tableShift = 32 - bits;
  }

  /** Copies referenced by at least one request (private or cached). */
  get activeBlocks(): number {
    return this.capacity - this.freeCount - this.inactive;
  }
  get inactiveBlocks(): number {
    return this.inactive;
  }
  /** Copies holding nothing. */
  get freeBlocks(): number {
    return this.freeCount;
  }

  private hash(key: number): number {
    return Math.imul(key ^ (key >>> 16), 0x9e3779b1) >>> this.tableShift;
  }

  /** Primary copy of a cached key, or -1. */
  slotOf(key: number): number {
    if (this.direct) return this.table[key] - 1;
    let i = this.hash(key);
    for (;;) {
      const s = this.table[i];
      if (s === 0) return -1;
      if (this.keyOf[s - 1] === key) return s - 1;
      i = (i + 1) & this.tableMask;
    }
  }

  keyOfSlot(slot: number): number {
    return this.keyOf[slot];
  }

  refOf(slot: number): number {
    return this.ref[slot];
  }

  /** Adds a reference to a cached copy (a prefix hit), taking it off the LRU if it was inactive. */
  pin(slot: number): void {
    if (this.ref[slot]++ === 0) {
      this.lruUnlink(slot);
      this.inactive--;
    }
  }

  /**
   * Takes a fresh private copy, evicting the least recently released inactive copy if nothing is free.
   * Callers check capacity first (`activeBlocks < capacity`).
   */
  allocate(): number {
    if (this.freeCount === 0) this.evictOldest();
    const slot = this.freeSlots[--this.freeCount];
    this.keyOf[slot] = -1;
    this.ref[slot] = 1;
    return slot;
  }

  /** Registers a private copy under `key` (its tokens are all computed); it may become the key's primary. */
  cache(slot: number, key: number): void {
    this.keyOf[slot] = key;
    this.dupNext[slot] = -1;
    let i = this.direct ? key : this.hash(key);
    for (;;) {
      const s = this.table[i];
      if (s === 0) {
        this.table[i] = slot + 1;
        if (this.onKeyEvent !== null) this.onKeyEvent(key, true);
        return;
      }
      if (this.keyOf[s - 1] === key) {
        // A duplicate: append to the key's chain of copies.
        let c = s - 1;
        while (this.dupNext[c] >= 0) c = this.dupNext[c];
        this.dupNext[c] = slot;
        return;
      }
      i = (i + 1) & this.tableMask;
    }
  }

  /** Room in the direct table for keys below `n`, or a switch to hashing when the key range is too large. */
  ensureKeyCapacity(n: number): void {
    if (!this.direct || n <= this.table.length) return;
    if (n > DIRECT_KEY_LIMIT) {
      const primaries = this.primaries();
      this.direct = false;
      this.table = new Int32Array(this.tableMask + 1);
      this.insertPrimaries(primaries);
      return;
    }
    const grown = new Int32Array(n);
    grown.set(this.table);
    this.table = grown;
  }

  private primaries(): number[] {
    const out: number[] = [];
    for (let i = 0; i < this.table.length; i++) if (this.table[i] !== 0) out.push(this.table[i] - 1);
    return out;
  }

  private insertPrimaries(primaries: readonly number[]): void {
    this.table.fill(0);
    for (const slot of primaries) {
      const key = this.keyOf[slot];
      if (this.direct) {
        this.table[key] = slot + 1;
        continue;
      }
      let i = this.hash(key);
      while (this.table[i] !== 0) i = (i + 1) & this.tableMask;
      this.table[i] = slot + 1;
    }
  }

  /** Drops one reference. A private copy is freed; a cached copy becomes the newest inactive copy at 0. */
  release(slot: number): void {
    if (this.keyOf[slot] < 0) {
      this.ref[slot] = 0;
      this.freeSlots[this.freeCount++] = slot;
      return;
    }
    if (--this.ref[slot] === 0) {
      this.inactive++;
      this.lruAppend(slot);
    }
  }

  private evictOldest(): void {
    const slot = this.lruHead;
    if (slot < 0) throw new Error('BlockPool: nothing to evict');
    this.lruUnlink(slot);
    this.inactive--;
    const key = this.keyOf[slot];
    let i = key;
    if (!this.direct) {
      i = this.hash(key);
      while (this.keyOf[this.table[i] - 1] !== key) i = (i + 1) & this.tableMask;
    }
    const primary = this.table[i] - 1;
    if (primary === slot) {
      const successor = this.dupNext[slot];
      if (successor >= 0) this.table[i] = successor + 1;
      else {
        if (this.direct) this.table[i] = 0;
        else this.tableDeleteAt(i);
        if (this.onKeyEvent !== null) this.onKeyEvent(key, false);
      }
    } else {
      let c = primary;
      while (this.dupNext[c] !== slot) c = this.dupNext[c];
      this.dupNext[c] = this.dupNext[slot];
    }
    this.dupNext[slot] = -1;
    this.keyOf[slot] = -1;
    this.freeSlots[this.freeCount++] = slot;
    this.evictions++;
  }

  private tableDeleteAt(i: number): void {
    // Backward-shift deletion keeps probe chains intact without tombstones.
    let j = i;
    for (;;) {
      j = (j + 1) & this.tableMask;
      const s = this.table[j];
      if (s === 0) break;
      const home = this.hash(this.keyOf[s - 1]);
      if (((j - home) & this.tableMask) >= ((j - i) & this.tableMask)) {
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

  /** Marks the key of every cached copy (see KeyHolder). */
  markKeys(live: Uint8Array): void {
    for (let s = 0; s < this.capacity; s++) if (this.keyOf[s] >= 0) live[this.keyOf[s]] = 1;
  }

  /** Renames every cached key (see KeyHolder): copies, chains of duplicates and LRU order stay as they are. */
  remapKeys(map: Int32Array): void {
    if (!this.direct) {
      const primaries = this.primaries();
      for (let s = 0; s < this.capacity; s++) if (this.keyOf[s] >= 0) this.keyOf[s] = map[this.keyOf[s]];
      this.insertPrimaries(primaries);
      return;
    }
    // Direct: the primaries are found from the copies (as many as blocks), not by scanning the key range.
    const primaries: number[] = [];
    for (let s = 0; s < this.capacity; s++) {
      const k = this.keyOf[s];
      if (k < 0) continue;
      if (this.table[k] === s + 1) {
        primaries.push(s);
        this.table[k] = 0;
      }
      this.keyOf[s] = map[k];
    }
    for (const s of primaries) this.table[this.keyOf[s]] = s + 1;
  }

  /** Keys of inactive copies from oldest to newest (tests and diagnostics). */
  inactiveKeys(): number[] {
    const out: number[] = [];
    for (let s = this.lruHead; s >= 0; s = this.next[s]) out.push(this.keyOf[s]);
    return out;
  }

  /** Number of distinct cached keys (tests and diagnostics). */
  cachedKeys(): number {
    let n = 0;
    for (let i = 0; i < this.table.length; i++) if (this.table[i] !== 0) n++;
    return n;
  }

  /** Checks internal consistency; throws with a description when broken (tests). */
  assertInvariants(): void {
    let lru = 0;
    for (let s = this.lruHead; s >= 0; s = this.next[s]) {
      if (this.ref[s] !== 0) throw new Error(`slot ${s} in LRU with ref ${this.ref[s]}`);
      if (this.keyOf[s] < 0) throw new Error(`private slot ${s} in LRU`);
      lru++;
    }
    if (lru !== this.inactive) throw new Error('LRU length != inactive count');
    const free = new Set(Array.from(this.freeSlots.subarray(0, this.freeCount)));
    if (free.size !== this.freeCount) throw new Error('free slot listed twice');
    let chained = 0;
    for (let i = 0; i < this.table.length; i++) {
      const s = this.table[i];
      if (s === 0) continue;
      if (this.slotOf(this.keyOf[s - 1]) !== s - 1) throw new Error(`key ${this.keyOf[s - 1]} not findable`);
      for (let c = s - 1; c >= 0; c = this.dupNext[c]) {
        if (free.has(c)) throw new Error(`cached slot ${c} is also free`);
        if (this.keyOf[c] !== this.keyOf[s - 1]) throw new Error(`copy ${c} in the wrong chain`);
        chained++;
      }
    }
    let cachedSlots = 0;
    for (let s = 0; s < this.capacity; s++) if (!free.has(s) && this.keyOf[s] >= 0) cachedSlots++;
    if (chained !== cachedSlots)
      throw new Error(`cached copies ${cachedSlots} but ${chained} reachable from the index`);
  }
}
