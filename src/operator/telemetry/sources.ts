import { realpath, stat } from 'node:fs/promises';
import { dirname, isAbsolute, resolve, sep } from 'node:path';
import type { Dispatcher } from 'undici';
import type { DeploymentTuningSpec } from '../../api/index.ts';
import { parseDuration } from '../../api/index.ts';
import { httpAgent } from '../../telemetry/http-agent.ts';
import { profileFromPrometheus } from '../../telemetry/profile/from-prometheus.ts';
import type { WorkloadProfile } from '../../telemetry/profile/profile.ts';
import { PrometheusClient, PrometheusError } from '../../telemetry/prometheus/client.ts';
import { isNotFound, type KubeClient } from '../kube/client.ts';
import { CONFIG_MAPS, pathOf, SECRETS } from '../kube/resources.ts';
import {
  checkUrl,
  DEFAULT_URL_POLICY,
  guardedLookup,
  type UrlPolicy,
  UrlRefusedError,
} from '../sweep/url-policy.ts';

/**
 * The operator's side of the telemetry sources: which Prometheus a DeploymentTuning may reach and with what
 * credentials, and which request-trace directory it may read. A tenant writes the spec, so:
 *
 * - a Prometheus URL from the spec (the source's, or spec.metrics) goes through the URL policy (https to
 *   public addresses unless --trace-url-allow lists more; the DNS answer checked is the one connected to);
 *   the operator's own --prometheus-url is the administrator's and trusted;
 * - a bearer token is read from a Secret in the DeploymentTuning's own namespace, and only from a Secret the
 *   administrator named (--prometheus-token-secrets; the chart grants `get` on exactly those names);
 * - a request-trace path must lie under a --trace-root, lexically and after resolving symbolic links, and
 *   segments that are links are skipped when read;
 * - every failure becomes a TelemetryError with a Degraded reason and a one-line message.
 */

export type TelemetryReason =
  | 'PrometheusNotConfigured'
  | 'PrometheusUnreachable'
  | 'PrometheusBadResponse'
  | 'PrometheusNoData'
  | 'PrometheusRefused'
  | 'PrometheusCredentials'
  | 'RequestTraceUnavailable';

export class TelemetryError extends Error {
  readonly reason: TelemetryReason;
  constructor(reason: TelemetryReason, message: string) {
    super(message);
    this.reason = reason;
    this.name = 'TelemetryError';
  }
}

export interface TelemetryAccess {
  /** The operator's own Prometheus (trusted). */
  prometheusUrl?: string;
  /** Policy for URLs a tenant wrote. */
  urlPolicy?: UrlPolicy;
  /** Secret names a bearerTokenSecret may name (in its DeploymentTuning's namespace). */
  tokenSecretNames?: string[];
  /** Directories request traces may be read from. */
  traceRoots?: string[];
  /** Per request (default 30 s). */
  timeoutMs?: number;
}

const MAX_TOKEN_BYTES = 16 * 1024;
const MAX_CA_BYTES = 256 * 1024;

const FAILURE_REASON: Record<PrometheusError['failure'], TelemetryReason> = {
  Unreachable: 'PrometheusUnreachable',
  BadResponse: 'PrometheusBadResponse',
  QueryRefused: 'PrometheusRefused',
  TooLarge: 'PrometheusBadResponse',
  NoData: 'PrometheusNoData',
};

/** True if `e` or anything in its cause chain is a URL policy refusal. */
function refusal(e: unknown): UrlRefusedError | undefined {
  for (let c = e as { cause?: unknown } | undefined, i = 0; c && i < 6; c = c.cause as typeof c, i++) {
    if (c instanceof UrlRefusedError) return c;
    if (Array.isArray((c as { errors?: unknown[] }).errors)) {
      const inner = (c as { errors: unknown[] }).errors.map(refusal).find((x) => x);
      if (inner) return inner;
    }
  }
  return undefined;
}

async function keyOf(
  client: KubeClient,
  kind: 'Secret' | 'ConfigMap',
  namespace: string,
  ref: { name: string; key: string },
  max: number,
): Promise<string> {
  let obj: { data?: Record<string, string> };
  try {
    obj = await client.get(pathOf(kind === 'Secret' ? SECRETS : CONFIG_MAPS, namespace, ref.name));
  } catch (e) {
    if (isNotFound(e))
      throw new TelemetryError('PrometheusCredentials', `${kind} ${namespace}/${ref.name} not found`);
    throw new TelemetryError('PrometheusCredentials', `${kind} ${namespace}/${ref.name} cannot be read`);
  }
  const raw = obj.data?.[ref.key];
  if (raw === undefined)
    throw new TelemetryError(
      'PrometheusCredentials',
      `${kind} ${namespace}/${ref.name} has no key '${ref.key}'`,
    );
  const text = kind === 'Secret' ? Buffer.from(raw, 'base64').toString('utf8') : raw;
  if (Buffer.byteLength(text) > max)
    throw new TelemetryError(
      'PrometheusCredentials',
      `${kind} ${namespace}/${ref.name} key '${ref.key}' is larger than ${max} bytes`,
    );
  return text.trim();
}

export interface ResolvedPrometheus {
  url: string;
  /** A tenant chose the URL (the policy applies). */
  tenant: boolean;
  selector: Record<string, string>;
  windowS: number;
  stepS: number;
}

/** Where the Prometheus source of a spec points, and what it selects. */
export function resolvePrometheus(
  s: DeploymentTuningSpec,
  access: TelemetryAccess,
  servedModel: string | undefined,
): ResolvedPrometheus {
  const src = s.workload.source.prometheus;
  const tenantUrl = src?.url ?? s.metrics?.prometheusURL;
  const url = tenantUrl ?? access.prometheusUrl;
  if (!url)
    throw new TelemetryError(
      'PrometheusNotConfigured',
      'no Prometheus is configured: set workload.source.prometheus.url or spec.metrics.prometheusURL, or start the operator with --prometheus-url',
    );
  const model = s.model ?? servedModel;
  const selector = src?.selector ?? s.metrics?.selector ?? (model ? { model } : {});
  return {
    url,
    tenant: tenantUrl !== undefined,
    selector,
    windowS: Math.round(parseDuration(src?.window ?? '30m') / 1000),
    stepS: Math.max(1, Math.round(parseDuration(src?.step ?? '15s') / 1000)),
  };
}

/** The profile of the last window of the spec's Prometheus source (ending now, or at `endS`). */
export async function prometheusProfile(
  client: KubeClient,
  namespace: string,
  s: DeploymentTuningSpec,
  access: TelemetryAccess,
  servedModel: string | undefined,
  o: { endS?: number; signal?: AbortSignal } = {},
): Promise<WorkloadProfile> {
  const r = resolvePrometheus(s, access, servedModel);
  const src = s.workload.source.prometheus;
  let token: string | undefined;
  if (src?.bearerTokenSecret) {
    const allowed = access.tokenSecretNames ?? [];
    if (!allowed.includes(src.bearerTokenSecret.name))
      throw new TelemetryError(
        'PrometheusCredentials',
        `Secret ${src.bearerTokenSecret.name} is not one the operator may read (--prometheus-token-secrets: ${allowed.length > 0 ? allowed.join(', ') : 'none'})`,
      );
    token = await keyOf(client, 'Secret', namespace, src.bearerTokenSecret, MAX_TOKEN_BYTES);
  }
  const ca = src?.caConfigMap
    ? await keyOf(client, 'ConfigMap', namespace, src.caConfigMap, MAX_CA_BYTES)
    : undefined;
  let dispatcher: Dispatcher;
  if (r.tenant) {
    const policy = access.urlPolicy ?? DEFAULT_URL_POLICY;
    let checked: ReturnType<typeof checkUrl>;
    try {
      checked = checkUrl(r.url, policy);
    } catch (e) {
      throw new TelemetryError('PrometheusRefused', `${r.url.slice(0, 200)}: ${(e as Error).message}`);
    }
    dispatcher = httpAgent({ connect: { lookup: guardedLookup(checked, policy), ...(ca && { ca }) } });
  } else dispatcher = httpAgent({ connect: ca ? { ca } : {} });
  const prom = new PrometheusClient({
    url: r.url,
    bearerToken: token,
    dispatcher,
    timeoutMs: access.timeoutMs,
    signal: o.signal,
  });
  try {
    return await profileFromPrometheus(prom, {
      selector: r.selector,
      windowS: r.windowS,
      stepS: r.stepS,
      endS: o.endS,
    });
  } catch (e) {
    if (e instanceof PrometheusError) {
      const refused = refusal(e);
      if (refused) throw new TelemetryError('PrometheusRefused', `${prom.shown}: ${refused.message}`);
      throw new TelemetryError(FAILURE_REASON[e.failure], e.message);
    }
    throw e;
  } finally {
    await dispatcher.close();
  }
}

const within = (path: string, root: string) =>
  path === root || path.startsWith(root.endsWith(sep) ? root : root + sep);

/**
 * The request-trace path of a spec, checked to lie under a trace root lexically and after resolving links
 * (the directory, or the prefix path's directory). Returns the path to read.
 */
export async function requestTracePath(path: string, roots: string[]): Promise<string> {
  if (roots.length === 0)
    throw new TelemetryError(
      'RequestTraceUnavailable',
      'request-trace sources are disabled; start the operator with --trace-root DIR',
    );
  if (!isAbsolute(path))
    throw new TelemetryError('RequestTraceUnavailable', `${path} is not an absolute path`);
  const lexical = resolve(path);
  const outside = () =>
    new TelemetryError(
      'RequestTraceUnavailable',
      `${path} is outside the operator's trace roots (${roots.join(', ')})`,
    );
  if (!roots.map((r) => resolve(r)).some((r) => within(lexical, r))) throw outside();
  const st = await stat(lexical).catch(() => null);
  // A directory, or a prefix path (DYN_REQUEST_TRACE_OUTPUT_PATH) whose directory exists.
  const dir = st?.isDirectory() ? lexical : dirname(lexical);
  const real = await realpath(dir).catch(() => null);
  if (real === null) throw new TelemetryError('RequestTraceUnavailable', `${path}: no such directory`);
  const realRoots = await Promise.all(roots.map((r) => realpath(resolve(r)).catch(() => resolve(r))));
  if (!realRoots.some((r) => within(real, r))) throw outside();
  return st?.isDirectory() ? real : `${real}${sep}${lexical.slice(dirname(lexical).length + 1)}`;
}
