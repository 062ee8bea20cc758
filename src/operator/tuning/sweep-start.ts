import type { Logger } from 'pino';
import {
  type DeploymentTuning,
  type DeploymentTuningSpec,
  parseDuration,
  type ServingSettings,
} from '../../api/index.ts';
import { getCondition, nowIso, setCondition } from '../conditions.ts';
import { effectiveBudget, listGpuInventory } from '../gpu-inventory.ts';
import { refOf } from '../kube/events.ts';
import type { KubeObject } from '../kube/resources.ts';
import { calibrationError } from '../rollout/controller.ts';
import { formatInterval } from '../schedule.ts';
import { SweepJobError, summarize } from '../sweep/job.ts';
import { DEFAULT_MAX_TRACE_BYTES, describeSource, TraceUnavailableError } from '../sweep/source.ts';
import type { TargetAdapter } from '../target/adapter.ts';
import { TelemetryError } from '../telemetry/sources.ts';
import type { FinishedSweep, TuningContext } from './context.ts';
import { oneLine, summarizeConditions } from './status.ts';
import { updateStatus } from './status-write.ts';
import { windowInput } from './window-input.ts';

/**
 * Starting a due slot's sweep: Sweeping=True (queued, started or restarted) and Events now, then in the
 * background a fair share of the sweep slots, the GPU inventory, the traffic window and the sweep job under a
 * deadline. Its outcome goes to `inFlight.finished` for the next reconcile of the key to write (see
 * `sweep-complete.ts`); a cancelled sweep (shutdown, lost leadership, object deleted) leaves nothing.
 */
export async function startSweep(
  ctx: TuningContext,
  key: string,
  dt: DeploymentTuning,
  s: DeploymentTuningSpec,
  slot: string,
  adapter: TargetAdapter,
  baseline: ServingSettings,
  warnings: string[],
  targetObj: KubeObject,
  log: Logger,
): Promise<void> {
  const { o, limits, scheduler } = ctx;
  const { running, finished: outcomes } = ctx.inFlight;
  const generation = dt.metadata.generation ?? 0;
  const startedTime = nowIso(ctx.now());
  const restarted = getCondition(dt.status?.conditions, 'Sweeping')?.status === 'True';
  const ticket = { namespace: dt.metadata.namespace ?? 'default', key, dueMs: Date.parse(slot) };
  const ahead = scheduler.ahead(ticket);
  await updateStatus(o.client, key, (st) => {
    st.nextSweepTime ??= slot;
    st.sweepStartedTime = startedTime;
    st.conditions = setCondition(
      st.conditions,
      {
        type: 'Sweeping',
        status: 'True',
        reason: ahead > 0 ? 'SweepQueued' : restarted ? 'SweepRestarted' : 'SweepStarted',
        message:
          ahead > 0
            ? `Sweep for the ${slot} slot is queued behind ${ahead} other sweep(s) (at most ${o.maxConcurrentSweeps} at once, shared fairly between namespaces).`
            : `Sweep for the ${slot} slot started at ${startedTime}.`,
        observedGeneration: generation,
      },
      ctx.now(),
    );
    summarizeConditions(st, generation, ctx.now());
  });
  const abort = new AbortController();
  running.set(key, { slot, abort });
  o.metrics.activeSweeps.set(running.size);
  const regarding = refOf(dt);
  const related = refOf(targetObj);
  void o.recorder.emit(
    regarding,
    'Normal',
    restarted ? 'SweepRestarted' : 'SweepStarted',
    'Sweep',
    `Sweeping ${s.searchSpace.optimizer} search space for ${s.targetRef.name} (baseline: ${summarize(baseline)}).`,
    related,
  );
  for (const w of warnings)
    void o.recorder.emit(regarding, 'Warning', 'BaselineAmbiguous', 'ReadTarget', w, related);
  log.info({ slot }, 'Sweep started');
  const t0 = performance.now();
  void (async () => {
    const finished: FinishedSweep = {
      slot,
      reason: dt.status?.sweepReason ?? 'Schedule',
      startedTime,
      completedTime: startedTime,
      generation,
      baseline,
      inventory: undefined,
    };
    let acquired = false;
    // The deadline counts from when the sweep gets its slot, not while it waits for one.
    const deadline = new AbortController();
    const timeoutMs = Math.min(parseDuration(s.sweepTimeout), limits.maxSweepDurationMs);
    let timer: NodeJS.Timeout | undefined;
    const signal = AbortSignal.any([abort.signal, deadline.signal]);
    try {
      await scheduler.acquire(ticket, abort.signal);
      acquired = true;
      timer = setTimeout(() => deadline.abort(), timeoutMs);
      const namespace = dt.metadata.namespace ?? 'default';
      const inv = await listGpuInventory(o.client, ctx.now());
      // Re-read the baseline now that the inventory can resolve a GPU type the target does not pin.
      const known = [...inv.types].sort((a, b) => b.requested - a.requested).map((t) => t.gpuType);
      const reread = adapter.readBaseline(targetObj, known);
      if ('settings' in reread) {
        baseline = reread.settings;
        finished.baseline = baseline;
      }
      const budget = effectiveBudget(inv, s.gpuBudget, { gpuType: baseline.gpuType, gpus: baseline.gpus });
      finished.inventory = { ...inv, budget };
      if (inv.unknownProducts.length > 0) {
        void o.recorder.emit(
          regarding,
          'Warning',
          'UnknownGPUProducts',
          'DiscoverGPUs',
          `GPU products not in the simulator catalog were ignored: ${inv.unknownProducts.map((u) => u.product).join(', ')}.`,
        );
      }
      const source = describeSource(s.workload, namespace);
      const window = await windowInput(ctx, namespace, s, baseline.model, signal);
      log.info({ source }, 'Traffic window ready; simulating');
      finished.result = await ctx.runJob(
        {
          ...window,
          calibration: {
            enabled: s.calibration.enabled,
            apply: s.calibration.applyCorrection,
            maxCorrection: s.calibration.maxCorrection,
          },
          limits: {
            maxBytes: o.maxTraceBytes ?? DEFAULT_MAX_TRACE_BYTES,
            maxRows: o.maxTraceRows,
          },
          source,
          traceBlockSize: s.workload.traceBlockSize,
          lookbackMs: s.workload.lookback ? parseDuration(s.workload.lookback) : undefined,
          baseline: { ...baseline, ...(s.model && { model: s.model }) },
          spec: { objective: s.objective, slos: s.slos, searchSpace: s.searchSpace },
          budget,
          threads: o.sweepThreads ?? 1,
          memoryMb: o.sweepMemoryMb,
          rollout: {
            maxGpusChanging: s.updatePolicy.maxGPUsChanging,
            calibrationErrorPercent: calibrationError(dt.status),
          },
          exclude: dt.status?.failedProposals ?? [],
        },
        signal,
      );
      o.metrics.candidates.inc(finished.result.candidates);
    } catch (e) {
      if (abort.signal.aborted) {
        log.info('Sweep cancelled');
        return;
      }
      const reason = deadline.signal.aborted
        ? 'SweepTimeout'
        : e instanceof TraceUnavailableError
          ? 'TraceUnavailable'
          : e instanceof TelemetryError
            ? e.reason
            : e instanceof SweepJobError
              ? e.kind
              : 'SweepFailed';
      const message = deadline.signal.aborted
        ? `The sweep did not finish within ${formatInterval(timeoutMs)} and was stopped (spec.sweepTimeout ${s.sweepTimeout}, at most ${formatInterval(limits.maxSweepDurationMs)} in this operator); narrow the search space or the trace window.`
        : oneLine((e as Error).message);
      finished.error = { reason, message };
      log.warn({ reason, err: (e as Error).message }, 'Sweep failed');
    } finally {
      if (timer) clearTimeout(timer);
      if (acquired) scheduler.release();
      o.metrics.sweepDuration.observe((performance.now() - t0) / 1000);
      running.delete(key);
      o.metrics.activeSweeps.set(running.size);
    }
    finished.completedTime = nowIso(ctx.now());
    outcomes.set(key, finished);
    ctx.enqueue(key);
  })();
}
