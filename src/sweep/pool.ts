import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
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
  const share = <T extends Float64Array | Int32Array>(a: T): T => {
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
  };
}

export function defaultThreads(): number {
  return Math.max(1, availableParallelism());
}

/**
 * Evaluates candidates in parallel on worker threads (or in-process with `threads: 0`). Every evaluation is an
 * independent deterministic simulation, so results do not depend on the thread count or completion order;
 * callers receive them in task order.
 */
export class EvaluationPool {
  private readonly workers: Worker[] = [];
  private readonly local: Evaluator | null;
  readonly threads: number;
  evaluations = 0;

  constructor(workload: Workload, base: SimulationBase, threads = defaultThreads()) {
    this.threads = threads;
    if (threads <= 0) {
      this.local = new Evaluator(workload, base);
      return;
    }
    this.local = null;
    const shared = shareWorkload(workload);
    for (let i = 0; i < threads; i++) {
      const worker = new Worker(new URL('./worker.ts', import.meta.url), {
        workerData: { workload: shared, base },
      });
      worker.unref();
      this.workers.push(worker);
    }
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
      const dispatch = (worker: Worker): void => {
        if (signal?.aborted || next >= tasks.length) {
          if (busy === 0) resolve();
          return;
        }
        const i = next++;
        busy++;
        const onMessage = (msg: { metrics?: CandidateMetrics; error?: string }) => {
          worker.off('message', onMessage);
          worker.off('error', onError);
          busy--;
          if (msg.metrics) out[i].metrics = msg.metrics;
          else out[i].error = msg.error ?? 'evaluation failed';
          this.evaluations++;
          onResult?.(out[i]);
          dispatch(worker);
        };
        const onError = (e: Error) => {
          worker.off('message', onMessage);
          worker.off('error', onError);
          busy--;
          out[i].error = e.message;
          onResult?.(out[i]);
          if (busy === 0) resolve();
        };
        worker.on('message', onMessage);
        worker.on('error', onError);
        worker.postMessage(tasks[i]);
      };
      if (tasks.length === 0) resolve();
      for (const w of this.workers) dispatch(w);
      signal?.addEventListener('abort', () => {
        if (busy === 0) resolve();
      });
    });
    return out;
  }

  async close(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.terminate()));
    this.workers.length = 0;
  }
}
