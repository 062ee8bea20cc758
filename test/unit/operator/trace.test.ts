import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { WorkloadSpecSchema } from '../../../src/api/index.ts';
import { setCondition } from '../../../src/operator/conditions.ts';
import type { KubeClient } from '../../../src/operator/kube/client.ts';
import { nextRun, validateCron } from '../../../src/operator/schedule.ts';
import { fetchTrace, TraceUnavailableError } from '../../../src/operator/sweep/source.ts';
import { loadTraceWindow } from '../../../src/operator/sweep/trace-window.ts';
import {
  addressAllowed,
  checkUrl,
  DEFAULT_URL_POLICY,
  guardedLookup,
  parseUrlAllowList,
} from '../../../src/operator/sweep/url-policy.ts';

const row = (ts: number, hashes: number[], out = 10) =>
  JSON.stringify({ timestamp: ts, input_length: hashes.length * 16, output_length: out, hash_ids: hashes });

describe('trace window', () => {
  const text = [row(0, [1, 2]), row(1000, [1, 3]), row(2000, [4]), 'not json', row(3000, [1, 2, 5])].join(
    '\n',
  );

  it('summarises the whole trace, counting bad lines', () => {
    const w = loadTraceWindow(text, { source: 's', traceBlockSize: 16 });
    expect(w.summary).toMatchObject({
      requests: 4,
      badLines: 1,
      lines: 5,
      windowStartSeconds: 0,
      windowEndSeconds: 3,
      inputTokens: { mean: 32, p50: 32 },
      outputTokens: { mean: 10 },
    });
    // Blocks seen before: 1 (req 2), 1 and 2 (req 4) of 8 blocks.
    expect(w.summary.prefixReuseRatio).toBe(0.375);
    expect(w.summary.requestRate).toBeCloseTo(4 / 3, 3);
    expect(w.issues[0]).toMatchObject({ line: 4 });
  });

  it('keeps only the lookback before the newest request, and hashes the window', () => {
    const all = loadTraceWindow(text, { source: 's', traceBlockSize: 16 });
    const last = loadTraceWindow(text, { source: 's', traceBlockSize: 16, lookbackMs: 1500 });
    expect(last.summary.requests).toBe(2);
    expect(last.summary.windowStartSeconds).toBe(1.5);
    expect(last.summary.hash).not.toBe(all.summary.hash);
    expect(loadTraceWindow(text, { source: 's', traceBlockSize: 16 }).summary.hash).toBe(all.summary.hash);
  });

  it('reads gzip-compressed bytes (a ConfigMap binaryData key, a file, a URL) like the text', () => {
    const plain = loadTraceWindow(text, { source: 's', traceBlockSize: 16, lookbackMs: 1500 });
    const zipped = loadTraceWindow(gzipSync(text), { source: 's', traceBlockSize: 16, lookbackMs: 1500 });
    expect(zipped.summary).toEqual(plain.summary);
    expect(Array.from(zipped.workload.inputLength)).toEqual(Array.from(plain.workload.inputLength));
  });

  it('throws when nothing usable remains', () => {
    expect(() => loadTraceWindow('garbage\n{}\n', { source: 's', traceBlockSize: 16 })).toThrow(
      /no usable requests/,
    );
  });
});

describe('trace sources', () => {
  const noClient = {} as KubeClient;

  it('reads a file under a trace root and names a missing one', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'trace-'));
    writeFileSync(join(dir, 't.jsonl'), row(0, [1]));
    const spec = WorkloadSpecSchema.parse({ source: { file: { path: join(dir, 't.jsonl') } } });
    expect(String(await fetchTrace(noClient, 'ns', spec, { fileRoots: [dir] }))).toBe(row(0, [1]));
    const missing = WorkloadSpecSchema.parse({ source: { file: { path: join(dir, 'nope.jsonl') } } });
    await expect(fetchTrace(noClient, 'ns', missing, { fileRoots: [dir] })).rejects.toThrow(
      TraceUnavailableError,
    );
    rmSync(dir, { recursive: true });
  });

  it('refuses files outside the trace roots, through symlinks too, and all files without roots', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'trace-'));
    const roots = join(dir, 'traces');
    mkdirSync(roots);
    writeFileSync(join(dir, 'secret'), 'token');
    symlinkSync(join(dir, 'secret'), join(roots, 'link.jsonl'));
    const at = (path: string) => WorkloadSpecSchema.parse({ source: { file: { path } } });
    await expect(fetchTrace(noClient, 'ns', at(join(dir, 'secret')), { fileRoots: [roots] })).rejects.toThrow(
      /outside the operator's trace roots/,
    );
    await expect(
      fetchTrace(noClient, 'ns', at(join(roots, 'link.jsonl')), { fileRoots: [roots] }),
    ).rejects.toThrow(/symbolic link/);
    await expect(
      fetchTrace(noClient, 'ns', at(join(roots, '..', 'secret')), { fileRoots: [roots] }),
    ).rejects.toThrow(/outside/);
    await expect(fetchTrace(noClient, 'ns', at(join(dir, 'secret')))).rejects.toThrow(/disabled/);
    rmSync(dir, { recursive: true });
  });

  it('tells nothing about files outside the roots, and refuses directories and FIFOs without hanging', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'trace-'));
    const roots = join(dir, 'traces');
    mkdirSync(join(roots, 'sub'), { recursive: true });
    writeFileSync(join(dir, 'exists'), 'x');
    execFileSync('mkfifo', [join(roots, 'fifo.jsonl')]);
    const at = (path: string) => WorkloadSpecSchema.parse({ source: { file: { path } } });
    const outside = async (path: string) =>
      (await fetchTrace(noClient, 'ns', at(path), { fileRoots: [roots] }).catch((e: Error) => e)) as Error;
    const a = await outside(join(dir, 'exists'));
    const b = await outside(join(dir, 'missing'));
    expect(a.message.replace('exists', 'X')).toBe(b.message.replace('missing', 'X'));
    await expect(fetchTrace(noClient, 'ns', at(join(roots, 'sub')), { fileRoots: [roots] })).rejects.toThrow(
      /is a directory/,
    );
    await expect(
      fetchTrace(noClient, 'ns', at(join(roots, 'fifo.jsonl')), { fileRoots: [roots] }),
    ).rejects.toThrow(/is a FIFO/);
    rmSync(dir, { recursive: true });
  });

  it('refuses an intermediate symlink that escapes the roots', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'trace-'));
    const roots = join(dir, 'traces');
    mkdirSync(roots);
    mkdirSync(join(dir, 'private'));
    writeFileSync(join(dir, 'private', 'secret.jsonl'), row(0, [1]));
    symlinkSync(join(dir, 'private'), join(roots, 'escape'));
    const spec = WorkloadSpecSchema.parse({
      source: { file: { path: join(roots, 'escape', 'secret.jsonl') } },
    });
    await expect(fetchTrace(noClient, 'ns', spec, { fileRoots: [roots] })).rejects.toThrow(/outside/);
    rmSync(dir, { recursive: true });
  });

  it('downloads over HTTP from an allow-listed address, refusing errors, redirects and oversized bodies', async () => {
    let hits = 0;
    const server = createServer((req, res) => {
      hits++;
      if (req.url === '/ok') res.end(row(0, [1]));
      else if (req.url === '/big') res.end('x'.repeat(5000));
      else if (req.url === '/redirect') res.writeHead(302, { location: 'http://169.254.169.254/' }).end();
      else res.writeHead(404).end('no');
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const spec = (path: string) => WorkloadSpecSchema.parse({ source: { url: { url: `${base}${path}` } } });
    const urlPolicy = parseUrlAllowList(['127.0.0.1/32']);
    try {
      // By default loopback is refused before any connection is made.
      await expect(fetchTrace(noClient, 'ns', spec('/ok'))).rejects.toThrow(/is not allowed/);
      expect(hits).toBe(0);
      expect(String(await fetchTrace(noClient, 'ns', spec('/ok'), { urlPolicy }))).toBe(row(0, [1]));
      await expect(fetchTrace(noClient, 'ns', spec('/missing'), { urlPolicy })).rejects.toThrow(/HTTP 404/);
      await expect(fetchTrace(noClient, 'ns', spec('/redirect'), { urlPolicy })).rejects.toThrow(
        /redirects are not followed/,
      );
      await expect(fetchTrace(noClient, 'ns', spec('/big'), { maxBytes: 1000, urlPolicy })).rejects.toThrow(
        /larger than/,
      );
    } finally {
      server.close();
    }
  });

  it('never reveals how a refused or unreachable address failed', async () => {
    const closed = WorkloadSpecSchema.parse({ source: { url: { url: 'http://127.0.0.1:1/x' } } });
    const e = (await fetchTrace(noClient, 'ns', closed, {
      urlPolicy: parseUrlAllowList(['127.0.0.0/8']),
    }).catch((x: Error) => x)) as Error;
    expect(e.message).toBe('GET http://127.0.0.1:1/x: the server could not be reached');
    expect(e.message).not.toMatch(/ECONNREFUSED|refused/);
  });
});

describe('URL policy', () => {
  const refuse = (url: string, policy = DEFAULT_URL_POLICY) => expect(() => checkUrl(url, policy)).toThrow();
  it('refuses loopback, link-local, private, metadata and cluster-internal targets by default', () => {
    for (const url of [
      'https://127.0.0.1/t',
      'https://2130706433/t', // 127.0.0.1 in decimal
      'https://0x7f.1/t',
      'https://[::1]/t',
      'https://[::ffff:127.0.0.1]/t',
      'https://[::ffff:a9fe:a9fe]/t', // 169.254.169.254 mapped
      'https://169.254.169.254/latest/meta-data/',
      'https://10.0.0.1/t',
      'https://172.16.5.4/t',
      'https://192.168.1.1/t',
      'https://100.64.0.1/t',
      'https://[fd00::1]/t',
      'https://[fe80::1]/t',
      'https://[2002:a00:1::]/t', // 6to4 of 10.0.0.1
      'https://0.0.0.0/t',
      'https://localhost/t',
      'https://kubernetes.default.svc/t',
      'https://etcd.kube-system.svc.cluster.local:2379/metrics',
      'https://metadata.google.internal/t',
      'https://intranet/t',
      'http://traces.example.com/t', // http needs the allow-list
      'https://user:pw@traces.example.com/t',
      'ftp://traces.example.com/t',
      'http:///t',
    ])
      refuse(url);
    expect(checkUrl('https://traces.example.com/a.jsonl', DEFAULT_URL_POLICY).url.hostname).toBe(
      'traces.example.com',
    );
    expect(() => checkUrl('https://8.8.8.8/t', DEFAULT_URL_POLICY)).not.toThrow();
  });

  it('lets the allow-list name hosts, suffixes and CIDRs, and nothing else', () => {
    const p = parseUrlAllowList(['minio.storage.svc', '*.corp.example', '10.1.0.0/16']);
    expect(checkUrl('http://minio.storage.svc:9000/t', p).hostListed).toBe(true);
    expect(checkUrl('http://a.b.corp.example/t', p).hostListed).toBe(true);
    expect(() => checkUrl('http://10.1.2.3/t', p)).not.toThrow();
    refuse('http://10.2.0.1/t', p);
    refuse('https://127.0.0.1/t', p);
    expect(addressAllowed('10.1.200.1', p)).toBe(true);
    expect(addressAllowed('10.2.0.1', p)).toBe(false);
    expect(() => parseUrlAllowList(['10.0.0.0/33'])).toThrow(/not a CIDR/);
    expect(() => parseUrlAllowList(['bad host!'])).toThrow(/not a host name/);
  });

  it('checks every address a name resolves to, inside the connection lookup', async () => {
    // localhost resolves to loopback: the lookup itself refuses it (a rebinding name looks the same).
    const checked = { url: new URL('https://localhost/t'), hostListed: false };
    const err = await new Promise<Error | null>((r) =>
      guardedLookup(checked, DEFAULT_URL_POLICY)('localhost', { all: true }, (e: Error | null) => r(e)),
    );
    expect(err?.message).toMatch(/is not allowed/);
    const allowed = await new Promise<unknown>((r) =>
      guardedLookup(checked, parseUrlAllowList(['127.0.0.0/8', '::1/128']))(
        'localhost',
        {},
        (e: Error | null, a: unknown) => r(e ?? a),
      ),
    );
    expect(String(allowed)).toMatch(/^(127\.|::1)/);
  });
});

describe('schedule and conditions', () => {
  it('computes the next cron slot in UTC and validates expressions', () => {
    expect(nextRun('0 * * * *', new Date('2026-01-01T10:00:00Z')).toISOString()).toBe(
      '2026-01-01T11:00:00.000Z',
    );
    expect(nextRun('*/15 * * * *', new Date('2026-01-01T10:07:00Z')).toISOString()).toBe(
      '2026-01-01T10:15:00.000Z',
    );
    expect(validateCron('0 * * * *')).toBeUndefined();
    expect(validateCron('61 * * * *')).toBeDefined();
  });

  it('moves lastTransitionTime only when the status changes', () => {
    const t1 = new Date('2026-01-01T00:00:00Z');
    const t2 = new Date('2026-01-01T01:00:00Z');
    let c = setCondition(undefined, { type: 'Ready', status: 'True', reason: 'A', message: 'a' }, t1);
    c = setCondition(c, { type: 'Ready', status: 'True', reason: 'B', message: 'b' }, t2);
    expect(c).toEqual([
      {
        type: 'Ready',
        status: 'True',
        reason: 'B',
        message: 'b',
        lastTransitionTime: '2026-01-01T00:00:00Z',
      },
    ]);
    c = setCondition(c, { type: 'Ready', status: 'False', reason: 'C', message: 'c' }, t2);
    expect(c[0].lastTransitionTime).toBe('2026-01-01T01:00:00Z');
  });
});
