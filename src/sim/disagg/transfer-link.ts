/**
 * A network link that moves KV caches between workers, shared by concurrent transfers (processor sharing:
 * n transfers in flight each progress at bandwidth / n), or, unshared, giving every transfer the full
 * bandwidth. Time only moves forward: callers add transfers and collect completions in time order.
 */
export class TransferLink {
  readonly bytesPerMs: number;
  readonly shared: boolean;
  private ids: number[] = [];
  private remaining: number[] = [];
  private last = 0;

  /** `gbps` in gigabytes per second (1e9 bytes); 0 or Infinity = instant. */
  constructor(gbps: number, shared = true) {
    this.bytesPerMs = gbps > 0 && Number.isFinite(gbps) ? gbps * 1e6 : Number.POSITIVE_INFINITY;
    this.shared = shared;
  }

  /** Transfers sharing the bandwidth: all in flight, or 1 when unshared. */
  private get sharers(): number {
    return this.shared ? this.ids.length : 1;
  }

  get active(): number {
    return this.ids.length;
  }

  private advance(now: number): void {
    const n = this.ids.length;
    if (n > 0 && now > this.last) {
      const moved = ((now - this.last) * this.bytesPerMs) / this.sharers;
      for (let i = 0; i < n; i++) this.remaining[i] -= moved;
    }
    this.last = Math.max(this.last, now);
  }

  add(id: number, bytes: number, now: number): void {
    this.advance(now);
    this.ids.push(id);
    this.remaining.push(Math.max(0, bytes));
  }

  /** Absolute time of the next completion (Infinity when idle). */
  nextCompletion(): number {
    const n = this.ids.length;
    if (n === 0) return Number.POSITIVE_INFINITY;
    let min = Number.POSITIVE_INFINITY;
    for (let i = 0; i < n; i++) if (this.remaining[i] < min) min = this.remaining[i];
    if (this.bytesPerMs === Number.POSITIVE_INFINITY) return this.last;
    return this.last + (Math.max(0, min) * this.sharers) / this.bytesPerMs;
  }

  /** Moves to `now` and returns the ids of transfers finished by then, in the order they were added. */
  completeUpTo(now: number, out: number[]): void {
    out.length = 0;
    for (;;) {
      const next = this.nextCompletion();
      if (next > now) break;
      this.advance(next);
      // Everything within rounding of done finishes together.
      const eps = 1e-6 * Math.max(1, this.bytesPerMs === Number.POSITIVE_INFINITY ? 1 : this.bytesPerMs);
      let w = 0;
      for (let i = 0; i < this.ids.length; i++) {
        if (this.remaining[i] <= eps || this.bytesPerMs === Number.POSITIVE_INFINITY) out.push(this.ids[i]);
        else {
          this.ids[w] = this.ids[i];
          this.remaining[w++] = this.remaining[i];
        }
      }
      this.ids.length = w;
      this.remaining.length = w;
    }
    this.advance(now);
  }
}
