/**
 * Counts per non-negative 32-bit key in an open-addressing table (linear probing, backward-shift deletion):
 * the KV router's refcounts of in-flight blocks, without Map's per-entry cost.
 */
export class IntCountMap {
  private keys: Int32Array;
  private counts: Int32Array;
  private mask: number;
  private used = 0;

  constructor(capacity = 1024) {
    let cap = 16;
    while (cap < capacity * 2) cap *= 2;
    this.keys = new Int32Array(cap).fill(-1);
    this.counts = new Int32Array(cap);
    this.mask = cap - 1;
  }

  /** Distinct keys with a positive count. */
  get size(): number {
    return this.used;
  }

  private slot(key: number): number {
    let i = Math.imul(key ^ (key >>> 15), 0x2c1b3c6d) & this.mask;
    for (;;) {
      const k = this.keys[i];
      if (k === key || k === -1) return i;
      i = (i + 1) & this.mask;
    }
  }

  get(key: number): number {
    const i = this.slot(key);
    return this.keys[i] === key ? this.counts[i] : 0;
  }

  /** Increments a key's count; returns the new count. */
  increment(key: number): number {
    const i = this.slot(key);
    if (this.keys[i] === key) return ++this.counts[i];
    this.keys[i] = key;
    this.counts[i] = 1;
    if (++this.used * 2 > this.mask) this.grow();
    return 1;
  }

  /** Decrements a key's count, removing it at zero; returns the new count (0 if absent). */
  decrement(key: number): number {
    const i = this.slot(key);
    if (this.keys[i] !== key) return 0;
    if (--this.counts[i] > 0) return this.counts[i];
    this.remove(i);
    return 0;
  }

  /** Marks every key with a count (see KeyHolder). */
  markKeys(live: Uint8Array): void {
    for (let i = 0; i < this.keys.length; i++) if (this.keys[i] !== -1) live[this.keys[i]] = 1;
  }

  /** Renames every key (see KeyHolder), counts unchanged. */
  remapKeys(map: Int32Array): void {
    const keys = this.keys;
    const counts = this.counts;
    this.keys = new Int32Array(keys.length).fill(-1);
    this.counts = new Int32Array(keys.length);
    for (let i = 0; i < keys.length; i++) {
      if (keys[i] === -1) continue;
      const k = map[keys[i]];
      const j = this.slot(k);
      this.keys[j] = k;
      this.counts[j] = counts[i];
    }
  }

  private remove(i: number): void {
    this.used--;
    let j = i;
    for (;;) {
      j = (j + 1) & this.mask;
      const k = this.keys[j];
      if (k === -1) break;
      const home = Math.imul(k ^ (k >>> 15), 0x2c1b3c6d) & this.mask;
      if (((j - home) & this.mask) >= ((j - i) & this.mask)) {
        this.keys[i] = k;
        this.counts[i] = this.counts[j];
        i = j;
      }
    }
    this.keys[i] = -1;
    this.counts[i] = 0;
  }

  private grow(): void {
    const oldKeys = this.keys;
    const oldCounts = this.counts;
    const cap = oldKeys.length * 2;
    this.keys = new Int32Array(cap).fill(-1);
    this.counts = new Int32Array(cap);
    this.mask = cap - 1;
    for (let i = 0; i < oldKeys.length; i++) {
      const k = oldKeys[i];
      if (k === -1) continue;
      const j = this.slot(k);
      this.keys[j] = k;
      this.counts[j] = oldCounts[i];
    }
  }
}
