/**
 * The operator's sweep slots, shared fairly between namespaces (tenants). Sweeps waiting for a slot are
 * granted round robin by namespace — after a sweep of namespace A, every other namespace with a waiting sweep
 * goes before A's next one — and within a namespace the sweep that fell due first goes first. One tenant with
 * many objects, or one whose sweeps are slow, therefore cannot starve the others; each sweep also has a
 * deadline (see the controller), so a slot is never held for ever.
 */

export interface SweepTicket {
  /** The tenant: the object's namespace. */
  namespace: string;
  /** The object's key, for status messages and tie-breaks. */
  key: string;
  /** When the sweep fell due (ms since the epoch). */
  dueMs: number;
}

interface Waiter {
  ticket: SweepTicket;
  grant: () => void;
}

export class FairScheduler {
  private free: number;
  private readonly waiting = new Map<string, Waiter[]>();
  /** When each namespace was last granted a slot (a counter); the least recently served goes next. */
  private readonly lastServed = new Map<string, number>();
  private grants = 0;

  constructor(slots: number) {
    this.free = Math.max(1, slots);
  }

  /** Sweeps that would be granted before this ticket if it asked now (0 = a slot is free). */
  ahead(_ticket: SweepTicket): number {
    if (this.free > 0) return 0;
    let n = 0;
    for (const list of this.waiting.values()) n += list.length;
    return n + 1;
  }

  waitingCount(): number {
    let n = 0;
    for (const list of this.waiting.values()) n += list.length;
    return n;
  }

  async acquire(ticket: SweepTicket, signal: AbortSignal): Promise<void> {
    if (signal.aborted) throw new Error('cancelled');
    if (this.free > 0 && this.waitingCount() === 0) {
      this.free--;
      this.served(ticket.namespace);
      return;
    }
    await new Promise<void>((resolve, reject) => {
      const waiter: Waiter = {
        ticket,
        grant: () => {
          signal.removeEventListener('abort', cancel);
          resolve();
        },
      };
      const cancel = () => {
        const list = this.waiting.get(ticket.namespace);
        const i = list?.indexOf(waiter) ?? -1;
        if (list && i >= 0) list.splice(i, 1);
        if (list?.length === 0) this.waiting.delete(ticket.namespace);
        reject(new Error('cancelled'));
      };
      const list = this.waiting.get(ticket.namespace) ?? [];
      list.push(waiter);
      list.sort((a, b) => a.ticket.dueMs - b.ticket.dueMs || a.ticket.key.localeCompare(b.ticket.key));
      this.waiting.set(ticket.namespace, list);
      signal.addEventListener('abort', cancel, { once: true });
      this.dispatch();
    });
  }

  release(): void {
    this.free++;
    this.dispatch();
  }

  private dispatch(): void {
    while (this.free > 0) {
      // Least recently served namespace first (never served: first of all); ties by the oldest due sweep.
      let ns: string | undefined;
      for (const [n, list] of this.waiting) {
        if (ns === undefined) {
          ns = n;
          continue;
        }
        const a = this.lastServed.get(n) ?? -1;
        const b = this.lastServed.get(ns) ?? -1;
        if (a < b || (a === b && list[0].ticket.dueMs < this.waiting.get(ns)![0].ticket.dueMs)) ns = n;
      }
      if (ns === undefined) return;
      const list = this.waiting.get(ns)!;
      const next = list.shift()!;
      if (list.length === 0) this.waiting.delete(ns);
      this.free--;
      this.served(ns);
      next.grant();
    }
  }

  private served(namespace: string): void {
    this.lastServed.set(namespace, this.grants++);
    // Namespaces idle for a long time need no memory beyond "long ago": keep the map small.
    if (this.lastServed.size > 10_000) {
      for (const [n] of this.lastServed) {
        if (!this.waiting.has(n)) this.lastServed.delete(n);
        if (this.lastServed.size <= 5_000) break;
      }
    }
  }
}
