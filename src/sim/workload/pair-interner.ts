/**
 * Interns (parent, content) pairs of 32-bit integers into dense ids 0, 1, 2, ... with an open-addressing
 * table on typed arrays: no per-entry objects, and about 3x faster than a Map keyed by a packed double.
 */
export class PairInterner {
  private mask: number;
  private slots: Int32Array; // id + 1, 0 = empty
  private parents: Int32Array;
  private contents: Int32Array;
  private count = 0;

  constructor(expected = 1024) {
    let cap = 16;
    while (cap < expected * 2) cap *= 2;
    this.mask = cap - 1;
    this.slots = new Int32Array(cap);
    this.parents = new Int32Array(Math.max(16, expected));
    this.contents = new Int32Array(Math.max(16, expected));
  }

  get size(): number {
    return this.count;
  }

  intern(parent: number, content: number): number {
    let h = (Math.imul(parent ^ 0x5bd1e995, 0x9e3779b1) ^ Math.imul(content, 0x85ebca6b)) >>> 0;
    h ^= h >>> 15;
    let i = h & this.mask;
    for (;;) {
      const s = this.slots[i];
      if (s === 0) break;
      const id = s - 1;
      if (this.parents[id] === parent && this.contents[id] === content) return id;
      i = (i + 1) & this.mask;
    }
    const id = this.count++;
    if (id >= this.parents.length) {
      const grownP = new Int32Array(this.parents.length * 2);
      grownP.set(this.parents);
      this.parents = grownP;
      const grownC = new Int32Array(this.contents.length * 2);
      grownC.set(this.contents);
      this.contents = grownC;
    }
    this.parents[id] = parent;
    this.contents[id] = content;
    this.slots[i] = id + 1;
    if (this.count * 2 > this.mask) this.rehash();
    return id;
  }

  private rehash(): void {
    const cap = (this.mask + 1) * 2;
    this.mask = cap - 1;
    this.slots = new Int32Array(cap);
    for (let id = 0; id < this.count; id++) {
      const parent = this.parents[id];
      const content = this.contents[id];
      let h = (Math.imul(parent ^ 0x5bd1e995, 0x9e3779b1) ^ Math.imul(content, 0x85ebca6b)) >>> 0;
      h ^= h >>> 15;
      let i = h & this.mask;
      while (this.slots[i] !== 0) i = (i + 1) & this.mask;
      this.slots[i] = id + 1;
    }
  }
}
