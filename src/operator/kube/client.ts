import { KubeConfig } from '@kubernetes/client-node';
import { type Dispatcher, request } from 'undici';
import { httpAgent } from '../../telemetry/http-agent.ts';

/**
 * A small REST client for the Kubernetes API. `@kubernetes/client-node` loads kubeconfig and in-cluster
 * credentials; requests go straight through undici so that we control content types (merge patch, apply),
 * timeouts and watch streams, and reuse one connection pool (the library builds a new agent per request).
 */

export class ApiError extends Error {
  readonly status: number;
  readonly reason: string | undefined;
  readonly body: unknown;
  constructor(status: number, message: string, reason?: string, body?: unknown) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.reason = reason;
    this.body = body;
  }
}

export const isNotFound = (e: unknown): boolean => e instanceof ApiError && e.status === 404;
export const isConflict = (e: unknown): boolean => e instanceof ApiError && e.status === 409;
export const isAlreadyExists = (e: unknown): boolean =>
  e instanceof ApiError && e.status === 409 && e.reason === 'AlreadyExists';
export const isGone = (e: unknown): boolean => e instanceof ApiError && e.status === 410;

export type Query = Record<string, string | number | boolean | undefined>;

export interface RequestOptions {
  query?: Query;
  body?: unknown;
  contentType?: string;
  /** Accept header (e.g. the Table format kubectl uses); JSON by default. */
  accept?: string;
  signal?: AbortSignal;
  /** Bypass the write fence (only the leader elector's own Lease writes do). */
  unfenced?: boolean;
  /** Per-request timeout, when shorter than the client's. */
  timeoutMs?: number;
}

/** Thrown instead of sending a write while the fence is closed (this replica does not lead). */
export class FencedError extends Error {
  constructor(what: string) {
    super(`not the leader: refused to send ${what}`);
    this.name = 'FencedError';
  }
}

export const MERGE_PATCH = 'application/merge-patch+json';
export const APPLY_PATCH = 'application/apply-patch+yaml';

export interface WatchEvent<T = unknown> {
  type: 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK' | 'ERROR';
  object: T;
}

/** Options that shape a client: request timeout and which user agent the server logs. */
export interface KubeClientOptions {
  requestTimeoutMs?: number;
  userAgent?: string;
  /** Act as another user (Impersonate-* headers), e.g. to test RBAC rules. */
  impersonate?: { user: string; groups?: string[] };
  /**
   * Field manager of writes that are not server-side applies. Without it the API server derives one from the
   * user agent, which names the replica: every restart would add a managedFields entry.
   */
  fieldManager?: string;
}

/** What every view of one client shares: the connection pools and the write fence. */
interface Shared {
  agent?: Dispatcher;
  watchAgent?: Dispatcher;
  fence?: (what: string) => void;
}

export class KubeClient {
  readonly config: KubeConfig;
  readonly server: string;
  private readonly timeoutMs: number;
  private readonly userAgent: string;
  private readonly impersonate: KubeClientOptions['impersonate'];
  private readonly fieldManager: string | undefined;
  private readonly shared: Shared;
  /** Aborts every request of this view (see {@link withSignal}). */
  private readonly signal: AbortSignal | undefined;

  constructor(config: KubeConfig, options: KubeClientOptions = {}) {
    this.config = config;
    const cluster = config.getCurrentCluster();
    if (!cluster) throw new Error('kubeconfig has no current cluster');
    this.server = cluster.server.replace(/\/+$/, '');
    this.timeoutMs = options.requestTimeoutMs ?? 30_000;
    this.userAgent = options.userAgent ?? 'servetune-operator';
    this.impersonate = options.impersonate;
    this.fieldManager = options.fieldManager;
    this.shared = {};
    this.signal = undefined;
  }

  /**
   * A view of this client whose requests (watches included) abort when `signal` does: the operator gives its
   * controller one per leadership term, so losing the lease cancels whatever the controller has in flight.
   */
  withSignal(signal: AbortSignal): KubeClient {
    const view = Object.create(KubeClient.prototype) as KubeClient;
    Object.assign(view, this, { signal: this.signal ? AbortSignal.any([this.signal, signal]) : signal });
    return view;
  }

  /**
   * Installs a check run immediately before every write (POST, PUT, PATCH, DELETE) of every view of this
   * client; it throws to refuse the write. The operator closes it whenever this replica does not hold the
   * lease, so a deposed or frozen leader cannot write once another replica may lead.
   */
  setWriteFence(check: ((what: string) => void) | undefined): void {
    this.shared.fence = check;
  }

  /** From a kubeconfig file, or the in-cluster service account when no file is given. */
  static load(kubeconfig?: string, options?: KubeClientOptions): KubeClient {
    const kc = new KubeConfig();
    if (kubeconfig) kc.loadFromFile(kubeconfig);
    else if (process.env.KUBERNETES_SERVICE_HOST) kc.loadFromCluster();
    else kc.loadFromDefault();
    return new KubeClient(kc, options);
  }

  /** Credentials are re-read for every request (service-account tokens rotate); TLS material once. */
  private async prepare(
    watch: boolean,
  ): Promise<{ headers: Record<string, string | string[]>; dispatcher: Dispatcher }> {
    const opts: {
      headers?: Record<string, string>;
      ca?: Buffer;
      cert?: Buffer;
      key?: Buffer;
      rejectUnauthorized?: boolean;
      servername?: string;
      auth?: string;
    } = {};
    await this.config.applyToHTTPSOptions(opts as never);
    const headers: Record<string, string | string[]> = {
      accept: 'application/json',
      'user-agent': this.userAgent,
    };
    for (const [k, v] of Object.entries(opts.headers ?? {})) headers[k.toLowerCase()] = String(v);
    if (opts.auth) headers.authorization = `Basic ${Buffer.from(opts.auth).toString('base64')}`;
    if (this.impersonate) {
      headers['impersonate-user'] = this.impersonate.user;
      // undici sends repeated headers for array values.
      if (this.impersonate.groups) headers['impersonate-group'] = this.impersonate.groups;
    }
    if (!this.shared.agent) {
      const connect = {
        ca: opts.ca,
        cert: opts.cert,
        key: opts.key,
        rejectUnauthorized: opts.rejectUnauthorized,
        servername: opts.servername,
        keepAlive: true,
        keepAliveInitialDelay: 30_000,
      };
      this.shared.agent = httpAgent({ connect, headersTimeout: this.timeoutMs, bodyTimeout: this.timeoutMs });
      // Watches idle legitimately; the informer's watchdog handles stalls.
      this.shared.watchAgent = httpAgent({ connect, headersTimeout: this.timeoutMs, bodyTimeout: 0 });
    }
    return { headers, dispatcher: watch ? this.shared.watchAgent! : this.shared.agent };
  }

  private url(path: string, query?: Query): string {
    const u = new URL(this.server + path);
    for (const [k, v] of Object.entries(query ?? {})) if (v !== undefined) u.searchParams.set(k, String(v));
    return u.toString();
  }

  async request<T = unknown>(method: string, path: string, opts: RequestOptions = {}): Promise<T> {
    // Work of a finished term (not awaited by stop()) must not reopen connections after close().
    this.signal?.throwIfAborted();
    const { headers, dispatcher } = await this.prepare(false);
    // Checked last thing before sending (after the credential read above), so a lease lost meanwhile counts.
    if (method !== 'GET' && !opts.unfenced) this.shared.fence?.(`${method} ${path}`);
    if (opts.accept) headers.accept = opts.accept;
    let body: string | undefined;
    if (opts.body !== undefined) {
      body = JSON.stringify(opts.body);
      headers['content-type'] = opts.contentType ?? 'application/json';
    }
    const timeout = AbortSignal.timeout(
      Math.ceil(Math.min(this.timeoutMs, opts.timeoutMs ?? this.timeoutMs)),
    );
    const signal = AbortSignal.any(
      [timeout, opts.signal, this.signal].filter((s): s is AbortSignal => s !== undefined),
    );
    const query =
      this.fieldManager && method !== 'GET' && method !== 'DELETE' && opts.contentType !== APPLY_PATCH
        ? { fieldManager: this.fieldManager, ...opts.query }
        : opts.query;
    const res = await request(this.url(path, query), {
      method: method as Dispatcher.HttpMethod,
      headers,
      body,
      dispatcher,
      signal,
    });
    const text = await res.body.text();
    const parsed = text ? safeJson(text) : undefined;
    if (res.statusCode >= 400) throw toApiError(res.statusCode, parsed, text, `${method} ${path}`);
    return parsed as T;
  }

  /** A GET whose body is returned as text (e.g. the API server's own /metrics). */
  async getText(path: string): Promise<string> {
    this.signal?.throwIfAborted();
    const { headers, dispatcher } = await this.prepare(false);
    headers.accept = 'text/plain';
    const res = await request(this.url(path), { method: 'GET', headers, dispatcher, signal: this.signal });
    const text = await res.body.text();
    if (res.statusCode >= 400) throw toApiError(res.statusCode, safeJson(text), text, `GET ${path}`);
    return text;
  }

  get<T>(path: string, query?: Query, opts?: Omit<RequestOptions, 'query' | 'body'>): Promise<T> {
    return this.request<T>('GET', path, { ...opts, query });
  }
  create<T>(path: string, body: unknown, opts?: Omit<RequestOptions, 'body'>): Promise<T> {
    return this.request<T>('POST', path, { ...opts, body });
  }
  replace<T>(path: string, body: unknown, opts?: Omit<RequestOptions, 'body'>): Promise<T> {
    return this.request<T>('PUT', path, { ...opts, body });
  }
  mergePatch<T>(path: string, patch: unknown): Promise<T> {
    return this.request<T>('PATCH', path, { body: patch, contentType: MERGE_PATCH });
  }
  apply<T>(path: string, body: unknown, fieldManager: string, force = true): Promise<T> {
    return this.request<T>('PATCH', path, { body, contentType: APPLY_PATCH, query: { fieldManager, force } });
  }
  delete(path: string, query?: Query): Promise<unknown> {
    return this.request('DELETE', path, { query });
  }

  /**
   * Streams a watch until the server closes it (resolves) or it fails (rejects). `onEvent` sees every event,
   * bookmarks and ERROR events included; aborting `signal` ends the stream and resolves.
   */
  async watch<T>(
    path: string,
    query: Query,
    onEvent: (e: WatchEvent<T>) => void,
    signal: AbortSignal,
  ): Promise<void> {
    if (this.signal) signal = AbortSignal.any([signal, this.signal]);
    if (signal.aborted) return;
    const { headers, dispatcher } = await this.prepare(true);
    let res: Dispatcher.ResponseData;
    try {
      res = await request(this.url(path, { ...query, watch: true }), {
        method: 'GET',
        headers,
        dispatcher,
        signal,
      });
    } catch (e) {
      if (signal.aborted) return;
      throw e;
    }
    if (res.statusCode >= 400) {
      const text = await res.body.text();
      throw toApiError(res.statusCode, safeJson(text), text, `WATCH ${path}`);
    }
    let pending = '';
    // One decoder for the whole stream: a multi-byte character split across chunks must not be mangled.
    const decoder = new TextDecoder('utf-8');
    try {
      for await (const chunk of res.body) {
        pending += typeof chunk === 'string' ? chunk : decoder.decode(chunk as Buffer, { stream: true });
        let nl = pending.indexOf('\n');
        while (nl >= 0) {
          const line = pending.slice(0, nl).trim();
          pending = pending.slice(nl + 1);
          if (line) onEvent(JSON.parse(line) as WatchEvent<T>);
          nl = pending.indexOf('\n');
        }
      }
    } catch (e) {
      if (signal.aborted) return;
      throw e;
    }
  }

  async close(): Promise<void> {
    await Promise.all([this.shared.agent?.close(), this.shared.watchAgent?.close()]);
    this.shared.agent = undefined;
    this.shared.watchAgent = undefined;
  }
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

function toApiError(status: number, parsed: unknown, text: string, what: string): ApiError {
  const s = parsed as { message?: string; reason?: string } | undefined;
  const message = s?.message ?? (text.slice(0, 200) || `HTTP ${status}`);
  return new ApiError(status, `${what}: ${status} ${message}`, s?.reason, parsed);
}
