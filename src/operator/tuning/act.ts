import type { Logger } from 'pino';
import { refOf } from '../kube/events.ts';
import { splitKey } from '../kube/resources.ts';
import type { TuningContext } from './context.ts';
import { applyStatusEdit, type TuningObservation, type TuningStep } from './decide.ts';
import { applyDriftCheck, startDriftCheck } from './drift-check.ts';
import { degrade, updateStatus } from './status-write.ts';
import { completeSweep, finishFoundRecommendation } from './sweep-complete.ts';
import { giveUpCrashedSlot } from './sweep-failure.ts';
import { startSweep } from './sweep-start.ts';

/**
 * The act step of a DeploymentTuning reconcile: one step of decide's plan, done. Every write goes through the
 * fenced client of the options; background work (sweeps, drift checks) is started here and hands its outcome
 * to a later reconcile through `ctx.inFlight`.
 */
export async function actOn(
  ctx: TuningContext,
  obs: TuningObservation,
  step: TuningStep,
  now: Date,
  log: Logger,
): Promise<void> {
  const { o, inFlight } = ctx;
  const { key } = obs;
  switch (step.kind) {
    case 'forget': {
      inFlight.running.get(key)?.abort.abort();
      inFlight.finished.delete(key);
      inFlight.checking.get(key)?.abort();
      inFlight.checked.delete(key);
      const { namespace, name } = splitKey(key);
      o.metrics.forget(namespace, name);
      return;
    }
    case 'degrade':
      return degrade(o, key, step.reason, step.message, now, true);
    case 'status':
      return updateStatus(o.client, key, (st) => applyStatusEdit(st, step.edit, now));
    case 'event':
      await o.recorder.emit(refOf(valid(obs).dt), step.type, step.reason, step.action, step.message);
      return;
    case 'completeSweep':
      await completeSweep(ctx, key, step.dt, valid(obs).spec, step.sweep, log);
      // Dropped once written: a failed write is retried by the next reconcile.
      inFlight.finished.delete(key);
      inFlight.checked.delete(key);
      return;
    case 'applyDriftCheck':
      inFlight.checked.delete(key);
      return applyDriftCheck(ctx, key, step.dt, valid(obs).spec, step.check, log);
    case 'adoptRecommendation':
      return finishFoundRecommendation(
        ctx,
        key,
        step.dt,
        valid(obs).spec,
        step.recommendation,
        step.generation,
        log,
      );
    case 'giveUpSlot':
      return giveUpCrashedSlot(ctx, key, step.dt, valid(obs).spec, step.crashes, step.why);
    case 'startSweep': {
      const { adapter, baseline, obj } = step.target;
      return startSweep(
        ctx,
        key,
        step.dt,
        valid(obs).spec,
        step.slot,
        adapter,
        baseline.settings,
        baseline.warnings,
        obj,
        log,
      );
    }
    case 'startDriftCheck':
      startDriftCheck(ctx, key, step.dt, valid(obs).spec, step.servedModel);
      return;
  }
}

/** The object with its checked spec: decide plans these steps only once the spec is valid. */
function valid(obs: TuningObservation): Extract<TuningObservation['tuning'], { state: 'valid' }> {
  if (obs.tuning.state !== 'valid') throw new Error(`${obs.key}: this step needs a valid spec`);
  return obs.tuning;
}
