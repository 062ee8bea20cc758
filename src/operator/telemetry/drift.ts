import { Worker } from 'node:worker_threads';
import {
  type DriftBaseline,
  type DriftDimensionNames,
  type DriftSpec,
  type DriftStatus,
  parseDuration,
} from '../../api/index.ts';
import { type DriftState, stepDrift } from '../../telemetry/drift/hysteresis.ts';
import { DRIFT_DIMENSIONS, type DriftDimension } from '../../telemetry/drift/scores.ts';
import { type DriftVerdict, describeMoved, driftVerdict } from '../../telemetry/drift/verdict.ts';
import type { WorkloadProfile } from '../../telemetry/profile/profile.ts';
import type { InputLimits } from '../../telemetry/trace/index.ts';
import type { WindowSource } from '../sweep/window.ts';
import { profileOfBaseline } from './baseline.ts';

/**
 * Drift in the operator: the recent window's profile against the baseline (the profile the last sweep was
 * computed on, kept in status), the verdict per dimension, and the hysteresis stepped with the clock; pure,
 * so the controller only reads, decides and writes. Profiling a window of a trace or of request traces is
 * CPU work (JSON, gzip), so it runs in a worker thread (runProfileJob), never on the reconcile loop.
 */

/** API dimension names (camelCase) against the scores' (snake_case). */
const API_NAME: Record<DriftDimension, (typeof DriftDimensionNames)[number]> = {
  rate_level: 'rateLevel',
  burstiness: 'burstiness',
  input_tokens: 'inputTokens',
  output_tokens: 'outputTokens',
  prefix_reuse: 'prefixReuse',
  sessions: 'sessions',
};

export interface DriftDecision {
  status: DriftStatus;
  trigger: boolean;
  verdict: DriftVerdict;
  /** What moved and by how much (Events, conditions). */
  message: string;
}

const iso = (ms: number) => new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');
const bounded = (v: number) => (Number.isFinite(v) ? Math.min(v, 1e6) : 1e6);

export function thresholdsOf(spec: DriftSpec): Partial<Record<DriftDimension, number>> {
  const out: Partial<Record<DriftDimension, number>> = {};
  for (const d of DRIFT_DIMENSIONS) {
    const v = spec.thresholds[API_NAME[d]];
    if (v !== undefined) out[d] = v;
  }
  return out;
}

export function decideDrift(
  prev: DriftStatus | undefined,
  baseline: DriftBaseline,
  current: WorkloadProfile,
  spec: DriftSpec,
  now: Date,
): DriftDecision {
  const verdict = driftVerdict(profileOfBaseline(baseline), current, thresholdsOf(spec));
  const state: DriftState = {
    armed: prev?.armed ?? true,
    aboveSinceMs: prev?.aboveSinceTime ? Date.parse(prev.aboveSinceTime) : null,
    lastTriggerMs: prev?.lastTriggerTime ? Date.parse(prev.lastTriggerTime) : null,
  };
  const step = stepDrift(state, verdict.level, now.getTime(), {
    triggerLevel: 1,
    rearmLevel: spec.rearmLevel,
    dwellMs: parseDuration(spec.dwell),
    minIntervalMs: parseDuration(spec.minInterval),
  });
  const scores: DriftStatus['scores'] = {};
  for (const d of DRIFT_DIMENSIONS) {
    const v = verdict.scores[d];
    if (v !== null) scores[API_NAME[d]] = Number(bounded(v).toFixed(4));
  }
  const moved = describeMoved(verdict);
  const message = verdict.drifted
    ? `The workload moved: ${moved.join('; ')}.`
    : `No drift: the largest score is at ${(verdict.level * 100).toFixed(0)} % of its threshold.`;
  return {
    trigger: step.trigger,
    verdict,
    message,
    status: {
      checkedTime: iso(now.getTime()),
      level: Number(bounded(verdict.level).toFixed(4)),
      drifted: verdict.drifted,
      phase: step.phase,
      armed: step.state.armed,
      ...(step.state.aboveSinceMs !== null && { aboveSinceTime: iso(step.state.aboveSinceMs) }),
      ...(step.state.lastTriggerMs !== null && { lastTriggerTime: iso(step.state.lastTriggerMs) }),
      scores,
      ...(verdict.moved.length > 0 && { moved: verdict.moved.map((d) => API_NAME[d]) }),
      message: message.slice(0, 1024),
      baseline,
    },
  };
}

/** When the next drift check is due (epoch ms): checkInterval after the last one. */
export function nextDriftCheck(st: DriftStatus | undefined, spec: DriftSpec): number {
  const interval = Math.max(5_000, parseDuration(spec.checkInterval));
  return st?.checkedTime ? Date.parse(st.checkedTime) + interval : 0;
}

export class ProfileJobError extends Error {}

/** The profile of a window, computed in a worker thread; aborting terminates the worker. */
export function runProfileJob(
  src: WindowSource,
  o: { source: string; limits?: Partial<InputLimits>; memoryMb?: number },
  signal?: AbortSignal,
): Promise<WorkloadProfile> {
  return new Promise((resolve, reject) => {
    const worker = new Worker(new URL('./profile-worker.ts', import.meta.url), {
      workerData: { src, source: o.source, limits: o.limits },
      ...(o.memoryMb !== undefined && { resourceLimits: { maxOldGenerationSizeMb: o.memoryMb } }),
    });
    let settled = false;
    const finish = (fn: () => void) => {
      if (settled) return;
      settled = true;
      signal?.removeEventListener('abort', onAbort);
      void worker.terminate();
      fn();
    };
    const onAbort = () => finish(() => reject(new ProfileJobError('profiling cancelled')));
    signal?.addEventListener('abort', onAbort);
    worker.once('message', (m: { ok: true; profile: WorkloadProfile } | { ok: false; message: string }) =>
      finish(() => (m.ok ? resolve(m.profile) : reject(new ProfileJobError(m.message)))),
    );
    worker.once('error', (e) =>
      finish(() => reject(new ProfileJobError(`the profiling thread failed: ${e.message}`))),
    );
    worker.once('exit', (code) =>
      finish(() => reject(new ProfileJobError(`the profiling thread exited with code ${code}`))),
    );
  });
}
