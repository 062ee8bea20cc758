import { parentPort, workerData } from 'node:worker_threads';
import type { Workload } from '../sim/workload/workload.ts';
import { Evaluator, type SimulationBase } from './evaluate.ts';
import type { EvalTask } from './pool.ts';

/** Worker-thread entry of the evaluation pool: evaluates one candidate per message. */
const { workload, base } = workerData as { workload: Workload; base: SimulationBase };
const evaluator = new Evaluator(workload, base);
parentPort?.on('message', (task: EvalTask) => {
  try {
    parentPort?.postMessage({ metrics: evaluator.evaluate(task.candidate, task.fraction) });
  } catch (e) {
    parentPort?.postMessage({ error: (e as Error).stack ?? String(e) });
  }
});
