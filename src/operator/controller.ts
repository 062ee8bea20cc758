import type { Logger } from 'pino';
import {
  type DeploymentTuning,
  type DeploymentTuningSpec,
  DeploymentTuningSpecSchema,
  type DeploymentTuningStatus,
  type GpuInventory,
  parseDuration,
  type ServingSettings,
  sourceKind,
} from '../api/index.ts';
import type { WorkloadProfile } from '../telemetry/profile/profile.ts';
import { getCondition, nowIso, setCondition } from './conditions.ts';
import { FairScheduler } from './fair-scheduler.ts';
import { effectiveBudget, listGpuInventory } from './gpu-inventory.ts';
import { isConflict, isNotFound, type KubeClient } from './kube/client.ts';
import { type EventRecorder, refOf } from './kube/events.ts';
import type { Informer } from './kube/informer.ts';
import { DEPLOYMENT_TUNINGS, type KubeObject, keyOf, pathOf, splitKey } from './kube/resources.ts';
import type { OperatorMetrics } from './metrics.ts';
import { decideProposal } from './policy.ts';
import {
  buildRecommendation,
  createRecommendation,
  ensureProposed,
  findRecommendation,
  recommendationName,
  supersedeAndPrune,
} from './recommendations.ts';
import { calibrationError } from './rollout/controller.ts';
import { formatInterval, nextSweep, shortestInterval, validateCron } from './schedule.ts';
import {
  runSweepJob,
  SweepJobError,
  type SweepJobInput,
  type SweepJobResult,
  summarize,
} from './sweep/job.ts';
import {
  DEFAULT_MAX_TRACE_BYTES,
  describeSource,
  fetchTrace,
  TraceUnavailableError,
} from './sweep/source.ts';
import type { UrlPolicy } from './sweep/url-policy.ts';
import type { TargetAdapter } from './target/adapter.ts';
import { baselineOf } from './telemetry/baseline.ts';
import { calibrationStatus, recordCalibration, recordDrift } from './telemetry/calibration-status.ts';
import { decideDrift, nextDriftCheck, runProfileJob } from './telemetry/drift.ts';
import {
  prometheusProfile,
  requestTracePath,
  type TelemetryAccess,
  TelemetryError,
} from './telemetry/sources.ts';

/**
 * The DeploymentTuning controller. Reconcile is level-triggered and idempotent: every pass re-reads the
 * object, its target and its recommendations and decides from status what should happen now. The schedule
 * lives in `status.nextSweepTime`; a due sweep runs in the background (a worker thread, under a global
 * concurrency limit, at most one per object) and its result is written by the next reconcile of that key.
 * Recommendations are named after the schedule slot, so a restarted operator finds one it already created
 * instead of duplicating it, and re-runs a sweep it had not finished instead of losing it.
 */

export const CONTROLLER_NAME = 'servetune.dev/deploymenttuning-controller';

export type JobRunner = (input: SweepJobInput, signal: AbortSignal) => Promise<SweepJobResult>;

export interface ControllerOptions {
  client: KubeClient;
  logger: Logger;
  recorder: EventRecorder;
  metrics: OperatorMetrics;
  tunings: Informer<DeploymentTuning>;
  targets: Map<string, { adapter: TargetAdapter; informer: Informer<KubeObject> }>;
  maxConcurrentSweeps: number;
  /** After a failed sweep, retry this soon (or at the next slot if sooner). */
  failureRetryMs: number;
  /** Directories file trace sources may read from (none: file sources are refused). */
  traceRoots?: string[];
  /** Which URLs URL trace sources may fetch (default: https to public addresses). */
  urlPolicy?: UrlPolicy;
  /** Cap on one trace's bytes (fetched, and inflated). */
  maxTraceBytes?: number;
  /** Cap on one trace's rows. */
  maxTraceRows?: number;
  /** Least time between two sweeps of one object, whatever its schedule says (default 5 minutes). */
  minScheduleIntervalMs?: number;
  /** Cap on a sweep's deadline (spec.sweepTimeout; default 30 minutes). */
  maxSweepDurationMs?: number;
  /** Sweeps in a row that may crash before a slot is given up as Failed (default 3). */
  maxSweepCrashes?: number;
  /** V8 heap of one sweep (its job thread and evaluation threads share it), MiB; unset: V8's default. */
  sweepMemoryMb?: number;
  /** Worker threads of one sweep's evaluation pool. */
  sweepThreads?: number;
  runJob?: JobRunner;
  /** The cluster's Prometheus (administrator-set, trusted): the default of Prometheus sources. */
  prometheusUrl?: string;
  /** Which Prometheus URLs tenants may name (default: https to public addresses only). */
  metricsUrlPolicy?: UrlPolicy;
  /** Secrets (by name, in a DeploymentTuning's namespace) a Prometheus source may take a bearer token from. */
  prometheusTokenSecrets?: string[];
  now?: () => Date;
}

export interface ReconcileResult {
  requeueAfterMs?: number;
}

interface RunningSweep {
  slot: string;
  abort: AbortController;
}

export const CONTROLLER_DEFAULTS = {
  minScheduleIntervalMs: 5 * 60_000,
  maxSweepDurationMs: 30 * 60_000,
  maxSweepCrashes: 3,
};

/** One line, at most `max` characters: zod and network messages must not reach a condition as a dump. */
export function oneLine(text: string, max = 1024): string {
  const flat = text.replace(/\s+/g, ' ').trim();
  return flat.length > max ? `${flat.slice(0, max - 1)}…` : flat;
}

interface FinishedSweep {
  slot: string;
  /** Why it ran (status.sweepReason when it started). */
  reason: 'Schedule' | 'WorkloadDrift';
  startedTime: string;
  completedTime: string;
  generation: number;
  baseline: ServingSettings;
  inventory: GpuInventory | undefined;
  result?: SweepJobResult;
  error?: { reason: string; message: string };
}

const MAX_REQUEUE_MS = 6 * 3_600_000;

/** Trace formats by their API names ('Auto': detected from the content). */
const TRACE_FORMATS: Record<string, string | undefined> = {
  MooncakeJSONL: 'mooncake',
  DynamoRequestTrace: 'dynamo',
  AzureCSV: 'azure',
};

/** Degraded reasons about the object or its target (cleared once a reconcile finds them fixed). */
const CONFIG_REASONS = new Set(['InvalidSpec', 'InvalidSchedule', 'TargetNotFound', 'TargetUnreadable']);

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

/** A drift check's outcome, written by the next reconcile of its key. */
type DriftCheckResult = { profile: WorkloadProfile } | { error: { reason: string; message: string } };

/** Sweep failures that count as crashes (the sweep's process or thread died, rather than an input problem). */
const CRASH_REASONS = new Set(['SweepCrashed']);

/** Conditions a DeploymentTuning shows from its first reconcile, until something sets them. */
const INITIAL_CONDITIONS = [
  { type: 'Sweeping', status: 'False', reason: 'Idle', message: 'No sweep has run yet.' },
  {
    type: 'RecommendationAvailable',
    status: 'Unknown',
    reason: 'NoSweepYet',
    message: 'No sweep has completed yet.',
  },
  { type: 'Degraded', status: 'False', reason: 'AsExpected', message: 'Nothing is wrong.' },
] as const;

export class TuningController {
  private readonly o: ControllerOptions;
  private readonly running = new Map<string, RunningSweep>();
  private readonly finished = new Map<string, FinishedSweep>();
  /** Drift checks running, and finished ones waiting for their key's reconcile. */
  private readonly checking = new Map<string, AbortController>();
  private readonly checked = new Map<string, DriftCheckResult>();
  private readonly scheduler: FairScheduler;
  private readonly limits: typeof CONTROLLER_DEFAULTS;
  private readonly runJob: JobRunner;
  private readonly now: () => Date;
  /** Set by the manager: schedules a reconcile of a key. */
  enqueue: (key: string) => void = () => {};

  constructor(opts: ControllerOptions) {
    this.o = opts;
    this.scheduler = new FairScheduler(Math.max(1, opts.maxConcurrentSweeps));
    this.limits = {
      minScheduleIntervalMs: opts.minScheduleIntervalMs ?? CONTROLLER_DEFAULTS.minScheduleIntervalMs,
      maxSweepDurationMs: opts.maxSweepDurationMs ?? CONTROLLER_DEFAULTS.maxSweepDurationMs,
      maxSweepCrashes: opts.maxSweepCrashes ?? CONTROLLER_DEFAULTS.maxSweepCrashes,
    };
    this.runJob = opts.runJob ?? runSweepJob;
    this.now = opts.now ?? (() => new Date());
  }

  activeSweeps(): number {
    return this.running.size;
  }

  /** Cancels running sweeps and drift checks (on shutdown or lost leadership). */
  cancelAll(): void {
    for (const r of this.running.values()) r.abort.abort();
    for (const c of this.checking.values()) c.abort();
  }

  /** What the telemetry sources may reach. */
  private get access(): TelemetryAccess {
    return {
      prometheusUrl: this.o.prometheusUrl,
      urlPolicy: this.o.metricsUrlPolicy,
      tokenSecretNames: this.o.prometheusTokenSecrets,
      traceRoots: this.o.traceRoots,
    };
  }

  async reconcile(key: string): Promise<ReconcileResult> {
    const cached = this.o.tunings.get(key);
    if (!cached || cached.metadata.deletionTimestamp) {
      this.running.get(key)?.abort.abort();
      this.finished.delete(key);
      this.checking.get(key)?.abort();
      this.checked.delete(key);
      const { namespace, name } = splitKey(key);
      this.o.metrics.forget(namespace, name);
      return {};
    }
    const dt = structuredClone(cached);
    const generation = dt.metadata.generation ?? 0;
    const log = this.o.logger.child({ deploymentTuning: key });
    const spec = DeploymentTuningSpecSchema.safeParse(dt.spec);
    if (!spec.success) {
      const issue = spec.error.issues[0];
      await this.degrade(
        key,
        'InvalidSpec',
        oneLine(`spec.${issue.path.join('.')}: ${issue.message}`, 512),
        true,
      );
      return {};
    }
    const s = spec.data;
    const cronError = validateCron(s.schedule);
    if (cronError) {
      await this.degrade(
        key,
        'InvalidSchedule',
        oneLine(`spec.schedule '${s.schedule.slice(0, 100)}' never fires or is not valid: ${cronError}`, 512),
        true,
      );
      return {};
    }
    await this.warnFrequentSchedule(dt, s, generation);

    const done = this.finished.get(key);
    if (done) {
      await this.complete(key, dt, s, done, log);
      this.finished.delete(key);
      this.checked.delete(key);
      return this.requeueForNext(key);
    }
    if (this.running.has(key)) return {};
    const check = this.checked.get(key);
    if (check) {
      this.checked.delete(key);
      await this.applyDriftCheck(key, dt, s, check, log);
      const after = await this.fetch(key);
      if (after) {
        dt.status = after.status;
        dt.metadata = after.metadata;
      }
    }

    const target = this.o.targets.get(s.targetRef.kind);
    const targetObj = target?.informer.get(`${dt.metadata.namespace}/${s.targetRef.name}`);
    if (!target || !targetObj) {
      const msg = target
        ? `${s.targetRef.kind} ${dt.metadata.namespace}/${s.targetRef.name} not found`
        : `target kind ${s.targetRef.kind} is not supported`;
      await this.degrade(key, 'TargetNotFound', msg, true);
      return { requeueAfterMs: 10 * 60_000 };
    }
    const baseline = target.adapter.readBaseline(targetObj, []);
    if ('error' in baseline) {
      await this.degrade(
        key,
        baseline.reason ?? 'TargetUnreadable',
        `${s.targetRef.kind} ${s.targetRef.name}: ${baseline.error}`,
        true,
      );
      return { requeueAfterMs: 10 * 60_000 };
    }

    const now = this.now();
    let slot = dt.status?.nextSweepTime ?? dt.metadata.creationTimestamp ?? nowIso(now);
    // A changed spec may bring a sooner schedule: the slot planned under the old one must not hold it back.
    if (dt.status?.nextSweepTime && (dt.status.observedGeneration ?? 0) < generation) {
      const sooner = nowIso(this.nextSlot(s, dt.status, now));
      if (Date.parse(sooner) < Date.parse(slot)) {
        slot = sooner;
        await this.updateStatus(key, (st) => {
          st.nextSweepTime = sooner;
        });
      }
    }
    if (s.suspend) {
      await this.updateStatus(key, (st) => {
        st.nextSweepTime ??= slot;
        this.summarizeConditions(st, generation, { reason: 'Suspended', message: 'Sweeps are suspended.' });
      });
      return {};
    }
    const dueIn = Date.parse(slot) - now.getTime();
    if (dueIn > 0) {
      await this.updateStatus(key, (st) => {
        st.nextSweepTime ??= slot;
        this.summarizeConditions(st, generation);
      });
      const checkIn = this.maybeCheckDrift(key, dt, s, baseline.settings.model, now);
      return { requeueAfterMs: Math.min(dueIn, checkIn, MAX_REQUEUE_MS) };
    }

    // Due by the cache; confirm with a fresh read, since our last status write may not have reached the cache
    // yet and a stale slot would start a second sweep for it.
    const fresh = await this.fetch(key);
    if (!fresh) return {};
    if (fresh.status?.nextSweepTime && fresh.status.nextSweepTime !== slot) {
      const wait = Date.parse(fresh.status.nextSweepTime) - this.now().getTime();
      if (wait > 0) return { requeueAfterMs: Math.min(wait, MAX_REQUEUE_MS) };
      slot = fresh.status.nextSweepTime;
    }

    // Due. A recommendation for this slot may already exist if we stopped after creating it.
    const existing = await findRecommendation(
      this.o.client,
      dt.metadata.namespace ?? 'default',
      recommendationName(dt.metadata.name, slot),
    );
    if (existing) {
      log.info(
        { recommendation: existing.metadata.name },
        'Found the recommendation of this slot; finishing',
      );
      // A crash may have come between creating it and writing its state, or superseding the previous one.
      await ensureProposed(this.o.client, existing);
      await supersedeAndPrune(
        this.o.client,
        this.o.recorder,
        dt,
        s.historyLimit,
        existing.metadata.name,
        log,
        this.now(),
      );
      await this.updateStatus(key, (st) => {
        const completed = existing.spec.sweep.completedTime;
        st.lastSweepTime = completed;
        st.nextSweepTime = nowIso(this.nextSlot(s, { lastSweepTime: completed }, this.now()));
        st.sweepStartedTime = undefined;
        st.sweepCrashes = undefined;
        st.currentRecommendation = existing.metadata.name;
        st.lastProposalTime = completed;
        this.pushHistory(st, {
          time: completed,
          outcome: 'Proposed',
          recommendation: existing.metadata.name,
          gainPercent: existing.spec.predicted.gainPercent,
        });
        st.conditions = setCondition(st.conditions, {
          type: 'RecommendationAvailable',
          status: 'True',
          reason: 'RecommendationCreated',
          message: `TuningRecommendation ${existing.metadata.name} proposes ${summarize(existing.spec.proposal)}.`,
          observedGeneration: generation,
        });
        st.conditions = setCondition(st.conditions, {
          type: 'Sweeping',
          status: 'False',
          reason: 'SweepCompleted',
          message: 'The last sweep completed.',
          observedGeneration: generation,
        });
        this.summarizeConditions(st, generation);
      });
      return this.requeueForNext(key);
    }

    // A sweep this slot already started, that no replica is running now, died with the operator (an OOM kill,
    // a node lost). Count it: a trace that kills the operator must not make it crash for ever.
    if (
      fresh.status?.sweepStartedTime &&
      getCondition(fresh.status.conditions, 'Sweeping')?.status === 'True'
    ) {
      const crashes = (fresh.status.sweepCrashes ?? 0) + 1;
      if (crashes >= this.limits.maxSweepCrashes) {
        await this.giveUpCrashedSlot(
          key,
          dt,
          s,
          crashes,
          'the operator stopped while running it (killed, out of memory, or leadership moved)',
        );
        return this.requeueForNext(key);
      }
      await this.updateStatus(key, (st) => {
        st.sweepCrashes = crashes;
      });
    }

    await this.startSweep(
      key,
      dt,
      s,
      slot,
      target.adapter,
      baseline.settings,
      baseline.warnings,
      targetObj,
      log,
    );
    return {};
  }

  /** The current recommendation, if its rollout is under way (no new proposal may interrupt it). */
  private async activeRollout(dt: DeploymentTuning): Promise<string | undefined> {
    const name = dt.status?.currentRecommendation;
    if (!name) return undefined;
    const rec = await findRecommendation(this.o.client, dt.metadata.namespace ?? 'default', name);
    const state = rec?.status?.state;
    return state && ['Applying', 'Applied', 'Verifying', 'RollingBack'].includes(state) ? name : undefined;
  }

  /** The slot after `now` under the schedule, at least the minimum interval after the last sweep. */
  private nextSlot(
    s: DeploymentTuningSpec,
    st: Pick<DeploymentTuningStatus, 'lastSweepTime'> | undefined,
    now: Date,
  ): Date {
    const last = st?.lastSweepTime ? Date.parse(st.lastSweepTime) : undefined;
    return nextSweep(s.schedule, now, last, this.limits.minScheduleIntervalMs);
  }

  /** Says once per spec generation that the schedule fires more often than the operator sweeps. */
  private async warnFrequentSchedule(dt: DeploymentTuning, s: DeploymentTuningSpec, generation: number) {
    if ((dt.status?.observedGeneration ?? -1) === generation) return;
    const every = shortestInterval(s.schedule, this.now());
    if (every >= this.limits.minScheduleIntervalMs) return;
    await this.o.recorder.emit(
      refOf(dt),
      'Warning',
      'ScheduleTooFrequent',
      'Reconcile',
      `spec.schedule fires every ${formatInterval(every)}; this operator sweeps one object at most every ${formatInterval(this.limits.minScheduleIntervalMs)}, so it follows the schedule at that interval.`,
    );
  }

  /** A slot whose sweep crashed too often is recorded as Failed; the next one follows the schedule. */
  private async giveUpCrashedSlot(
    key: string,
    dt: DeploymentTuning,
    s: DeploymentTuningSpec,
    crashes: number,
    last: string,
  ): Promise<void> {
    const generation = dt.metadata.generation ?? 0;
    const now = this.now();
    const message = oneLine(
      `The sweep crashed ${crashes} times in a row (last: ${last}); this slot is given up. Check the trace and the search space; the next sweep follows the schedule.`,
    );
    this.o.metrics.sweeps.inc({ outcome: 'Failed' });
    await this.updateStatus(key, (st) => {
      st.lastSweepTime = nowIso(now);
      st.nextSweepTime = nowIso(this.nextSlot(s, { lastSweepTime: nowIso(now) }, now));
      st.sweepStartedTime = undefined;
      st.sweepCrashes = undefined;
      this.pushHistory(st, { time: nowIso(now), outcome: 'Failed', message });
      st.conditions = setCondition(st.conditions, {
        type: 'Sweeping',
        status: 'False',
        reason: 'SweepCrashed',
        message,
        observedGeneration: generation,
      });
      st.conditions = setCondition(st.conditions, {
        type: 'Degraded',
        status: 'True',
        reason: 'SweepCrashed',
        message,
        observedGeneration: generation,
      });
      this.summarizeConditions(st, generation);
    });
    await this.o.recorder.emit(refOf(dt), 'Warning', 'SweepCrashed', 'Sweep', message);
  }

  private async requeueForNext(key: string): Promise<ReconcileResult> {
    const dt = await this.fetch(key);
    const next = dt?.status?.nextSweepTime;
    if (!next) return {};
    return { requeueAfterMs: Math.min(Math.max(0, Date.parse(next) - this.now().getTime()), MAX_REQUEUE_MS) };
  }

  private async startSweep(
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
    const generation = dt.metadata.generation ?? 0;
    const startedTime = nowIso(this.now());
    const restarted = getCondition(dt.status?.conditions, 'Sweeping')?.status === 'True';
    const ticket = { namespace: dt.metadata.namespace ?? 'default', key, dueMs: Date.parse(slot) };
    const ahead = this.scheduler.ahead(ticket);
    await this.updateStatus(key, (st) => {
      st.nextSweepTime ??= slot;
      st.sweepStartedTime = startedTime;
      st.conditions = setCondition(st.conditions, {
        type: 'Sweeping',
        status: 'True',
        reason: ahead > 0 ? 'SweepQueued' : restarted ? 'SweepRestarted' : 'SweepStarted',
        message:
          ahead > 0
            ? `Sweep for the ${slot} slot is queued behind ${ahead} other sweep(s) (at most ${this.o.maxConcurrentSweeps} at once, shared fairly between namespaces).`
            : `Sweep for the ${slot} slot started at ${startedTime}.`,
        observedGeneration: generation,
      });
      this.summarizeConditions(st, generation);
    });
    const abort = new AbortController();
    this.running.set(key, { slot, abort });
    this.o.metrics.activeSweeps.set(this.running.size);
    const regarding = refOf(dt);
    const related = refOf(targetObj);
    void this.o.recorder.emit(
      regarding,
      'Normal',
      restarted ? 'SweepRestarted' : 'SweepStarted',
      'Sweep',
      `Sweeping ${s.searchSpace.optimizer} search space for ${s.targetRef.name} (baseline: ${summarize(baseline)}).`,
      related,
    );
    for (const w of warnings)
      void this.o.recorder.emit(regarding, 'Warning', 'BaselineAmbiguous', 'ReadTarget', w, related);
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
      const timeoutMs = Math.min(parseDuration(s.sweepTimeout), this.limits.maxSweepDurationMs);
      let timer: NodeJS.Timeout | undefined;
      const signal = AbortSignal.any([abort.signal, deadline.signal]);
      try {
        await this.scheduler.acquire(ticket, abort.signal);
        acquired = true;
        timer = setTimeout(() => deadline.abort(), timeoutMs);
        const namespace = dt.metadata.namespace ?? 'default';
        const inv = await listGpuInventory(this.o.client, this.now());
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
          void this.o.recorder.emit(
            regarding,
            'Warning',
            'UnknownGPUProducts',
            'DiscoverGPUs',
            `GPU products not in the simulator catalog were ignored: ${inv.unknownProducts.map((u) => u.product).join(', ')}.`,
          );
        }
        const source = describeSource(s.workload, namespace);
        const window = await this.windowInput(namespace, s, baseline.model, signal);
        log.info({ source }, 'Traffic window ready; simulating');
        finished.result = await this.runJob(
          {
            ...window,
            calibration: {
              enabled: s.calibration.enabled,
              apply: s.calibration.applyCorrection,
              maxCorrection: s.calibration.maxCorrection,
            },
            limits: {
              maxBytes: this.o.maxTraceBytes ?? DEFAULT_MAX_TRACE_BYTES,
              maxRows: this.o.maxTraceRows,
            },
            source,
            traceBlockSize: s.workload.traceBlockSize,
            lookbackMs: s.workload.lookback ? parseDuration(s.workload.lookback) : undefined,
            baseline: { ...baseline, ...(s.model && { model: s.model }) },
            spec: { objective: s.objective, slos: s.slos, searchSpace: s.searchSpace },
            budget,
            threads: this.o.sweepThreads ?? 1,
            memoryMb: this.o.sweepMemoryMb,
            rollout: {
              maxGpusChanging: s.updatePolicy.maxGPUsChanging,
              calibrationErrorPercent: calibrationError(dt.status),
            },
            exclude: dt.status?.failedProposals ?? [],
          },
          signal,
        );
        this.o.metrics.candidates.inc(finished.result.candidates);
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
          ? `The sweep did not finish within ${formatInterval(timeoutMs)} and was stopped (spec.sweepTimeout ${s.sweepTimeout}, at most ${formatInterval(this.limits.maxSweepDurationMs)} in this operator); narrow the search space or the trace window.`
          : oneLine((e as Error).message);
        finished.error = { reason, message };
        log.warn({ reason, err: (e as Error).message }, 'Sweep failed');
      } finally {
        if (timer) clearTimeout(timer);
        if (acquired) this.scheduler.release();
        this.o.metrics.sweepDuration.observe((performance.now() - t0) / 1000);
        this.running.delete(key);
        this.o.metrics.activeSweeps.set(this.running.size);
      }
      finished.completedTime = nowIso(this.now());
      this.finished.set(key, finished);
      this.enqueue(key);
    })();
  }

  /** The job's input for the spec's traffic source: the trace's bytes, a request-trace directory or a profile. */
  private async windowInput(
    namespace: string,
    s: DeploymentTuningSpec,
    servedModel: string | undefined,
    signal: AbortSignal,
  ): Promise<Pick<SweepJobInput, 'traceText' | 'format' | 'requestTrace' | 'profile'>> {
    const kind = sourceKind(s.workload.source);
    if (kind === 'prometheus')
      return {
        profile: await prometheusProfile(this.o.client, namespace, s, this.access, servedModel, { signal }),
      };
    if (kind === 'requestTrace') {
      const path = await requestTracePath(s.workload.source.requestTrace!.path, this.o.traceRoots ?? []);
      const lookbackMs = s.workload.lookback ? parseDuration(s.workload.lookback) : 3_600_000;
      return { requestTrace: { path, lookbackMs, endMs: this.now().getTime() } };
    }
    const traceText = await fetchTrace(this.o.client, namespace, s.workload, {
      fileRoots: this.o.traceRoots,
      urlPolicy: this.o.urlPolicy,
      maxBytes: this.o.maxTraceBytes,
      signal,
    });
    return {
      traceText,
      ...(TRACE_FORMATS[s.workload.format] && { format: TRACE_FORMATS[s.workload.format] }),
    };
  }

  /**
   * Starts a drift check when one is due (drift enabled, a baseline from a finished sweep, none running);
   * returns how soon to look again (ms).
   */
  private maybeCheckDrift(
    key: string,
    dt: DeploymentTuning,
    s: DeploymentTuningSpec,
    servedModel: string | undefined,
    now: Date,
  ): number {
    if (!s.drift.enabled || !dt.status?.drift?.baseline || this.checking.has(key) || this.checked.has(key))
      return MAX_REQUEUE_MS;
    const due = nextDriftCheck(dt.status.drift, s.drift) - now.getTime();
    if (due > 0) return due;
    this.startDriftCheck(key, dt, s, servedModel);
    return MAX_REQUEUE_MS;
  }

  private startDriftCheck(
    key: string,
    dt: DeploymentTuning,
    s: DeploymentTuningSpec,
    servedModel: string | undefined,
  ) {
    const abort = new AbortController();
    this.checking.set(key, abort);
    const namespace = dt.metadata.namespace ?? 'default';
    void (async () => {
      let result: DriftCheckResult;
      try {
        const kind = sourceKind(s.workload.source);
        let profile: WorkloadProfile;
        if (kind === 'prometheus') {
          profile = await prometheusProfile(this.o.client, namespace, s, this.access, servedModel, {
            signal: abort.signal,
          });
        } else {
          const input = await this.windowInput(namespace, s, servedModel, abort.signal);
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
                maxBytes: this.o.maxTraceBytes ?? DEFAULT_MAX_TRACE_BYTES,
                maxRows: this.o.maxTraceRows,
              },
              memoryMb: this.o.sweepMemoryMb,
            },
            abort.signal,
          );
        }
        result = { profile };
      } catch (e) {
        if (abort.signal.aborted) {
          this.checking.delete(key);
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
      this.checking.delete(key);
      this.checked.set(key, result);
      this.enqueue(key);
    })();
  }

  /** Writes a drift check's outcome; on a trigger, schedules a sweep now (reason WorkloadDrift). */
  private async applyDriftCheck(
    key: string,
    dt: DeploymentTuning,
    s: DeploymentTuningSpec,
    check: DriftCheckResult,
    log: Logger,
  ): Promise<void> {
    const generation = dt.metadata.generation ?? 0;
    const now = this.now();
    const checkedTime = nowIso(now);
    const { namespace, name } = splitKey(key);
    if ('error' in check) {
      const message = `Drift check: ${check.error.message.replace(/\.?$/, '.')} The previous recommendation is kept.`;
      await this.updateStatus(key, (st) => {
        if (st.drift)
          st.drift = {
            ...st.drift,
            checkedTime,
            phase: 'Unknown',
            message: oneLine(check.error.message, 1024),
          };
      });
      await this.degrade(key, check.error.reason, oneLine(message, 1024), true);
      return;
    }
    const baseline = dt.status?.drift?.baseline;
    if (!baseline) return;
    const d = decideDrift(dt.status?.drift, baseline, check.profile, s.drift, now);
    recordDrift(this.o.metrics, namespace, name, d);
    let sweepAt: string | undefined;
    await this.updateStatus(key, (st) => {
      st.drift = d.status;
      const degraded = getCondition(st.conditions, 'Degraded');
      if (degraded?.status === 'True' && TELEMETRY_REASONS.has(degraded.reason))
        st.conditions = setCondition(st.conditions, {
          type: 'Degraded',
          status: 'False',
          reason: 'AsExpected',
          message: 'Nothing is wrong.',
          observedGeneration: generation,
        });
      if (d.trigger) {
        const earliest = st.lastSweepTime
          ? Date.parse(st.lastSweepTime) + this.limits.minScheduleIntervalMs
          : 0;
        sweepAt = nowIso(new Date(Math.max(now.getTime(), earliest)));
        st.nextSweepTime = sweepAt;
        st.sweepReason = 'WorkloadDrift';
        // Settings that failed verification may suit the traffic now.
        st.failedProposals = undefined;
      }
      this.summarizeConditions(st, generation);
    });
    if (d.trigger) {
      this.o.metrics.driftTriggers.inc({ namespace, name });
      log.info(
        { level: d.verdict.level, moved: d.verdict.moved },
        'Workload drifted; sweeping out of schedule',
      );
      await this.o.recorder.emit(
        refOf(dt),
        'Normal',
        'WorkloadDrift',
        'DetectDrift',
        oneLine(`${d.message} Sweeping out of schedule at ${sweepAt}.`, 1024),
      );
    }
  }

  /** Writes a finished sweep's outcome: recommendation (if warranted), status, events. */
  private async complete(
    key: string,
    dt: DeploymentTuning,
    s: DeploymentTuningSpec,
    f: FinishedSweep,
    log: Logger,
  ): Promise<void> {
    const generation = dt.metadata.generation ?? 0;
    const regarding = refOf(dt);
    if (f.error) {
      const crashed = CRASH_REASONS.has(f.error.reason);
      const crashes = crashed ? (dt.status?.sweepCrashes ?? 0) + 1 : 0;
      if (crashed && crashes >= this.limits.maxSweepCrashes) {
        await this.giveUpCrashedSlot(key, dt, s, crashes, f.error.message);
        return;
      }
      this.o.metrics.sweeps.inc({ outcome: 'Failed' });
      const retryAt = new Date(
        Math.min(
          this.nextSlot(s, { lastSweepTime: f.completedTime }, this.now()).getTime(),
          this.now().getTime() + this.o.failureRetryMs,
        ),
      );
      await this.updateStatus(key, (st) => {
        st.lastSweepTime = f.completedTime;
        st.nextSweepTime = nowIso(retryAt);
        st.sweepStartedTime = undefined;
        st.sweepCrashes = crashed ? crashes : undefined;
        if (f.inventory) st.gpuInventory = f.inventory;
        this.pushHistory(st, {
          time: f.completedTime,
          reason: f.reason,
          outcome: 'Failed',
          message: oneLine(f.error!.message),
        });
        // A drift-triggered sweep that failed is retried as one.
        if (f.reason !== 'WorkloadDrift') st.sweepReason = undefined;
        st.conditions = setCondition(st.conditions, {
          type: 'Sweeping',
          status: 'False',
          reason: 'SweepFailed',
          message: f.error!.message,
          observedGeneration: generation,
        });
        st.conditions = setCondition(st.conditions, {
          type: 'Degraded',
          status: 'True',
          reason: f.error!.reason,
          message: `${f.error!.message} The previous recommendation is kept; retrying at ${nowIso(retryAt)}.`,
          observedGeneration: generation,
        });
        this.summarizeConditions(st, generation);
      });
      await this.o.recorder.emit(regarding, 'Warning', f.error.reason, 'Sweep', f.error.message);
      return;
    }
    const r = f.result!;
    const { namespace: ns, name: dtName } = splitKey(key);
    recordCalibration(this.o.metrics, ns, dtName, r.calibration);
    if (r.calibration?.correction?.bounded)
      void this.o.recorder.emit(
        regarding,
        'Warning',
        'CalibrationBounded',
        'Calibrate',
        `The simulator's correction for this deployment hit its bound (prefill x${r.calibration.correction.factors.prefill}, decode x${r.calibration.correction.factors.decode}; mean error ${(r.calibration.correction.meanAbsError * 100).toFixed(0)} % after, ${(r.calibration.meanAbsError * 100).toFixed(0)} % before): the model is off by more than a scale explains, so the correction is not applied.`,
      );
    const decision = decideProposal({
      best: r.best,
      baseline: f.baseline,
      baselineMeetsSlos: r.baseline.meetsSlos,
      gainPercent: r.gainPercent,
      gainPercentLow: r.gainPercentLow,
      objective: s.objective,
      guardrails: s.guardrails,
      lastProposalTime: dt.status?.lastProposalTime,
      completedTime: f.completedTime,
      failedProposals: dt.status?.failedProposals,
      ...(r.excluded && { excluded: r.excluded }),
      rolloutInProgress: await this.activeRollout(dt),
    });
    void this.o.recorder.emit(
      regarding,
      r.summary.badLines > 0 ? 'Warning' : 'Normal',
      r.summary.badLines > 0 ? 'TraceLinesSkipped' : 'TraceLoaded',
      'LoadTrace',
      `Loaded ${r.summary.requests} requests from ${r.summary.source}` +
        (r.summary.badLines > 0
          ? `; skipped ${r.summary.badLines} bad lines (first: ${describeIssue(r.issues[0])}).`
          : '.'),
    );
    void this.o.recorder.emit(
      regarding,
      'Normal',
      'SweepCompleted',
      'Sweep',
      `Simulated ${r.candidates} candidates (${r.feasible} feasible) in ${(
        (Date.parse(f.completedTime) - Date.parse(f.startedTime)) / 1000
      ).toFixed(0)}s.`,
    );
    let created: string | undefined;
    if (decision.outcome === 'Proposed') {
      const body = buildRecommendation(dt, s, { ...f, result: r });
      await createRecommendation(this.o.client, body, log);
      created = body.metadata.name;
      // Counted once it exists: a failed create is retried, not counted as a proposal.
      this.o.metrics.sweeps.inc({ outcome: 'Proposed' });
      await this.o.recorder.emit(
        regarding,
        'Normal',
        'RecommendationCreated',
        'Recommend',
        `TuningRecommendation ${created}: ${summarize(r.best!.settings)} (${r.gainPercent}% ${s.objective}).`,
      );
      await supersedeAndPrune(this.o.client, this.o.recorder, dt, s.historyLimit, created, log, this.now());
    } else {
      this.o.metrics.sweeps.inc({ outcome: decision.outcome });
      await this.o.recorder.emit(regarding, 'Normal', decision.outcome, 'Recommend', decision.message);
    }
    await this.updateStatus(key, (st) => {
      st.lastSweepTime = f.completedTime;
      st.nextSweepTime = nowIso(this.nextSlot(s, { lastSweepTime: f.completedTime }, this.now()));
      st.sweepStartedTime = undefined;
      st.sweepCrashes = undefined;
      st.workload = r.summary;
      st.sweepReason = undefined;
      // The profile this sweep replayed is what later windows are compared with.
      st.drift = {
        ...(st.drift ?? {
          checkedTime: f.completedTime,
          level: 0,
          drifted: false,
          phase: 'Stable',
          armed: true,
          scores: {},
        }),
        baseline: baselineOf(r.profile, new Date(f.completedTime)),
      };
      const cal = calibrationStatus(r, f.completedTime);
      if (cal) st.calibration = cal;
      if (f.inventory) st.gpuInventory = f.inventory;
      st.lastSweep = {
        candidates: r.candidates,
        feasible: r.feasible,
        durationSeconds: (Date.parse(f.completedTime) - Date.parse(f.startedTime)) / 1000,
        simulatorVersion: r.simulatorVersion,
      };
      if (created) {
        st.currentRecommendation = created;
        st.lastProposalTime = f.completedTime;
      }
      this.pushHistory(st, {
        time: f.completedTime,
        reason: f.reason,
        outcome: decision.outcome,
        ...(created && { recommendation: created }),
        ...(r.gainPercent !== null && { gainPercent: r.gainPercent }),
        message: decision.message.slice(0, 1024),
      });
      st.conditions = setCondition(st.conditions, {
        type: 'Sweeping',
        status: 'False',
        reason: 'SweepCompleted',
        message: r.explanation.slice(0, 32768),
        observedGeneration: generation,
      });
      st.conditions = setCondition(st.conditions, {
        type: 'Degraded',
        status: 'False',
        reason: 'SweepSucceeded',
        message: 'The last sweep succeeded.',
        observedGeneration: generation,
      });
      if (created) {
        st.conditions = setCondition(st.conditions, {
          type: 'RecommendationAvailable',
          status: 'True',
          reason: 'RecommendationCreated',
          message: `TuningRecommendation ${created} proposes ${summarize(r.best!.settings)}.`,
          observedGeneration: generation,
        });
      } else if (!st.currentRecommendation) {
        st.conditions = setCondition(st.conditions, {
          type: 'RecommendationAvailable',
          status: 'False',
          reason: decision.outcome,
          message: decision.message,
          observedGeneration: generation,
        });
      }
      this.summarizeConditions(st, generation);
    });
  }

  private pushHistory(
    st: DeploymentTuningStatus,
    entry: NonNullable<DeploymentTuningStatus['history']>[number],
  ): void {
    st.history = [
      entry,
      ...(st.history ?? []).filter((h) => h.time !== entry.time || h.outcome !== entry.outcome),
    ].slice(0, 10);
  }

  /** Ready summarises: not degraded and schedulable. */
  private summarizeConditions(
    st: DeploymentTuningStatus,
    generation: number,
    override?: { reason: string; message: string },
    configOk = true,
  ): void {
    const degraded = getCondition(st.conditions, 'Degraded');
    st.observedGeneration = generation;
    if (configOk && degraded?.status === 'True' && CONFIG_REASONS.has(degraded.reason)) {
      st.conditions = setCondition(st.conditions, {
        type: 'Degraded',
        status: 'False',
        reason: 'AsExpected',
        message: 'Nothing is wrong.',
        observedGeneration: generation,
      });
    }
    for (const initial of INITIAL_CONDITIONS) {
      if (!getCondition(st.conditions, initial.type))
        st.conditions = setCondition(st.conditions, { ...initial, observedGeneration: generation });
    }
    const isDegraded = getCondition(st.conditions, 'Degraded')?.status === 'True';
    const d = getCondition(st.conditions, 'Degraded');
    st.conditions = setCondition(st.conditions, {
      type: 'Ready',
      status: isDegraded ? 'False' : 'True',
      reason: override?.reason ?? (isDegraded ? d!.reason : 'Scheduled'),
      message:
        override?.message ??
        (isDegraded ? d!.message : `Next sweep at ${st.nextSweepTime ?? 'once the target is found'}.`),
      observedGeneration: generation,
    });
    for (const c of st.conditions ?? []) c.observedGeneration = generation;
  }

  private async degrade(key: string, reason: string, message: string, warnEvent = false): Promise<void> {
    const dt = this.o.tunings.get(key);
    const generation = dt?.metadata.generation ?? 0;
    let changed = false;
    await this.updateStatus(key, (st) => {
      const prev = getCondition(st.conditions, 'Degraded');
      changed = prev?.status !== 'True' || prev.reason !== reason || prev.message !== message;
      st.conditions = setCondition(st.conditions, {
        type: 'Degraded',
        status: 'True',
        reason,
        message,
        observedGeneration: generation,
      });
      this.summarizeConditions(st, generation, undefined, false);
    });
    if (dt && changed && warnEvent) {
      await this.o.recorder.emit(refOf(dt), 'Warning', reason, 'Reconcile', message);
    }
  }

  private async fetch(key: string): Promise<DeploymentTuning | undefined> {
    const { namespace, name } = splitKey(key);
    try {
      return await this.o.client.get<DeploymentTuning>(pathOf(DEPLOYMENT_TUNINGS, namespace, name));
    } catch (e) {
      if (isNotFound(e)) return undefined;
      throw e;
    }
  }

  /**
   * Read-modify-write of the status subresource from a fresh read, retried on 409 Conflict. Skips the
   * write when nothing changed, so steady-state reconciles cost one GET.
   */
  private async updateStatus(
    key: string,
    mutate: (st: DeploymentTuningStatus, dt: DeploymentTuning) => void,
  ): Promise<void> {
    const { namespace, name } = splitKey(key);
    for (let attempt = 0; ; attempt++) {
      const dt = await this.fetch(key);
      if (!dt) return;
      const before = JSON.stringify(dt.status ?? {});
      const st: DeploymentTuningStatus = structuredClone(dt.status ?? {});
      mutate(st, dt);
      const cleaned = JSON.parse(JSON.stringify(st)) as DeploymentTuningStatus;
      if (JSON.stringify(cleaned) === before) return;
      dt.status = cleaned;
      try {
        await this.o.client.replace(pathOf(DEPLOYMENT_TUNINGS, namespace, name, 'status'), dt);
        return;
      } catch (e) {
        if (!isConflict(e) || attempt >= 4) throw e;
      }
    }
  }

  /** Keys of tunings that target an object (for target and recommendation events). */
  tuningsFor(kind: string, obj: KubeObject): string[] {
    return this.o.tunings
      .list()
      .filter(
        (t) =>
          t.metadata.namespace === obj.metadata.namespace &&
          t.spec.targetRef?.name === obj.metadata.name &&
          (t.spec.targetRef.kind ?? 'DynamoGraphDeployment') === kind,
      )
      .map((t) => keyOf(t));
  }
}

/**
 * A bad trace line, located but not quoted: the trace may come from anywhere the operator can read, and its
 * content must not leak into Events.
 */
function describeIssue(i: SweepJobResult['issues'][number] | undefined): string {
  if (!i) return 'unknown';
  return `line ${i.line}: ${i.field ? `field '${i.field}' is invalid or missing` : 'not a JSON object'}`;
}
