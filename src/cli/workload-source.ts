import { readFile, stat } from 'node:fs/promises';
import { parseDuration } from '../api/index.ts';
import { profileFromPrometheus } from '../telemetry/profile/from-prometheus.ts';
import { profileFromRecorded, readRecordedWindow } from '../telemetry/profile/from-trace.ts';
import { type WorkloadProfile, WorkloadProfileSchema } from '../telemetry/profile/profile.ts';
import { PrometheusClient, PrometheusError } from '../telemetry/prometheus/client.ts';
import { TraceError } from '../telemetry/trace/index.ts';
import { UsageError } from './errors.ts';

/**
 * What `servetune profile` and `servetune drift` read traffic from: a trace file (any format the reader
 * knows), a request-trace directory or prefix, a profile JSON written by `servetune profile --out`, or a
 * Prometheus server. Every failure is a UsageError naming the source (exit 2).
 */

/** A profile JSON file is small: anything larger is a trace. */
const MAX_PROFILE_BYTES = 8 * 2 ** 20;

export interface SourceOptions {
  /** Lookback window (ms), measured back from the newest request (traces) or from now (Prometheus). */
  windowMs?: number;
  /** Rate-curve step (s). */
  stepS?: number;
  traceFormat?: string;
  traceBlockSize?: number;
}

/** Duration flag value in ms, or a usage error naming the flag. */
export function durationFlag(flag: string, text: string | undefined, maxMs: number): number | undefined {
  if (text === undefined) return undefined;
  let ms: number;
  try {
    ms = parseDuration(text);
  } catch {
    throw new UsageError(`${flag}: '${text}' is not a duration such as 90s, 30m or 1h30m`);
  }
  if (!(ms >= 1000 && ms <= maxMs))
    throw new UsageError(`${flag}: ${text} is outside [1s, ${Math.round(maxMs / 3_600_000)}h]`);
  return ms;
}

/** `k=v,k2=v2` into labels; a usage error for anything else. */
export function parseSelector(text: string | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  if (text === undefined) return out;
  for (const part of text.split(',')) {
    const eq = part.indexOf('=');
    if (eq <= 0) throw new UsageError(`--selector: '${part}' is not label=value`);
    const k = part.slice(0, eq).trim();
    if (k in out) throw new UsageError(`--selector: label ${k} given twice`);
    out[k] = part.slice(eq + 1).trim();
  }
  return out;
}

/** The profile in a profile JSON file, or null when the file is not one (a trace). */
async function profileFile(path: string): Promise<WorkloadProfile | null> {
  const st = await stat(path).catch(() => null);
  if (!st?.isFile() || st.size > MAX_PROFILE_BYTES) return null;
  const text = await readFile(path, 'utf8');
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    return null;
  }
  if (typeof json !== 'object' || json === null || (json as { kind?: unknown }).kind !== 'WorkloadProfile')
    return null;
  const parsed = WorkloadProfileSchema.safeParse(json);
  if (!parsed.success) {
    const i = parsed.error.issues[0];
    throw new UsageError(`${path}: field '${i.path.join('.')}': ${i.message}`);
  }
  return parsed.data as WorkloadProfile;
}

/** The profile of a file or directory source. */
export async function profileOfPath(path: string, opts: SourceOptions): Promise<WorkloadProfile> {
  const saved = await profileFile(path);
  if (saved) return saved;
  try {
    const rec = await readRecordedWindow(path, {
      format: opts.traceFormat,
      traceBlockSize: opts.traceBlockSize,
      lookbackMs: opts.windowMs,
    });
    return profileFromRecorded(rec, { name: path, stepS: opts.stepS });
  } catch (e) {
    if (e instanceof TraceError) throw new UsageError(e.message);
    throw e;
  }
}

export interface PrometheusSourceOptions {
  url: string;
  selector: Record<string, string>;
  windowMs: number;
  stepS?: number;
  bearerToken?: string;
  ca?: string;
}

export async function profileOfPrometheus(o: PrometheusSourceOptions): Promise<WorkloadProfile> {
  let client: PrometheusClient | undefined;
  try {
    client = new PrometheusClient({ url: o.url, bearerToken: o.bearerToken, ca: o.ca });
    return await profileFromPrometheus(client, {
      selector: o.selector,
      windowS: Math.round(o.windowMs / 1000),
      stepS: o.stepS,
    });
  } catch (e) {
    if (e instanceof PrometheusError) throw new UsageError(e.message);
    throw e;
  } finally {
    await client?.close();
  }
}
