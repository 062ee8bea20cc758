import type { Logger } from 'pino';
import {
  API_VERSION,
  type DeploymentTuning,
  type DeploymentTuningSpec,
  DeploymentTuningSpecSchema,
  type DeploymentTuningStatus,
  type GpuInventory,
  parseDuration,
  type ServingSettings,
  type TuningRecommendation,
  type TuningRecommendationSpec,
} from '../api/index.ts';
import { getCondition, nowIso, setCondition } from './conditions.ts';
import { computeInventory, effectiveBudget, type NodeLike, type PodLike } from './gpu-inventory.ts';
import { isAlreadyExists, isConflict, isNotFound, type KubeClient } from './kube/client.ts';
import { type EventRecorder, type EventRef, refOf } from './kube/events.ts';
import type { Informer } from './kube/informer.ts';
import {
  DEPLOYMENT_TUNINGS,
  type KubeList,
  type KubeObject,
  keyOf,
  NODES,
  PODS,
  pathOf,
  splitKey,
  TUNING_RECOMMENDATIONS,
} from './kube/resources.ts';
import type { OperatorMetrics } from './metrics.ts';
import { nextRun, validateCron } from './schedule.ts';
import {
  runSweepJob,
  SweepJobError,
  type SweepJobInput,
  type SweepJobResult,
  summarize,
} from './sweep/job.ts';
import { describeSource, fetchTrace, TraceUnavailableError } from './sweep/source.ts';
import type { TargetAdapter } from './target/adapter.ts';

/**
 * The DeploymentTuning controller. Reconcile is level-triggered and idempotent: every pass re-reads the
 * object, its target and its recommendations and decides from status what should happen now. The schedule
 * lives in `status.nextSweepTime`; a due sweep runs in the background (a worker thread, under a global
 * concurrency limit, at most one per object) and its result is written by the next reconcile of that key.
 * Recommendations are named after the schedule slot, so a restarted operator finds one it already created
 * instead of duplicating it, and re-runs a sweep it had not finished instead of losing it.
 */

export const LABEL_TUNING = 'servetune.dev/deployment-tuning';
export const LABEL_SLOT = 'servetune.dev/sweep-slot';
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
  /** Worker threads of one sweep's evaluation pool. */
  sweepThreads?: number;
  runJob?: JobRunner;
  now?: () => Date;
}

export interface ReconcileResult {
  requeueAfterMs?: number;
}

interface RunningSweep {
  slot: string;
  abort: AbortController;
}

interface FinishedSweep {
  slot: string;
  startedTime: string;
  completedTime: string;
  generation: number;
  baseline: ServingSettings;
  inventory: GpuInventory | undefined;
  result?: SweepJobResult;
  error?: { reason: string; message: string };
}

const MAX_REQUEUE_MS = 6 * 3_600_000;

/** Degraded reasons about the object or its target (cleared once a reconcile finds them fixed). */
const CONFIG_REASONS = new Set(['InvalidSpec', 'InvalidSchedule', 'TargetNotFound', 'TargetUnreadable']);

/** A counting semaphore whose waiters can give up. */
class Semaphore {
  private free: number;
  private readonly waiters: (() => void)[] = [];
  constructor(n: number) {
    this.free = n;
  }
  /** Holders that would have to finish before a new acquire succeeds (0 = a slot is free). */
  queueAhead(): number {
    return this.free > 0 ? 0 : this.waiters.length + 1;
  }
  async acquire(signal: AbortSignal): Promise<void> {
    if (this.free > 0) {
      this.free--;
      return;
    }
    await new Promise<void>((resolve, reject) => {
      const grant = () => {
        signal.removeEventListener('abort', cancel);
        resolve();
      };
      const cancel = () => {
        const i = this.waiters.indexOf(grant);
        if (i >= 0) this.waiters.splice(i, 1);
        reject(new Error('cancelled'));
      };
      this.waiters.push(grant);
      signal.addEventListener('abort', cancel, { once: true });
    });
  }
  release(): void {
    const next = this.waiters.shift();
    if (next) next();
    else this.free++;
  }
}

export class TuningController {
  private readonly o: ControllerOptions;
  private readonly running = new Map<string, RunningSweep>();
  private readonly finished = new Map<string, FinishedSweep>();
  private readonly semaphore: Semaphore;
  private readonly runJob: JobRunner;
  private readonly now: () => Date;
  /** Set by the manager: schedules a reconcile of a key. */
  enqueue: (key: string) => void = () => {};

  constructor(opts: ControllerOptions) {
    this.o = opts;
    this.semaphore = new Semaphore(Math.max(1, opts.maxConcurrentSweeps));
    this.runJob = opts.runJob ?? runSweepJob;
    this.now = opts.now ?? (() => new Date());
  }

  activeSweeps(): number {
    return this.running.size;
  }

  /** Cancels running sweeps (on shutdown or lost leadership). */
  cancelAll(): void {
    for (const r of this.running.values()) r.abort.abort();
  }

  async reconcile(key: string): Promise<ReconcileResult> {
    const cached = this.o.tunings.get(key);
    if (!cached || cached.metadata.deletionTimestamp) {
      this.running.get(key)?.abort.abort();
      this.finished.delete(key);
      return {};
    }
    const dt = structuredClone(cached);
    const generation = dt.metadata.generation ?? 0;
    const log = this.o.logger.child({ deploymentTuning: key });
    const spec = DeploymentTuningSpecSchema.safeParse(dt.spec);
    if (!spec.success) {
      await this.degrade(
        key,
        'InvalidSpec',
        `spec.${spec.error.issues[0].path.join('.')}: ${spec.error.issues[0].message}`,
      );
      return {};
    }
    const s = spec.data;
    const cronError = validateCron(s.schedule);
    if (cronError) {
      await this.degrade(key, 'InvalidSchedule', `spec.schedule '${s.schedule}': ${cronError}`);
      return {};
    }

    const done = this.finished.get(key);
    if (done) {
      await this.complete(key, dt, s, done, log);
      this.finished.delete(key);
      return this.requeueForNext(key);
    }
    if (this.running.has(key)) return {};

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
        'TargetUnreadable',
        `${s.targetRef.kind} ${s.targetRef.name}: ${baseline.error}`,
        true,
      );
      return { requeueAfterMs: 10 * 60_000 };
    }

    const now = this.now();
    let slot = dt.status?.nextSweepTime ?? dt.metadata.creationTimestamp ?? nowIso(now);
    // A changed spec may bring a sooner schedule: the slot planned under the old one must not hold it back.
    if (dt.status?.nextSweepTime && (dt.status.observedGeneration ?? 0) < generation) {
      const sooner = nowIso(nextRun(s.schedule, now));
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
      return { requeueAfterMs: Math.min(dueIn, MAX_REQUEUE_MS) };
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
    const existing = await this.getRecommendation(dt, slot);
    if (existing) {
      log.info(
        { recommendation: existing.metadata.name },
        'Found the recommendation of this slot; finishing',
      );
      await this.updateStatus(key, (st) => {
        const completed = existing.spec.sweep.completedTime;
        st.lastSweepTime = completed;
        st.nextSweepTime = nowIso(nextRun(s.schedule, this.now()));
        st.sweepStartedTime = undefined;
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
    const ahead = this.semaphore.queueAhead();
    await this.updateStatus(key, (st) => {
      st.nextSweepTime ??= slot;
      st.sweepStartedTime = startedTime;
      st.conditions = setCondition(st.conditions, {
        type: 'Sweeping',
        status: 'True',
        reason: ahead > 0 ? 'SweepQueued' : restarted ? 'SweepRestarted' : 'SweepStarted',
        message:
          ahead > 0
            ? `Sweep for the ${slot} slot is waiting for ${ahead} other sweep(s) (global limit ${this.o.maxConcurrentSweeps}).`
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
    if (s.updatePolicy.mode !== 'Off') {
      void this.o.recorder.emit(
        regarding,
        'Warning',
        'UpdateModeNotImplemented',
        'Sweep',
        `updatePolicy.mode ${s.updatePolicy.mode} is accepted but not acted on yet: recommendations are only proposed.`,
      );
    }
    log.info({ slot }, 'Sweep started');
    const t0 = performance.now();
    void (async () => {
      const finished: FinishedSweep = {
        slot,
        startedTime,
        completedTime: startedTime,
        generation,
        baseline,
        inventory: undefined,
      };
      let acquired = false;
      try {
        await this.semaphore.acquire(abort.signal);
        acquired = true;
        const namespace = dt.metadata.namespace ?? 'default';
        const inv = await this.inventory();
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
        const traceText = await fetchTrace(this.o.client, namespace, s.workload, {
          fileRoots: this.o.traceRoots,
        });
        finished.result = await this.runJob(
          {
            traceText,
            source,
            traceBlockSize: s.workload.traceBlockSize,
            lookbackMs: s.workload.lookback ? parseDuration(s.workload.lookback) : undefined,
            baseline: { ...baseline, ...(s.model && { model: s.model }) },
            spec: { objective: s.objective, slos: s.slos, searchSpace: s.searchSpace },
            budget,
            threads: this.o.sweepThreads ?? 1,
          },
          abort.signal,
        );
        this.o.metrics.candidates.inc(finished.result.candidates);
      } catch (e) {
        if (abort.signal.aborted) {
          log.info('Sweep cancelled');
          return;
        }
        const reason =
          e instanceof TraceUnavailableError
            ? 'TraceUnavailable'
            : e instanceof SweepJobError
              ? e.kind
              : 'SweepFailed';
        finished.error = { reason, message: (e as Error).message };
        log.warn({ reason, err: (e as Error).message }, 'Sweep failed');
      } finally {
        if (acquired) this.semaphore.release();
        this.o.metrics.sweepDuration.observe((performance.now() - t0) / 1000);
        this.running.delete(key);
        this.o.metrics.activeSweeps.set(this.running.size);
      }
      finished.completedTime = nowIso(this.now());
      this.finished.set(key, finished);
      this.enqueue(key);
    })();
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
      this.o.metrics.sweeps.inc({ outcome: 'Failed' });
      const retryAt = new Date(
        Math.min(nextRun(s.schedule, this.now()).getTime(), this.now().getTime() + this.o.failureRetryMs),
      );
      await this.updateStatus(key, (st) => {
        st.lastSweepTime = f.completedTime;
        st.nextSweepTime = nowIso(retryAt);
        st.sweepStartedTime = undefined;
        if (f.inventory) st.gpuInventory = f.inventory;
        this.pushHistory(st, {
          time: f.completedTime,
          outcome: 'Failed',
          message: f.error!.message.slice(0, 1024),
        });
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
    const decision = this.decide(dt, s, f);
    this.o.metrics.sweeps.inc({ outcome: decision.outcome });
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
      created = await this.createRecommendation(dt, s, f, r, log);
      await this.o.recorder.emit(
        regarding,
        'Normal',
        'RecommendationCreated',
        'Recommend',
        `TuningRecommendation ${created}: ${summarize(r.best!.settings)} (${r.gainPercent}% ${s.objective}).`,
      );
      await this.supersedeAndPrune(dt, s, created, log);
    } else {
      await this.o.recorder.emit(regarding, 'Normal', decision.outcome, 'Recommend', decision.message);
    }
    await this.updateStatus(key, (st) => {
      st.lastSweepTime = f.completedTime;
      st.nextSweepTime = nowIso(nextRun(s.schedule, this.now()));
      st.sweepStartedTime = undefined;
      st.workload = r.summary;
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

  private decide(
    dt: DeploymentTuning,
    s: DeploymentTuningSpec,
    f: FinishedSweep,
  ): { outcome: 'Proposed' | 'NoImprovement' | 'TooSoon' | 'NoFeasibleCandidate'; message: string } {
    const r = f.result!;
    if (!r.best)
      return { outcome: 'NoFeasibleCandidate', message: 'No candidate met the SLOs within the GPU budget.' };
    if (sameSettings(r.best.settings, f.baseline)) {
      return { outcome: 'NoImprovement', message: 'The current settings are already the best candidate.' };
    }
    const gain = r.gainPercent ?? 0;
    const fixesSlos = !r.baseline.meetsSlos;
    if (!fixesSlos && gain < s.guardrails.minImprovementPercent) {
      return {
        outcome: 'NoImprovement',
        message: `Best candidate improves ${s.objective} by ${gain}%, below the ${s.guardrails.minImprovementPercent}% guardrail.`,
      };
    }
    const last = dt.status?.lastProposalTime;
    const interval = parseDuration(s.guardrails.minProposalInterval);
    if (last && Date.parse(f.completedTime) - Date.parse(last) < interval) {
      return {
        outcome: 'TooSoon',
        message: `A proposal was made at ${last}; the guardrail allows one per ${s.guardrails.minProposalInterval}.`,
      };
    }
    return {
      outcome: 'Proposed',
      message: fixesSlos
        ? `The baseline misses the SLOs; the proposal meets them (${gain}% ${s.objective}).`
        : `Predicted ${gain}% better ${s.objective}.`,
    };
  }

  private recommendationName(dt: DeploymentTuning, slot: string): string {
    const epoch = Math.floor(Date.parse(slot) / 1000);
    return `${dt.metadata.name.slice(0, 240)}-${epoch}`;
  }

  private async getRecommendation(
    dt: DeploymentTuning,
    slot: string,
  ): Promise<TuningRecommendation | undefined> {
    try {
      return await this.o.client.get<TuningRecommendation>(
        pathOf(TUNING_RECOMMENDATIONS, dt.metadata.namespace, this.recommendationName(dt, slot)),
      );
    } catch (e) {
      if (isNotFound(e)) return undefined;
      throw e;
    }
  }

  private async createRecommendation(
    dt: DeploymentTuning,
    s: DeploymentTuningSpec,
    f: FinishedSweep,
    r: SweepJobResult,
    log: Logger,
  ): Promise<string> {
    const name = this.recommendationName(dt, f.slot);
    const namespace = dt.metadata.namespace ?? 'default';
    const best = r.best!;
    const spec: TuningRecommendationSpec = {
      deploymentTuning: dt.metadata.name,
      targetRef: s.targetRef,
      objective: s.objective,
      baseline: f.baseline,
      proposal: best.settings,
      predicted: { baseline: r.baseline, proposal: best.metrics, gainPercent: r.gainPercent ?? 0 },
      frontier: r.frontier.slice(0, 32).map((c) => ({
        summary: summarize(c.settings).slice(0, 256),
        gpus: c.settings.gpus,
        objectiveValue: c.metrics.objectiveValue,
        ttftP90Ms: c.metrics.ttftMs.p90,
        itlP90Ms: c.metrics.itlMs.p90,
        outputTokensPerSecondPerGpu: c.metrics.outputTokensPerSecondPerGpu,
        meetsSlos: c.metrics.meetsSlos,
      })),
      explanation: r.explanation.slice(0, 4096),
      trace: {
        source: r.summary.source,
        hash: r.summary.hash,
        windowStartSeconds: r.summary.windowStartSeconds,
        windowEndSeconds: r.summary.windowEndSeconds,
        requests: r.summary.requests,
      },
      sweep: {
        scheduledTime: f.slot,
        startedTime: f.startedTime,
        completedTime: f.completedTime,
        candidates: r.candidates,
        feasible: r.feasible,
        optimizer: r.optimizer,
        simulatorVersion: r.simulatorVersion,
      },
    };
    const body: TuningRecommendation = {
      apiVersion: API_VERSION,
      kind: 'TuningRecommendation',
      metadata: {
        name,
        namespace,
        labels: {
          [LABEL_TUNING]: dt.metadata.name,
          [LABEL_SLOT]: String(Math.floor(Date.parse(f.slot) / 1000)),
        },
        ownerReferences: [
          {
            apiVersion: API_VERSION,
            kind: 'DeploymentTuning',
            name: dt.metadata.name,
            uid: dt.metadata.uid!,
            controller: true,
            blockOwnerDeletion: true,
          },
        ],
      },
      spec,
    };
    let obj: TuningRecommendation;
    try {
      obj = await this.o.client.create<TuningRecommendation>(pathOf(TUNING_RECOMMENDATIONS, namespace), body);
      log.info({ recommendation: name }, 'Created TuningRecommendation');
    } catch (e) {
      if (!isAlreadyExists(e)) throw e;
      obj = await this.o.client.get<TuningRecommendation>(pathOf(TUNING_RECOMMENDATIONS, namespace, name));
    }
    if (!obj.status?.state) {
      obj.status = { state: 'Proposed', stateTransitionTime: f.completedTime, message: 'Awaiting review.' };
      await this.o.client.replace(pathOf(TUNING_RECOMMENDATIONS, namespace, name, 'status'), obj);
    }
    return name;
  }

  private async supersedeAndPrune(
    dt: DeploymentTuning,
    s: DeploymentTuningSpec,
    current: string,
    log: Logger,
  ): Promise<void> {
    const namespace = dt.metadata.namespace ?? 'default';
    const list = await this.o.client.get<KubeList<TuningRecommendation>>(
      pathOf(TUNING_RECOMMENDATIONS, namespace),
      {
        labelSelector: `${LABEL_TUNING}=${dt.metadata.name}`,
      },
    );
    const mine = list.items.filter((t) => t.metadata.ownerReferences?.some((o) => o.uid === dt.metadata.uid));
    for (const t of mine) {
      if (t.metadata.name === current || t.status?.state !== 'Proposed') continue;
      t.status = {
        ...t.status,
        state: 'Superseded',
        stateTransitionTime: nowIso(this.now()),
        supersededBy: current,
        message: `Superseded by ${current}.`,
      };
      try {
        await this.o.client.replace(pathOf(TUNING_RECOMMENDATIONS, namespace, t.metadata.name, 'status'), t);
        void this.o.recorder.emit(refOf(t), 'Normal', 'Superseded', 'Supersede', `Superseded by ${current}.`);
      } catch (e) {
        if (!isConflict(e) && !isNotFound(e)) throw e;
      }
    }
    // Oldest first; keep the newest historyLimit.
    const ordered = mine.sort(
      (a, b) =>
        Date.parse(a.spec.sweep.completedTime) - Date.parse(b.spec.sweep.completedTime) ||
        a.metadata.name.localeCompare(b.metadata.name),
    );
    const excess = ordered.length - s.historyLimit;
    for (const t of ordered.slice(0, Math.max(0, excess))) {
      if (t.metadata.name === current) continue;
      try {
        await this.o.client.delete(pathOf(TUNING_RECOMMENDATIONS, namespace, t.metadata.name));
        log.info({ recommendation: t.metadata.name }, 'Pruned TuningRecommendation beyond historyLimit');
        void this.o.recorder.emit(
          refOf(dt),
          'Normal',
          'RecommendationPruned',
          'Prune',
          `Deleted ${t.metadata.name} (historyLimit ${s.historyLimit}).`,
        );
      } catch (e) {
        if (!isNotFound(e)) throw e;
      }
    }
  }

  private async inventory(): Promise<Omit<GpuInventory, 'budget'>> {
    const nodes = await this.o.client.get<KubeList<NodeLike>>(pathOf(NODES), {
      labelSelector: 'nvidia.com/gpu.present=true',
    });
    const all = await this.o.client.get<KubeList<NodeLike>>(pathOf(NODES));
    // GFD labels nvidia.com/gpu.present; hand-made nodes may only carry the product label.
    const byName = new Map<string, NodeLike>();
    for (const n of [...nodes.items, ...all.items]) {
      const l = n.metadata.labels ?? {};
      if (
        l['nvidia.com/gpu.product'] ||
        l['nvidia.com/gpu.present'] ||
        n.status?.allocatable?.['nvidia.com/gpu']
      ) {
        byName.set(n.metadata.name, n);
      }
    }
    const pods = await this.o.client.get<KubeList<PodLike>>(pathOf(PODS), {
      fieldSelector: 'status.phase!=Succeeded,status.phase!=Failed',
    });
    return computeInventory([...byName.values()], pods.items, this.now());
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
    if (!getCondition(st.conditions, 'Sweeping')) {
      st.conditions = setCondition(st.conditions, {
        type: 'Sweeping',
        status: 'False',
        reason: 'Idle',
        message: 'No sweep has run yet.',
        observedGeneration: generation,
      });
    }
    if (!getCondition(st.conditions, 'RecommendationAvailable')) {
      st.conditions = setCondition(st.conditions, {
        type: 'RecommendationAvailable',
        status: 'Unknown',
        reason: 'NoSweepYet',
        message: 'No sweep has completed yet.',
        observedGeneration: generation,
      });
    }
    if (!getCondition(st.conditions, 'Degraded')) {
      st.conditions = setCondition(st.conditions, {
        type: 'Degraded',
        status: 'False',
        reason: 'AsExpected',
        message: 'Nothing is wrong.',
        observedGeneration: generation,
      });
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

function sameSettings(a: ServingSettings, b: ServingSettings): boolean {
  const norm = (s: ServingSettings) =>
    JSON.stringify({
      gpuType: s.gpuType,
      topology: s.topology,
      aggregated: s.aggregated,
      prefill: s.prefill,
      decode: s.decode,
      router: s.router.mode,
      planner: s.planner.enabled,
    });
  return norm(a) === norm(b);
}

export type { EventRef };
