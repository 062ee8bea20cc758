import type { Logger } from 'pino';
import type { LiveRole, LiveSimulation } from '../sim/live.ts';

/**
 * `--crash-worker` on a standalone twin: the worker dies at once (its requests migrate to the others, see
 * `killWorker`) and, unless restarts are off, a replacement is started in its role right away and serves after
 * the cold start, as Kubernetes restarts a failed pod. The replacement is a new worker (new id, empty KV cache),
 * as a restarted pod's engine is. A twin following a DGD restarts through its fleet driver instead (fleet.ts).
 */

export interface CrashRestartPolicy {
  /** Cold start of the replacement in a role (ms), or null to leave the worker dead. */
  restartAfterMs(role: LiveRole): number | null;
  /** Pass-time factor of the role's new workers (a standalone --degrade), if any. */
  passTimeFactor?(role: LiveRole): number | undefined;
}

/** Workers of a role that count as its replicas: serving or about to (not draining or gone). */
function replicasOf(sim: LiveSimulation, role: LiveRole): number {
  let n = 0;
  for (const w of sim.workers()) if (w.role === role && (w.state === 'ready' || w.state === 'starting')) n++;
  return n;
}

/**
 * Kills `victim` and starts its replacement. A worker that was draining (being removed) is not replaced: the
 * fleet was giving it up anyway. Returns the replacement's cold start (ms), or null when none was started.
 */
export function crashWorker(
  sim: LiveSimulation,
  victim: number,
  policy: CrashRestartPolicy,
  log?: Logger,
): number | null {
  const worker = sim.workers().find((w) => w.id === victim);
  if (!worker || worker.state === 'gone') {
    log?.warn({ worker: victim }, 'fault: no such worker to kill');
    return null;
  }
  const wasReplica = worker.state === 'ready' || worker.state === 'starting';
  const restartMs = wasReplica ? policy.restartAfterMs(worker.role) : null;
  log?.warn({ worker: victim, role: worker.role, restartAfterMs: restartMs }, 'fault: killing a worker');
  sim.killWorker(victim);
  if (restartMs === null) return null;
  try {
    sim.setReplicas(worker.role, replicasOf(sim, worker.role) + 1, {
      startupMs: restartMs,
      passTimeFactor: policy.passTimeFactor?.(worker.role),
    });
  } catch (e) {
    // A pool of data-parallel ranks has a fixed fleet: the fault still happens, the restart cannot.
    log?.warn({ worker: victim, err: (e as Error).message }, 'fault: the killed worker cannot be restarted');
    return null;
  }
  return restartMs;
}
