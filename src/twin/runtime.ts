import type { Logger } from 'pino';
import { Gauge } from 'prom-client';
import type { LiveEndReason, LiveObserver, LiveRole, LiveSimulation } from '../sim/live.ts';
import type { VirtualClock } from './clock.ts';
import type { DynamoMetrics, ErrorType, FrontendEndpoint, WorkerType } from './dynamo-metrics.ts';
import { type RequestTraceWriter, requestEndRecord } from './request-trace.ts';

/**
 * The twin's core: a live simulation on a virtual clock tied to the wall clock, requests from any source
 * (HTTP clients, a trace feeder) tracked from arrival to end, and their life reported the way a Dynamo
 * frontend reports it (metrics, request traces). Sources see their requests through a listener; the HTTP
 * layer streams tokens from it.
 *
 * Time: latencies are simulated (virtual) time, so a twin run faster than real time still reports the
 * simulated deployment's latencies; Prometheus rates are per wall second, as always.
 */

export interface RequestListener {
  /** First output token at simulated time `tMs`, with the prompt tokens served from cache. */
  firstToken?(tMs: number, cachedTokens: number): void;
  /** Output token `index` (1-based; 1 is the first token) at `tMs`. */
  token?(index: number, tMs: number): void;
  /** The request ended: finished, cancelled, or rejected for `reason`. */
  end(reason: LiveEndReason, tokens: number, tMs: number): void;
}

export interface TwinRequestSpec {
  requestId: string;
  endpoint: FrontendEndpoint;
  stream: boolean;
  inputTokens: number;
  outputTokens: number;
  /** Content ids, one per `contentBlockSize` prompt tokens. */
  blockIds: ArrayLike<number>;
  /** Simulated arrival (default: now). */
  atMs?: number;
  listener?: RequestListener;
}

/** A request the twin tracks, from submission to its end. */
export class TwinRequest {
  readonly spec: TwinRequestSpec;
  readonly arrivalMs: number;
  simId: number;
  started = false;
  firstTokenMs = Number.NaN;
  lastTokenMs = Number.NaN;
  lastGapMs = Number.NaN;
  tokens = 0;
  cachedTokens = 0;
  prefillWorker = -1;
  decodeWorker = -1;
  ended = false;
  constructor(spec: TwinRequestSpec, arrivalMs: number, simId: number) {
    this.spec = spec;
    this.arrivalMs = arrivalMs;
    this.simId = simId;
  }
}

export interface TwinRuntimeOptions {
  sim: LiveSimulation;
  clock: VirtualClock;
  metrics: DynamoMetrics;
  /** Tokens per content id (the simulation's trace block size). */
  contentBlockSize: number;
  /** Model name in request traces. */
  model: string;
  traceWriter?: RequestTraceWriter;
  logger?: Logger;
  /** `dynamo_component` of a worker of each role (Dynamo's vLLM workers register as 'backend'/'prefill'). */
  componentOf?: (role: LiveRole) => string;
  /** Longest wall wait between simulation advances when idle (ms; default 250). */
  idleTickMs?: number;
}

/** How a simulation end reason maps onto Dynamo's error types. */
export function errorTypeOf(reason: LiveEndReason): ErrorType {
  if (reason === 'finished') return '';
  if (reason === 'cancelled') return 'cancelled';
  if (/larger than|too long|never fit|context/i.test(reason)) return 'validation';
  return 'internal';
}

const workerType = (role: LiveRole): WorkerType => (role === 'prefill' ? 'prefill' : 'decode');

export class TwinRuntime implements LiveObserver {
  readonly sim: LiveSimulation;
  readonly clock: VirtualClock;
  readonly metrics: DynamoMetrics;
  readonly contentBlockSize: number;
  private readonly opts: TwinRuntimeOptions;
  private readonly bySimId = new Map<number, TwinRequest>();
  private timer: NodeJS.Timeout | undefined;
  private running = false;
  private roles = new Map<number, LiveRole>();
  /** Requests submitted and not ended. */
  inflight = 0;
  /** Requests ended, by outcome (for logs, tests and the bench). */
  readonly ended = { finished: 0, cancelled: 0, rejected: 0 };
  /** Simulated ms the simulation was behind the clock after the last advance; worst since start. */
  lagMs = 0;
  maxLagMs = 0;
  private readonly lagGauge: Gauge;
  private readonly hooks: (() => void)[] = [];

  constructor(opts: TwinRuntimeOptions) {
    this.opts = opts;
    this.sim = opts.sim;
    this.clock = opts.clock;
    this.metrics = opts.metrics;
    this.contentBlockSize = opts.contentBlockSize;
    this.sim.setObserver(this);
    this.lagGauge = new Gauge({
      name: 'servetune_twin_lag_seconds',
      help: 'Simulated seconds the twin was behind its clock after its last advance (grows when it cannot keep up).',
      registers: [this.metrics.registry],
    });
  }

  /** Calls `fn` after every advance (sources that schedule against simulated time). */
  onAdvance(fn: () => void): void {
    this.hooks.push(fn);
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.pump();
  }

  stop(): void {
    this.running = false;
    if (this.soon) clearImmediate(this.soon);
    this.soon = undefined;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }

  /** Brings the simulation up to the clock, then sleeps until its next event (or the idle tick). */
  pump(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    const target = this.clock.now();
    if (target > this.sim.now) this.sim.advanceTo(target);
    for (const h of this.hooks) h();
    this.lagMs = Math.max(0, this.clock.now() - this.sim.now);
    if (this.lagMs > this.maxLagMs) this.maxLagMs = this.lagMs;
    if (!this.running) return;
    const next = this.sim.nextEventTime();
    const idle = this.opts.idleTickMs ?? 250;
    const wait = Number.isFinite(next) ? Math.min(idle, this.clock.wallDelayUntil(next)) : idle;
    this.timer = setTimeout(() => this.pump(), Math.ceil(wait));
  }

  /**
   * Submits a request at simulated `atMs` (not before the simulation's now), or, without one, at the clock's
   * now, to which the simulation is first brought. A scheduled submission does not advance the simulation, so
   * arrivals scheduled together (a trace's rows) keep their times exactly even when the twin runs behind.
   */
  submit(spec: TwinRequestSpec): TwinRequest {
    if (spec.atMs === undefined) {
      const now = this.clock.now();
      if (now > this.sim.now) this.sim.advanceTo(now);
    }
    const at = Math.max(spec.atMs ?? this.sim.now, this.sim.now);
    const simId = this.sim.submit({
      inputLength: spec.inputTokens,
      outputLength: spec.outputTokens,
      hashIds: spec.blockIds,
      atMs: at,
    });
    const r = new TwinRequest(spec, at, simId);
    this.bySimId.set(simId, r);
    this.inflight++;
    // A request arriving now starts now (HTTP); a scheduled one when the simulation routes it.
    if (at <= this.sim.now) this.markStarted(r);
    // The next advance is scheduled, not run here: callbacks must not fire before the caller has the handle.
    if (this.running && spec.atMs === undefined) this.pumpSoon();
    return r;
  }

  /** A client went away: the request is cancelled in the simulation (its KV freed). */
  cancel(r: TwinRequest): void {
    if (r.ended) return;
    this.sim.cancel(r.simId);
    this.metrics.clientDisconnected();
    if (this.running) this.pumpSoon();
  }

  private soon: NodeJS.Immediate | undefined;
  private pumpSoon(): void {
    if (this.soon) return;
    this.soon = setImmediate(() => {
      this.soon = undefined;
      if (this.running) this.pump();
    });
  }

  private markStarted(r: TwinRequest): void {
    if (r.started) return;
    r.started = true;
    this.metrics.requestStarted(r.spec.endpoint, r.spec.stream ? 'stream' : 'unary');
  }

  // --- LiveObserver -------------------------------------------------------------------------------------

  onRouted(id: number, worker: number): void {
    const r = this.bySimId.get(id);
    if (!r) return;
    this.markStarted(r);
    if (r.prefillWorker < 0) r.prefillWorker = worker;
  }

  onFirstToken(id: number, tMs: number, cachedTokens: number): void {
    const r = this.bySimId.get(id);
    if (!r) return;
    this.markStarted(r);
    r.firstTokenMs = tMs;
    r.cachedTokens = cachedTokens;
    const info = this.sim.requestInfo(id);
    if (info) {
      if (info.prefillWorker >= 0) r.prefillWorker = info.prefillWorker;
      r.decodeWorker = info.decodeWorker;
    }
    const role = this.roleOf(r.prefillWorker);
    this.metrics.firstToken((tMs - r.arrivalMs) / 1000, r.spec.inputTokens, {
      id: r.prefillWorker,
      type: role ? workerType(role) : 'decode',
    });
    this.metrics.cachedTokens(cachedTokens);
    r.spec.listener?.firstToken?.(tMs, cachedTokens);
  }

  onToken(id: number, index: number, tMs: number): void {
    const r = this.bySimId.get(id);
    if (!r) return;
    r.tokens = index;
    this.metrics.tokens(1);
    if (index > 1) {
      r.lastGapMs = tMs - r.lastTokenMs;
      this.metrics.interTokenLatency(r.lastGapMs / 1000);
    }
    r.lastTokenMs = tMs;
    r.spec.listener?.token?.(index, tMs);
  }

  onEnded(id: number, tMs: number, reason: LiveEndReason): void {
    const r = this.bySimId.get(id);
    if (!r) return;
    this.bySimId.delete(id);
    r.ended = true;
    this.inflight--;
    this.markStarted(r);
    if (reason === 'finished') this.ended.finished++;
    else if (reason === 'cancelled') this.ended.cancelled++;
    else this.ended.rejected++;
    const hadFirst = !Number.isNaN(r.firstTokenMs);
    this.metrics.requestFinished({
      endpoint: r.spec.endpoint,
      type: r.spec.stream ? 'stream' : 'unary',
      durationS: (tMs - r.arrivalMs) / 1000,
      outputTokens: r.tokens,
      hadFirstToken: hadFirst,
      errorType: errorTypeOf(reason),
    });
    const decode = r.decodeWorker >= 0 ? r.decodeWorker : r.prefillWorker;
    if (r.tokens > 1 && decode >= 0) {
      const role = this.roleOf(decode);
      this.metrics.lastInterTokenLatency(decode, role ? workerType(role) : 'decode', r.lastGapMs / 1000);
    }
    if (this.opts.traceWriter && reason !== 'cancelled') {
      this.opts.traceWriter.write(
        requestEndRecord({
          requestId: r.spec.requestId,
          model: this.opts.model,
          inputTokens: r.spec.inputTokens,
          outputTokens: r.tokens,
          cachedTokens: hadFirst ? r.cachedTokens : undefined,
          receivedUnixMs: Math.round(this.clock.epochAt(r.arrivalMs)),
          ttftMs: hadFirst ? r.firstTokenMs - r.arrivalMs : undefined,
          totalTimeMs: tMs - r.arrivalMs,
          avgItlMs: r.tokens > 1 ? (r.lastTokenMs - r.firstTokenMs) / (r.tokens - 1) : undefined,
          kvHitRate: hadFirst && r.spec.inputTokens > 0 ? r.cachedTokens / r.spec.inputTokens : undefined,
          prefillWorkerId: r.prefillWorker >= 0 ? r.prefillWorker : undefined,
          decodeWorkerId: decode >= 0 ? decode : undefined,
          traceBlockSize: this.contentBlockSize,
          blockIds: r.spec.blockIds,
        }),
      );
    }
    r.spec.listener?.end(reason, r.tokens, tMs);
  }

  // --- Gauges ---------------------------------------------------------------------------------------------

  private roleOf(worker: number): LiveRole | undefined {
    if (worker >= 0 && !this.roles.has(worker)) {
      this.roles = new Map(this.sim.workers().map((w) => [w.id, w.role]));
    }
    return this.roles.get(worker);
  }

  /** Refreshes the per-worker gauges and the lag (called before each scrape). */
  refreshGauges(): void {
    const component =
      this.opts.componentOf ?? ((role: LiveRole) => (role === 'prefill' ? 'prefill' : 'backend'));
    const workers = this.sim.workers().filter((w) => w.state !== 'gone');
    this.roles = new Map(workers.map((w) => [w.id, w.role]));
    // A starting worker is still loading its model: like a pod whose engine is not up, it publishes no KV
    // stats yet (its series appear, from an empty cache, once it serves).
    this.metrics.setWorkers(
      workers
        .filter((w) => w.state !== 'starting')
        .map((w) => ({
          workerId: w.id,
          workerType: workerType(w.role),
          component: component(w.role),
          activeBlocks: w.activeBlocks,
          totalBlocks: w.totalBlocks,
          usage: w.usage,
          prefixHitRate: w.prefixHitRate,
        })),
    );
    this.lagGauge.set(this.lagMs / 1000);
  }

  /** Prometheus text of everything, the simulation first brought up to the clock and gauges refreshed. */
  async scrape(): Promise<string> {
    // Counters as of the moment of the scrape, as a real frontend's are, even if the process was starved of
    // CPU since its last advance.
    if (this.running) this.pump();
    this.refreshGauges();
    return this.metrics.metrics();
  }
}
