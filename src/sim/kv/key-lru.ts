/**
 * A bounded set of block keys in least-recently-inserted order: a lower KV tier (host memory, disk) that
 * keeps the most recently offloaded blocks. Open addressing plus an intrusive list on typed arrays.
 */
export class KeyLru {
  readonly capacity: number;
  private readonly keys: Int32Array;
  private readonly prev: Int32Array;
  private readonly next: Int32Array;
  private readonly table: Int32Array; // slot + 1
  private readonly mask: number;
  private head = -1;
  private tail = -1;
  private size = 0;
  private freeTop = 0;
  private readonly freeSlots: Int32Array;

  constructor(capacity: number) {
    this.capacity = Math.max(1, capacity);
    this.keys = new Int32Array(this.capacity);
    this.prev = new Int32Array(this.capacity);
    this.next = new Int32Array(this.capacity);
    this.freeSlots = new Int32Array(this.capacity);
    for (let i = 0; i < this.capacity; i++) this.freeSlots[i] = this.capacity - 1 - i;
    this.freeTop = this.capacity;
    let cap = 16;
    while (cap < this.capacity * 2) cap *= 2;
    this.table = new Int32Array(cap);
    this.mask = cap - 1;
  }

  get length(): number {
    return this.size;
  }

  private home(key: number): number {
    return Math.imul(key ^ (key >>> 16), 0x7feb352d) & this.mask;
  }

  private find(key: number): number {
    let i = this.home(key);
    for (;;) {
      const s = this.table[i];
      if (s === 0) return -1;
      if (this.keys[s - 1] === key) return i;
      i = (i + 1) & this.mask;
    }
  }

  has(key: number): boolean {
    return this.find(key) >= 0;
  }

  /**
   * Inserts (or refreshes) a key as the newest; returns the key evicted to make room, or -1. Refreshing an
   * existing key moves it to the newest position.
   */
  insert(key: number): number {
    const at = this.find(key);
    if (at >= 0) {
      const s = this.table[at] - 1;
      this.unlink(s);
      this.append(s);
      return -1;
    }
    let evicted = -1;
    if (this.size === this.capacity) {
      evicted = this.keys[this.head];
      this.remove(evicted);
    }
    const s = this.freeSlots[--this.freeTop];
    this.keys[s] = key;
    let i = this.home(key);
    while (this.table[i] !== 0) i = (i + 1) & this.mask;
    this.table[i] = s + 1;
    this.append(s);
    this.size++;
    return evicted;
  }

  remove(key: number): boolean {
    let i = this.find(key);
    if (i < 0) return false;
    const s = this.table[i] - 1;
    this.unlink(s);
    this.size--;
    this.freeSlots[this.freeTop++] = s;
    let j = i;
    for (;;) {
      j = (j + 1) & this.mask;
      const t = this.table[j];
      if (t === 0) break;
      const h = this.home(this.keys[t - 1]);
      if (((j - h) & this.mask) >= ((j - i) & this.mask)) {
        this.table[i] = t;
        i = j;
      }
    }
    this.table[i] = 0;
    return true;
  }

  private append(s: number): void {
    this.prev[s] = this.tail;
    this.next[s] = -1;
    if (this.tail >= 0) this.next[this.tail] = s;
    else this.head = s;
    this.tail = s;
  }

  private unlink(s: number): void {
    const p = this.prev[s];
    const n = this.next[s];
    if (p >= 0) this.next[p] = n;
    else this.head = n;
    if (n >= 0) this.prev[n] = p;
    else this.tail = p;
  }

  /** Marks every key held (see KeyHolder). */
  markKeys(live: Uint8Array): void {
    for (let s = this.head; s >= 0; s = this.next[s]) live[this.keys[s]] = 1;
  }

  /** Renames every key held (see KeyHolder); the order is kept. */
  remapKeys(map: Int32Array): void {
    this.table.fill(0);
    for (let s = this.head; s >= 0; s = this.next[s]) {
      const key = map[this.keys[s]];
      this.keys[s] = key;
      let i = this.home(key);
      while (this.table[i] !== 0) i = (i + 1) & this.mask;
      this.table[i] = s + 1;
    }
  }

  /** Keys from oldest to newest (tests). */
  toArray(): number[] {
    const out: number[] = [];
    for (let s = this.head; s >= 0; s = this.next[s]) out.push(this.keys[s]);
    return out;
  }
}
