/** A counting semaphore whose waiters can give up (the global sweep concurrency limit). */
export class Semaphore {
  private free: number;
  private readonly waiters: (() => void)[] = [];

  constructor(n: number) {
    this.free = n;
  }

  /** Holders that would have to finish before a new acquire succeeds (0 = a slot is free). */
  queueAhead(): number {
    return this.free > 0 ? 0 : this.waiters.length + 1;
  }

  async acquire(signal: AbortSignal): Promise<void> {
    if (this.free > 0) {
      this.free--;
      return;
    }
    await new Promise<void>((resolve, reject) => {
      const grant = () => {
        signal.removeEventListener('abort', cancel);
        resolve();
      };
      const cancel = () => {
        const i = this.waiters.indexOf(grant);
        if (i >= 0) this.waiters.splice(i, 1);
        reject(new Error('cancelled'));
      };
      this.waiters.push(grant);
      signal.addEventListener('abort', cancel, { once: true });
    });
  }

  release(): void {
    const next = this.waiters.shift();
    if (next) next();
    else this.free++;
  }
}
