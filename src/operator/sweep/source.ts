import { constants } from 'node:fs';
import { type FileHandle, open, readlink, realpath } from 'node:fs/promises';
import { isAbsolute, resolve, sep } from 'node:path';
import { request } from 'undici';
import type { WorkloadSpec } from '../../api/index.ts';
import { httpAgent } from '../../telemetry/http-agent.ts';
import { isNotFound, type KubeClient } from '../kube/client.ts';
import { CONFIG_MAPS, pathOf } from '../kube/resources.ts';
import {
  checkUrl,
  DEFAULT_URL_POLICY,
  guardedLookup,
  type UrlPolicy,
  UrlRefusedError,
} from './url-policy.ts';

/**
 * Fetches the raw trace a DeploymentTuning names: a ConfigMap key, a file on a mounted volume, or a URL, as
 * bytes (compressed or not: the trace reader recognises formats by content). Whoever may create a DeploymentTuning chooses the source, so every path here is defensive: file sources are
 * confined to the operator's trace roots (checked before the file system is touched, then again on the opened
 * descriptor), URLs to what the URL policy allows, and every source to a byte cap read as a stream. Messages
 * name the source but never echo low-level network errors, which would make the operator a port scanner.
 */

export class TraceUnavailableError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TraceUnavailableError';
  }
}

/** Default cap on one trace window's bytes: an hour of a busy deployment's Mooncake rows is ~25 MB. */
export const DEFAULT_MAX_TRACE_BYTES = 64 * 1024 * 1024;

export interface FetchOptions {
  maxBytes?: number;
  timeoutMs?: number;
  /**
   * Directories file sources may read from (after resolving symlinks). Empty: file sources are refused, so
   * that whoever may create a DeploymentTuning cannot make the operator read its own secrets.
   */
  fileRoots?: string[];
  /** Which URLs may be fetched (default: https to public addresses only). */
  urlPolicy?: UrlPolicy;
  signal?: AbortSignal;
}

const within = (path: string, root: string) =>
  path === root || path.startsWith(root.endsWith(sep) ? root : root + sep);

/**
 * Opens a trace file only if it lies under one of `roots`. The lexical check comes first, so a path outside
 * the roots is refused with the same message whether or not it exists; the file is opened without following
 * a final symlink and without blocking (a FIFO would hang the read), must be a regular file, and the opened
 * descriptor's real path must still lie under a root's real path (an intermediate symlink cannot escape).
 */
export async function openTraceFile(path: string, roots: string[]): Promise<FileHandle> {
  if (roots.length === 0) {
    throw new TraceUnavailableError(
      'file trace sources are disabled; start the operator with --trace-root DIR',
    );
  }
  if (!isAbsolute(path)) throw new TraceUnavailableError(`${path} is not an absolute path`);
  const lexical = resolve(path);
  const root = roots.map((r) => resolve(r)).find((r) => within(lexical, r));
  if (!root)
    throw new TraceUnavailableError(`${path} is outside the operator's trace roots (${roots.join(', ')})`);
  let fh: FileHandle;
  try {
    fh = await open(
      lexical,
      constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK | constants.O_NOCTTY,
    );
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    const why =
      code === 'ENOENT'
        ? 'no such file'
        : code === 'ELOOP'
          ? 'it is a symbolic link'
          : code === 'EACCES'
            ? 'permission denied'
            : code === 'EISDIR'
              ? 'it is a directory'
              : 'it cannot be opened';
    throw new TraceUnavailableError(`cannot read ${path}: ${why}`);
  }
  try {
    const st = await fh.stat();
    if (!st.isFile()) {
      const kind = st.isDirectory() ? 'a directory' : st.isFIFO() ? 'a FIFO' : 'not a regular file';
      throw new TraceUnavailableError(`cannot read ${path}: it is ${kind}`);
    }
    // Where the descriptor really points (Linux); the roots' real paths are the operator's own.
    const real = await readlink(`/proc/self/fd/${fh.fd}`).catch(() => undefined);
    if (real !== undefined) {
      const realRoots = await Promise.all(roots.map((r) => realpath(resolve(r)).catch(() => resolve(r))));
      if (!realRoots.some((r) => within(real, r)))
        throw new TraceUnavailableError(
          `${path} is outside the operator's trace roots (${roots.join(', ')})`,
        );
    }
    return fh;
  } catch (e) {
    await fh.close();
    throw e;
  }
}

async function readCapped(
  chunks: AsyncIterable<Uint8Array>,
  maxBytes: number,
  what: string,
): Promise<Buffer> {
  const parts: Uint8Array[] = [];
  let size = 0;
  for await (const c of chunks) {
    size += c.length;
    if (size > maxBytes) throw new TraceUnavailableError(`${what} is larger than ${maxBytes} bytes`);
    parts.push(c);
  }
  return Buffer.concat(parts);
}

export function describeSource(spec: WorkloadSpec, namespace: string): string {
  const s = spec.source;
  if (s.configMap) return `configmap://${namespace}/${s.configMap.name}#${s.configMap.key}`;
  if (s.file) return `file://${s.file.path}`;
  if (s.requestTrace) return `request-trace://${s.requestTrace.path}`;
  if (s.prometheus) {
    const sel = Object.entries(s.prometheus.selector ?? {})
      .map(([k, v]) => `${k}=${v}`)
      .join(',');
    return `prometheus:${s.prometheus.url ?? '(default)'}${sel ? `{${sel}}` : ''}`;
  }
  return s.url!.url;
}

export async function fetchTrace(
  client: KubeClient,
  namespace: string,
  spec: WorkloadSpec,
  opts: FetchOptions = {},
): Promise<Buffer> {
  const maxBytes = opts.maxBytes ?? DEFAULT_MAX_TRACE_BYTES;
  const s = spec.source;
  if (s.configMap) {
    let cm: { data?: Record<string, string>; binaryData?: Record<string, string> };
    try {
      cm = await client.get(pathOf(CONFIG_MAPS, namespace, s.configMap.name));
    } catch (e) {
      if (isNotFound(e))
        throw new TraceUnavailableError(`ConfigMap ${namespace}/${s.configMap.name} not found`);
      throw e;
    }
    const text =
      cm.data?.[s.configMap.key] !== undefined
        ? Buffer.from(cm.data[s.configMap.key], 'utf8')
        : cm.binaryData?.[s.configMap.key] !== undefined
          ? Buffer.from(cm.binaryData[s.configMap.key], 'base64')
          : undefined;
    if (text === undefined) {
      throw new TraceUnavailableError(
        `ConfigMap ${namespace}/${s.configMap.name} has no key '${s.configMap.key}'`,
      );
    }
    if (text.length > maxBytes)
      throw new TraceUnavailableError(
        `ConfigMap ${namespace}/${s.configMap.name} is larger than ${maxBytes} bytes`,
      );
    return text;
  }
  if (s.file) {
    const fh = await openTraceFile(s.file.path, opts.fileRoots ?? []);
    try {
      const st = await fh.stat();
      if (st.size > maxBytes)
        throw new TraceUnavailableError(`${s.file.path} is larger than ${maxBytes} bytes`);
      return await readCapped(fh.createReadStream({ autoClose: false }), maxBytes, s.file.path);
    } catch (e) {
      if (e instanceof TraceUnavailableError) throw e;
      throw new TraceUnavailableError(
        `cannot read ${s.file.path}: ${(e as NodeJS.ErrnoException).code ?? 'read failed'}`,
      );
    } finally {
      await fh.close();
    }
  }
  if (!s.url) throw new TraceUnavailableError('this source is not a trace to fetch');
  return fetchUrl(s.url.url, maxBytes, opts);
}

/** True if `e` or anything in its cause chain is a URL policy refusal. */
function refusal(e: unknown): UrlRefusedError | undefined {
  for (let c = e as { cause?: unknown } | undefined, i = 0; c && i < 5; c = c.cause as typeof c, i++) {
    if (c instanceof UrlRefusedError) return c;
    if (Array.isArray((c as { errors?: unknown[] }).errors)) {
      const inner = (c as { errors: unknown[] }).errors.map(refusal).find((x) => x);
      if (inner) return inner;
    }
  }
  return undefined;
}

async function fetchUrl(text: string, maxBytes: number, opts: FetchOptions): Promise<Buffer> {
  const policy = opts.urlPolicy ?? DEFAULT_URL_POLICY;
  const timeoutMs = opts.timeoutMs ?? 60_000;
  let checked: ReturnType<typeof checkUrl>;
  try {
    checked = checkUrl(text, policy);
  } catch (e) {
    throw new TraceUnavailableError(`GET ${text.slice(0, 200)}: ${(e as Error).message}`);
  }
  const shown = `${checked.url.origin}${checked.url.pathname}`;
  // One connection per fetch, through the guarded lookup: the address checked is the address connected to.
  const agent = httpAgent({ connect: { lookup: guardedLookup(checked, policy), timeout: timeoutMs } });
  const signal = AbortSignal.any(
    [AbortSignal.timeout(timeoutMs), opts.signal].filter((x): x is AbortSignal => x !== undefined),
  );
  try {
    const res = await request(checked.url, {
      dispatcher: agent,
      signal,
      headers: { accept: 'application/x-ndjson, application/json, text/plain, */*' },
    });
    // Destroying a body mid-stream emits an abort error; the outcome is reported below, not as a crash.
    res.body.on('error', () => {});
    if (res.statusCode >= 300 && res.statusCode < 400) {
      await res.body.dump();
      throw new TraceUnavailableError(`GET ${shown}: HTTP ${res.statusCode}; redirects are not followed`);
    }
    if (res.statusCode >= 400) {
      await res.body.dump();
      throw new TraceUnavailableError(`GET ${shown}: HTTP ${res.statusCode}`);
    }
    const length = Number(res.headers['content-length']);
    if (Number.isFinite(length) && length > maxBytes) {
      res.body.destroy();
      throw new TraceUnavailableError(`${shown} is larger than ${maxBytes} bytes`);
    }
    return await readCapped(res.body, maxBytes, shown);
  } catch (e) {
    if (e instanceof TraceUnavailableError) throw e;
    const refused = refusal(e);
    if (refused) throw new TraceUnavailableError(`GET ${shown}: ${refused.message}`);
    if (signal.aborted && !opts.signal?.aborted)
      throw new TraceUnavailableError(`GET ${shown}: timed out after ${Math.round(timeoutMs / 1000)}s`);
    // Deliberately vague: refused vs reset vs unreachable would tell a prober what lives where.
    throw new TraceUnavailableError(`GET ${shown}: the server could not be reached`);
  } finally {
    void agent.close();
  }
}
