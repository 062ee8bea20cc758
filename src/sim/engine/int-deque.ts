/** A growable ring-buffer deque of 32-bit integers (request ids). */
export class IntDeque {
  private buf: Int32Array;
  private head = 0;
  private len = 0;

  constructor(capacity = 64) {
    let c = 16;
    while (c < capacity) c *= 2;
    this.buf = new Int32Array(c);
  }

  get length(): number {
    return this.len;
  }

  get(i: number): number {
    return this.buf[(this.head + i) & (this.buf.length - 1)];
  }

  front(): number {
    return this.buf[this.head];
  }

  pushBack(v: number): void {
    if (this.len === this.buf.length) this.grow();
    this.buf[(this.head + this.len) & (this.buf.length - 1)] = v;
    this.len++;
  }

  pushFront(v: number): void {
    if (this.len === this.buf.length) this.grow();
    this.head = (this.head - 1) & (this.buf.length - 1);
    this.buf[this.head] = v;
    this.len++;
  }

  popFront(): number {
    const v = this.buf[this.head];
    this.head = (this.head + 1) & (this.buf.length - 1);
    this.len--;
    return v;
  }

  /** Removes the element at position i (O(n)); used for rare out-of-order removals. */
  removeAt(i: number): void {
    const mask = this.buf.length - 1;
    for (let k = i; k < this.len - 1; k++)
      this.buf[(this.head + k) & mask] = this.buf[(this.head + k + 1) & mask];
    this.len--;
  }

  clear(): void {
    this.head = 0;
    this.len = 0;
  }

  toArray(): number[] {
    const out: number[] = [];
    for (let i = 0; i < this.len; i++) out.push(this.get(i));
    return out;
  }

  private grow(): void {
    const next = new Int32Array(this.buf.length * 2);
    for (let i = 0; i < this.len; i++) next[i] = this.get(i);
    this.buf = next;
    this.head = 0;
  }
}
