import { createHash } from 'node:crypto';
import type { WorkloadSummary } from '../../api/index.ts';
import type { Workload } from '../../sim/workload/workload.ts';
import { tailFrom } from '../../telemetry/profile/from-trace.ts';
import {
  DEFAULT_INPUT_LIMITS,
  decodeTrace,
  type InputLimits,
  parseTrace,
  type TraceIssue,
  type TraceSummary,
} from '../../telemetry/trace/index.ts';

/**
 * Cuts the replay window out of a trace (the last `lookbackMs` before its newest request), parses it leniently
 * (bad lines are counted, not fatal) and summarises the traffic. Gzip-compressed bytes are inflated first.
 * Throws TraceError when nothing usable remains.
 */

export interface TraceWindow {
  workload: Workload;
  summary: WorkloadSummary;
  issues: TraceIssue[];
  /** What the reader found (format, tallies), for the window's profile. */
  trace: TraceSummary;
}

const TS = /"(?:timestamp|created_time)"\s*:\s*(-?[0-9][0-9.eE+-]*)/;

/** Smallest and largest raw timestamp in the text (a cheap scan; rows are validated later). */
function timestampRange(text: string): { min: number; max: number } {
  let min = Number.POSITIVE_INFINITY;
  let max = Number.NEGATIVE_INFINITY;
  for (const line of text.split('\n')) {
    const m = TS.exec(line);
    if (!m) continue;
    const t = Number(m[1]);
    if (!Number.isFinite(t)) continue;
    if (t < min) min = t;
    if (t > max) max = t;
  }
  return { min, max };
}

export function stats(values: Int32Array): { mean: number; p50: number; p90: number } {
  if (values.length === 0) return { mean: 0, p50: 0, p90: 0 };
  const sorted = Float64Array.from(values).sort();
  const at = (p: number) => sorted[Math.round((sorted.length - 1) * p)];
  let sum = 0;
  for (const v of values) sum += v;
  return { mean: round(sum / values.length), p50: at(0.5), p90: at(0.9) };
}

export const round = (x: number, digits = 3) => Number(x.toFixed(digits));

/** Fraction of prompt blocks whose hash id appeared in an earlier request of the window. */
export function prefixReuse(w: Workload): number {
  const seen = new Set<number>();
  let reused = 0;
  const total = w.hashIds.length;
  for (let r = 0; r < w.size; r++) {
    for (let k = w.hashOffsets[r]; k < w.hashOffsets[r + 1]; k++) {
      const h = w.hashIds[k];
      if (seen.has(h)) reused++;
      else seen.add(h);
    }
  }
  return total === 0 ? 0 : round(reused / total, 4);
}

export function loadTraceWindow(
  data: string | Uint8Array,
  opts: {
    source: string;
    traceBlockSize: number;
    lookbackMs?: number;
    limits?: Partial<InputLimits>;
    /** Force a format (default: detected from the content). */
    format?: string;
  },
): TraceWindow {
  // The cap holds for the inflated text too: a small gzip member must not inflate to gigabytes.
  const limits = { ...DEFAULT_INPUT_LIMITS, maxBytes: 2 ** 30, ...opts.limits };
  const text = typeof data === 'string' ? data : decodeTrace(data, opts.source, limits.maxBytes);
  const range = timestampRange(text);
  const window =
    opts.lookbackMs !== undefined && Number.isFinite(range.max)
      ? { from: range.max - opts.lookbackMs, to: range.max + 1 }
      : undefined;
  const parsed = parseTrace(text, {
    source: opts.source,
    traceBlockSize: opts.traceBlockSize,
    lenient: true,
    windowMs: window,
    limits,
    ...(opts.format !== undefined && { format: opts.format }),
  });
  let w = parsed.workload;
  // Formats without Mooncake's timestamp field (Azure CSV, request traces): the window is cut after parsing.
  let cutMs: number | undefined;
  if (opts.lookbackMs !== undefined && window === undefined) {
    let newest = 0;
    for (let i = 0; i < w.size; i++) if (w.arrivalMs[i] > newest) newest = w.arrivalMs[i];
    if (newest > opts.lookbackMs) {
      cutMs = newest - opts.lookbackMs;
      w = tailFrom(w, cutMs).workload;
    }
  }
  let span = 0;
  let sessions = 0;
  const seenSessions = new Set<number>();
  for (let i = 0; i < w.size; i++) {
    if (!Number.isNaN(w.arrivalMs[i])) span = Math.max(span, w.arrivalMs[i]);
    if (w.session[i] >= 0 && !seenSessions.has(w.session[i])) {
      seenSessions.add(w.session[i]);
      sessions++;
    }
  }
  const start = Number.isFinite(range.min) ? Math.max(range.min, window?.from ?? range.min) : (cutMs ?? 0);
  const end = Number.isFinite(range.max) ? range.max : start + span;
  const hash = createHash('sha256')
    .update(text)
    .update(
      `\0window=${window ? `${window.from},${window.to}` : cutMs !== undefined ? `tail:${cutMs}` : 'all'}`,
    )
    .digest('hex');
  return {
    workload: w,
    issues: parsed.issues,
    trace: parsed.summary,
    summary: {
      source: opts.source,
      hash: `sha256:${hash}`,
      lines: parsed.lines,
      badLines: parsed.badLines,
      requests: w.size,
      sessions,
      windowStartSeconds: round(Math.max(0, start) / 1000),
      windowEndSeconds: round(Math.max(0, end) / 1000),
      requestRate: span > 0 ? round((w.size / span) * 1000) : 0,
      inputTokens: stats(w.inputLength),
      outputTokens: stats(w.outputLength),
      prefixReuseRatio: prefixReuse(w),
    },
  };
}
