import type { DeploymentTuning, DeploymentTuningStatus } from '../../api/index.ts';
import { getCondition, setCondition } from '../conditions.ts';
import { isConflict, type KubeClient } from '../kube/client.ts';
import { refOf } from '../kube/events.ts';
import { DEPLOYMENT_TUNINGS, pathOf, splitKey } from '../kube/resources.ts';
import type { ControllerOptions } from './context.ts';
import { fetchTuning } from './observe.ts';
import { summarizeConditions } from './status.ts';

/** Writing a DeploymentTuning's status, always through the operator's (leadership-fenced) client. */

/**
 * Read-modify-write of the status subresource from a fresh read, retried on 409 Conflict. Skips the
 * write when nothing changed, so steady-state reconciles cost one GET.
 */
export async function updateStatus(
  client: KubeClient,
  key: string,
  mutate: (st: DeploymentTuningStatus, dt: DeploymentTuning) => void,
): Promise<void> {
  const { namespace, name } = splitKey(key);
  for (let attempt = 0; ; attempt++) {
    const dt = await fetchTuning(client, key);
    if (!dt) return;
    const before = JSON.stringify(dt.status ?? {});
    const st: DeploymentTuningStatus = structuredClone(dt.status ?? {});
    mutate(st, dt);
    const cleaned = JSON.parse(JSON.stringify(st)) as DeploymentTuningStatus;
    if (JSON.stringify(cleaned) === before) return;
    dt.status = cleaned;
    try {
      await client.replace(pathOf(DEPLOYMENT_TUNINGS, namespace, name, 'status'), dt);
      return;
    } catch (e) {
      if (!isConflict(e) || attempt >= 4) throw e;
    }
  }
}

/** Sets Degraded (and Ready from it) as of `now`; a Warning Event when asked and the condition changed. */
export async function degrade(
  o: Pick<ControllerOptions, 'client' | 'tunings' | 'recorder'>,
  key: string,
  reason: string,
  message: string,
  now: Date,
  warnEvent = false,
): Promise<void> {
  const dt = o.tunings.get(key);
  const generation = dt?.metadata.generation ?? 0;
  let changed = false;
  await updateStatus(o.client, key, (st) => {
    const prev = getCondition(st.conditions, 'Degraded');
    changed = prev?.status !== 'True' || prev.reason !== reason || prev.message !== message;
    st.conditions = setCondition(
      st.conditions,
      {
        type: 'Degraded',
        status: 'True',
        reason,
        message,
        observedGeneration: generation,
      },
      now,
    );
    summarizeConditions(st, generation, now, undefined, false);
  });
  if (dt && changed && warnEvent) {
    await o.recorder.emit(refOf(dt), 'Warning', reason, 'Reconcile', message);
  }
}
