import type { Logger } from 'pino';
import type { DeploymentTuning, GpuInventory, ServingSettings } from '../../api/index.ts';
import type { WorkloadProfile } from '../../telemetry/profile/profile.ts';
import type { KubeClient } from '../kube/client.ts';
import type { EventRecorder } from '../kube/events.ts';
import type { Informer } from '../kube/informer.ts';
import type { KubeObject } from '../kube/resources.ts';
import type { OperatorMetrics } from '../metrics.ts';
import type { SweepJobInput, SweepJobResult } from '../sweep/job.ts';
import type { UrlPolicy } from '../sweep/url-policy.ts';
import type { TargetAdapter } from '../target/adapter.ts';
import type { TelemetryAccess } from '../telemetry/sources.ts';
import type { FairScheduler } from './fair-scheduler.ts';

/**
 * What the tuning controller's parts share: its options, limits and clock, the sweep slots, and the work in
 * flight. Sweeps and drift checks run in the background; what they finish is handed to the next reconcile
 * of their key through these maps, so every status write happens inside a reconcile.
 */

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
  /** Which URLs URL trace sources may fetch (default: https to public addresses). */
  urlPolicy?: UrlPolicy;
  /** Cap on one trace's bytes (fetched, and inflated). */
  maxTraceBytes?: number;
  /** Cap on one trace's rows. */
  maxTraceRows?: number;
  /** Least time between two sweeps of one object, whatever its schedule says (default 5 minutes). */
  minScheduleIntervalMs?: number;
  /** Cap on a sweep's deadline (spec.sweepTimeout; default 30 minutes). */
  maxSweepDurationMs?: number;
  /** Sweeps in a row that may crash before a slot is given up as Failed (default 3). */
  maxSweepCrashes?: number;
  /** V8 heap of one sweep (its job thread and evaluation threads share it), MiB; unset: V8's default. */
  sweepMemoryMb?: number;
  /** Worker threads of one sweep's evaluation pool. */
  sweepThreads?: number;
  runJob?: JobRunner;
  /** The cluster's Prometheus (administrator-set, trusted): the default of Prometheus sources. */
  prometheusUrl?: string;
  /** Which Prometheus URLs tenants may name (default: https to public addresses only). */
  metricsUrlPolicy?: UrlPolicy;
  /** Secrets (by name, in a DeploymentTuning's namespace) a Prometheus source may take a bearer token from. */
  prometheusTokenSecrets?: string[];
  now?: () => Date;
}

export const CONTROLLER_DEFAULTS = {
  minScheduleIntervalMs: 5 * 60_000,
  maxSweepDurationMs: 30 * 60_000,
  maxSweepCrashes: 3,
};

/** The longest a reconcile asks to wait before looking again. */
export const MAX_REQUEUE_MS = 6 * 3_600_000;

export interface RunningSweep {
  slot: string;
  abort: AbortController;
}

/** A sweep's outcome, written by the next reconcile of its key. */
export interface FinishedSweep {
  slot: string;
  /** Why it ran (status.sweepReason when it started). */
  reason: 'Schedule' | 'WorkloadDrift';
  startedTime: string;
  completedTime: string;
  generation: number;
  baseline: ServingSettings;
  inventory: GpuInventory | undefined;
  result?: SweepJobResult;
  error?: { reason: string; message: string };
}

/** A drift check's outcome, written by the next reconcile of its key. */
export type DriftCheckResult = { profile: WorkloadProfile } | { error: { reason: string; message: string } };

/** Background work by key: at most one sweep and one drift check each, running or waiting to be written. */
export interface InFlight {
  running: Map<string, RunningSweep>;
  finished: Map<string, FinishedSweep>;
  checking: Map<string, AbortController>;
  checked: Map<string, DriftCheckResult>;
}

export interface TuningContext {
  o: ControllerOptions;
  limits: typeof CONTROLLER_DEFAULTS;
  runJob: JobRunner;
  now: () => Date;
  scheduler: FairScheduler;
  inFlight: InFlight;
  /** Schedules a reconcile of a key (set by the manager on the controller, looked up at each call). */
  enqueue: (key: string) => void;
}

/** What the telemetry sources may reach. */
export function telemetryAccess(o: ControllerOptions): TelemetryAccess {
  return {
    prometheusUrl: o.prometheusUrl,
    urlPolicy: o.metricsUrlPolicy,
    tokenSecretNames: o.prometheusTokenSecrets,
    traceRoots: o.traceRoots,
  };
}
