/**
 * Pending request arrivals ordered by (time, insertion order): a FIFO of the source's scheduled arrivals (trace
 * timestamps, appended in time order, possibly while the run goes on) merged with a binary heap of arrivals
 * created during the run (session follow-ups, closed-loop dispatches), which rank after every scheduled
 * arrival at the same time and among themselves in creation order (a sequence number, which a caller may take
 * early and use later: `reserveSeq`).
 */
export class ArrivalQueue {
  private staticTimes: Float64Array = new Float64Array(0);
  private staticIds: Int32Array = new Int32Array(0);
  private pos = 0;
  private end = 0;
  private heapTimes = new Float64Array(64);
  private heapIds = new Int32Array(64);
  private heapSeq = new Float64Array(64);
  private heapLen = 0;
  private pushed = 0;

  /** Sets the scheduled arrivals (sorted by time, then id); the arrays are used as they are. */
  setStatic(times: Float64Array, ids: Int32Array): void {
    this.staticTimes = times;
    this.staticIds = ids;
    this.pos = 0;
    this.end = times.length;
  }

  /** Appends a scheduled arrival (no earlier than the last one appended). */
  appendStatic(time: number, id: number): void {
    if (this.end === this.staticTimes.length) {
      const live = this.end - this.pos;
      const cap = Math.max(64, live * 2);
      const times = new Float64Array(cap);
      const ids = new Int32Array(cap);
      times.set(this.staticTimes.subarray(this.pos, this.end));
      ids.set(this.staticIds.subarray(this.pos, this.end));
      this.staticTimes = times;
      this.staticIds = ids;
      this.pos = 0;
      this.end = live;
    }
    this.staticTimes[this.end] = time;
    this.staticIds[this.end++] = id;
  }

  get size(): number {
    return this.end - this.pos + this.heapLen;
  }

  /** Scheduled arrivals not yet popped. */
  get scheduled(): number {
    return this.end - this.pos;
  }

  /** Time of the last scheduled arrival appended (-Infinity when none). */
  get lastScheduledTime(): number {
    return this.end > 0 ? this.staticTimes[this.end - 1] : Number.NEGATIVE_INFINITY;
  }

  /** Takes the sequence number the next `push` would get, for a later `push(time, id, seq)`. */
  reserveSeq(): number {
    return this.pushed++;
  }

  push(time: number, id: number, seq = this.pushed++): void {
    if (this.heapLen === this.heapTimes.length) {
      const t = new Float64Array(this.heapLen * 2);
      t.set(this.heapTimes);
      this.heapTimes = t;
      const d = new Int32Array(this.heapLen * 2);
      d.set(this.heapIds);
      this.heapIds = d;
      const q = new Float64Array(this.heapLen * 2);
      q.set(this.heapSeq);
      this.heapSeq = q;
    }
    let i = this.heapLen++;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.less(time, seq, this.heapTimes[p], this.heapSeq[p])) break;
      this.heapTimes[i] = this.heapTimes[p];
      this.heapIds[i] = this.heapIds[p];
      this.heapSeq[i] = this.heapSeq[p];
      i = p;
    }
    this.heapTimes[i] = time;
    this.heapIds[i] = id;
    this.heapSeq[i] = seq;
  }

  peekTime(): number {
    const s = this.pos < this.end ? this.staticTimes[this.pos] : Number.POSITIVE_INFINITY;
    const h = this.heapLen > 0 ? this.heapTimes[0] : Number.POSITIVE_INFINITY;
    return Math.min(s, h);
  }

  /** Removes and returns the id of the earliest arrival. */
  pop(): number {
    const hasS = this.pos < this.end;
    if (hasS && (this.heapLen === 0 || this.staticTimes[this.pos] <= this.heapTimes[0])) {
      return this.staticIds[this.pos++];
    }
    const id = this.heapIds[0];
    const lastT = this.heapTimes[--this.heapLen];
    const lastId = this.heapIds[this.heapLen];
    const lastSeq = this.heapSeq[this.heapLen];
    let i = 0;
    for (;;) {
      let c = 2 * i + 1;
      if (c >= this.heapLen) break;
      if (
        c + 1 < this.heapLen &&
        this.less(this.heapTimes[c + 1], this.heapSeq[c + 1], this.heapTimes[c], this.heapSeq[c])
      ) {
        c++;
      }
      if (!this.less(this.heapTimes[c], this.heapSeq[c], lastT, lastSeq)) break;
      this.heapTimes[i] = this.heapTimes[c];
      this.heapIds[i] = this.heapIds[c];
      this.heapSeq[i] = this.heapSeq[c];
      i = c;
    }
    this.heapTimes[i] = lastT;
    this.heapIds[i] = lastId;
    this.heapSeq[i] = lastSeq;
    return id;
  }

  private less(t1: number, s1: number, t2: number, s2: number): boolean {
    return t1 < t2 || (t1 === t2 && s1 < s2);
  }
}

/** Min-heap of engine indices keyed by their pass end time (ties by index), with key updates. */
export class EngineHeap {
  private heap: Int32Array;
  private pos: Int32Array;
  private len = 0;
  private key: Float64Array;
  constructor(n: number, key: Float64Array) {
    this.key = key;
    this.heap = new Int32Array(n);
    this.pos = new Int32Array(n).fill(-1);
  }

  /** Makes room for engines up to index `n - 1`, keyed by `key` from now on (a grown copy of the old keys). */
  grow(n: number, key: Float64Array): void {
    this.key = key;
    if (n <= this.pos.length) return;
    const heap = new Int32Array(n);
    heap.set(this.heap);
    this.heap = heap;
    const pos = new Int32Array(n).fill(-1);
    pos.set(this.pos);
    this.pos = pos;
  }

  minTime(): number {
    return this.len === 0 ? Number.POSITIVE_INFINITY : this.key[this.heap[0]];
  }

  has(e: number): boolean {
    return this.pos[e] >= 0;
  }

  /** Inserts engine e or repositions it after its key changed. */
  update(e: number): void {
    if (this.pos[e] < 0) {
      this.pos[e] = this.len;
      this.heap[this.len++] = e;
    }
    this.siftUp(this.pos[e]);
    this.siftDown(this.pos[e]);
  }

  pop(): number {
    const e = this.heap[0];
    this.pos[e] = -1;
    const last = this.heap[--this.len];
    if (this.len > 0) {
      this.heap[0] = last;
      this.pos[last] = 0;
      this.siftDown(0);
    }
    return e;
  }

  private before(a: number, b: number): boolean {
    const ka = this.key[a];
    const kb = this.key[b];
    return ka < kb || (ka === kb && a < b);
  }

  private siftUp(i: number): void {
    const e = this.heap[i];
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.before(e, this.heap[p])) break;
      this.heap[i] = this.heap[p];
      this.pos[this.heap[i]] = i;
      i = p;
    }
    this.heap[i] = e;
    this.pos[e] = i;
  }

  private siftDown(i: number): void {
    const e = this.heap[i];
    for (;;) {
      let c = 2 * i + 1;
      if (c >= this.len) break;
      if (c + 1 < this.len && this.before(this.heap[c + 1], this.heap[c])) c++;
      if (!this.before(this.heap[c], e)) break;
      this.heap[i] = this.heap[c];
      this.pos[this.heap[i]] = i;
      i = c;
    }
    this.heap[i] = e;
    this.pos[e] = i;
  }
}
