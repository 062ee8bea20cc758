import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { hostname, totalmem } from 'node:os';
import { type Logger, pino } from 'pino';
import type { DeploymentTuning, TuningRecommendation } from '../api/index.ts';
import { FencedError, KubeClient } from './kube/client.ts';
import { withDefaults } from './kube/defaults.ts';
import { EventRecorder } from './kube/events.ts';
import { Informer, type InformerOptions } from './kube/informer.ts';
import { LEADER_ELECTION_DEFAULTS, LeaderElector, validateLeaderElection } from './kube/leader.ts';
import { DEPLOYMENT_TUNINGS, type KubeObject, keyOf, TUNING_RECOMMENDATIONS } from './kube/resources.ts';
import { WorkLoop } from './kube/work-loop.ts';
import { OperatorMetrics } from './metrics.ts';
import { RolloutController, type RolloutHook } from './rollout/controller.ts';
import type { UrlPolicy } from './sweep/url-policy.ts';
import type { TargetAdapter } from './target/adapter.ts';
import { dynamoAdapter } from './target/dynamo.ts';
import { CONTROLLER_NAME, type JobRunner } from './tuning/context.ts';
import { TuningController } from './tuning/controller.ts';

/**
 * Wires the operator: HTTP endpoints (/healthz, /readyz, /metrics) from the start, leader election, and —
 * only while leading — informers, the work queue and its workers. Losing the lease ends the process
 * (controller-runtime does the same): a fresh start is the simplest way to drop in-flight state.
 *
 * Two things keep a deposed leader from acting before it exits: every write of the client passes a fence
 * that asks the elector whether this replica still holds the lease (by its monotonic clock, so a frozen
 * process that wakes up refuses at once), and everything the controller sends is tied to an abort signal of
 * the leadership term, which is cancelled the moment the lease is lost.
 */

export interface OperatorOptions {
  kubeconfig?: string;
  client?: KubeClient;
  /** Watch one namespace; all namespaces when undefined. */
  namespace?: string;
  identity?: string;
  leaderElection?: {
    enabled: boolean;
    namespace: string;
    name?: string;
    leaseDurationMs?: number;
    renewDeadlineMs?: number;
    retryPeriodMs?: number;
  };
  /** Port for /healthz, /readyz and /metrics; 0 picks a free one; null disables the server. */
  httpPort?: number | null;
  httpHost?: string;
  workers?: number;
  maxConcurrentSweeps?: number;
  sweepThreads?: number;
  traceRoots?: string[];
  /** Which URLs URL trace sources may fetch (default: https to public addresses only). */
  urlPolicy?: UrlPolicy;
  /** The cluster's Prometheus (administrator-set, trusted) for verifying changes. */
  prometheusUrl?: string;
  /** Which Prometheus URLs tenants may name in spec.metrics (default: https to public addresses only). */
  metricsUrlPolicy?: UrlPolicy;
  /** Secrets a Prometheus source may take its bearer token from (names, in the DeploymentTuning's namespace). */
  prometheusTokenSecrets?: string[];
  maxTraceBytes?: number;
  maxTraceRows?: number;
  minScheduleIntervalMs?: number;
  maxSweepDurationMs?: number;
  maxSweepCrashes?: number;
  /** V8 heap of one sweep, MiB; default: sized from this process's memory limit (cgroup) and the sweep slots. */
  sweepMemoryMb?: number;
  failureRetryMs?: number;
  informer?: Pick<
    InformerOptions,
    'watchTimeoutSeconds' | 'watchdogMs' | 'backoffInitialMs' | 'backoffMaxMs'
  >;
  queue?: { baseDelayMs?: number; maxDelayMs?: number };
  logger?: Logger;
  /** Called when the lease is lost; the default exits the process with code 1. */
  onLostLease?: () => void;
  runJob?: JobRunner;
  adapters?: TargetAdapter[];
  /** Test hook at the rollout's crash-sensitive points. */
  rolloutHook?: RolloutHook;
}

export class Operator {
  readonly metrics = new OperatorMetrics();
  readonly client: KubeClient;
  readonly logger: Logger;
  readonly identity: string;
  private readonly o: OperatorOptions;
  private server: Server | undefined;
  private elector: LeaderElector | undefined;
  private loops: WorkLoop[] = [];
  private controller: TuningController | undefined;
  private informers: Informer<KubeObject>[] = [];
  private leading = false;
  /** Aborted when this leadership term ends. */
  private term: AbortController | undefined;
  private synced = false;
  private stopping = false;
  port = 0;

  constructor(opts: OperatorOptions = {}) {
    this.o = opts;
    this.logger = opts.logger ?? pino({ name: 'servetune-operator' });
    this.identity = opts.identity ?? `${hostname()}_${process.pid}_${Math.random().toString(36).slice(2, 8)}`;
    // The identity in the user agent lets audit logs tell replicas apart.
    this.client =
      opts.client ??
      KubeClient.load(opts.kubeconfig, {
        userAgent: `servetune-operator (${this.identity})`,
        fieldManager: 'servetune-operator',
      });
    if (opts.leaderElection?.enabled) {
      validateLeaderElection(withDefaults(LEADER_ELECTION_DEFAULTS, opts.leaderElection));
    }
  }

  isLeader(): boolean {
    return this.leading && (this.elector === undefined || this.elector.holds());
  }

  /** Ready: a follower once campaigning, a leader once its caches have synced. */
  isReady(): boolean {
    return !this.stopping && (!this.leading || this.synced);
  }

  async start(): Promise<void> {
    const le = this.o.leaderElection;
    this.logger.info(
      {
        identity: this.identity,
        leaderElection: le?.enabled ? withDefaults(LEADER_ELECTION_DEFAULTS, le) : false,
      },
      'Starting',
    );
    if (this.o.httpPort !== null) await this.startServer();
    if (!le?.enabled) {
      await this.startLeading();
      return;
    }
    this.client.setWriteFence((what) => {
      if (!this.elector?.holds()) throw new FencedError(what);
    });
    this.elector = new LeaderElector(this.client, {
      namespace: le.namespace,
      name: le.name ?? 'servetune-operator',
      identity: this.identity,
      leaseDurationMs: le.leaseDurationMs,
      renewDeadlineMs: le.renewDeadlineMs,
      retryPeriodMs: le.retryPeriodMs,
      logger: this.logger,
      onStartedLeading: () => {
        this.metrics.leader.set({ name: le.name ?? 'servetune-operator' }, 1);
        void this.startLeading().catch((err) => this.logger.error({ err }, 'Starting the controller failed'));
      },
      onStoppedLeading: () => {
        this.metrics.leader.set({ name: le.name ?? 'servetune-operator' }, 0);
        this.term?.abort(new FencedError('work of a lost leadership term'));
        void this.stopLeading().then(() => {
          if (this.stopping) return;
          if (this.o.onLostLease) this.o.onLostLease();
          else process.exit(1);
        });
      },
    });
    this.elector.start();
  }

  private async startServer(): Promise<void> {
    this.server = createServer((req, res) => {
      // Probes may carry a query string (e.g. ?verbose); only the path selects the handler.
      const url = (req.url ?? '/').split('?')[0];
      if (url === '/healthz' || url === '/livez') {
        res.writeHead(200, { 'content-type': 'text/plain' }).end('ok');
      } else if (url === '/readyz') {
        const ok = this.isReady();
        res.writeHead(ok ? 200 : 503, { 'content-type': 'text/plain' }).end(ok ? 'ok' : 'not ready');
      } else if (url === '/metrics') {
        this.metrics.registry
          .metrics()
          .then((text) => res.writeHead(200, { 'content-type': this.metrics.registry.contentType }).end(text))
          .catch((err) => res.writeHead(500).end(String(err)));
      } else {
        res.writeHead(404).end();
      }
    });
    await new Promise<void>((resolve, reject) => {
      this.server!.once('error', reject);
      this.server!.listen(this.o.httpPort ?? 8080, this.o.httpHost ?? '0.0.0.0', () => resolve());
    });
    const addr = this.server.address();
    this.port = typeof addr === 'object' && addr ? addr.port : 0;
    this.logger.info({ port: this.port }, 'Serving /healthz, /readyz and /metrics');
  }

  private async startLeading(): Promise<void> {
    this.leading = true;
    this.term = new AbortController();
    const client = this.client.withSignal(this.term.signal);
    const log = this.logger;
    const inf = { ...this.o.informer, logger: log, namespace: this.o.namespace };
    const tunings = new Informer<DeploymentTuning>(this.client, DEPLOYMENT_TUNINGS, inf);
    const recs = new Informer<TuningRecommendation>(this.client, TUNING_RECOMMENDATIONS, inf);
    const targets = new Map<string, { adapter: TargetAdapter; informer: Informer<KubeObject> }>();
    for (const adapter of this.o.adapters ?? [dynamoAdapter]) {
      targets.set(adapter.kind, {
        adapter,
        informer: new Informer<KubeObject>(this.client, adapter.resource, inf),
      });
    }
    const recorder = new EventRecorder(client, {
      controller: CONTROLLER_NAME,
      instance: this.identity,
      logger: log,
    });
    const controller = new TuningController({
      client,
      logger: log,
      recorder,
      metrics: this.metrics,
      tunings,
      targets,
      maxConcurrentSweeps: this.o.maxConcurrentSweeps ?? 1,
      failureRetryMs: this.o.failureRetryMs ?? 5 * 60_000,
      sweepThreads: this.o.sweepThreads,
      traceRoots: this.o.traceRoots,
      urlPolicy: this.o.urlPolicy,
      maxTraceBytes: this.o.maxTraceBytes,
      maxTraceRows: this.o.maxTraceRows ?? 2_000_000,
      minScheduleIntervalMs: this.o.minScheduleIntervalMs,
      maxSweepDurationMs: this.o.maxSweepDurationMs,
      maxSweepCrashes: this.o.maxSweepCrashes,
      sweepMemoryMb: this.o.sweepMemoryMb ?? defaultSweepMemoryMb(this.o.maxConcurrentSweeps ?? 1),
      runJob: this.o.runJob,
      prometheusUrl: this.o.prometheusUrl,
      metricsUrlPolicy: this.o.metricsUrlPolicy,
      prometheusTokenSecrets: this.o.prometheusTokenSecrets,
    });
    const loop = new WorkLoop({
      name: 'deploymenttuning',
      reconcile: (key) => controller.reconcile(key),
      workers: this.o.workers ?? 2,
      queue: this.o.queue,
      metrics: this.metrics,
      logger: log,
    });
    const queue = { add: (key: string) => loop.enqueue(key) };
    controller.enqueue = (key) => queue.add(key);
    tunings.on((_type, obj) => queue.add(keyOf(obj)));
    recs.on(() => this.countRecommendations(recs));
    recs.on((type, obj) => {
      // A deleted recommendation may have been the current one: re-check its owner.
      if (type !== 'delete') return;
      const owner = obj.metadata.ownerReferences?.find((o) => o.kind === 'DeploymentTuning');
      if (owner) queue.add(`${obj.metadata.namespace}/${owner.name}`);
    });
    for (const [kind, { informer }] of targets) {
      informer.on((_type, obj) => {
        for (const key of controller.tuningsFor(kind, obj)) queue.add(key);
      });
    }
    const rollout = new RolloutController({
      client,
      logger: log.child({ controller: 'rollout' }),
      recorder,
      metrics: this.metrics,
      tunings,
      recommendations: recs,
      prometheusUrl: this.o.prometheusUrl,
      urlPolicy: this.o.metricsUrlPolicy,
      hook: this.o.rolloutHook,
    });
    const rolloutLoop = new WorkLoop({
      name: 'tuningrecommendation',
      reconcile: (key) => rollout.reconcile(key),
      workers: this.o.workers ?? 2,
      queue: this.o.queue,
      metrics: this.metrics,
      logger: log,
    });
    rollout.enqueue = (key) => rolloutLoop.enqueue(key);
    recs.on((type, obj) => {
      if (type !== 'delete') rolloutLoop.enqueue(keyOf(obj));
    });
    tunings.on((_type, obj) => {
      for (const k of rollout.keysFor(obj.metadata.namespace ?? 'default', obj.metadata.name))
        rolloutLoop.enqueue(k);
    });
    for (const [, { informer }] of targets) {
      informer.on((_type, obj) => {
        for (const k of rollout.keysFor(obj.metadata.namespace ?? 'default', obj.metadata.name))
          rolloutLoop.enqueue(k);
      });
    }
    this.loops = [loop, rolloutLoop];
    this.controller = controller;
    this.informers = [
      tunings,
      recs,
      ...[...targets.values()].map((t) => t.informer),
    ] as Informer<KubeObject>[];
    for (const i of this.informers) i.start();
    await Promise.all(this.informers.map((i) => i.waitForSync()));
    if (!this.leading) return;
    this.synced = true;
    log.info({ tunings: tunings.list().length }, 'Caches synced; starting workers');
    for (const l of this.loops) l.start();
  }

  private countRecommendations(recs: Informer<TuningRecommendation>): void {
    const counts = new Map<string, number>();
    for (const r of recs.list())
      counts.set(r.status?.state ?? 'Pending', (counts.get(r.status?.state ?? 'Pending') ?? 0) + 1);
    this.metrics.recommendations.reset();
    for (const [state, n] of counts) this.metrics.recommendations.set({ state }, n);
  }

  private async stopLeading(): Promise<void> {
    this.leading = false;
    this.synced = false;
    this.term?.abort(new FencedError('work of a finished leadership term'));
    this.controller?.cancelAll();
    const loops = this.loops.splice(0);
    await Promise.all(this.informers.map((i) => i.stop()));
    await Promise.all(loops.map((l) => l.stop()));
    this.informers = [];
  }

  /** Stops; `releaseLease: false` leaves the lease to expire, as a crash would. */
  async stop(opts: { releaseLease?: boolean } = {}): Promise<void> {
    this.stopping = true;
    await this.elector?.stop(opts.releaseLease ?? true);
    await this.stopLeading();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
    await this.client.close();
  }
}

/** This process's memory limit: the cgroup's (v2, then v1), else the machine's. */
export function memoryLimitBytes(): number {
  for (const file of ['/sys/fs/cgroup/memory.max', '/sys/fs/cgroup/memory/memory.limit_in_bytes']) {
    try {
      const v = Number(readFileSync(file, 'utf8').trim());
      if (Number.isFinite(v) && v > 0 && v < totalmem() * 4) return v;
    } catch {
      // not in this cgroup layout
    }
  }
  return totalmem();
}

/**
 * A sweep's heap when none is configured: 70 % of the memory limit, less ~300 MiB for the operator itself,
 * shared by the concurrent sweeps (at least 256 MiB each). Simulations also use typed arrays outside the heap;
 * the inputs that size those are bounded at parse, and a crash counter stops a sweep that still kills us.
 */
export function defaultSweepMemoryMb(concurrent: number): number {
  const mb = memoryLimitBytes() / 2 ** 20;
  return Math.max(256, Math.floor((mb * 0.7 - 300) / Math.max(1, concurrent)));
}
