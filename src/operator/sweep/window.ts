import { createHash } from 'node:crypto';
import type { WorkloadSummary } from '../../api/index.ts';
import type { Workload } from '../../sim/workload/workload.ts';
import { type MetricValues, observedMetrics } from '../../telemetry/calibration/calibrate.ts';
import { warmupSpanMs } from '../../telemetry/calibration/warmup.ts';
import { profileFromRecorded, readRecordedWindow } from '../../telemetry/profile/from-trace.ts';
import type { WorkloadProfile } from '../../telemetry/profile/profile.ts';
import { synthesize } from '../../telemetry/profile/synthesize.ts';
import type { InputLimits, TraceIssue } from '../../telemetry/trace/index.ts';
import { loadTraceWindow, prefixReuse, round, stats } from './trace-window.ts';

/**
 * The window of traffic a sweep replays, from any source: a trace's bytes (ConfigMap, file, URL), a
 * directory of Dynamo request traces (read here, in the job's thread: an hour of a busy deployment is
 * hundreds of MB of JSON), or a Prometheus profile (synthesised here into a trace). Besides the workload:
 * its summary for status, the profile drift compares later windows with, and what the deployment measured
 * over it (for calibration), when the source says.
 */

export type WindowSource =
  | { kind: 'trace'; text: string | Uint8Array; format?: string; traceBlockSize: number; lookbackMs?: number }
  | { kind: 'requestTrace'; path: string; lookbackMs: number; endMs: number }
  | { kind: 'profile'; profile: WorkloadProfile; seed: number; blockSize: number };

export interface JobWindow {
  workload: Workload;
  summary: WorkloadSummary;
  issues: TraceIssue[];
  profile: WorkloadProfile;
  observed: MetricValues;
  /** Window length (s), for calibration's per-window quantities. */
  windowS: number;
  /** The traffic recorded before the window followed by the window (request traces), for calibration. */
  warmup?: { workload: Workload; measureFromMs: number };
}

/** A content hash of a workload's columns (the replayed traffic, whatever its source). */
function workloadHash(w: Workload, salt: string): string {
  const h = createHash('sha256').update(salt);
  for (const a of [w.arrivalMs, w.inputLength, w.outputLength, w.hashOffsets, w.hashIds])
    h.update(new Uint8Array(a.buffer, a.byteOffset, a.byteLength));
  return `sha256:${h.digest('hex')}`;
}

function summaryOf(
  w: Workload,
  o: {
    source: string;
    salt: string;
    lines: number;
    badLines: number;
    sessions: number;
    startS: number;
    endS: number;
  },
): WorkloadSummary {
  let span = 0;
  for (let i = 0; i < w.size; i++) if (w.arrivalMs[i] > span) span = w.arrivalMs[i];
  return {
    source: o.source,
    hash: workloadHash(w, o.salt),
    lines: o.lines,
    badLines: o.badLines,
    requests: w.size,
    sessions: o.sessions,
    windowStartSeconds: round(Math.max(0, o.startS)),
    windowEndSeconds: round(Math.max(0, o.endS)),
    requestRate: span > 0 ? round((w.size / span) * 1000) : 0,
    inputTokens: stats(w.inputLength),
    outputTokens: stats(w.outputLength),
    prefixReuseRatio: prefixReuse(w),
  };
}

export async function loadJobWindow(
  src: WindowSource,
  o: { source: string; limits?: Partial<InputLimits> },
): Promise<JobWindow> {
  if (src.kind === 'trace') {
    const t = loadTraceWindow(src.text, {
      source: o.source,
      traceBlockSize: src.traceBlockSize,
      lookbackMs: src.lookbackMs,
      limits: o.limits,
      ...(src.format !== undefined && { format: src.format }),
    });
    // The span of the rows read, not of the text: a rejected row's absurd timestamp must not stretch it.
    let spanMs = 0;
    for (let i = 0; i < t.workload.size; i++) spanMs = Math.max(spanMs, t.workload.arrivalMs[i]);
    const profile = profileFromRecorded(
      {
        workload: t.workload,
        summary: t.trace,
        observed: null,
        originMs: 0,
        window: { startMs: 0, endMs: spanMs },
      },
      { name: o.source },
    );
    return {
      workload: t.workload,
      summary: t.summary,
      issues: t.issues,
      profile,
      observed: {},
      windowS: spanMs / 1000,
    };
  }
  if (src.kind === 'requestTrace') {
    const rec = await readRecordedWindow(src.path, {
      lookbackMs: src.lookbackMs,
      endMs: src.endMs,
      lenient: true,
      limits: o.limits,
      noSymlinks: true,
      // Calibration replays the window after what the deployment served just before it.
      warmupMs: warmupSpanMs(src.lookbackMs),
    });
    const profile = profileFromRecorded(rec, { name: o.source, kind: 'request-trace' });
    const summary = summaryOf(rec.workload, {
      source: o.source,
      salt: `request-trace:${src.endMs - src.lookbackMs},${src.endMs}`,
      lines: rec.summary.lines,
      badLines: rec.summary.badLines,
      sessions: rec.summary.sessions,
      startS: rec.window.startMs / 1000,
      endS: rec.window.endMs / 1000,
    });
    return {
      workload: rec.workload,
      summary,
      issues: rec.summary.issues,
      profile,
      observed: observedMetrics(profile),
      windowS: src.lookbackMs / 1000,
      ...(rec.warmup && { warmup: rec.warmup }),
    };
  }
  const p = src.profile;
  const s = synthesize(p, { seed: src.seed, blockSize: src.blockSize });
  const summary = summaryOf(s.workload, {
    source: o.source,
    salt: `prometheus:${p.window.start_ms},${p.window.end_ms},seed=${src.seed}`,
    lines: 0,
    badLines: 0,
    sessions: 0,
    startS: p.window.start_ms / 1000,
    endS: p.window.end_ms / 1000,
  });
  return {
    workload: s.workload,
    summary,
    issues: [],
    profile: p,
    observed: observedMetrics(p),
    windowS: p.duration_s,
  };
}
