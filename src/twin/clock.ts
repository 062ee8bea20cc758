/**
 * The twin's virtual clock: simulated milliseconds tied to the wall clock by a time scale (1 = one simulated
 * second per second; tests run faster). Monotonic (performance.now), so a wall-clock step does not move it.
 * Simulated epoch times (request traces) are the epoch at start plus simulated time.
 */
export class VirtualClock {
  readonly scale: number;
  private readonly wall0: number;
  private readonly epoch0: number;
  private readonly now_: () => number;

  constructor(scale = 1, opts: { now?: () => number; epochMs?: number } = {}) {
    if (!(scale > 0) || !Number.isFinite(scale)) throw new RangeError('time scale must be a positive number');
    this.scale = scale;
    this.now_ = opts.now ?? (() => performance.now());
    this.wall0 = this.now_();
    this.epoch0 = opts.epochMs ?? Date.now();
  }

  /** Simulated ms since start. */
  now(): number {
    return (this.now_() - this.wall0) * this.scale;
  }

  /** Wall ms until simulated time `t` (0 if past). */
  wallDelayUntil(t: number): number {
    return Math.max(0, (t - this.now()) / this.scale);
  }

  /** Simulated epoch ms of simulated time `t`. */
  epochAt(t: number): number {
    return this.epoch0 + t;
  }
}
