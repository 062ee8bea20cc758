import { type KubeObject, keyOf } from '../kube/resources.ts';
import type { ReconcileResult } from '../kube/work-loop.ts';
import { runSweepJob } from '../sweep/job.ts';
import { actOn } from './act.ts';
import { CONTROLLER_DEFAULTS, type ControllerOptions, type InFlight, type TuningContext } from './context.ts';
import { decideTuning } from './decide.ts';
import { FairScheduler } from './fair-scheduler.ts';
import { observeAgain, observeTuning } from './observe.ts';

/** Rounds of observe -> decide -> act in one reconcile; the longest path (drift check applied, due, found
 * recommendation adopted, requeued for the next slot) takes five. */
const MAX_ROUNDS = 8;

/**
 * The DeploymentTuning controller. Reconcile is level-triggered and idempotent: every pass re-reads the
 * object, its target and its recommendations and decides from status what should happen now. The schedule
 * lives in `status.nextSweepTime`; a due sweep runs in the background (a worker thread, under a global
 * concurrency limit, at most one per object) and its result is written by the next reconcile of that key.
 * Recommendations are named after the schedule slot, so a restarted operator finds one it already created
 * instead of duplicating it, and re-runs a sweep it had not finished instead of losing it.
 *
 * This class only coordinates, in observe -> decide -> act rounds: `observe.ts` reads the world, `decide.ts`
 * (pure) plans the status edits, Events and actions, `act.ts` does them through `sweep-start.ts`,
 * `sweep-complete.ts`, `sweep-failure.ts`, `drift-check.ts` and `status-write.ts`. Every write goes through
 * the fenced client of the options.
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

  /**
   * observe -> decide -> act, in rounds: a plan may end asking to observe again (a fresh read to confirm a
   * due slot, the status after a drift check), and decide goes on from there. Every path settles within a
   * few rounds; more is a bug, reported as an error rather than a loop.
   */
  async reconcile(key: string): Promise<ReconcileResult> {
    const { o, ctx, inFlight } = this;
    const log = o.logger.child({ deploymentTuning: key });
    let obs = observeTuning(o, inFlight, key);
    for (let round = 0; round < MAX_ROUNDS; round++) {
      const now = ctx.now();
      const plan = decideTuning(obs, now, ctx.limits);
      for (const step of plan.steps) await actOn(ctx, obs, step, now, log);
      if (!('observe' in plan.next)) return plan.next;
      obs = await observeAgain(o.client, inFlight, obs, plan.next.observe);
    }
    throw new Error(`reconcile of ${key} did not settle in ${MAX_ROUNDS} rounds`);
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
