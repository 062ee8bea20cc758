import type { ServingSettings } from '../api/index.ts';
import { prepareCluster } from '../config/hardware.ts';
import { toSimulationOptions } from '../config/run.ts';
import type { SimulationConfig } from '../config/schema.ts';
import { Catalog } from '../hardware/catalog.ts';
import { simulationFor } from '../operator/sweep/job.ts';
import { baselineSpace } from '../operator/sweep/mapping.ts';
import type { LiveOptions, LivePoolSpec, LiveRole, LiveSimulation } from '../sim/live.ts';
import type { PlannerConfig } from '../sim/planner/config.ts';
import type { RouterSpec, SimulationOptions } from '../sim/simulation.ts';
import { WorkloadBuilder } from '../sim/workload/workload.ts';
import { candidateConfig } from '../sweep/evaluate.ts';
import { enumerateCandidates } from '../sweep/space.ts';
import type { FleetDriver } from './cluster.ts';
import type { RoleCounts } from './dgd-status.ts';
import type { TwinGraph } from './graph.ts';

/**
 * Turning serving settings (read from a DGD) into a simulated fleet, and keeping the live simulation's fleet
 * in step with them.
 *
 * The fleet is priced exactly as the operator prices the deployment's baseline (the same one-point search
 * space, candidate configuration and timing choice: hardware timing when the catalog knows the model and the
 * GPU, else the twin's base timing), so that what the twin serves is what servetune predicted for those
 * settings unless a fault makes it worse.
 */

export interface FleetBase {
  /** Timing when the catalog does not know the served model or GPU (the operator's generic cost model). */
  timing: SimulationConfig['timing'];
  seed: number;
  /** Tokens per content id of the live simulation. */
  traceBlockSize: number;
  /** Cold start of a new worker (s). */
  startupTimeS: number;
  /** Engine settings the DGD does not say (KV blocks when no hardware model sizes them, ...). */
  engine?: Partial<SimulationConfig['engine']>;
}

export interface FleetPlan {
  config: SimulationConfig;
  options: SimulationOptions;
  /** How passes are timed, in words. */
  note: string;
}

const EMPTY_WORKLOAD = new WorkloadBuilder(1).build();

/** The simulation of a deployment with these settings, as the operator would simulate its baseline. */
export function planFleet(
  settings: ServingSettings,
  planner: PlannerConfig | null,
  base: FleetBase,
): FleetPlan {
  const { space, budget } = baselineSpace(settings);
  const { candidates } = enumerateCandidates(space, budget);
  const c = candidates[0];
  if (!c) throw new Error('the settings describe no deployment the simulator can run');
  const timing = simulationFor(settings.model, settings.gpuType);
  let config = candidateConfig(
    {
      ...c,
      ...(base.engine?.numGpuBlocks && { engine: { ...c.engine, numGpuBlocks: base.engine.numGpuBlocks } }),
    },
    {
      timing: base.timing,
      traceBlockSize: base.traceBlockSize,
      arrivalSpeedupRatio: 1,
      seed: base.seed,
      prices: {},
      slos: [],
      ...(timing.simulation.hardware ? { hardware: timing.simulation.hardware } : {}),
    },
  );
  config = { ...config, startupTimeS: base.startupTimeS, ...(planner ? { planner } : {}) };
  if (config.timing.model === 'hardware') {
    const prepared = prepareCluster(config, Catalog.builtin(), EMPTY_WORKLOAD);
    return {
      config: prepared.config,
      options: toSimulationOptions(prepared.config, prepared.timings),
      note: timing.note,
    };
  }
  return { config, options: toSimulationOptions(config), note: timing.note };
}

/** The live simulation's options for a planned fleet. */
export function liveOptions(o: SimulationOptions, traceBlockSize: number): LiveOptions {
  const { maxSimTimeMs: _drop, ...rest } = o;
  return { ...rest, traceBlockSize };
}

/** Per role: workers and the pool spec. */
export function poolsOf(
  o: SimulationOptions,
): Partial<Record<LiveRole, { workers: number; spec: LivePoolSpec }>> {
  if (o.disaggregation) {
    const { prefill, decode } = o.disaggregation;
    return {
      prefill: {
        workers: prefill.workers,
        spec: { engine: prefill.engine, timing: prefill.timing, gpusPerWorker: prefill.gpusPerWorker },
      },
      decode: {
        workers: decode.workers,
        spec: { engine: decode.engine, timing: decode.timing, gpusPerWorker: decode.gpusPerWorker },
      },
    };
  }
  return {
    aggregated: {
      workers: o.workers,
      spec: { engine: o.engine, timing: o.timing, gpusPerWorker: o.gpusPerWorker },
    },
  };
}

// ---------------------------------------------------------------------------------------------------------
// Faults: --degrade FACTOR[:SELECTOR]

/**
 * A slow-down of forward passes for the workers whose settings match `selector` (every key must match).
 * `changed=true` matches a role whose settings (its workers and parallelism, the router and its knobs, the
 * engine's knobs, the GPU; under the Planner its bounds rather than the workers it scales) differ from those
 * the twin started with: whatever a rollout changes runs slower, so
 * verification sees a regression and a rollback to the starting settings recovers.
 */
export interface DegradeRule {
  factor: number;
  selector: Record<string, string>;
}

const SELECTOR_KEYS = [
  'role',
  'tp',
  'workers',
  'router',
  'maxNumSeqs',
  'maxNumBatchedTokens',
  'blockSize',
  'backend',
  'gpu',
  'changed',
] as const;

/** Parses `2.5` or `2.5:tp=2,role=decode` or `3:changed=true`; throws with the offending part named. */
export function parseDegrade(text: string): DegradeRule {
  const [f, sel] = text.split(':', 2);
  const factor = Number(f);
  if (!Number.isFinite(factor) || factor < 1 || factor > 1000)
    throw new Error(`--degrade: factor '${f}' must be a number from 1 to 1000`);
  const selector: Record<string, string> = {};
  for (const part of (sel ?? '').split(',').filter((p) => p !== '')) {
    const [k, v] = part.split('=', 2);
    if (!(SELECTOR_KEYS as readonly string[]).includes(k) || v === undefined || v === '') {
      throw new Error(`--degrade: '${part}' is not KEY=VALUE with KEY one of ${SELECTOR_KEYS.join(', ')}`);
    }
    if (k === 'changed' && v !== 'true' && v !== 'false') {
      throw new Error(`--degrade: 'changed' must be true or false, not '${v}'`);
    }
    selector[k] = v;
  }
  return { factor, selector };
}

/** The selector's view of a role's settings (undefined when the settings have no such role). */
function selectorValues(settings: ServingSettings, role: LiveRole): Record<string, string> | undefined {
  const r = settings[role];
  if (!r) return undefined;
  return {
    role,
    tp: String(r.tensorParallel),
    workers: String(r.workers),
    router: settings.router.mode.toLowerCase(),
    maxNumSeqs: String(settings.engine?.maxNumSeqs ?? ''),
    maxNumBatchedTokens: String(settings.engine?.maxNumBatchedTokens ?? ''),
    blockSize: String(settings.engine?.blockSize ?? ''),
    backend: (settings.engine?.backend ?? 'vLLM').toLowerCase(),
    gpu: settings.gpuType,
  };
}

/**
 * Everything of the settings that shapes a role's serving (its workers, the router, engine and GPU). Under the
 * Planner the worker count is the Planner's own move, not a change, and its bounds are what a rollout changes.
 */
function roleKey(settings: ServingSettings, role: LiveRole): string {
  const sorted = (v: unknown): unknown =>
    v && typeof v === 'object' && !Array.isArray(v)
      ? Object.fromEntries(
          Object.entries(v)
            .sort(([a], [b]) => (a < b ? -1 : 1))
            .map(([k, x]) => [k, sorted(x)]),
        )
      : v;
  const { gpuType, router, engine, planner } = settings;
  const r = settings[role];
  const shape = planner.enabled && r ? { ...r, workers: undefined } : r;
  const bounds = planner.enabled && { minEndpoint: planner.minEndpoint, maxGpuBudget: planner.maxGpuBudget };
  return JSON.stringify(
    sorted({
      role: shape ?? null,
      gpuType,
      router,
      engine: engine ?? {},
      ...(bounds && { planner: bounds }),
    }),
  );
}

/**
 * Whether a role of these settings matches the selector; `initial` (the settings the twin started with)
 * answers `changed`, and without it nothing has changed.
 */
export function degradeMatches(
  rule: DegradeRule,
  settings: ServingSettings,
  role: LiveRole,
  initial?: ServingSettings,
): boolean {
  const values = selectorValues(settings, role);
  if (!values) return false;
  return Object.entries(rule.selector).every(([k, v]) => {
    if (k === 'changed')
      return String(initial !== undefined && roleKey(settings, role) !== roleKey(initial, role)) === v;
    return values[k]?.toLowerCase() === v.toLowerCase();
  });
}

// ---------------------------------------------------------------------------------------------------------
// The fleet driver

const sameRouter = (a: RouterSpec, b: RouterSpec) => JSON.stringify(a) === JSON.stringify(b);

export interface SimFleetOptions {
  sim: LiveSimulation;
  base: FleetBase;
  degrade?: DegradeRule;
  /** The fleet the simulation was built with (its graph), if it was built from one. */
  initial?: TwinGraph;
}

/** Keeps the live simulation's fleet in step with a DGD's graph (see cluster.ts). */
export class SimFleet implements FleetDriver {
  private readonly o: SimFleetOptions;
  private applied: TwinGraph | undefined;
  private router: RouterSpec | undefined;
  private plannerKey = '';
  private readonly blockSize = new Map<LiveRole, number>();
  /** Workers the degrade rule was applied to (new workers of a rolling restart get it as they appear). */
  private readonly degraded = new Map<number, number>();
  private degradeFactor = new Map<LiveRole, number>();
  /** Per role, workers that predate the role's last restart (rolling while any is not gone). */
  private readonly outdated = new Map<LiveRole, Set<number>>();
  /** Replicas per role the graph asks for (unless the Planner owns them). */
  private readonly desired = new Map<LiveRole, number>();

  constructor(o: SimFleetOptions) {
    this.o = o;
    this.applied = o.initial;
  }

  apply(g: TwinGraph): { error?: string } {
    const sim = this.o.sim;
    let plan: FleetPlan;
    try {
      plan = planFleet(g.settings, g.planner?.config ?? null, this.o.base);
    } catch (e) {
      return { error: (e as Error).message };
    }
    if (g.planner?.error) return { error: `planner: ${g.planner.error}` };
    const pools = poolsOf(plan.options);
    const prev = this.applied;
    if (prev && prev.settings.topology !== g.settings.topology) {
      return { error: `switching between aggregated and disaggregated serving needs a restart of the twin` };
    }
    const startupMs = this.o.base.startupTimeS * 1000;
    for (const role of Object.keys(pools) as LiveRole[]) {
      const want = pools[role]!;
      const before = prev?.pools[role];
      const blockNow = want.spec.engine.blockSize;
      const blockBefore = this.blockSize.get(role);
      if (blockBefore !== undefined && blockBefore !== blockNow) {
        return {
          error: `changing the KV block size (${blockBefore} -> ${blockNow}) needs a restart of the twin`,
        };
      }
      this.blockSize.set(role, blockNow);
      if (before && before.revision !== g.pools[role]?.revision) {
        this.outdated.set(
          role,
          new Set(
            sim
              .workers()
              .filter((w) => w.role === role && w.state !== 'gone')
              .map((w) => w.id),
          ),
        );
        sim.replacePool(role, want.spec, { startupMs, maxSurge: 1 });
      }
      // A template change alone keeps the count (replacePool rolls the same number of workers).
      if (!g.planner && (!before || before.replicas !== want.workers)) {
        sim.setReplicas(role, want.workers, { startupMs });
      }
      if (g.planner) this.desired.delete(role);
      else this.desired.set(role, want.workers);
      if (this.o.degrade) {
        this.degradeFactor.set(
          role,
          degradeMatches(this.o.degrade, g.settings, role, this.o.initial?.settings)
            ? this.o.degrade.factor
            : 1,
        );
      }
    }
    if (!this.router || !sameRouter(this.router, plan.options.router)) {
      if (this.router) sim.setRouter(plan.options.router);
      this.router = plan.options.router;
    }
    const plannerKey = JSON.stringify(g.planner?.config ?? null);
    if (plannerKey !== this.plannerKey) {
      if (prev || g.planner) sim.setPlanner(plan.options.planner ?? null);
      this.plannerKey = plannerKey;
    }
    this.applied = g;
    this.applyFaults();
    return {};
  }

  /** Gives current-revision workers their role's pass-time factor (called on apply and on every count). */
  private applyFaults(): void {
    if (!this.o.degrade) return;
    for (const [role, f] of this.degradeFactor) {
      const ids = this.freshWorkers(role).filter((id) => this.degraded.get(id) !== f);
      if (ids.length === 0) continue;
      this.o.sim.setPassTimeFactor(ids, f);
      for (const id of ids) this.degraded.set(id, f);
    }
  }

  /** Workers of a role on the current revision (not gone). */
  private freshWorkers(role: LiveRole): number[] {
    const old = this.outdated.get(role);
    return this.o.sim
      .workers()
      .filter((w) => w.role === role && w.state !== 'gone' && !old?.has(w.id))
      .map((w) => w.id);
  }

  /**
   * A killed worker (--crash-worker) comes back with a cold start, as Kubernetes restarts a failed pod; while
   * it starts the DGD reports the component not ready.
   */
  private restartCrashed(): void {
    for (const [role, want] of this.desired) {
      if (this.outdated.has(role)) continue;
      const serving = this.o.sim
        .workers()
        .filter((w) => w.role === role && (w.state === 'ready' || w.state === 'starting')).length;
      if (serving < want) {
        this.o.sim.setReplicas(role, want, { startupMs: this.o.base.startupTimeS * 1000 });
      }
    }
  }

  counts(): Partial<Record<LiveRole, RoleCounts>> {
    this.restartCrashed();
    this.applyFaults();
    const out: Partial<Record<LiveRole, RoleCounts>> = {};
    for (const w of this.o.sim.workers()) {
      if (w.state === 'gone') continue;
      out[w.role] ??= { ready: 0, starting: 0, draining: 0, updated: 0 };
      const c = out[w.role]!;
      if (w.state === 'ready') c.ready++;
      else if (w.state === 'starting') c.starting++;
      else c.draining++;
      if (w.state !== 'draining' && !this.outdated.get(w.role)?.has(w.id)) c.updated++;
    }
    return out;
  }

  rolling(): boolean {
    for (const [role, old] of this.outdated) {
      const alive = this.o.sim.workers().some((w) => w.role === role && w.state !== 'gone' && old.has(w.id));
      if (!alive) this.outdated.delete(role);
      else return true;
    }
    return false;
  }
}
