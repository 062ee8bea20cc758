import { readFile, realpath, stat } from 'node:fs/promises';
import { resolve, sep } from 'node:path';
import { request } from 'undici';
import type { WorkloadSpec } from '../../api/index.ts';
import { isNotFound, type KubeClient } from '../kube/client.ts';
import { CONFIG_MAPS, pathOf } from '../kube/resources.ts';

/**
 * Fetches the raw trace a DeploymentTuning names: a ConfigMap key, a file on a mounted volume, or a URL. The
 * bytes are returned as they are (gzip or not): the trace reader recognises compression by content.
 */

export class TraceUnavailableError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TraceUnavailableError';
  }
}

export interface FetchOptions {
  maxBytes?: number;
  timeoutMs?: number;
  /**
   * Directories file sources may read from (after resolving symlinks). Empty: file sources are refused, so
   * that whoever may create a DeploymentTuning cannot make the operator read its own secrets.
   */
  fileRoots?: string[];
}

/** Resolves `path` and checks it lies inside one of `roots`; returns the real path. */
export async function allowedFile(path: string, roots: string[]): Promise<string> {
  if (roots.length === 0) {
    throw new TraceUnavailableError(
      'file trace sources are disabled; start the operator with --trace-root DIR',
    );
  }
  let real: string;
  try {
    real = await realpath(path);
  } catch (e) {
    throw new TraceUnavailableError(`cannot read ${path}: ${(e as NodeJS.ErrnoException).code ?? e}`);
  }
  for (const root of roots) {
    const r = await realpath(resolve(root)).catch(() => resolve(root));
    if (real === r || real.startsWith(r.endsWith(sep) ? r : r + sep)) return real;
  }
  throw new TraceUnavailableError(`${path} is outside the operator's trace roots (${roots.join(', ')})`);
}

export function describeSource(spec: WorkloadSpec, namespace: string): string {
  const s = spec.source;
  if (s.configMap) return `configmap://${namespace}/${s.configMap.name}#${s.configMap.key}`;
  if (s.file) return `file://${s.file.path}`;
  return s.url!.url;
}

export async function fetchTrace(
  client: KubeClient,
  namespace: string,
  spec: WorkloadSpec,
  opts: FetchOptions = {},
): Promise<Buffer> {
  const maxBytes = opts.maxBytes ?? 256 * 1024 * 1024;
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
    return text;
  }
  if (s.file) {
    const path = await allowedFile(s.file.path, opts.fileRoots ?? []);
    try {
      const info = await stat(path);
      if (!info.isFile()) throw new TraceUnavailableError(`${s.file.path} is not a regular file`);
      if (info.size > maxBytes)
        throw new TraceUnavailableError(`${s.file.path} is larger than ${maxBytes} bytes`);
      const buf = await readFile(path);
      if (buf.length > maxBytes)
        throw new TraceUnavailableError(`${s.file.path} is larger than ${maxBytes} bytes`);
      return buf;
    } catch (e) {
      if (e instanceof TraceUnavailableError) throw e;
      throw new TraceUnavailableError(
        `cannot read ${s.file.path}: ${(e as NodeJS.ErrnoException).code ?? e}`,
      );
    }
  }
  const url = s.url!.url;
  try {
    const res = await request(url, { signal: AbortSignal.timeout(opts.timeoutMs ?? 60_000) });
    if (res.statusCode >= 400) {
      await res.body.dump();
      throw new TraceUnavailableError(`GET ${url}: HTTP ${res.statusCode}`);
    }
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const c of res.body) {
      size += (c as Buffer).length;
      if (size > maxBytes) {
        res.body.destroy();
        throw new TraceUnavailableError(`${url} is larger than ${maxBytes} bytes`);
      }
      chunks.push(c as Buffer);
    }
    return Buffer.concat(chunks);
  } catch (e) {
    if (e instanceof TraceUnavailableError) throw e;
    throw new TraceUnavailableError(`GET ${url}: ${(e as Error).message}`);
  }
}
