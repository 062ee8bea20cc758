import type { Logger } from 'pino';
import { prepareCluster } from '../config/hardware.ts';
import { toSimulationOptions } from '../config/run.ts';
import type { SimulationConfig } from '../config/schema.ts';
import { Catalog } from '../hardware/catalog.ts';
import { isNotFound, KubeClient } from '../operator/kube/client.ts';
import {
  DYNAMO_GRAPH_DEPLOYMENTS,
  DYNAMO_GRAPH_DEPLOYMENTS_V1BETA1,
  pathOf,
} from '../operator/kube/resources.ts';
import { coldStartSeconds } from '../operator/sweep/transition.ts';
import { createLiveSimulation, type LiveRole, type LiveSimulation } from '../sim/live.ts';
import type { SimulationOptions } from '../sim/simulation.ts';
import { WorkloadBuilder } from '../sim/workload/workload.ts';
import { VirtualClock } from './clock.ts';
import { ClusterFollower } from './cluster.ts';
import { crashWorker } from './crash.ts';
import { DynamoMetrics } from './dynamo-metrics.ts';
import { type DegradeRule, liveOptions, planFleet, poolsOf, SimFleet } from './fleet.ts';
import { readGraph } from './graph.ts';
import { type DrainResult, TwinHttpServer } from './http.ts';
import { DEFAULT_PREFIX, RequestTraceWriter } from './request-trace.ts';
import { TwinRuntime } from './runtime.ts';
import { TraceFeeder } from './trace-feed.ts';

/**
 * Assembles a twin: the live simulation of a fleet (from the simulator's settings, or from a
 * DynamoGraphDeployment it then follows), the runtime on a virtual clock, the HTTP server, trace feeders,
 * request traces and faults. Used by `servetune twin` and, in-process, by the tests.
 */

export interface TwinOptions {
  /** The simulator's settings: the fleet when standalone, the engine/timing base when following a DGD. */
  config: SimulationConfig;
  /** Served model name (`/v1/models`, the `model` label); default the hardware model, else 'servetune-twin'. */
  model?: string;
  port: number;
  host?: string;
  /** Simulated seconds per wall second (default 1). */
  timeScale?: number;
  trace?: { path: string; format?: string; loop: boolean; speedup?: number };
  /** A second trace that replaces the first at `atMs` (simulated). */
  drift?: { atMs: number; path: string; format?: string };
  requestTrace?: { dir: string; maxSegments?: number; rollLines?: number; flushIntervalMs?: number };
  limits?: {
    maxBodyBytes?: number;
    maxConcurrent?: number;
    defaultMaxTokens?: number;
    contextLength?: number;
  };
  cluster?: { kubeconfig?: string; client?: KubeClient; namespace: string; target: string };
  faults?: {
    degrade?: DegradeRule;
    stalls?: { atMs: number; durationMs: number }[];
    crashes?: { atMs: number; worker?: number }[];
    /**
     * Standalone only: cold start (ms) of the worker that replaces a crashed one, or null to leave it dead.
     * Default: the config's startupTimeS when set (what a DGD-following twin uses), else the catalog's cold
     * start for the model and the worker's GPUs.
     */
    restartAfterMs?: number | null;
  };
  /** `dynamo_namespace` of the worker metrics (default `<namespace>-<target>`, or 'dynamo'). */
  dynamoNamespace?: string;
  logger?: Logger;
}

export interface Twin {
  url: string;
  port: number;
  sim: LiveSimulation;
  runtime: TwinRuntime;
  http: TwinHttpServer;
  metrics: DynamoMetrics;
  cluster?: ClusterFollower;
  /** The trace feeders: `--trace`'s, then `--drift-trace`'s once it starts. */
  feeders: readonly TraceFeeder[];
  /** Stops taking work, drains requests in flight (bounded), flushes the request trace, stops. */
  stop(drainMs?: number): Promise<DrainResult>;
}

const gcd = (a: number, b: number): number => (b === 0 ? a : gcd(b, a % b));
const EMPTY = new WorkloadBuilder(1).build();

/** The simulation options of a standalone twin (the simulator's own pipeline, hardware timing included). */
function standaloneOptions(config: SimulationConfig): SimulationOptions {
  if (config.timing.model === 'hardware') {
    const prepared = prepareCluster(config, Catalog.builtin(), EMPTY);
    return toSimulationOptions(prepared.config, prepared.timings);
  }
  return toSimulationOptions(config);
}

/**
 * Cold start of a standalone twin's restarted worker: the configured one when set (what a twin following a
 * DGD uses for the workers it adds), else what the catalog's model takes to load on that many GPUs.
 */
export function defaultRestartAfterMs(config: SimulationConfig, gpusPerWorker: number): number {
  if (config.startupTimeS > 0) return config.startupTimeS * 1000;
  return coldStartSeconds(config.hardware?.model, gpusPerWorker) * 1000;
}

export async function startTwin(o: TwinOptions): Promise<Twin> {
  const log = o.logger;
  const config = o.config;
  const engineBlock = config.engine.blockSize;
  const contentBlockSize = gcd(config.workload.traceBlockSize, engineBlock);
  const base = {
    timing: config.timing,
    seed: config.seed,
    traceBlockSize: contentBlockSize,
    startupTimeS: config.startupTimeS,
    engine: config.engine,
  };

  // The fleet: the DGD's when following one, else the simulator settings'.
  let client: KubeClient | undefined;
  let simOptions: SimulationOptions;
  let initialGraph: ReturnType<typeof readGraph> | undefined;
  // A graph that pins no GPU by nodeSelector runs on the GPU the user names (`--gpu`), as the operator
  // assumes its inventory's; without either, its timing is the GPU-agnostic model's.
  const named = config.hardware?.gpu ? Catalog.builtin().findGpu(config.hardware.gpu)?.id : undefined;
  const knownGpuTypes = named ? [named] : [];
  if (o.cluster) {
    client = o.cluster.client ?? KubeClient.load(o.cluster.kubeconfig, { userAgent: 'servetune-twin' });
    const obj = await getDgd(client, o.cluster.namespace, o.cluster.target, log);
    initialGraph = readGraph(obj, knownGpuTypes);
    if ('error' in initialGraph) {
      throw new Error(
        `DynamoGraphDeployment ${o.cluster.namespace}/${o.cluster.target}: ${initialGraph.error}`,
      );
    }
    simOptions = planFleet(initialGraph.settings, initialGraph.planner?.config ?? null, base).options;
  } else {
    simOptions = standaloneOptions(config);
  }
  const sim = createLiveSimulation(liveOptions(simOptions, contentBlockSize));

  const model =
    o.model ??
    (initialGraph && !('error' in initialGraph) ? initialGraph.settings.model : undefined) ??
    config.hardware?.model ??
    'servetune-twin';
  const dynamoNamespace =
    o.dynamoNamespace ?? (o.cluster ? `${o.cluster.namespace}-${o.cluster.target}` : 'dynamo');
  const metrics = new DynamoMetrics({ model, dynamoNamespace });
  const pool = simOptions.disaggregation?.decode ?? simOptions;
  const kvTokens = pool.engine.numGpuBlocks * pool.engine.blockSize;
  const contextLength = o.limits?.contextLength ?? config.hardware?.maxModelLen ?? kvTokens;
  metrics.setModelConfig({
    totalKvBlocks: pool.engine.numGpuBlocks,
    maxNumSeqs: pool.engine.maxNumSeqs,
    maxNumBatchedTokens:
      'maxNumBatchedTokens' in pool.engine ? pool.engine.maxNumBatchedTokens : pool.engine.chunkedPrefillSize,
    contextLength,
    kvCacheBlockSize: pool.engine.blockSize,
    migrationLimit: 3,
  });
  const clock = new VirtualClock(o.timeScale ?? 1);
  const traceWriter = o.requestTrace
    ? new RequestTraceWriter({
        path: `${o.requestTrace.dir}/${DEFAULT_PREFIX}`,
        maxSegments: o.requestTrace.maxSegments,
        rollLines: o.requestTrace.rollLines,
        flushIntervalMs: o.requestTrace.flushIntervalMs,
        onError: (e) => log?.error({ err: e.message }, 'request trace write failed'),
      })
    : undefined;
  const runtime = new TwinRuntime({ sim, clock, metrics, contentBlockSize, model, traceWriter, logger: log });

  // Faults at simulated times.
  const faults = o.faults ?? {};
  const pools = poolsOf(simOptions);
  const restartPolicy = {
    restartAfterMs: (role: LiveRole) =>
      faults.restartAfterMs !== undefined
        ? faults.restartAfterMs
        : defaultRestartAfterMs(config, pools[role]?.spec.gpusPerWorker ?? 1),
    passTimeFactor: (role: LiveRole) => {
      const d = faults.degrade;
      return d && (d.selector.role === undefined || d.selector.role === role) ? d.factor : undefined;
    },
  };
  const stalls = [...(faults.stalls ?? [])].sort((a, b) => a.atMs - b.atMs);
  const crashes = [...(faults.crashes ?? [])].sort((a, b) => a.atMs - b.atMs);
  runtime.onAdvance(() => {
    while (stalls.length > 0 && stalls[0].atMs <= sim.now) {
      const s = stalls.shift()!;
      log?.warn({ atMs: s.atMs, durationMs: s.durationMs }, 'fault: stalling every worker');
      sim.stall('all', sim.now + s.durationMs);
    }
    while (crashes.length > 0 && crashes[0].atMs <= sim.now) {
      const c = crashes.shift()!;
      const victim = c.worker ?? sim.workers().find((w) => w.state === 'ready')?.id;
      if (victim === undefined) continue;
      if (o.cluster) {
        // The fleet driver restarts it, as the DGD's pod would be (fleet.ts).
        log?.warn({ worker: victim }, 'fault: killing a worker');
        sim.killWorker(victim);
      } else crashWorker(sim, victim, restartPolicy, log);
    }
  });

  let cluster: ClusterFollower | undefined;
  if (o.cluster && client && initialGraph && !('error' in initialGraph)) {
    const fleet = new SimFleet({ sim, base, degrade: faults.degrade, initial: initialGraph });
    fleet.apply(initialGraph);
    cluster = new ClusterFollower({
      client,
      namespace: o.cluster.namespace,
      name: o.cluster.target,
      driver: fleet,
      logger: log,
      knownGpuTypes,
    });
    sim.setObserver({
      ...observerOf(runtime),
      onPlannerDecision: (role, replicas) => {
        cluster
          ?.plannerDecision(role, replicas)
          .catch((e) =>
            log?.warn({ err: (e as Error).message, role, replicas }, 'writing the planner decision failed'),
          );
      },
    });
  } else if (faults.degrade) {
    const role = faults.degrade.selector.role;
    if (Object.keys(faults.degrade.selector).some((k) => k !== 'role')) {
      throw new Error('--degrade: without a DGD to follow, the selector may only name a role');
    }
    sim.setPassTimeFactor(
      (role as 'aggregated' | 'prefill' | 'decode' | undefined) ?? 'all',
      faults.degrade.factor,
    );
  }

  const http = new TwinHttpServer({
    runtime,
    model,
    limits: {
      contextLength,
      defaultMaxTokens: o.limits?.defaultMaxTokens ?? 256,
      blockSize: contentBlockSize,
    },
    maxBodyBytes: o.limits?.maxBodyBytes,
    maxConcurrent: o.limits?.maxConcurrent,
    logger: log,
  });
  const port = await http.listen(o.port, o.host ?? '0.0.0.0');
  runtime.start();
  await cluster?.start();

  const feeders: TraceFeeder[] = [];
  if (o.trace) {
    const f = new TraceFeeder({
      runtime,
      path: o.trace.path,
      format: o.trace.format,
      traceBlockSize: config.workload.traceBlockSize,
      loop: o.trace.loop,
      speedup: o.trace.speedup,
      untilMs: o.drift?.atMs,
      logger: log,
    });
    feeders.push(f);
    await f.start();
  }
  if (o.drift) {
    const drift = o.drift;
    let started = false;
    runtime.onAdvance(() => {
      if (started || sim.now + 2000 < drift.atMs) return;
      started = true;
      const f = new TraceFeeder({
        runtime,
        path: drift.path,
        format: drift.format,
        traceBlockSize: config.workload.traceBlockSize,
        loop: o.trace?.loop ?? true,
        speedup: o.trace?.speedup,
        startAtMs: drift.atMs,
        name: 'drift',
        logger: log,
      });
      feeders.push(f);
      log?.info({ atMs: drift.atMs, trace: drift.path }, 'drift: switching workloads');
      f.start().catch((e) => log?.error({ err: (e as Error).message }, 'drift trace failed'));
    });
  }

  const host = o.host && o.host !== '0.0.0.0' ? o.host : '127.0.0.1';
  return {
    url: `http://${host}:${port}`,
    port,
    sim,
    runtime,
    http,
    metrics,
    cluster,
    feeders,
    async stop(drainMs = 30_000) {
      for (const f of feeders) f.stop();
      const result = await http.drain(drainMs);
      runtime.stop();
      await cluster?.stop();
      await traceWriter?.close();
      if (client && !o.cluster?.client) await client.close();
      return result;
    },
  };
}

/** The runtime's observer callbacks (to extend them with the Planner's). */
function observerOf(r: TwinRuntime) {
  return {
    onRouted: r.onRouted.bind(r),
    onFirstToken: r.onFirstToken.bind(r),
    onToken: r.onToken.bind(r),
    onEnded: r.onEnded.bind(r),
  };
}

/** The DGD to follow; waits for it to exist (a twin may start before its DGD is applied). */
async function getDgd(client: KubeClient, namespace: string, name: string, log?: Logger) {
  let told = false;
  for (;;) {
    for (const r of [DYNAMO_GRAPH_DEPLOYMENTS_V1BETA1, DYNAMO_GRAPH_DEPLOYMENTS]) {
      try {
        return await client.get<Parameters<typeof readGraph>[0]>(pathOf(r, namespace, name));
      } catch (e) {
        if (!isNotFound(e)) throw e;
      }
    }
    if (!told) log?.info({ namespace, name }, 'waiting for the DynamoGraphDeployment to exist');
    told = true;
    await new Promise((r) => setTimeout(r, 2000));
  }
}
