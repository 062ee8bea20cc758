/**
 * Dense ids for arbitrary 64-bit hashes (as doubles), in typed arrays: the keys in id order, in fixed-size
 * chunks (growing never copies them), and an open-addressing index of slot -> id + 1 with linear probing.
 * An hour of a busy deployment's request traces carries tens of millions of block hashes, millions of them
 * distinct; a Map would spend some 80 bytes per entry on boxed keys, this about 8 for the key plus 4 to 10
 * for its index slots (load kept under 0.7).
 */
const CHUNK_BITS = 20;
const CHUNK = 1 << CHUNK_BITS;

export class DenseIdTable {
  private readonly chunks: Float64Array[] = [];
  private index: Int32Array;
  private mask: number;
  size = 0;

  constructor(initialCapacity = 1 << 16) {
    let cap = 16;
    while (cap < initialCapacity) cap <<= 1;
    this.index = new Int32Array(cap);
    this.mask = cap - 1;
  }

  /** Slot of a key: mixes all 64 bits of the double (hashes differ in any of them). */
  private slot(key: number): number {
    const hi = Math.floor(key / 4294967296) | 0;
    const lo = key >>> 0;
    let h = Math.imul(lo ^ Math.imul(hi, 0x9e3779b1), 0x85ebca6b);
    h ^= h >>> 13;
    h = Math.imul(h, 0xc2b2ae35);
    h ^= h >>> 16;
    return h & this.mask;
  }

  private keyOf(id: number): number {
    return this.chunks[id >>> CHUNK_BITS][id & (CHUNK - 1)];
  }

  /** The key's id, assigning the next one (0, 1, 2, ...) on first sight. */
  idOf(key: number): number {
    let i = this.slot(key);
    for (;;) {
      const e = this.index[i];
      if (e === 0) break;
      if (this.keyOf(e - 1) === key) return e - 1;
      i = (i + 1) & this.mask;
    }
    const id = this.size++;
    if ((id & (CHUNK - 1)) === 0) this.chunks.push(new Float64Array(CHUNK));
    this.chunks[id >>> CHUNK_BITS][id & (CHUNK - 1)] = key;
    this.index[i] = id + 1;
    if (this.size * 10 > this.index.length * 7) this.grow();
    return id;
  }

  private grow(): void {
    const cap = this.index.length * 2;
    this.index = new Int32Array(cap);
    this.mask = cap - 1;
    for (let id = 0; id < this.size; id++) {
      let i = this.slot(this.keyOf(id));
      while (this.index[i] !== 0) i = (i + 1) & this.mask;
      this.index[i] = id + 1;
    }
  }
}
