import type { Dispatcher } from 'undici';
import { request } from 'undici';
import { z } from 'zod';
import { httpAgent } from '../http-agent.ts';

/**
 * A small client of Prometheus's HTTP query API (`/api/v1/query`, `/api/v1/query_range`), defensive about
 * everything the server sends: whoever writes a DeploymentTuning chooses the URL, so the answer may be
 * hostile or absurd. Every response is capped in bytes (read as a stream), in series and in points per
 * series, every series in labels and label length, and must match the API's shape; anything else is a
 * PrometheusError with a one-line reason (never a stack trace, never the response body echoed at length).
 * Where the client may connect is the caller's business: the operator passes a dispatcher whose DNS lookup
 * enforces its URL policy.
 */

export type PrometheusFailure =
  /** Could not connect, timed out, or the server answered 5xx. */
  | 'Unreachable'
  /** The server answered, but not as a Prometheus query API does. */
  | 'BadResponse'
  /** Prometheus refused the query (4xx with an error). */
  | 'QueryRefused'
  /** The answer exceeds a bound (bytes, series, points, labels). */
  | 'TooLarge'
  /** The query matched no series. */
  | 'NoData';

export class PrometheusError extends Error {
  readonly failure: PrometheusFailure;
  constructor(failure: PrometheusFailure, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.failure = failure;
    this.name = 'PrometheusError';
  }
}

export interface PrometheusLimits {
  /** Bytes of one response (default 16 MiB). */
  maxResponseBytes: number;
  /** Series one query may return (default 1,000). */
  maxSeries: number;
  /** Points per series of a range query (default 11,000, Prometheus's own cap). */
  maxPoints: number;
  /** Labels per series (default 64) and characters per label name or value (default 1,024). */
  maxLabels: number;
  maxLabelChars: number;
}

export const DEFAULT_PROMETHEUS_LIMITS: PrometheusLimits = {
  maxResponseBytes: 16 * 2 ** 20,
  maxSeries: 1000,
  maxPoints: 11_000,
  maxLabels: 64,
  maxLabelChars: 1024,
};

export interface PrometheusClientOptions {
  /** Base URL, e.g. http://prometheus:9090 (a path prefix is kept). */
  url: string;
  bearerToken?: string;
  /** PEM CA bundle for https (ignored when a dispatcher is given). */
  ca?: string;
  /** Connection pool to use (the operator's, with its guarded DNS lookup); default: one of our own. */
  dispatcher?: Dispatcher;
  /** Per request (default 30 s). */
  timeoutMs?: number;
  limits?: Partial<PrometheusLimits>;
  signal?: AbortSignal;
}

export interface Series {
  metric: Record<string, string>;
  /** [unix seconds, value] pairs. */
  values: [number, number][];
}

export interface Sample {
  metric: Record<string, string>;
  value: number;
}

const Labels = z.record(z.string(), z.string());
const Pair = z.tuple([z.number(), z.string()]);
const Envelope = z.object({
  status: z.enum(['success', 'error']),
  data: z
    .object({
      resultType: z.enum(['matrix', 'vector', 'scalar', 'string']),
      result: z.unknown(),
    })
    .optional(),
  errorType: z.string().optional(),
  error: z.string().optional(),
});
const MatrixResult = z.array(z.object({ metric: Labels, values: z.array(Pair) }));
const VectorResult = z.array(z.object({ metric: Labels, value: Pair }));

/** Printable, short: what an error message may quote from the server. */
function quoted(text: string, max = 200): string {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are exactly what is removed
  const clean = text.replace(/[\u0000-\u001f\u007f]+/g, ' ').trim();
  return clean.length > max ? `${clean.slice(0, max)}...` : clean;
}

/** A float as Prometheus writes it ("1.5", "NaN", "+Inf"). */
function sampleValue(s: string): number {
  if (s === '+Inf') return Number.POSITIVE_INFINITY;
  if (s === '-Inf') return Number.NEGATIVE_INFINITY;
  return Number(s);
}

export class PrometheusClient {
  readonly url: URL;
  private readonly opts: PrometheusClientOptions;
  private readonly limits: PrometheusLimits;
  private readonly dispatcher: Dispatcher;
  private readonly ownsDispatcher: boolean;

  constructor(opts: PrometheusClientOptions) {
    let url: URL;
    try {
      url = new URL(opts.url);
    } catch {
      throw new PrometheusError('BadResponse', `${quoted(opts.url, 100)} is not a URL`);
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:')
      throw new PrometheusError('BadResponse', `${url.protocol} URLs are not supported (http or https)`);
    if (url.username || url.password)
      throw new PrometheusError('BadResponse', 'credentials in the URL are not accepted; use a bearer token');
    this.url = url;
    this.opts = opts;
    this.limits = { ...DEFAULT_PROMETHEUS_LIMITS, ...opts.limits };
    this.ownsDispatcher = opts.dispatcher === undefined;
    this.dispatcher = opts.dispatcher ?? httpAgent({ connect: opts.ca ? { ca: opts.ca } : {} });
  }

  /** Where the client asks, for messages (origin and path, never credentials or query). */
  get shown(): string {
    return `${this.url.origin}${this.url.pathname.replace(/\/$/, '')}`;
  }

  async close(): Promise<void> {
    if (this.ownsDispatcher) await this.dispatcher.close();
  }

  private endpoint(path: string): URL {
    const base = this.url.pathname.endsWith('/') ? this.url.pathname : `${this.url.pathname}/`;
    return new URL(`${base}api/v1/${path}`, this.url.origin);
  }

  /** POSTs a form to the query API and returns the validated `data` of a success. */
  private async call(
    path: string,
    form: Record<string, string>,
  ): Promise<{ resultType: string; result: unknown }> {
    const timeoutMs = this.opts.timeoutMs ?? 30_000;
    const signal = AbortSignal.any(
      [AbortSignal.timeout(timeoutMs), this.opts.signal].filter((s): s is AbortSignal => s !== undefined),
    );
    const where = this.shown;
    let status: number;
    let text: string;
    try {
      const res = await request(this.endpoint(path), {
        method: 'POST',
        dispatcher: this.dispatcher,
        signal,
        headers: {
          'content-type': 'application/x-www-form-urlencoded',
          accept: 'application/json',
          ...(this.opts.bearerToken ? { authorization: `Bearer ${this.opts.bearerToken}` } : {}),
        },
        body: new URLSearchParams(form).toString(),
      });
      res.body.on('error', () => {});
      status = res.statusCode;
      const length = Number(res.headers['content-length']);
      if (Number.isFinite(length) && length > this.limits.maxResponseBytes) {
        res.body.destroy();
        throw new PrometheusError(
          'TooLarge',
          `${where}: answer larger than ${this.limits.maxResponseBytes} bytes`,
        );
      }
      const parts: Buffer[] = [];
      let size = 0;
      for await (const chunk of res.body) {
        size += chunk.length;
        if (size > this.limits.maxResponseBytes) {
          res.body.destroy();
          throw new PrometheusError(
            'TooLarge',
            `${where}: answer larger than ${this.limits.maxResponseBytes} bytes`,
          );
        }
        parts.push(chunk as Buffer);
      }
      text = Buffer.concat(parts).toString('utf8');
    } catch (e) {
      if (e instanceof PrometheusError) throw e;
      if (signal.aborted && !this.opts.signal?.aborted)
        throw new PrometheusError(
          'Unreachable',
          `${where}: no answer within ${timeoutMs >= 1000 ? `${Math.round(timeoutMs / 1000)} s` : `${timeoutMs} ms`}`,
        );
      // Deliberately vague: refused, reset or unresolvable would tell a prober what lives where. The cause is
      // kept for the caller (a URL policy refusal from its own DNS lookup is worth saying as such).
      throw new PrometheusError('Unreachable', `${where}: the server could not be reached`, { cause: e });
    }
    if (status >= 300 && status < 400)
      throw new PrometheusError('BadResponse', `${where}: HTTP ${status}; redirects are not followed`);
    if (status >= 500) throw new PrometheusError('Unreachable', `${where}: HTTP ${status}`);
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      throw new PrometheusError(
        'BadResponse',
        `${where}: HTTP ${status}, not a JSON answer (is it Prometheus?)`,
      );
    }
    const env = Envelope.safeParse(json);
    if (!env.success)
      throw new PrometheusError('BadResponse', `${where}: HTTP ${status}, not a Prometheus API answer`);
    if (env.data.status === 'error' || status >= 400)
      throw new PrometheusError(
        status === 401 || status === 403 ? 'Unreachable' : 'QueryRefused',
        `${where}: HTTP ${status}${env.data.error ? `: ${quoted(env.data.error)}` : ''}`,
      );
    if (!env.data.data) throw new PrometheusError('BadResponse', `${where}: a success without data`);
    return env.data.data;
  }

  private checkLabels(metric: Record<string, string>): void {
    const keys = Object.keys(metric);
    if (keys.length > this.limits.maxLabels)
      throw new PrometheusError(
        'TooLarge',
        `${this.shown}: a series with ${keys.length} labels (at most ${this.limits.maxLabels})`,
      );
    for (const k of keys)
      if (k.length > this.limits.maxLabelChars || metric[k].length > this.limits.maxLabelChars)
        throw new PrometheusError(
          'TooLarge',
          `${this.shown}: a label longer than ${this.limits.maxLabelChars} characters`,
        );
  }

  private checkSeriesCount(n: number, promql: string): void {
    if (n > this.limits.maxSeries)
      throw new PrometheusError(
        'TooLarge',
        `${this.shown}: ${n} series for ${quoted(promql, 120)} (at most ${this.limits.maxSeries}; narrow the selector)`,
      );
  }

  /** A range query (matrix); `start`, `end` in unix seconds, `step` in seconds. */
  async queryRange(promql: string, start: number, end: number, step: number): Promise<Series[]> {
    const points = Math.floor((end - start) / step) + 1;
    if (!(step > 0) || points > this.limits.maxPoints)
      throw new PrometheusError(
        'TooLarge',
        `a window of ${end - start} s at a ${step} s step is ${points} points (at most ${this.limits.maxPoints})`,
      );
    const data = await this.call('query_range', {
      query: promql,
      start: String(start),
      end: String(end),
      step: String(step),
    });
    if (data.resultType !== 'matrix')
      throw new PrometheusError('BadResponse', `${this.shown}: expected a matrix, got a ${data.resultType}`);
    const parsed = MatrixResult.safeParse(data.result);
    if (!parsed.success) throw new PrometheusError('BadResponse', `${this.shown}: a malformed matrix`);
    this.checkSeriesCount(parsed.data.length, promql);
    return parsed.data.map((s) => {
      this.checkLabels(s.metric);
      if (s.values.length > this.limits.maxPoints + 1)
        throw new PrometheusError('TooLarge', `${this.shown}: a series of ${s.values.length} points`);
      return { metric: s.metric, values: s.values.map(([t, v]) => [t, sampleValue(v)] as [number, number]) };
    });
  }

  /** An instant query (vector) at `time` (unix seconds). */
  async query(promql: string, time: number): Promise<Sample[]> {
    const data = await this.call('query', { query: promql, time: String(time) });
    if (data.resultType === 'scalar') {
      const p = Pair.safeParse(data.result);
      if (!p.success) throw new PrometheusError('BadResponse', `${this.shown}: a malformed scalar`);
      return [{ metric: {}, value: sampleValue(p.data[1]) }];
    }
    if (data.resultType !== 'vector')
      throw new PrometheusError('BadResponse', `${this.shown}: expected a vector, got a ${data.resultType}`);
    const parsed = VectorResult.safeParse(data.result);
    if (!parsed.success) throw new PrometheusError('BadResponse', `${this.shown}: a malformed vector`);
    this.checkSeriesCount(parsed.data.length, promql);
    return parsed.data.map((s) => {
      this.checkLabels(s.metric);
      return { metric: s.metric, value: sampleValue(s.value[1]) };
    });
  }
}

/** Label names Prometheus accepts. */
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
export const MAX_SELECTOR_LABELS = 16;
export const MAX_SELECTOR_VALUE_CHARS = 256;

/**
 * Label matchers `{a="x",b="y"}` from a map, every value escaped as a PromQL string (a value cannot break
 * out of its quotes). Throws a PrometheusError naming a bad label.
 */
export function selectorOf(labels: Record<string, string>): string {
  const entries = Object.entries(labels);
  if (entries.length > MAX_SELECTOR_LABELS)
    throw new PrometheusError('QueryRefused', `a selector has at most ${MAX_SELECTOR_LABELS} labels`);
  const parts = entries.map(([k, v]) => {
    if (!LABEL_NAME.test(k) || k.startsWith('__'))
      throw new PrometheusError(
        'QueryRefused',
        `'${quoted(k, 60)}' is not a label name ([a-zA-Z_][a-zA-Z0-9_]*)`,
      );
    if (v.length > MAX_SELECTOR_VALUE_CHARS)
      throw new PrometheusError(
        'QueryRefused',
        `label ${k}: a value longer than ${MAX_SELECTOR_VALUE_CHARS} characters`,
      );
    return `${k}=${JSON.stringify(v)}`;
  });
  return `{${parts.join(',')}}`;
}
