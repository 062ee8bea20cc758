// Worker-thread entry of a sweep job (see job.ts).
import { parentPort, workerData } from 'node:worker_threads';
import { runSweepJobInline, SweepJobError, type SweepJobInput } from './job.ts';

try {
  const result = await runSweepJobInline(workerData as SweepJobInput);
  parentPort!.postMessage({ ok: true, result });
} catch (e) {
  const kind = e instanceof SweepJobError ? e.kind : 'SweepFailed';
  parentPort!.postMessage({ ok: false, kind, message: (e as Error).message });
}
