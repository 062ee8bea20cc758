import { availableParallelism } from 'node:os';
import { type ResourceLimits, Worker } from 'node:worker_threads';
import type { Workload } from '../sim/workload/workload.ts';
import { Evaluator, type SimulationBase } from './evaluate.ts';
import type { CandidateMetrics } from './objective.ts';
import type { Candidate } from './space.ts';

export interface EvalTask {
  candidate: Candidate;
  /** Share of the workload to replay (a leading slice); 1 = all of it. */
  fraction: number;
}

export interface EvalOutcome {
  task: EvalTask;
  metrics: CandidateMetrics | null;
  error?: string;
}

/** Copies a workload's columns into shared memory so worker threads read it without copies of their own. */
export function shareWorkload(w: Workload): Workload {
  const share = <T extends Float64Array | Int32Array | Uint8Array>(a: T): T => {
    const ctor = a.constructor as { new (b: SharedArrayBuffer): T; BYTES_PER_ELEMENT: number };
    const copy = new ctor(new SharedArrayBuffer(a.length * ctor.BYTES_PER_ELEMENT));
    copy.set(a);
    return copy;
  };
  return {
    size: w.size,
    traceBlockSize: w.traceBlockSize,
    arrivalMs: share(w.arrivalMs),
    inputLength: share(w.inputLength),
    outputLength: share(w.outputLength),
    hashOffsets: share(w.hashOffsets),
    hashIds: share(w.hashIds),
    nextTurn: share(w.nextTurn),
    delayMs: share(w.delayMs),
    session: share(w.session),
    sourceLine: w.sourceLine ? share(w.sourceLine) : null,
    dependents: w.dependents
      ? {
          offsets: share(w.dependents.offsets),
          ids: share(w.dependents.ids),
          delayMs: share(w.dependents.delayMs),
          onDispatch: w.dependents.onDispatch ? share(w.dependents.onDispatch) : null,
          waits: share(w.dependents.waits),
          notBeforeMs: w.dependents.notBeforeMs ? share(w.dependents.notBeforeMs) : null,
        }
      : null,
    promptContinues: w.promptContinues ? share(w.promptContinues) : null,
    readyOrder: w.readyOrder ? share(w.readyOrder) : null,
  };
}

export function defaultThreads(): number {
  return Math.max(1, availableParallelism());
}

/**
 * Evaluates candidates in parallel on worker threads (or in-process with `threads: 0`). Every evaluation is an
 * independent deterministic simulation, so results do not depend on the thread count or completion order;
 * callers receive them in task order. A worker that dies (out of memory under `resourceLimits`, or killed)
 * fails the task it was running, with the reason, and is replaced; the run goes on.
 */
export class EvaluationPool {
  private readonly workers: (Worker | null)[] = [];
  private readonly local: Evaluator | null;
  private readonly spawn: (() => Worker) | null = null;
  readonly threads: number;
  evaluations = 0;
  /** Workers replaced after dying (for tests and reports). */
  replaced = 0;

  constructor(
    workload: Workload,
    base: SimulationBase,
    threads = defaultThreads(),
    resourceLimits?: ResourceLimits,
  ) {
    this.threads = threads;
    if (threads <= 0) {
      this.local = new Evaluator(workload, base);
      return;
    }
    this.local = null;
    const shared = shareWorkload(workload);
    this.spawn = () => {
      const worker = new Worker(new URL('./worker.ts', import.meta.url), {
        workerData: { workload: shared, base },
        ...(resourceLimits && { resourceLimits }),
      });
      worker.unref();
      return worker;
    };
    for (let i = 0; i < threads; i++) this.workers.push(this.spawn());
  }

  /** Test hook: the live worker threads. */
  liveWorkers(): Worker[] {
    return this.workers.filter((w): w is Worker => w !== null);
  }

  /**
   * Runs tasks, calling `onResult` as each finishes (in completion order). Stops dispatching when `signal`
   * aborts; unfinished tasks then come back with `metrics: null`.
   */
  async run(
    tasks: EvalTask[],
    onResult?: (o: EvalOutcome) => void,
    signal?: AbortSignal,
  ): Promise<EvalOutcome[]> {
    const out: EvalOutcome[] = tasks.map((task) => ({ task, metrics: null }));
    if (this.local !== null) {
      for (let i = 0; i < tasks.length; i++) {
        if (signal?.aborted) break;
        await new Promise((r) => setImmediate(r)); // let signals and timers through between simulations
        try {
          out[i].metrics = this.local.evaluate(tasks[i].candidate, tasks[i].fraction);
        } catch (e) {
          out[i].error = (e as Error).message;
        }
        this.evaluations++;
        onResult?.(out[i]);
      }
      return out;
    }
    let next = 0;
    await new Promise<void>((resolve) => {
      let busy = 0;
      const finish = () => {
        if (busy === 0 && (signal?.aborted || next >= tasks.length)) resolve();
      };
      const dispatch = (slot: number): void => {
        const worker = this.workers[slot];
        if (!worker || signal?.aborted || next >= tasks.length) {
          finish();
          return;
        }
        const i = next++;
        busy++;
        let settled = false;
        const settle = (fill: () => void, replace: boolean) => {
          if (settled) return;
          settled = true;
          worker.off('message', onMessage);
          worker.off('error', onError);
          worker.off('exit', onExit);
          busy--;
          fill();
          this.evaluations++;
          onResult?.(out[i]);
          if (replace) {
            void worker.terminate();
            this.workers[slot] = this.spawn!();
            this.replaced++;
          }
          dispatch(slot);
        };
        const onMessage = (msg: { metrics?: CandidateMetrics; error?: string }) =>
          settle(() => {
            if (msg.metrics) out[i].metrics = msg.metrics;
            else out[i].error = msg.error ?? 'evaluation failed';
          }, false);
        const onError = (e: Error) =>
          settle(() => {
            out[i].error =
              (e as NodeJS.ErrnoException).code === 'ERR_WORKER_OUT_OF_MEMORY'
                ? 'the evaluation ran out of memory'
                : `the evaluation worker failed: ${e.message}`;
          }, true);
        const onExit = (code: number) =>
          settle(() => {
            out[i].error = `the evaluation worker exited (code ${code})`;
          }, true);
        worker.on('message', onMessage);
        worker.on('error', onError);
        worker.on('exit', onExit);
        worker.postMessage(tasks[i]);
      };
      if (tasks.length === 0) resolve();
      for (let slot = 0; slot < this.workers.length; slot++) dispatch(slot);
      signal?.addEventListener('abort', finish, { once: true });
    });
    return out;
  }

  async close(): Promise<void> {
    await Promise.all(this.liveWorkers().map((w) => w.terminate()));
    this.workers.length = 0;
  }
}
