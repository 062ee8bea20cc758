/**
 * Prefix-cache block keys assigned incrementally, request by request, and compacted when they pile up: what
 * lets a simulation run for days or replay a trace it never holds whole (the batch `layoutBlocks` interns a
 * whole workload up front instead).
 *
 * A block key stands for a chained hash: equal keys <=> equal token content from the start of the prompt
 * through the end of that block. Prompts are sequences of content ids (trace hash ids: any integers in
 * [0, 2^53)), each standing for `traceBlockSize` tokens; keys are dense integers, so KV caches and routers can
 * index them in typed arrays. Interning is an open-addressing table of (parent key, content) entries on typed
 * arrays, allocation-free per lookup: the first entry of each content id sits in a table probed from the id's
 * own low bits, so the fresh, increasing ids of new prompts land in neighbouring slots (cache-friendly, like a
 * dense array); only a content id seen again under another parent goes to the (parent, content) table.
 *
 *  - Engine block dividing the trace block (ratio r = tb / bs): one entry per content id in context, owning r
 *    consecutive keys (its engine blocks);
 *  - otherwise a block may straddle content ids: each block chains through every id it covers and then a
 *    block-boundary marker, and the marker's entry is the block's key (as `layoutBlocks` does);
 *  - blocks holding generated tokens are never shared: each request takes a private range of keys.
 *
 * Compaction: keys no longer held anywhere (by a live request, a KV cache, a lower tier, a router's view or a
 * pending KV event) are forgotten, and the live ones renumbered densely in their creation order. Holders mark
 * the keys they hold and then rewrite them through the returned map; an entry whose key is live keeps its
 * ancestors alive, so a later prompt with the same prefix finds the same keys. Nothing in the simulation
 * depends on key values beyond equality, so compaction never changes a result (tests compare runs with and
 * without it).
 */

/** Something that holds block keys: marks them live, then renames them after a compaction. */
export interface KeyHolder {
  /** Sets `live[key] = 1` for every key held. */
  markKeys(live: Uint8Array): void;
  /** Rewrites every key held as `map[key]` (never -1 for a key it marked). */
  remapKeys(map: Int32Array): void;
}

/** Content marking the end of an engine block in the straddling layout (content ids are >= 0). */
const BOUNDARY = -2;
const NO_ENTRY = -1;

export class KeySpace {
  readonly blockSize: number;
  readonly traceBlockSize: number;
  /** Engine blocks per content id when the engine block divides the trace block, else 0. */
  readonly ratio: number;

  // Interner entries, in creation order: (parent key, content) -> key.
  private parents: Int32Array;
  private contents: Float64Array;
  private entryKeys: Int32Array;
  private entries = 0;
  /** Per dense content id (below `contentSpace`), its first entry (entry + 1, 0 = none yet). */
  private readonly firstOfContent: Int32Array;
  /** Per other content id, its first entry (entry + 1, 0 = empty); probed from the id's low bits. */
  private firstSlots: Int32Array;
  private firstMask: number;
  /** Entries whose content id was first seen under another parent (entry + 1, 0 = empty). */
  private slots: Int32Array;
  private mask: number;
  private inPairTable = 0;
  private inFirstSlots = 0;

  /** Per key: its entry (prompt keys; in the divisible layout all r keys of an entry), -1 for private keys. */
  private entryOfKey: Int32Array;
  private next = 0;
  /** Keys after the last compaction (or 0), to decide when the next one pays. */
  private liveAfterCompaction = 0;
  /** Compactions so far. */
  compactions = 0;
  /**
   * Whether holders should index keys directly (an array over the key range per holder: fastest, but 4 bytes
   * per key each, so a simulation of many engines hashes instead).
   */
  indexDirectly = true;
  /** Compact once the key space exceeds this and twice what survived the last compaction. */
  readonly compactAbove: number;

  /**
   * `contentSpace`: content ids below it are dense (a workload's), indexed by an array of that size instead of
   * hashed. `compactAbove`: see `wantsCompaction`.
   */
  /** Keys expected (a workload's: sizes tables up front instead of growing them). */
  readonly sizeHint: number;

  constructor(
    blockSize: number,
    traceBlockSize: number,
    opts: { compactAbove?: number; contentSpace?: number; expectedContents?: number } = {},
  ) {
    if (!Number.isInteger(blockSize) || blockSize < 1)
      throw new RangeError('block size must be a positive integer');
    if (!Number.isInteger(traceBlockSize) || traceBlockSize < 1)
      throw new RangeError('trace block size must be a positive integer');
    this.blockSize = blockSize;
    this.traceBlockSize = traceBlockSize;
    this.ratio = traceBlockSize % blockSize === 0 ? traceBlockSize / blockSize : 0;
    this.compactAbove = opts.compactAbove ?? 1 << 22;
    // A workload's content ids bound its entries (one per id in context) and, with private ranges, its keys.
    const entries = Math.max(1024, Math.min(opts.expectedContents ?? 0, this.compactAbove));
    const keys = Math.min(this.compactAbove, entries * (Math.max(1, this.ratio) + 1));
    this.sizeHint = keys;
    this.parents = new Int32Array(entries);
    this.contents = new Float64Array(entries);
    this.entryKeys = new Int32Array(entries);
    this.slots = new Int32Array(2048);
    this.mask = 2047;
    this.firstSlots = new Int32Array(2048);
    this.firstMask = 2047;
    this.firstOfContent = new Int32Array(opts.contentSpace ?? 0);
    this.entryOfKey = new Int32Array(Math.max(4096, keys));
  }

  /** One past the largest key in use. */
  get size(): number {
    return this.next;
  }

  /** Keys below this fit without growing (directly indexed tables are kept at least this large). */
  get capacity(): number {
    return this.entryOfKey.length;
  }

  /** Told of each new capacity (directly indexed tables grow with it, so lookups need no bounds check). */
  onCapacity: ((capacity: number) => void) | null = null;

  /** Interned (parent, content) entries. */
  get entryCount(): number {
    return this.entries;
  }

  /** True for keys of prompt blocks (shareable), false for private keys of generated tokens. */
  isPrompt(key: number): boolean {
    return this.entryOfKey[key] >= 0;
  }

  /** Full engine blocks of a prompt of `inputLength` tokens. */
  promptBlocks(inputLength: number): number {
    return Math.floor(inputLength / this.blockSize);
  }

  /**
   * Writes the keys of the prompt's full blocks to `out[at ..]` and returns how many: the prompt's content ids
   * are `hashIds[from ..]` (enough of them to cover `inputLength` tokens).
   */
  promptKeys(
    hashIds: ArrayLike<number>,
    from: number,
    inputLength: number,
    out: Int32Array,
    at: number,
  ): number {
    const f = Math.floor(inputLength / this.blockSize);
    const ratio = this.ratio;
    if (ratio > 0) {
      let parent = NO_ENTRY;
      for (let hi = 0, j = 0; j < f; hi++) {
        const base = this.intern(parent, hashIds[from + hi], ratio);
        parent = base;
        for (let s = 0; s < ratio && j < f; s++, j++) out[at + j] = base + s;
      }
      return f;
    }
    const bs = this.blockSize;
    const tb = this.traceBlockSize;
    let node = NO_ENTRY;
    for (let j = 0; j < f; j++) {
      const first = Math.floor((j * bs) / tb);
      const last = Math.floor(((j + 1) * bs - 1) / tb);
      for (let hi = first; hi <= last; hi++) node = this.intern(node, hashIds[from + hi], 1);
      node = this.intern(node, BOUNDARY, 1);
      out[at + j] = node;
    }
    return f;
  }

  /** Reserves `n` private keys (blocks of generated tokens); returns the first. */
  privateRange(n: number): number {
    const first = this.next;
    this.ensureKeys(first + n);
    this.entryOfKey.fill(-1, first, first + n);
    this.next = first + n;
    return first;
  }

  /** True once the key space has grown enough that a compaction pays. */
  get wantsCompaction(): boolean {
    return this.next > this.compactAbove && this.next > 2 * this.liveAfterCompaction;
  }

  /**
   * Forgets keys no holder marks and renumbers the rest densely, in creation order; every holder is then
   * remapped. Returns the map (old key -> new key, -1 for forgotten keys).
   */
  compact(holders: readonly KeyHolder[]): Int32Array {
    const n = this.next;
    const live = new Uint8Array(n);
    for (const h of holders) h.markKeys(live);
    // Entries: live when any of their keys is; a live entry keeps its parent (created before it) alive.
    const entryLive = new Uint8Array(this.entries);
    const width = this.ratio > 0 ? this.ratio : 1;
    for (let e = this.entries - 1; e >= 0; e--) {
      const k = this.entryKeys[e];
      let alive = entryLive[e] === 1;
      for (let s = 0; s < width && !alive; s++) if (live[k + s] === 1) alive = true;
      if (!alive) continue;
      entryLive[e] = 1;
      const p = this.parents[e];
      if (p >= 0) entryLive[this.entryOfKey[p]] = 1;
    }
    // New numbering in creation order of keys: entries keep their width, private keys stay one by one (a live
    // request's private range is renumbered contiguously because its keys are adjacent and all marked).
    const map = new Int32Array(n).fill(-1);
    let next = 0;
    for (let k = 0; k < n; ) {
      const e = this.entryOfKey[k];
      if (e >= 0) {
        if (entryLive[e] === 1) for (let s = 0; s < width; s++) map[k + s] = next++;
        k += width;
      } else {
        if (live[k] === 1) map[k] = next++;
        k++;
      }
    }
    // Rebuild the entries and the table.
    let w = 0;
    const entryOfKey = new Int32Array(Math.max(4096, next * 2));
    entryOfKey.fill(-1, 0, next);
    for (let e = 0; e < this.entries; e++) {
      if (entryLive[e] !== 1) continue;
      const key = map[this.entryKeys[e]];
      const p = this.parents[e];
      this.parents[w] = p >= 0 ? map[p] : p;
      this.contents[w] = this.contents[e];
      this.entryKeys[w] = key;
      for (let s = 0; s < width; s++) entryOfKey[key + s] = w;
      w++;
    }
    this.entries = w;
    this.entryOfKey = entryOfKey;
    this.onCapacity?.(entryOfKey.length);
    this.next = next;
    this.rebuildTable();
    for (const h of holders) h.remapKeys(map);
    this.liveAfterCompaction = next;
    this.compactions++;
    return map;
  }

  private intern(parent: number, content: number, width: number): number {
    if (content >= 0 && content < this.firstOfContent.length) {
      const f = this.firstOfContent[content];
      if (f === 0) return this.append(parent, content, width, -2, -1);
      if (this.parents[f - 1] === parent) return this.entryKeys[f - 1];
      return this.internPair(parent, content, width);
    }
    const first = this.firstSlots;
    const fmask = this.firstMask;
    let i = contentHome(content) & fmask;
    for (;;) {
      const s = first[i];
      if (s === 0) return this.append(parent, content, width, i, -1);
      const e = s - 1;
      if (this.contents[e] === content) {
        if (this.parents[e] === parent) return this.entryKeys[e];
        break;
      }
      i = (i + 1) & fmask;
    }
    return this.internPair(parent, content, width);
  }

  /** A content id already first seen under another parent: the (parent, content) table. */
  private internPair(parent: number, content: number, width: number): number {
    const slots = this.slots;
    const mask = this.mask;
    let j = pairHash(parent, content) & mask;
    for (;;) {
      const s = slots[j];
      if (s === 0) return this.append(parent, content, width, -1, j);
      const e = s - 1;
      if (this.contents[e] === content && this.parents[e] === parent) return this.entryKeys[e];
      j = (j + 1) & mask;
    }
  }

  /** A new entry, registered at `firstSlot` (first of its content; -2: a dense content) or `pairSlot`. */
  private append(
    parent: number,
    content: number,
    width: number,
    firstSlot: number,
    pairSlot: number,
  ): number {
    const e = this.entries++;
    if (e === this.parents.length) this.growEntries();
    const key = this.next;
    if (key + width > this.entryOfKey.length) this.ensureKeys(key + width);
    this.next = key + width;
    this.parents[e] = parent;
    this.contents[e] = content;
    this.entryKeys[e] = key;
    const entryOfKey = this.entryOfKey;
    for (let s = 0; s < width; s++) entryOfKey[key + s] = e;
    if (firstSlot === -2) this.firstOfContent[content] = e + 1;
    else if (firstSlot >= 0) this.firstSlots[firstSlot] = e + 1;
    else {
      this.slots[pairSlot] = e + 1;
      this.inPairTable++;
    }
    if (firstSlot >= 0) this.inFirstSlots++;
    if (this.inFirstSlots * 2 > this.firstMask || this.inPairTable * 2 > this.mask) this.rebuildTable();
    return key;
  }

  private growEntries(): void {
    const cap = this.parents.length * 2;
    const p = new Int32Array(cap);
    p.set(this.parents);
    this.parents = p;
    const c = new Float64Array(cap);
    c.set(this.contents);
    this.contents = c;
    const k = new Int32Array(cap);
    k.set(this.entryKeys);
    this.entryKeys = k;
  }

  private ensureKeys(n: number): void {
    if (n > 0x7fffffff) throw new RangeError('block key space exhausted (more than 2^31 live keys)');
    if (n <= this.entryOfKey.length) return;
    let cap = this.entryOfKey.length;
    while (cap < n) cap *= 2;
    const grown = new Int32Array(Math.min(cap, 0x7fffffff));
    grown.set(this.entryOfKey);
    this.entryOfKey = grown;
    this.onCapacity?.(grown.length);
  }

  /** Sizes both tables for the entries (at most a quarter full) and reinserts them all, in creation order. */
  private rebuildTable(): void {
    const dense = this.firstOfContent;
    dense.fill(0);
    let sparse = 0;
    for (let e = 0; e < this.entries; e++) {
      const c = this.contents[e];
      if (!(c >= 0 && c < dense.length)) sparse++;
    }
    let cap = 2048;
    while (cap < sparse * 4) cap *= 2;
    this.firstSlots = new Int32Array(cap);
    this.firstMask = cap - 1;
    this.inPairTable = 0;
    this.inFirstSlots = 0;
    // An entry is the first of its content, or goes to the pair table.
    const inPairs: number[] = [];
    for (let e = 0; e < this.entries; e++) {
      const content = this.contents[e];
      if (content >= 0 && content < dense.length) {
        if (dense[content] === 0) dense[content] = e + 1;
        else inPairs.push(e);
        continue;
      }
      let i = contentHome(content) & this.firstMask;
      let taken = false;
      for (;;) {
        const s = this.firstSlots[i];
        if (s === 0) break;
        if (this.contents[s - 1] === content) {
          taken = true;
          break;
        }
        i = (i + 1) & this.firstMask;
      }
      if (taken) inPairs.push(e);
      else {
        this.firstSlots[i] = e + 1;
        this.inFirstSlots++;
      }
    }
    let pcap = 2048;
    while (pcap < inPairs.length * 4) pcap *= 2;
    this.slots = new Int32Array(pcap);
    this.mask = pcap - 1;
    for (const e of inPairs) {
      let j = pairHash(this.parents[e], this.contents[e]) & this.mask;
      while (this.slots[j] !== 0) j = (j + 1) & this.mask;
      this.slots[j] = e + 1;
    }
    this.inPairTable = inPairs.length;
  }
}

/** Home slot of a content id: its low bits (neighbouring ids, neighbouring slots), folded with the rest. */
function contentHome(content: number): number {
  if (content >= 0 && content <= 0x7fffffff) return content ^ (content >>> 20);
  const lo = content | 0;
  const hi = (content / 4294967296) | 0;
  return lo ^ (lo >>> 20) ^ Math.imul(hi, 0x9e3779b1);
}

function pairHash(parent: number, content: number): number {
  // Content ids are usually small integers: the high word costs a division only when there is one.
  const lo = content | 0;
  const hi = content >= 0 && content <= 0x7fffffff ? 0 : (content / 4294967296) | 0;
  let h = Math.imul(parent ^ 0x5bd1e995, 0x9e3779b1) ^ Math.imul(lo, 0x85ebca6b) ^ Math.imul(hi, 0xc2b2ae35);
  h ^= h >>> 15;
  h = Math.imul(h, 0x2c1b3c6d);
  return (h ^ (h >>> 13)) >>> 0;
}
