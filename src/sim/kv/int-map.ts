/** A map from non-negative int32 keys to non-negative int32 values that allocates nothing per operation. */
export interface IntMapLike {
  readonly size: number;
  /** The value stored under key, or -1. */
  get(key: number): number;
  set(key: number, value: number): void;
  delete(key: number): void;
  /** Marks every key (see KeyHolder). */
  markKeys(live: Uint8Array): void;
  /** Renames every key (see KeyHolder), values unchanged. */
  remapKeys(map: Int32Array): void;
}

/**
 * An `IntMapLike` over a dense array of the key range, for dense keys: fastest. Its owner grows it
 * (`ensureKeyCapacity`) before any larger key is used.
 */
export class DenseIntMap implements IntMapLike {
  private values: Int32Array; // value + 1, 0 = absent (a fresh array needs no fill)
  size = 0;
  constructor(keyCapacity = 1024) {
    this.values = new Int32Array(keyCapacity);
  }
  ensureKeyCapacity(n: number): void {
    if (n <= this.values.length) return;
    const grown = new Int32Array(n);
    grown.set(this.values);
    this.values = grown;
  }
  get(key: number): number {
    return this.values[key] - 1;
  }
  set(key: number, value: number): void {
    if (this.values[key] === 0) this.size++;
    this.values[key] = value + 1;
  }
  delete(key: number): void {
    if (this.values[key] !== 0) this.size--;
    this.values[key] = 0;
  }
  markKeys(live: Uint8Array): void {
    for (let k = 0; k < this.values.length; k++) if (this.values[k] !== 0) live[k] = 1;
  }
  remapKeys(map: Int32Array): void {
    const old = this.values;
    this.values = new Int32Array(old.length);
    for (let k = 0; k < old.length; k++) if (old[k] !== 0) this.values[map[k]] = old[k];
  }
}

/**
 * An `IntMapLike` with a fixed entry bound: open addressing with linear probing and backward-shift deletion on
 * typed arrays.
 */
export class IntMap implements IntMapLike {
  private readonly keys: Int32Array; // key + 1, 0 = empty
  private readonly values: Int32Array;
  private readonly mask: number;
  private readonly shift: number;
  size = 0;

  constructor(maxEntries: number) {
    let bits = 4;
    while (1 << bits < Math.max(1, maxEntries) * 2) bits++;
    this.keys = new Int32Array(1 << bits);
    this.values = new Int32Array(1 << bits);
    this.mask = (1 << bits) - 1;
    this.shift = 32 - bits;
  }

  private home(key: number): number {
    return Math.imul(key ^ (key >>> 16), 0x9e3779b1) >>> this.shift;
  }

  /** The value stored under key, or -1. */
  get(key: number): number {
    const k = key + 1;
    let i = this.home(key);
    for (;;) {
      const s = this.keys[i];
      if (s === k) return this.values[i];
      if (s === 0) return -1;
      i = (i + 1) & this.mask;
    }
  }

  set(key: number, value: number): void {
    const k = key + 1;
    let i = this.home(key);
    for (;;) {
      const s = this.keys[i];
      if (s === k) {
        this.values[i] = value;
        return;
      }
      if (s === 0) {
        this.keys[i] = k;
        this.values[i] = value;
        this.size++;
        return;
      }
      i = (i + 1) & this.mask;
    }
  }

  /** Marks every key (see KeyHolder). */
  markKeys(live: Uint8Array): void {
    for (let i = 0; i < this.keys.length; i++) if (this.keys[i] !== 0) live[this.keys[i] - 1] = 1;
  }

  /** Renames every key (see KeyHolder), values unchanged. */
  remapKeys(map: Int32Array): void {
    const keys = Int32Array.from(this.keys);
    const values = Int32Array.from(this.values);
    this.keys.fill(0);
    this.size = 0;
    for (let i = 0; i < keys.length; i++) if (keys[i] !== 0) this.set(map[keys[i] - 1], values[i]);
  }

  delete(key: number): void {
    const k = key + 1;
    let i = this.home(key);
    for (;;) {
      const s = this.keys[i];
      if (s === 0) return;
      if (s === k) break;
      i = (i + 1) & this.mask;
    }
    this.size--;
    // Backward-shift deletion keeps probe chains intact without tombstones.
    let j = i;
    for (;;) {
      j = (j + 1) & this.mask;
      const s = this.keys[j];
      if (s === 0) break;
      const home = this.home(s - 1);
      if (((j - home) & this.mask) >= ((j - i) & this.mask)) {
        this.keys[i] = s;
        this.values[i] = this.values[j];
        i = j;
      }
    }
    this.keys[i] = 0;
  }
}
