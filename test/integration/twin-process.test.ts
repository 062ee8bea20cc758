import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { afterAll, describe, expect, it } from 'vitest';
import { readTrace } from '../../src/telemetry/trace/index.ts';
import { freePort } from '../support/prometheus.ts';
import { ROOT, waitFor } from './support.ts';

/**
 * `servetune twin` as a process: a trace that drifts to another workload at a simulated time, request traces
 * in Dynamo's format, and SIGTERM: readiness drops, a stream in flight finishes, the trace segment is flushed
 * and the process exits 0.
 */

const dir = mkdtempSync(join(tmpdir(), 'twin-process-'));
let proc: ChildProcess | undefined;
afterAll(() => {
  if (proc && proc.exitCode === null) proc.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

function records(): { id: string; input: number; received: number }[] {
  const out = [];
  for (const f of readdirSync(dir).sort()) {
    for (const line of gunzipSync(readFileSync(join(dir, f)))
      .toString()
      .split('\n')) {
      if (!line) continue;
      const r = JSON.parse(line).event.request;
      out.push({
        id: r.request_id as string,
        input: r.input_tokens as number,
        received: r.request_received_ms as number,
      });
    }
  }
  return out;
}

describe('servetune twin as a process', () => {
  it('drifts to the second trace, writes request traces, and drains on SIGTERM', async () => {
    const port = await freePort();
    proc = spawn(
      process.execPath,
      [
        join(ROOT, 'bin/servetune.js'),
        'twin',
        '--trace',
        join(ROOT, 'test/fixtures/traces/conversation-sample.jsonl'),
        '--drift-at',
        '60s',
        '--drift-trace',
        join(ROOT, 'test/fixtures/traces/synthetic-sample.jsonl'),
        '--workers',
        '4',
        '--time-scale',
        '20',
        '--request-trace-dir',
        dir,
        '--http-port',
        String(port),
        '--host',
        '127.0.0.1',
        '--log-level',
        'warn',
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let stdout = '';
    proc.stdout?.on('data', (d) => {
      stdout += d;
    });
    const url = `http://127.0.0.1:${port}`;
    await waitFor('serving', () => stdout.includes('serving'), 30_000);
    // 60 simulated seconds of the first trace, then the second.
    await waitFor('drift records', () => records().some((r) => r.id.startsWith('drift-')), 30_000, 500);
    // A long stream in flight when SIGTERM comes (at 20x, 300 tokens take well under the drain timeout).
    const res = await fetch(`${url}/v1/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'servetune-twin', prompt: 'x', max_tokens: 300, stream: true }),
    });
    const body = res.text();
    proc.kill('SIGTERM');
    await waitFor('not ready while draining', () =>
      fetch(`${url}/readyz`)
        .then((r) => r.status === 503)
        .catch(() => true),
    );
    expect(await body).toMatch(/data: \[DONE\]\n\n$/);
    const code = await new Promise<number | null>((resolve) => proc!.once('exit', (c) => resolve(c)));
    expect(code).toBe(0);
    const all = records();
    const first = all.filter((r) => r.id.startsWith('trace-'));
    const drift = all.filter((r) => r.id.startsWith('drift-'));
    expect(first.length).toBeGreaterThan(20);
    expect(drift.length).toBeGreaterThan(5);
    // The drift trace starts where the first one was cut.
    const cut = Math.min(...drift.map((r) => r.received));
    expect(Math.max(...first.map((r) => r.received))).toBeLessThanOrEqual(cut + 1000);
    // The streamed request was recorded too (flushed at exit).
    expect(all.some((r) => r.id.startsWith('cmpl-'))).toBe(true);
    // The segments read back as a trace (the request-trace format of the trace reader), every record whole.
    const back = await readTrace(dir);
    expect(back.summary.format).toBe('dynamo');
    expect(back.badLines).toBe(0);
    expect(back.workload.size).toBe(all.length);
  });
});
