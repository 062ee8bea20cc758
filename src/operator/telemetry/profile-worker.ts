// Worker-thread entry of a drift check's profiling (see drift.ts): reads a window and returns its profile.
import { parentPort, workerData } from 'node:worker_threads';
import type { InputLimits } from '../../telemetry/trace/index.ts';
import { loadJobWindow, type WindowSource } from '../sweep/window.ts';

const input = workerData as { src: WindowSource; source: string; limits?: Partial<InputLimits> };
try {
  const w = await loadJobWindow(input.src, { source: input.source, limits: input.limits });
  parentPort!.postMessage({ ok: true, profile: w.profile });
} catch (e) {
  parentPort!.postMessage({ ok: false, message: (e as Error).message });
}
