import type { Logger } from 'pino';
import type { OperatorMetrics } from '../metrics.ts';
import { FencedError, isConflict } from './client.ts';
import { WorkQueue, type WorkQueueOptions } from './workqueue.ts';

/**
 * The generic part of a controller, as controller-runtime has it: a keyed work queue, N workers calling
 * `reconcile(key)`, requeue after the delay a reconcile asks for, rate-limited retries of failures, terminal
 * errors dropped without a retry (the next watch event brings the key back), and the standard
 * controller_runtime_* / workqueue_* metrics. A controller supplies only its reconcile function.
 */

export interface ReconcileResult {
  requeueAfterMs?: number;
}

/** An error no retry can fix (a malformed object): logged and dropped until the object changes. */
export class TerminalError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TerminalError';
  }
}

export interface WorkLoopOptions {
  /** Controller name in metrics and logs. */
  name: string;
  reconcile: (key: string) => Promise<ReconcileResult>;
  workers?: number;
  queue?: Omit<WorkQueueOptions, 'onDepth'>;
  metrics: OperatorMetrics;
  logger: Logger;
}

export class WorkLoop {
  private readonly o: WorkLoopOptions;
  private readonly queue: WorkQueue;
  private readonly running: Promise<void>[] = [];

  constructor(opts: WorkLoopOptions) {
    this.o = opts;
    this.queue = new WorkQueue({
      ...opts.queue,
      onDepth: (d) => opts.metrics.queueDepth.set({ name: opts.name }, d),
    });
  }

  enqueue(key: string): void {
    this.queue.add(key);
  }

  enqueueAfter(key: string, ms: number): void {
    this.queue.addAfter(key, ms);
  }

  start(): void {
    for (let i = 0; i < (this.o.workers ?? 2); i++) this.running.push(this.work());
  }

  /** Stops handing out keys and waits for the reconciles in flight. */
  async stop(): Promise<void> {
    this.queue.shutdown();
    await Promise.all(this.running.splice(0));
  }

  private async work(): Promise<void> {
    const { metrics: m, name } = this.o;
    for (;;) {
      const key = await this.queue.get();
      if (key === undefined) return;
      const end = m.reconcileTime.startTimer({ controller: name });
      try {
        const r = await this.o.reconcile(key);
        this.queue.forget(key);
        if (r.requeueAfterMs !== undefined) this.queue.addAfter(key, r.requeueAfterMs);
        m.reconcileTotal.inc({ controller: name, result: r.requeueAfterMs ? 'requeue_after' : 'success' });
      } catch (err) {
        m.reconcileTotal.inc({ controller: name, result: 'error' });
        m.reconcileErrors.inc({ controller: name });
        if (err instanceof FencedError) {
          // Not the leader any more: the manager is shutting the loop down.
          this.o.logger.debug({ key, err: err.message }, 'Reconcile stopped: not the leader');
        } else if (err instanceof TerminalError) {
          this.queue.forget(key);
          this.o.logger.warn({ key, err: err.message }, 'Reconcile failed terminally; not retried');
        } else {
          m.queueRetries.inc({ name });
          const delay = this.queue.addRateLimited(key);
          this.o.logger[isConflict(err) ? 'debug' : 'warn'](
            { key, err: (err as Error).message, retryInMs: Math.round(delay) },
            'Reconcile failed; requeued',
          );
        }
      } finally {
        end();
        this.queue.done(key);
      }
    }
  }
}
