import { refOf } from '../kube/events.ts';
import { type KubeObject, keyOf, splitKey } from '../kube/resources.ts';
import type { ReconcileResult } from '../kube/work-loop.ts';
import { runSweepJob } from '../sweep/job.ts';
import {
  CONTROLLER_DEFAULTS,
  type ControllerOptions,
  type InFlight,
  MAX_REQUEUE_MS,
  type TuningContext,
} from './context.ts';
import {
  confirmDue,
  crashesOfDeadSweep,
  delayUntil,
  frequentScheduleWarning,
  plannedSlot,
  soonerSlot,
} from './decide.ts';
import { applyDriftCheck, maybeCheckDrift } from './drift-check.ts';
import { FairScheduler } from './fair-scheduler.ts';
import { fetchTuning, readSpec, readTarget } from './observe.ts';
import { findRecommendation, recommendationName } from './recommendations.ts';
import { summarizeConditions } from './status.ts';
import { degrade, updateStatus } from './status-write.ts';
import { completeSweep, finishFoundRecommendation } from './sweep-complete.ts';
import { giveUpCrashedSlot } from './sweep-failure.ts';
import { startSweep } from './sweep-start.ts';

/**
 * The DeploymentTuning controller. Reconcile is level-triggered and idempotent: every pass re-reads the
 * object, its target and its recommendations and decides from status what should happen now. The schedule
 * lives in `status.nextSweepTime`; a due sweep runs in the background (a worker thread, under a global
 * concurrency limit, at most one per object) and its result is written by the next reconcile of that key.
 * Recommendations are named after the schedule slot, so a restarted operator finds one it already created
 * instead of duplicating it, and re-runs a sweep it had not finished instead of losing it.
 *
 * This class only coordinates, in observe -> decide -> act order: `observe.ts` reads the world, `decide.ts`
 * and `drift-check.ts` say what is due, `sweep-start.ts`, `sweep-complete.ts`, `sweep-failure.ts` and
 * `status-write.ts` act. Every write goes through the fenced client of the options.
 */
export class TuningController {
  private readonly o: ControllerOptions;
  private readonly inFlight: InFlight = {
    running: new Map(),
    finished: new Map(),
    checking: new Map(),
    checked: new Map(),
  };
  private readonly ctx: TuningContext;
  /** Set by the manager: schedules a reconcile of a key. */
  enqueue: (key: string) => void = () => {};

  constructor(opts: ControllerOptions) {
    this.o = opts;
    this.ctx = {
      o: opts,
      limits: {
        minScheduleIntervalMs: opts.minScheduleIntervalMs ?? CONTROLLER_DEFAULTS.minScheduleIntervalMs,
        maxSweepDurationMs: opts.maxSweepDurationMs ?? CONTROLLER_DEFAULTS.maxSweepDurationMs,
        maxSweepCrashes: opts.maxSweepCrashes ?? CONTROLLER_DEFAULTS.maxSweepCrashes,
      },
      runJob: opts.runJob ?? runSweepJob,
      now: opts.now ?? (() => new Date()),
      scheduler: new FairScheduler(Math.max(1, opts.maxConcurrentSweeps)),
      inFlight: this.inFlight,
      // Looked up at each call: the manager sets `enqueue` after construction.
      enqueue: (key) => this.enqueue(key),
    };
  }

  activeSweeps(): number {
    return this.inFlight.running.size;
  }

  /** Cancels running sweeps and drift checks (on shutdown or lost leadership). */
  cancelAll(): void {
    for (const r of this.inFlight.running.values()) r.abort.abort();
    for (const c of this.inFlight.checking.values()) c.abort();
  }

  async reconcile(key: string): Promise<ReconcileResult> {
    const { o, ctx, inFlight } = this;
    const cached = o.tunings.get(key);
    if (!cached || cached.metadata.deletionTimestamp) {
      inFlight.running.get(key)?.abort.abort();
      inFlight.finished.delete(key);
      inFlight.checking.get(key)?.abort();
      inFlight.checked.delete(key);
      const { namespace, name } = splitKey(key);
      o.metrics.forget(namespace, name);
      return {};
    }
    const dt = structuredClone(cached);
    const generation = dt.metadata.generation ?? 0;
    const log = o.logger.child({ deploymentTuning: key });
    const spec = readSpec(dt);
    if (!('spec' in spec)) {
      await degrade(o, key, spec.reason, spec.message, true);
      return {};
    }
    const s = spec.spec;
    const warning = frequentScheduleWarning(dt, s, ctx.now(), ctx.limits.minScheduleIntervalMs);
    if (warning) await o.recorder.emit(refOf(dt), 'Warning', 'ScheduleTooFrequent', 'Reconcile', warning);

    // Background work that finished is written first.
    const done = inFlight.finished.get(key);
    if (done) {
      await completeSweep(ctx, key, dt, s, done, log);
      inFlight.finished.delete(key);
      inFlight.checked.delete(key);
      return this.requeueForNext(key);
    }
    if (inFlight.running.has(key)) return {};
    const check = inFlight.checked.get(key);
    if (check) {
      inFlight.checked.delete(key);
      await applyDriftCheck(ctx, key, dt, s, check, log);
      const after = await fetchTuning(o.client, key);
      if (after) {
        dt.status = after.status;
        dt.metadata = after.metadata;
      }
    }

    const target = readTarget(o.targets, dt, s);
    if (!('baseline' in target)) {
      await degrade(o, key, target.reason, target.message, true);
      return { requeueAfterMs: 10 * 60_000 };
    }
    const { baseline } = target;

    const now = ctx.now();
    let slot = plannedSlot(dt, now);
    const sooner = soonerSlot(dt, s, slot, now, ctx.limits.minScheduleIntervalMs);
    if (sooner) {
      slot = sooner;
      await updateStatus(o.client, key, (st) => {
        st.nextSweepTime = sooner;
      });
    }
    if (s.suspend) {
      await updateStatus(o.client, key, (st) => {
        st.nextSweepTime ??= slot;
        summarizeConditions(st, generation, { reason: 'Suspended', message: 'Sweeps are suspended.' });
      });
      return {};
    }
    const dueIn = Date.parse(slot) - now.getTime();
    if (dueIn > 0) {
      await updateStatus(o.client, key, (st) => {
        st.nextSweepTime ??= slot;
        summarizeConditions(st, generation);
      });
      const checkIn = maybeCheckDrift(ctx, key, dt, s, baseline.settings.model, now);
      return { requeueAfterMs: Math.min(dueIn, checkIn, MAX_REQUEUE_MS) };
    }

    // Due by the cache; confirm with a fresh read.
    const fresh = await fetchTuning(o.client, key);
    if (!fresh) return {};
    const due = confirmDue(fresh, slot, ctx.now());
    if ('waitMs' in due) return { requeueAfterMs: due.waitMs };
    slot = due.slot;

    // Due. A recommendation for this slot may already exist if we stopped after creating it.
    const existing = await findRecommendation(
      o.client,
      dt.metadata.namespace ?? 'default',
      recommendationName(dt.metadata.name, slot),
    );
    if (existing) {
      await finishFoundRecommendation(ctx, key, dt, s, existing, generation, log);
      return this.requeueForNext(key);
    }

    // A sweep of this slot that died with the operator counts as a crash; too many in a row give the slot up.
    const crashes = crashesOfDeadSweep(fresh);
    if (crashes !== undefined) {
      if (crashes >= ctx.limits.maxSweepCrashes) {
        await giveUpCrashedSlot(
          ctx,
          key,
          dt,
          s,
          crashes,
          'the operator stopped while running it (killed, out of memory, or leadership moved)',
        );
        return this.requeueForNext(key);
      }
      await updateStatus(o.client, key, (st) => {
        st.sweepCrashes = crashes;
      });
    }

    await startSweep(
      ctx,
      key,
      dt,
      s,
      slot,
      target.adapter,
      baseline.settings,
      baseline.warnings,
      target.obj,
      log,
    );
    return {};
  }

  private async requeueForNext(key: string): Promise<ReconcileResult> {
    const dt = await fetchTuning(this.o.client, key);
    const next = dt?.status?.nextSweepTime;
    if (!next) return {};
    return { requeueAfterMs: delayUntil(next, this.ctx.now()) };
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
