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
    ).rejects.toThrow(/outside/);
    await expect(
      fetchTrace(noClient, 'ns', at(join(roots, '..', 'secret')), { fileRoots: [roots] }),
    ).rejects.toThrow(/outside/);
    await expect(fetchTrace(noClient, 'ns', at(join(dir, 'secret')))).rejects.toThrow(/disabled/);
    rmSync(dir, { recursive: true });
  });

  it('downloads over HTTP, refusing errors and oversized bodies', async () => {
    const server = createServer((req, res) => {
      if (req.url === '/ok') res.end(row(0, [1]));
      else if (req.url === '/big') res.end('x'.repeat(5000));
      else res.writeHead(404).end('no');
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const spec = (path: string) => WorkloadSpecSchema.parse({ source: { url: { url: `${base}${path}` } } });
    try {
      expect(String(await fetchTrace(noClient, 'ns', spec('/ok')))).toBe(row(0, [1]));
      await expect(fetchTrace(noClient, 'ns', spec('/missing'))).rejects.toThrow(/HTTP 404/);
      await expect(fetchTrace(noClient, 'ns', spec('/big'), { maxBytes: 1000 })).rejects.toThrow(
        /larger than/,
      );
    } finally {
      server.close();
    }
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
