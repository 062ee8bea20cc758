import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { DYNAMO_GRAPH_DEPLOYMENTS, pathOf } from '../../src/operator/kube/resources.ts';
import { readTrace } from '../../src/telemetry/trace/index.ts';
import { spawnTwin, stopTestTwins } from '../support/twin.ts';
import { createDgd, createNamespace, installCrds, kube, ROOT, waitFor } from './support.ts';

/**
 * `servetune twin` as a process: a trace that drifts to another workload at a simulated time, request traces
 * in Dynamo's format, and SIGTERM: readiness drops, a stream in flight finishes, the trace segment is flushed
 * and the process exits 0.
 */

const dir = mkdtempSync(join(tmpdir(), 'twin-process-'));
afterAll(async () => {
  await stopTestTwins();
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
    const twin = await spawnTwin([
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
    ]);
    const url = twin.url;
    // 60 simulated seconds of the first trace, then the second.
    await waitFor('drift records', () => records().some((r) => r.id.startsWith('drift-')), 30_000, 500);
    // A long stream in flight when SIGTERM comes (at 20x, 300 tokens take well under the drain timeout).
    const res = await fetch(`${url}/v1/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'servetune-twin', prompt: 'x', max_tokens: 300, stream: true }),
    });
    const body = res.text();
    const exit = twin.stop('SIGTERM');
    await waitFor('not ready while draining', () =>
      fetch(`${url}/readyz`)
        .then((r) => r.status === 503)
        .catch(() => true),
    );
    expect(await body).toMatch(/data: \[DONE\]\n\n$/);
    expect(await exit).toBe(0);
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

describe('servetune twin as a process against a cluster', () => {
  it('follows its DGD, reports it Ready, serves Dynamo metrics under its namespace, and exits on SIGTERM', async () => {
    const client = kube();
    try {
      await installCrds(client);
      const ns = await createNamespace(client, 'twin-proc');
      await createDgd(client, ns, 'llm', 2);
      const twin = await spawnTwin([
        '--kubeconfig',
        inject('kubeconfig'),
        '--namespace',
        ns,
        '--target',
        'llm',
        '--trace',
        join(ROOT, 'test/fixtures/traces/conversation-sample.jsonl'),
        '--time-scale',
        '20',
        '--degrade',
        '3:changed=true',
        '--startup-time',
        '5',
      ]);
      await waitFor('Ready written by the process', async () => {
        const o = await client.get<{ status?: { conditions?: { type: string; status: string }[] } }>(
          pathOf(DYNAMO_GRAPH_DEPLOYMENTS, ns, 'llm'),
        );
        return o.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True');
      });
      const metrics = await waitFor('requests counted', async () => {
        const text = await (await fetch(`${twin.url}/metrics`)).text();
        return /^dynamo_frontend_requests_total\{[^}]*\} [1-9]/m.test(text) ? text : undefined;
      });
      expect(metrics).toMatch(
        new RegExp(`dynamo_component_kvstats_total_blocks\\{[^}]*dynamo_namespace="${ns}-llm"`),
      );
      expect(await twin.stop('SIGTERM')).toBe(0);
    } finally {
      await client.close();
    }
  });
});
