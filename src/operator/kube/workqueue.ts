/**
 * A keyed work queue with client-go's invariants: a key waits at most once (adds collapse), a key being
 * processed is never handed to a second worker (re-adds while processing mark it dirty and it is queued
 * again on `done`), failed keys come back after a per-key exponential backoff, and an overall token bucket
 * bounds the retry rate.
 */

export interface WorkQueueOptions {
  baseDelayMs?: number;
  maxDelayMs?: number;
  /** Token bucket for rate-limited adds: refill per second and capacity. */
  qps?: number;
  burst?: number;
  /** Called whenever the depth changes (for the workqueue_depth gauge). */
  onDepth?: (depth: number) => void;
}

export class WorkQueue {
  private readonly queue: string[] = [];
  private readonly queued = new Set<string>();
  private readonly processing = new Set<string>();
  private readonly dirty = new Set<string>();
  private readonly failures = new Map<string, number>();
  private readonly timers = new Map<string, { at: number; timer: NodeJS.Timeout }>();
  private readonly waiters: ((key: string | undefined) => void)[] = [];
  private readonly opts: Required<Omit<WorkQueueOptions, 'onDepth'>> & WorkQueueOptions;
  private tokens: number;
  private lastRefill = Date.now();
  private closed = false;

  constructor(opts: WorkQueueOptions = {}) {
    this.opts = { baseDelayMs: 5, maxDelayMs: 1_000_000, qps: 10, burst: 100, ...opts };
    this.tokens = this.opts.burst;
  }

  get depth(): number {
    return this.queue.length;
  }

  add(key: string): void {
    if (this.closed) return;
    if (this.processing.has(key)) {
      this.dirty.add(key);
      return;
    }
    if (this.queued.has(key)) return;
    this.queued.add(key);
    const waiter = this.waiters.shift();
    if (waiter) {
      this.queued.delete(key);
      this.processing.add(key);
      waiter(key);
      return;
    }
    this.queue.push(key);
    this.opts.onDepth?.(this.queue.length);
  }

  /** Adds the key after `ms`; an earlier pending timer for the same key wins. */
  addAfter(key: string, ms: number): void {
    if (this.closed) return;
    if (ms <= 0) {
      this.add(key);
      return;
    }
    const at = Date.now() + ms;
    const pending = this.timers.get(key);
    if (pending && pending.at <= at) return;
    if (pending) clearTimeout(pending.timer);
    const timer = setTimeout(() => {
      this.timers.delete(key);
      this.add(key);
    }, ms);
    timer.unref();
    this.timers.set(key, { at, timer });
  }

  /** Requeues a failed key after its backoff (per key) or the token bucket's wait, whichever is longer. */
  addRateLimited(key: string): number {
    const n = this.failures.get(key) ?? 0;
    this.failures.set(key, n + 1);
    const perItem = Math.min(this.opts.maxDelayMs, this.opts.baseDelayMs * 2 ** n);
    const delay = Math.max(perItem, this.bucketDelay());
    this.addAfter(key, delay);
    return delay;
  }

  retries(key: string): number {
    return this.failures.get(key) ?? 0;
  }

  /** Resets a key's backoff after a successful pass. */
  forget(key: string): void {
    this.failures.delete(key);
  }

  private bucketDelay(): number {
    const now = Date.now();
    this.tokens = Math.min(this.opts.burst, this.tokens + ((now - this.lastRefill) / 1000) * this.opts.qps);
    this.lastRefill = now;
    this.tokens -= 1;
    return this.tokens >= 0 ? 0 : (-this.tokens / this.opts.qps) * 1000;
  }

  /** The next key to process, or undefined once the queue is shut down. */
  get(): Promise<string | undefined> {
    if (this.closed) return Promise.resolve(undefined);
    const key = this.queue.shift();
    if (key !== undefined) {
      this.queued.delete(key);
      this.processing.add(key);
      this.opts.onDepth?.(this.queue.length);
      return Promise.resolve(key);
    }
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  /** Marks a key finished; if it was re-added meanwhile it is queued again. */
  done(key: string): void {
    this.processing.delete(key);
    if (this.dirty.delete(key)) this.add(key);
  }

  shutdown(): void {
    this.closed = true;
    for (const { timer } of this.timers.values()) clearTimeout(timer);
    this.timers.clear();
    for (const w of this.waiters.splice(0)) w(undefined);
  }
}
