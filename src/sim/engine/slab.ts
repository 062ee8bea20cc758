/**
 * Variable-length runs of an Int32Array handed out and taken back, for per-request lists (a request's KV block
 * copies, its prompt block keys) that live only while the request does. Runs come in power-of-two size
 * classes with a free list each, so a run is reused by the next request of a similar size and the slab stays
 * as large as the requests alive at once need (at most twice), not as large as every request ever seen. The
 * backing array grows by doubling: holders keep offsets, never the array.
 */
export class Slab {
  data: Int32Array;
  private top = 0;
  private readonly free: number[][] = [];

  constructor(initial = 1024) {
    this.data = new Int32Array(Math.max(16, initial));
  }

  /** Entries in use or on free lists (the high-water mark). */
  get used(): number {
    return this.top;
  }

  /** A run of at least `n` entries; returns its offset (read `data` again afterwards: it may have grown). */
  alloc(n: number): number {
    const c = sizeClass(n);
    const list = this.free[c];
    if (list !== undefined && list.length > 0) return list.pop() as number;
    const size = 1 << c;
    const at = this.top;
    if (at + size > this.data.length) {
      let cap = this.data.length;
      while (cap < at + size) cap *= 2;
      if (cap > 2 ** 31 - 1) throw new RangeError('request state exceeds 2^31 entries');
      const grown = new Int32Array(cap);
      grown.set(this.data.subarray(0, at));
      this.data = grown;
    }
    this.top = at + size;
    return at;
  }

  /** Takes back the run at `offset` that was allocated for `n` entries. */
  release(offset: number, n: number): void {
    const c = sizeClass(n);
    let list = this.free[c];
    if (list === undefined) {
      list = [];
      this.free[c] = list;
    }
    list.push(offset);
  }
}

function sizeClass(n: number): number {
  return n <= 4 ? 2 : 32 - Math.clz32(n - 1);
}
