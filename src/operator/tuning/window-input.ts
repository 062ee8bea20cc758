import { type DeploymentTuningSpec, parseDuration, sourceKind } from '../../api/index.ts';
import type { SweepJobInput } from '../sweep/job.ts';
import { fetchTrace } from '../sweep/source.ts';
import { prometheusProfile, requestTracePath } from '../telemetry/sources.ts';
import { type TuningContext, telemetryAccess } from './context.ts';

/** Trace formats by their API names ('Auto': detected from the content). */
const TRACE_FORMATS: Record<string, string | undefined> = {
  MooncakeJSONL: 'mooncake',
  DynamoRequestTrace: 'dynamo',
  AzureCSV: 'azure',
};

/**
 * How long ago a request-trace window ends. A record is written when its request ends, so a window ending now
 * misses the requests still running (a third to a half of a loaded 30 s window), and the replay their load.
 * Ending the window earlier, while reading every segment written since (segments are chosen by modification
 * time, requests by arrival), brings the records of requests that arrived in it and ended within the settle
 * time: half the window, at most 2 minutes (an hour's window is then 2 minutes old).
 */
function requestTraceSettleMs(lookbackMs: number): number {
  return Math.min(120_000, Math.round(lookbackMs / 2));
}

/**
 * The recent traffic of the spec's source, as a sweep or a drift check takes it: the trace's bytes, a
 * request-trace directory or a Prometheus profile.
 */
export async function windowInput(
  { o, now }: Pick<TuningContext, 'o' | 'now'>,
  namespace: string,
  s: DeploymentTuningSpec,
  servedModel: string | undefined,
  signal: AbortSignal,
): Promise<Pick<SweepJobInput, 'traceText' | 'format' | 'requestTrace' | 'profile'>> {
  const kind = sourceKind(s.workload.source);
  if (kind === 'prometheus')
    return {
      profile: await prometheusProfile(o.client, namespace, s, telemetryAccess(o), servedModel, { signal }),
    };
  if (kind === 'requestTrace') {
    const path = await requestTracePath(s.workload.source.requestTrace!.path, o.traceRoots ?? []);
    const lookbackMs = s.workload.lookback ? parseDuration(s.workload.lookback) : 3_600_000;
    return { requestTrace: { path, lookbackMs, endMs: now().getTime() - requestTraceSettleMs(lookbackMs) } };
  }
  const traceText = await fetchTrace(o.client, namespace, s.workload, {
    fileRoots: o.traceRoots,
    urlPolicy: o.urlPolicy,
    maxBytes: o.maxTraceBytes,
    signal,
  });
  return {
    traceText,
    ...(TRACE_FORMATS[s.workload.format] && { format: TRACE_FORMATS[s.workload.format] }),
  };
}
