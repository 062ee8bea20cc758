/**
 * Prefix-cache changes of one engine (a prompt block key became cached, or its last copy was evicted), each
 * stamped with the end of the pass that made it: that is when a KV-aware router learns of it. Appended in time
 * order and consumed by one reader, so it is a growable queue on typed arrays.
 */
export class KvEventLog {
  private keys = new Int32Array(1024);
  private stored = new Uint8Array(1024);
  private times = new Float64Array(1024);
  private head = 0;
  private tail = 0;

  /** Index one past the last event (events are indexed from the start of the log). */
  get length(): number {
    return this.tail;
  }

  push(key: number, stored: boolean): void {
    if (this.tail - this.head === this.keys.length) this.grow();
    const i = this.tail++ % this.keys.length;
    this.keys[i] = key;
    this.stored[i] = stored ? 1 : 0;
    this.times[i] = Number.NaN;
  }

  /** Stamps events from index `from` on with the time they become visible. */
  stamp(from: number, time: number): void {
    for (let i = Math.max(from, this.head); i < this.tail; i++) this.times[i % this.keys.length] = time;
  }

  /** Delivers, in order, every event visible at time t; returns how many. */
  consume(t: number, apply: (key: number, stored: boolean) => void): number {
    let n = 0;
    while (this.head < this.tail) {
      const i = this.head % this.keys.length;
      if (!(this.times[i] <= t)) break;
      apply(this.keys[i], this.stored[i] === 1);
      this.head++;
      n++;
    }
    return n;
  }

  /** Marks the keys of events not yet consumed (see KeyHolder). */
  markKeys(live: Uint8Array): void {
    for (let i = this.head; i < this.tail; i++) live[this.keys[i % this.keys.length]] = 1;
  }

  remapKeys(map: Int32Array): void {
    for (let i = this.head; i < this.tail; i++) {
      const at = i % this.keys.length;
      this.keys[at] = map[this.keys[at]];
    }
  }

  private grow(): void {
    const cap = this.keys.length;
    const keys = new Int32Array(cap * 2);
    const stored = new Uint8Array(cap * 2);
    const times = new Float64Array(cap * 2);
    for (let i = this.head; i < this.tail; i++) {
      keys[i % (cap * 2)] = this.keys[i % cap];
      stored[i % (cap * 2)] = this.stored[i % cap];
      times[i % (cap * 2)] = this.times[i % cap];
    }
    this.keys = keys;
    this.stored = stored;
    this.times = times;
  }
}
