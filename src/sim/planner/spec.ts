import type { DisaggregationSpec, PoolSpec } from '../simulation.ts';
import { type PlannerConfig, replicaBounds, scaledRoles } from './config.ts';
import type { RoleSpec } from './planner.ts';
import { profileWorker } from './profile.ts';
import type { PlannerSpec } from './runtime.ts';

/**
 * The planner of a cluster: one role per pool, with what the planner knows of its engines, and (SLA target)
 * a performance profile of one worker per pool, measured by the simulator.
 */
export function plannerSpec(
  config: PlannerConfig,
  startupTimeS: number,
  disagg: DisaggregationSpec | null,
  aggregated: PoolSpec,
): PlannerSpec {
  const pools: [RoleSpec['role'], PoolSpec][] = disagg
    ? [
        ['prefill', disagg.prefill],
        ['decode', disagg.decode],
      ]
    : [['aggregated', aggregated]];
  const scaled = scaledRoles(config, disagg !== null);
  const roles: RoleSpec[] = pools.map(([role, pool]) => {
    const kv = pool.engine.numGpuBlocks * pool.engine.blockSize;
    return {
      role,
      gpus: pool.gpusPerWorker,
      caps: {
        maxNumBatchedTokens:
          pool.engine.kind === 'sglang' ? pool.engine.chunkedPrefillSize : pool.engine.maxNumBatchedTokens,
        maxKvTokens: kv,
        maxNumSeqs: pool.engine.maxNumSeqs,
        contextLength: config.context_length ?? kv,
      },
      scaled: scaled.includes(role),
      bounds: replicaBounds(config, role),
    };
  });
  const prefillPool = disagg ? disagg.prefill : aggregated;
  const decodePool = disagg ? disagg.decode : aggregated;
  return {
    config,
    startupMs: startupTimeS * 1000,
    roles,
    ...(config.optimization_target === 'sla' && config.sla_bootstrap === 'profile'
      ? {
          samples: profileWorker(
            { engine: prefillPool.engine, timing: prefillPool.timing },
            { engine: decodePool.engine, timing: decodePool.timing },
          ),
        }
      : {}),
  };
}
