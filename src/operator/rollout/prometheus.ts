import { request } from 'undici';
import { httpAgent } from '../../telemetry/http-agent.ts';
import { checkUrl, guardedLookup, type UrlPolicy, UrlRefusedError } from '../sweep/url-policy.ts';
import type { VerificationSample } from './decide.ts';

/**
 * Live metrics of a target for verifying a change: instant PromQL queries over Dynamo's frontend histograms
 * and counters, with every response bounded (bytes, series) and every failure turned into "no data", which
 * the state machine counts as Inconclusive, never as a success. A URL a tenant wrote in a DeploymentTuning goes
 * through the operator's URL policy (pinned DNS, no private addresses unless allowed); the operator's own
 * `--prometheus-url` is the administrator's and trusted.
 */

export interface PrometheusTarget {
  url: string;
  /** Policy for URLs a tenant chose; undefined for the administrator's. */
  policy?: UrlPolicy;
  timeoutMs?: number;
}

const MAX_BYTES = 1024 * 1024;
const MAX_SERIES = 64;

/** Label matchers of a selector, in PromQL syntax. Values were checked at admission (no quotes, no escapes). */
export function matchers(selector: Record<string, string>): string {
  return Object.entries(selector)
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([k, v]) => `${k}="${v.replace(/["\\\n]/g, '')}"`)
    .join(',');
}

/** Dynamo frontend histograms of the SLO metrics. */
const SLO_HISTOGRAMS: Record<string, string> = {
  TTFT: 'time_to_first_token_seconds',
  ITL: 'inter_token_latency_seconds',
  E2E: 'request_duration_seconds',
};

export function verificationQueries(
  selector: Record<string, string>,
  windowS: number,
  slos: readonly { metric: string; percentile: number }[] = [],
) {
  const sel = matchers(selector);
  const q = (p: number, metric: string) =>
    `histogram_quantile(${p}, sum by (le) (rate(dynamo_frontend_${metric}_bucket{${sel}}[${windowS}s])))`;
  // Every SLO beyond the p90 TTFT/ITL measured anyway, once per metric and percentile.
  const slo: Record<string, string> = {};
  for (const s of slos) {
    const h = SLO_HISTOGRAMS[s.metric];
    if (!h || (s.percentile === 90 && s.metric !== 'E2E')) continue;
    slo[`${s.metric}:${s.percentile}`] = q(s.percentile / 100, h);
  }
  return {
    slo,
    ttftP90: q(0.9, 'time_to_first_token_seconds'),
    itlP90: q(0.9, 'inter_token_latency_seconds'),
    requests: `sum(increase(dynamo_frontend_requests_total{${sel}}[${windowS}s]))`,
    errors: `sum(increase(dynamo_frontend_requests_total{${[sel, 'status!="success"'].filter(Boolean).join(',')}}[${windowS}s]))`,
  };
}

export class PrometheusError extends Error {}

/** One instant query; returns the first sample's value, or undefined for an empty result. */
export async function instantQuery(
  t: PrometheusTarget,
  promql: string,
  time: Date,
): Promise<number | undefined> {
  let base: URL;
  let lookup: ReturnType<typeof guardedLookup> | undefined;
  if (t.policy) {
    const checked = checkUrl(t.url, t.policy);
    base = checked.url;
    lookup = guardedLookup(checked, t.policy);
  } else {
    base = new URL(t.url);
  }
  // Our own agent even for the trusted URL: undici's global dispatcher would negotiate HTTP/2 (see httpAgent).
  const dispatcher = httpAgent(lookup ? { connect: { lookup } } : {});
  const u = new URL(`${base.pathname.replace(/\/+$/, '')}/api/v1/query`, base);
  u.searchParams.set('query', promql);
  u.searchParams.set('time', (time.getTime() / 1000).toFixed(3));
  try {
    const res = await request(u, {
      method: 'GET',
      signal: AbortSignal.timeout(t.timeoutMs ?? 10_000),
      headers: { accept: 'application/json' },
      dispatcher,
    });
    res.body.on('error', () => {});
    let size = 0;
    const parts: Buffer[] = [];
    for await (const c of res.body) {
      size += (c as Buffer).length;
      if (size > MAX_BYTES) throw new PrometheusError(`the answer is larger than ${MAX_BYTES} bytes`);
      parts.push(c as Buffer);
    }
    if (res.statusCode >= 300) throw new PrometheusError(`HTTP ${res.statusCode}`);
    let body: { status?: string; data?: { resultType?: string; result?: { value?: [number, string] }[] } };
    try {
      body = JSON.parse(Buffer.concat(parts).toString('utf8'));
    } catch {
      throw new PrometheusError('the answer is not JSON');
    }
    if (body.status !== 'success' || body.data?.resultType !== 'vector' || !Array.isArray(body.data.result))
      throw new PrometheusError('the answer is not a PromQL vector');
    if (body.data.result.length > MAX_SERIES) throw new PrometheusError(`more than ${MAX_SERIES} series`);
    const first = body.data.result[0]?.value?.[1];
    if (first === undefined) return undefined;
    const v = Number(first);
    return Number.isNaN(v) ? undefined : v;
  } catch (e) {
    if (e instanceof PrometheusError) throw e;
    if (e instanceof UrlRefusedError || (e as { cause?: unknown }).cause instanceof UrlRefusedError)
      throw new PrometheusError(
        (e instanceof UrlRefusedError ? e : ((e as { cause: Error }).cause as Error)).message,
      );
    throw new PrometheusError((e as Error).name === 'TimeoutError' ? 'timed out' : 'unreachable');
  } finally {
    void dispatcher.close();
  }
}

/** Measures one window; any failure or missing series gives a sample without values (Inconclusive). */
export async function measureWindow(
  t: PrometheusTarget | undefined,
  selector: Record<string, string>,
  window: { start: string; end: string },
  slos: readonly { metric: string; percentile: number }[] = [],
): Promise<VerificationSample> {
  if (!t)
    return {
      ...window,
      unavailable: 'no Prometheus is configured (spec.metrics.prometheusURL or --prometheus-url)',
    };
  if (Object.keys(selector).length === 0)
    return {
      ...window,
      unavailable: 'no label selector for the target (spec.metrics.selector, or a known model)',
    };
  const seconds = Math.max(1, Math.round((Date.parse(window.end) - Date.parse(window.start)) / 1000));
  const q = verificationQueries(selector, seconds, slos);
  const at = new Date(window.end);
  try {
    const sloKeys = Object.keys(q.slo);
    const [ttft, itl, requests, errors, ...sloValues] = await Promise.all([
      instantQuery(t, q.ttftP90, at),
      instantQuery(t, q.itlP90, at),
      instantQuery(t, q.requests, at),
      instantQuery(t, q.errors, at),
      ...sloKeys.map((k) => instantQuery(t, q.slo[k], at)),
    ]);
    const slo: Record<string, number> = {};
    sloKeys.forEach((k, i) => {
      const v = sloValues[i];
      if (v !== undefined) slo[k] = v * 1000;
    });
    if (requests === undefined)
      return { ...window, unavailable: 'Prometheus has no frontend request series for the selector' };
    return {
      ...window,
      ...(ttft !== undefined && { ttftP90Ms: ttft * 1000 }),
      ...(itl !== undefined && { itlP90Ms: itl * 1000 }),
      requests,
      requestRateRps: requests / seconds,
      ...(errors !== undefined && requests > 0 && { errorRatio: errors / requests }),
      ...(sloKeys.length > 0 && { slo }),
    };
  } catch (e) {
    return { ...window, unavailable: `Prometheus: ${(e as Error).message}` };
  }
}
