import type { Logger } from 'pino';
import {
  type DeploymentTuning,
  type DeploymentTuningSpec,
  parseDuration,
  sourceKind,
} from '../../api/index.ts';
import type { WorkloadProfile } from '../../telemetry/profile/profile.ts';
import { getCondition, nowIso, setCondition } from '../conditions.ts';
import { refOf } from '../kube/events.ts';
import { splitKey } from '../kube/resources.ts';
import { DEFAULT_MAX_TRACE_BYTES, describeSource, TraceUnavailableError } from '../sweep/source.ts';
import { recordDrift } from '../telemetry/calibration-status.ts';
import { decideDrift, runProfileJob } from '../telemetry/drift.ts';
import { prometheusProfile, TelemetryError } from '../telemetry/sources.ts';
import { type DriftCheckResult, type TuningContext, telemetryAccess } from './context.ts';
import { oneLine, summarizeConditions } from './status.ts';
import { degrade, updateStatus } from './status-write.ts';
import { windowInput } from './window-input.ts';

/**
 * Drift checks between scheduled sweeps: every `drift.checkInterval` the recent window is profiled in the
 * background (a worker thread for traces) and, at the key's next reconcile, scored against the baseline of
 * the last sweep (`telemetry/drift.ts` decides; `slots.ts` says when a check is due). A trigger makes
 * `status.nextSweepTime` now with reason WorkloadDrift, and the slot machinery does the rest.
 */

/** Degraded reasons a successful drift check (telemetry answering again) clears. */
const TELEMETRY_REASONS = new Set([
  'PrometheusNotConfigured',
  'PrometheusUnreachable',
  'PrometheusBadResponse',
  'PrometheusNoData',
  'PrometheusRefused',
  'PrometheusCredentials',
  'RequestTraceUnavailable',
  'DriftCheckFailed',
]);

/**
 * Profiles the recent window in the background (decide says when one is due); its outcome goes to
 * `inFlight.checked` for the next reconcile of the key to write.
 */
export function startDriftCheck(
  ctx: TuningContext,
  key: string,
  dt: DeploymentTuning,
  s: DeploymentTuningSpec,
  servedModel: string | undefined,
): void {
  const { o } = ctx;
  const { checking, checked } = ctx.inFlight;
  const abort = new AbortController();
  checking.set(key, abort);
  const namespace = dt.metadata.namespace ?? 'default';
  void (async () => {
    let result: DriftCheckResult;
    try {
      const kind = sourceKind(s.workload.source);
      let profile: WorkloadProfile;
      if (kind === 'prometheus') {
        profile = await prometheusProfile(o.client, namespace, s, telemetryAccess(o), servedModel, {
          signal: abort.signal,
        });
      } else {
        const input = await windowInput(ctx, namespace, s, servedModel, abort.signal);
        profile = await runProfileJob(
          input.requestTrace
            ? { kind: 'requestTrace', ...input.requestTrace }
            : {
                kind: 'trace',
                text: input.traceText ?? '',
                traceBlockSize: s.workload.traceBlockSize,
                lookbackMs: s.workload.lookback ? parseDuration(s.workload.lookback) : undefined,
                ...(input.format !== undefined && { format: input.format }),
              },
          {
            source: describeSource(s.workload, namespace),
            limits: {
              maxBytes: o.maxTraceBytes ?? DEFAULT_MAX_TRACE_BYTES,
              maxRows: o.maxTraceRows,
            },
            memoryMb: o.sweepMemoryMb,
          },
          abort.signal,
        );
      }
      result = { profile };
    } catch (e) {
      if (abort.signal.aborted) {
        checking.delete(key);
        return;
      }
      const reason =
        e instanceof TelemetryError
          ? e.reason
          : e instanceof TraceUnavailableError
            ? 'TraceUnavailable'
            : 'DriftCheckFailed';
      result = { error: { reason, message: oneLine((e as Error).message, 512) } };
    }
    checking.delete(key);
    checked.set(key, result);
    ctx.enqueue(key);
  })();
}

/** Writes a drift check's outcome; on a trigger, schedules a sweep now (reason WorkloadDrift). */
export async function applyDriftCheck(
  ctx: TuningContext,
  key: string,
  dt: DeploymentTuning,
  s: DeploymentTuningSpec,
  check: DriftCheckResult,
  log: Logger,
): Promise<void> {
  const { o } = ctx;
  const generation = dt.metadata.generation ?? 0;
  const now = ctx.now();
  const checkedTime = nowIso(now);
  const { namespace, name } = splitKey(key);
  if ('error' in check) {
    const message = `Drift check: ${check.error.message.replace(/\.?$/, '.')} The previous recommendation is kept.`;
    await updateStatus(o.client, key, (st) => {
      if (st.drift)
        st.drift = {
          ...st.drift,
          checkedTime,
          phase: 'Unknown',
          message: oneLine(check.error.message, 1024),
        };
    });
    await degrade(o, key, check.error.reason, oneLine(message, 1024), now, true);
    return;
  }
  const baseline = dt.status?.drift?.baseline;
  if (!baseline) return;
  const d = decideDrift(dt.status?.drift, baseline, check.profile, s.drift, now);
  recordDrift(o.metrics, namespace, name, d);
  let sweepAt: string | undefined;
  await updateStatus(o.client, key, (st) => {
    st.drift = d.status;
    const degraded = getCondition(st.conditions, 'Degraded');
    if (degraded?.status === 'True' && TELEMETRY_REASONS.has(degraded.reason))
      st.conditions = setCondition(
        st.conditions,
        {
          type: 'Degraded',
          status: 'False',
          reason: 'AsExpected',
          message: 'Nothing is wrong.',
          observedGeneration: generation,
        },
        ctx.now(),
      );
    if (d.trigger) {
      const earliest = st.lastSweepTime ? Date.parse(st.lastSweepTime) + ctx.limits.minScheduleIntervalMs : 0;
      sweepAt = nowIso(new Date(Math.max(now.getTime(), earliest)));
      st.nextSweepTime = sweepAt;
      st.sweepReason = 'WorkloadDrift';
      // Settings that failed verification may suit the traffic now.
      st.failedProposals = undefined;
    }
    summarizeConditions(st, generation, ctx.now());
  });
  if (d.trigger) {
    o.metrics.driftTriggers.inc({ namespace, name });
    log.info(
      { level: d.verdict.level, moved: d.verdict.moved },
      'Workload drifted; sweeping out of schedule',
    );
    await o.recorder.emit(
      refOf(dt),
      'Normal',
      'WorkloadDrift',
      'DetectDrift',
      oneLine(`${d.message} Sweeping out of schedule at ${sweepAt}.`, 1024),
    );
  }
}
