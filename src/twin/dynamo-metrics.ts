import { Counter, Gauge, Histogram, Registry } from 'prom-client';

/**
 * The metrics a Dynamo deployment exports, with Dynamo's names, label names and histogram buckets, so that
 * dashboards and PromQL written for a real deployment work unchanged against the twin.
 *
 * Sources (ai-dynamo/dynamo): `lib/runtime/src/metrics/prometheus_names.rs` (names, label values),
 * `lib/llm/src/http/service/metrics.rs` (frontend label sets, bucket generation and defaults, what is observed
 * when), `lib/llm/src/discovery/worker_monitor.rs` (per-worker gauges), `docs/observability/metrics.md` and its
 * recorded scrapes (`metrics_examples/fe.log`, `vllm.log`: the `dynamo_component_kvstats_*` label set).
 *
 * What the twin does that one real process does not: it serves the frontend's metrics and every simulated
 * worker's `kvstats` gauges on one endpoint. A real worker is its own scrape target (its pod tells the series
 * apart); here the kvstats series carry `worker_id`, `dp_rank` and `worker_type` (Dynamo's own per-worker label
 * names) instead. `dynamo_namespace` is on the component metrics as Dynamo's runtime adds it; the frontend's
 * metrics carry only `model`, as Dynamo's do (its operator's PodMonitor adds `dynamo_namespace` by relabelling).
 */

/** Log-spaced buckets rounded to 2 significant figures, starting at 0, as Dynamo's frontend generates them. */
export function dynamoLogBuckets(min: number, max: number, count: number): number[] {
  if (count <= 0) return [];
  if (count === 1) return [0];
  const out = [0];
  const lo = Math.log(min);
  const hi = Math.log(max);
  for (let i = 1; i < count; i++) {
    const v = roundSignificant(Math.exp(lo + ((hi - lo) * i) / (count - 1)), 2);
    if (v !== out[out.length - 1]) out.push(v);
  }
  return out;
}

function roundSignificant(value: number, digits: number): number {
  if (value === 0) return 0;
  const magnitude = Math.floor(Math.log10(Math.abs(value)));
  const scale = 10 ** (digits - 1 - magnitude);
  // Dividing by the scale (rather than multiplying by its inverse) keeps 0.0022 exact, as Rust prints it.
  return Math.round(value * scale) / scale;
}

export interface BucketSpec {
  min: number;
  max: number;
  count: number;
}

/**
 * Dynamo's defaults (newest frontend source) and the environment variables that override them there
 * (`DYN_METRICS_<NAME>_{MIN,MAX,COUNT}`); the twin honours the same variables, so its buckets can be made to
 * match a deployment that changed them.
 */
export const DEFAULT_BUCKETS = {
  REQUEST_DURATION: { min: 1, max: 512, count: 10 },
  INPUT_SEQUENCE: { min: 50, max: 128_000, count: 12 },
  OUTPUT_SEQUENCE: { min: 50, max: 32_000, count: 10 },
  TTFT: { min: 0.001, max: 480, count: 18 },
  ITL: { min: 0.001, max: 2, count: 13 },
} as const satisfies Record<string, BucketSpec>;

const MAX_BUCKET_COUNT = 512;

/** The bucket spec for `name` from `env`, falling back to the default as Dynamo does for invalid values. */
export function bucketSpecFromEnv(
  name: keyof typeof DEFAULT_BUCKETS,
  env: Record<string, string | undefined> = process.env,
): BucketSpec {
  const d = DEFAULT_BUCKETS[name];
  const num = (suffix: string, fallback: number) => {
    const raw = env[`DYN_METRICS_${name}_${suffix}`];
    const v = raw === undefined ? Number.NaN : Number(raw);
    return Number.isFinite(v) ? v : fallback;
  };
  const s = { min: num('MIN', d.min), max: num('MAX', d.max), count: num('COUNT', d.count) };
  const valid =
    s.min > 0 && s.min < s.max && Number.isInteger(s.count) && s.count > 0 && s.count <= MAX_BUCKET_COUNT;
  return valid ? s : { ...d };
}

/** Dynamo's `endpoint` label values for the two OpenAI routes the twin serves. */
export type FrontendEndpoint = 'completions' | 'chat_completions';
export type RequestType = 'stream' | 'unary';
/** Dynamo's `error_type` label values ('' for a success). */
export type ErrorType =
  | ''
  | 'validation'
  | 'not_found'
  | 'overload'
  | 'cancelled'
  | 'response_timeout'
  | 'internal'
  | 'not_implemented';

export type WorkerType = 'prefill' | 'decode';

export interface ModelConfigGauges {
  totalKvBlocks: number;
  maxNumSeqs: number;
  maxNumBatchedTokens: number;
  contextLength: number;
  kvCacheBlockSize: number;
  migrationLimit: number;
}

export interface WorkerKvStats {
  /** Stable simulated worker id (the `worker_id` label). */
  workerId: number;
  workerType: WorkerType;
  /** The component the worker belongs to (`dynamo_component`), e.g. the DGD component name. */
  component: string;
  activeBlocks: number;
  totalBlocks: number;
  /** 0-1. */
  usage: number;
  /** 0-1. */
  prefixHitRate: number;
  /** Prompt tokens routed to the worker and not yet prefilled (the router's view), when known. */
  activePrefillTokens?: number;
}

export interface DynamoMetricsOptions {
  /** The served model's name as clients send it; Dynamo lower-cases it for the request metrics. */
  model: string;
  /** `dynamo_namespace` of the component metrics (Dynamo's operator: `<k8s namespace>-<DGD name>`). */
  dynamoNamespace: string;
  /** Bucket overrides, as `DYN_METRICS_*` would set them; defaults from `env` (process.env). */
  env?: Record<string, string | undefined>;
}

/** One twin's metrics. Label children of the hot series are resolved once, so per-token calls do no lookups. */
export class DynamoMetrics {
  readonly registry = new Registry();
  readonly model: string;
  readonly modelLabel: string;
  readonly dynamoNamespace: string;

  private readonly requestsStarted: Counter<'model' | 'endpoint' | 'request_type'>;
  private readonly requests: Counter<'model' | 'endpoint' | 'request_type' | 'status' | 'error_type'>;
  private readonly inflight: Gauge<'model'>;
  private readonly active: Gauge<'model'>;
  private readonly queued: Gauge<'model'>;
  private readonly disconnected: Gauge;
  private readonly requestDuration: Histogram<'model'>;
  private readonly isl: Histogram<'model'>;
  private readonly osl: Histogram<'model'>;
  private readonly cached: Histogram<'model'>;
  private readonly outputTokens: Counter<'model'>;
  private readonly ttft: Histogram<'model'>;
  private readonly itl: Histogram<'model'>;
  private readonly cancellations: Counter<'model' | 'endpoint' | 'request_type'>;
  private readonly rejections: Counter<'model' | 'endpoint'>;
  private readonly modelGauges: Record<keyof ModelConfigGauges, Gauge<'model'>>;
  private readonly workerDecodeBlocks: Gauge<'worker_id' | 'dp_rank' | 'worker_type'>;
  private readonly workerPrefillTokens: Gauge<'worker_id' | 'dp_rank' | 'worker_type'>;
  private readonly workerLastTtft: Gauge<'worker_id' | 'dp_rank' | 'worker_type'>;
  private readonly workerLastIsl: Gauge<'worker_id' | 'dp_rank' | 'worker_type'>;
  private readonly workerLastItl: Gauge<'worker_id' | 'dp_rank' | 'worker_type'>;
  private readonly routerQueuePending: Gauge<'worker_type'>;
  private readonly kvActive: Gauge<KvLabel>;
  private readonly kvTotal: Gauge<KvLabel>;
  private readonly kvUsage: Gauge<KvLabel>;
  private readonly kvHitRate: Gauge<KvLabel>;

  // Hot children (one model per twin).
  private readonly outputTokensChild;
  private readonly itlChild;
  private readonly ttftChild;
  private readonly inflightChild;
  private readonly activeChild;
  private readonly queuedChild;
  /** Worker series currently exported, to drop those of workers that are gone. */
  private readonly workerSeries = new Map<number, Record<KvLabel, string>>();

  constructor(opts: DynamoMetricsOptions) {
    const env = opts.env ?? process.env;
    this.model = opts.model;
    this.modelLabel = opts.model.toLowerCase();
    this.dynamoNamespace = opts.dynamoNamespace;
    const r = [this.registry];
    const buckets = (name: keyof typeof DEFAULT_BUCKETS) => {
      const s = bucketSpecFromEnv(name, env);
      return dynamoLogBuckets(s.min, s.max, s.count);
    };
    const f = (n: string) => `dynamo_frontend_${n}`;
    const islBuckets = buckets('INPUT_SEQUENCE');
    this.requestsStarted = new Counter({
      name: f('requests_started_total'),
      help: 'Total number of LLM requests started',
      labelNames: ['model', 'endpoint', 'request_type'],
      registers: r,
    });
    this.requests = new Counter({
      name: f('requests_total'),
      help: 'Total number of LLM requests processed',
      labelNames: ['model', 'endpoint', 'request_type', 'status', 'error_type'],
      registers: r,
    });
    this.inflight = new Gauge({
      name: f('inflight_requests'),
      help: 'Number of inflight requests',
      labelNames: ['model'],
      registers: r,
    });
    this.active = new Gauge({
      name: f('active_requests'),
      help: 'Number of requests currently being handled by the frontend, from HTTP handler entry to response completion',
      labelNames: ['model'],
      registers: r,
    });
    this.disconnected = new Gauge({
      name: f('disconnected_clients'),
      help: 'Number of disconnected clients',
      registers: r,
    });
    this.queued = new Gauge({
      name: f('queued_requests'),
      help: 'Number of requests in HTTP processing queue',
      labelNames: ['model'],
      registers: r,
    });
    this.requestDuration = new Histogram({
      name: f('request_duration_seconds'),
      help: 'Duration of LLM requests',
      labelNames: ['model'],
      buckets: buckets('REQUEST_DURATION'),
      registers: r,
    });
    this.isl = new Histogram({
      name: f('input_sequence_tokens'),
      help: 'Input sequence length in tokens',
      labelNames: ['model'],
      buckets: islBuckets,
      registers: r,
    });
    this.osl = new Histogram({
      name: f('output_sequence_tokens'),
      help: 'Output sequence length in tokens',
      labelNames: ['model'],
      buckets: buckets('OUTPUT_SEQUENCE'),
      registers: r,
    });
    this.outputTokens = new Counter({
      name: f('output_tokens_total'),
      help: 'Total number of output tokens generated (updates in real-time)',
      labelNames: ['model'],
      registers: r,
    });
    this.ttft = new Histogram({
      name: f('time_to_first_token_seconds'),
      help: 'Time to first token in seconds',
      labelNames: ['model'],
      buckets: buckets('TTFT'),
      registers: r,
    });
    this.itl = new Histogram({
      name: f('inter_token_latency_seconds'),
      help: 'Inter-token latency in seconds',
      labelNames: ['model'],
      buckets: buckets('ITL'),
      registers: r,
    });
    // Dynamo reuses the input-sequence buckets for cached tokens.
    this.cached = new Histogram({
      name: f('cached_tokens'),
      help: 'Number of cached tokens (prefix cache hits) per request',
      labelNames: ['model'],
      buckets: islBuckets,
      registers: r,
    });
    this.cancellations = new Counter({
      name: f('model_cancellation_total'),
      help: 'Total number of request cancellations',
      labelNames: ['model', 'endpoint', 'request_type'],
      registers: r,
    });
    this.rejections = new Counter({
      name: f('model_rejection_total'),
      help: 'Total number of requests rejected due to resource exhaustion',
      labelNames: ['model', 'endpoint'],
      registers: r,
    });
    const modelGauge = (name: string, help: string) =>
      new Gauge({ name: f(name), help, labelNames: ['model'], registers: r });
    this.modelGauges = {
      totalKvBlocks: modelGauge(
        'model_total_kv_blocks',
        'Total KV cache blocks available for a worker serving the model',
      ),
      maxNumSeqs: modelGauge(
        'model_max_num_seqs',
        'Maximum number of sequences for a worker serving the model',
      ),
      maxNumBatchedTokens: modelGauge(
        'model_max_num_batched_tokens',
        'Maximum number of batched tokens for a worker serving the model',
      ),
      contextLength: modelGauge(
        'model_context_length',
        'Maximum context length in tokens for a worker serving the model',
      ),
      kvCacheBlockSize: modelGauge(
        'model_kv_cache_block_size',
        'KV cache block size in tokens for a worker serving the model',
      ),
      migrationLimit: modelGauge(
        'model_migration_limit',
        'Maximum number of request migrations allowed for the model',
      ),
    };
    const workerGauge = (name: string, help: string) =>
      new Gauge({ name: f(name), help, labelNames: ['worker_id', 'dp_rank', 'worker_type'], registers: r });
    this.workerDecodeBlocks = workerGauge(
      'worker_active_decode_blocks',
      'Active KV cache decode blocks per worker',
    );
    this.workerPrefillTokens = workerGauge(
      'worker_active_prefill_tokens',
      'Active prefill tokens queued per worker',
    );
    this.workerLastTtft = workerGauge(
      'worker_last_time_to_first_token_seconds',
      'Last observed time to first token per worker (seconds)',
    );
    this.workerLastIsl = workerGauge(
      'worker_last_input_sequence_tokens',
      'Last observed input sequence tokens per worker',
    );
    this.workerLastItl = workerGauge(
      'worker_last_inter_token_latency_seconds',
      'Last observed inter-token latency per worker (seconds)',
    );
    this.routerQueuePending = new Gauge({
      name: f('router_queue_pending_requests'),
      help: "Number of requests pending in the router's scheduler queue",
      labelNames: ['worker_type'],
      registers: r,
    });
    const kv = (name: string, help: string) =>
      new Gauge({
        name: `dynamo_component_kvstats_${name}`,
        help,
        labelNames: KV_LABELS,
        registers: r,
      });
    this.kvActive = kv('active_blocks', 'Number of active KV cache blocks currently in use');
    this.kvTotal = kv('total_blocks', 'Total number of KV cache blocks available');
    this.kvUsage = kv('gpu_cache_usage_percent', 'GPU cache usage as a percentage (0.0-1.0)');
    this.kvHitRate = kv('gpu_prefix_cache_hit_rate', 'GPU prefix cache hit rate as a percentage (0.0-1.0)');

    const m = this.modelLabel;
    this.outputTokensChild = this.outputTokens.labels(m);
    this.itlChild = this.itl.labels(m);
    this.ttftChild = this.ttft.labels(m);
    this.inflightChild = this.inflight.labels(m);
    this.activeChild = this.active.labels(m);
    this.queuedChild = this.queued.labels(m);
    // Dynamo's gauges exist (at 0) from start-up; a scrape before the first request must already find them.
    this.inflightChild.set(0);
    this.activeChild.set(0);
    this.queuedChild.set(0);
    this.disconnected.set(0);
    this.outputTokensChild.inc(0);
  }

  /** HTTP handler entry: started counter, inflight/active and queued gauges up. */
  requestStarted(endpoint: FrontendEndpoint, type: RequestType): void {
    this.requestsStarted.labels(this.modelLabel, endpoint, type).inc();
    this.inflightChild.inc();
    this.activeChild.inc();
    this.queuedChild.inc();
  }

  /**
   * The first output token: TTFT and ISL observed, queued gauge down, the per-worker last-TTFT gauges set.
   * Dynamo observes ISL here too (not at admission).
   */
  firstToken(ttftS: number, inputTokens: number, worker?: { id: number; type: WorkerType }): void {
    this.ttftChild.observe(ttftS);
    this.isl.labels(this.modelLabel).observe(inputTokens);
    this.queuedChild.dec();
    if (worker) {
      const labels = [String(worker.id), '0', worker.type] as const;
      this.workerLastTtft.labels(...labels).set(ttftS);
      this.workerLastIsl.labels(...labels).set(inputTokens);
    }
  }

  /** Output tokens of one response chunk, the first chunk's included (Dynamo counts every chunk). */
  tokens(count: number): void {
    this.outputTokensChild.inc(count);
  }

  /** One inter-token gap in seconds. */
  interTokenLatency(seconds: number): void {
    this.itlChild.observe(seconds);
  }

  lastInterTokenLatency(workerId: number, type: WorkerType, seconds: number): void {
    this.workerLastItl.labels(String(workerId), '0', type).set(seconds);
  }

  cachedTokens(count: number): void {
    this.cached.labels(this.modelLabel).observe(count);
  }

  /**
   * The request is over: duration, OSL, requests_total with status and error type, gauges down. A request
   * that never got its first token leaves the HTTP queue here.
   */
  requestFinished(o: {
    endpoint: FrontendEndpoint;
    type: RequestType;
    durationS: number;
    outputTokens: number;
    hadFirstToken: boolean;
    errorType: ErrorType;
  }): void {
    const m = this.modelLabel;
    this.requests.labels(m, o.endpoint, o.type, o.errorType === '' ? 'success' : 'error', o.errorType).inc();
    this.requestDuration.labels(m).observe(o.durationS);
    this.osl.labels(m).observe(o.outputTokens);
    this.inflightChild.dec();
    this.activeChild.dec();
    if (!o.hadFirstToken) this.queuedChild.dec();
    if (o.errorType === 'cancelled') this.cancellations.labels(m, o.endpoint, o.type).inc();
    if (o.errorType === 'overload') this.rejections.labels(m, o.endpoint).inc();
  }

  clientDisconnected(): void {
    this.disconnected.inc();
  }

  /** Dynamo labels the model-configuration gauges with the display name, not lower-cased. */
  setModelConfig(c: ModelConfigGauges): void {
    for (const k of Object.keys(this.modelGauges) as (keyof ModelConfigGauges)[])
      this.modelGauges[k].labels(this.model).set(c[k]);
  }

  setRouterQueue(type: WorkerType, pending: number): void {
    this.routerQueuePending.labels(type).set(pending);
  }

  /** Replaces the per-worker series with the given workers' (a removed worker's series disappear). */
  setWorkers(workers: readonly WorkerKvStats[]): void {
    const seen = new Set<number>();
    for (const w of workers) {
      seen.add(w.workerId);
      let labels = this.workerSeries.get(w.workerId);
      if (!labels || labels.dynamo_component !== w.component || labels.worker_type !== w.workerType) {
        if (labels) this.removeWorker(w.workerId, labels);
        labels = {
          dynamo_namespace: this.dynamoNamespace,
          dynamo_component: w.component,
          worker_id: String(w.workerId),
          dp_rank: '0',
          worker_type: w.workerType,
        };
        this.workerSeries.set(w.workerId, labels);
      }
      this.kvActive.set(labels, w.activeBlocks);
      this.kvTotal.set(labels, w.totalBlocks);
      this.kvUsage.set(labels, w.usage);
      this.kvHitRate.set(labels, w.prefixHitRate);
      const wl = { worker_id: labels.worker_id, dp_rank: '0', worker_type: w.workerType };
      this.workerDecodeBlocks.set(wl, w.activeBlocks);
      if (w.activePrefillTokens !== undefined) this.workerPrefillTokens.set(wl, w.activePrefillTokens);
    }
    for (const [id, labels] of this.workerSeries) if (!seen.has(id)) this.removeWorker(id, labels);
  }

  private removeWorker(id: number, labels: Record<KvLabel, string>): void {
    for (const g of [this.kvActive, this.kvTotal, this.kvUsage, this.kvHitRate]) g.remove(labels);
    const wl = { worker_id: labels.worker_id, dp_rank: '0', worker_type: labels.worker_type };
    for (const g of [
      this.workerDecodeBlocks,
      this.workerPrefillTokens,
      this.workerLastTtft,
      this.workerLastIsl,
      this.workerLastItl,
    ])
      g.remove(wl);
    this.workerSeries.delete(id);
  }

  /** Prometheus text exposition of everything. */
  metrics(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}

const KV_LABELS = ['dynamo_namespace', 'dynamo_component', 'worker_id', 'dp_rank', 'worker_type'] as const;
type KvLabel = (typeof KV_LABELS)[number];
