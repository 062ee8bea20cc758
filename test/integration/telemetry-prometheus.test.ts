import { createServer, type Server } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { distributionOf, log2Wasserstein } from '../../src/telemetry/profile/distribution.ts';
import { profileFromPrometheus } from '../../src/telemetry/profile/from-prometheus.ts';
import { readRecordedWindow } from '../../src/telemetry/profile/from-trace.ts';
import { PrometheusClient, PrometheusError } from '../../src/telemetry/prometheus/client.ts';
import { DynamoMetrics } from '../../src/twin/dynamo-metrics.ts';
import { cli } from '../support/cli.ts';
import { PrometheusServer } from '../support/prometheus.ts';
import { waitFor } from './support.ts';

/**
 * A workload profile from a real Prometheus scraping Dynamo's frontend metrics (the twin's exporter), fed
 * with the requests of a known trace: the profile from the histograms must match the trace's own profile
 * (counts exactly, distributions within the buckets), and the rate curve must show the bursts.
 */

const SAMPLE = new URL('../fixtures/traces/conversation-sample.jsonl', import.meta.url).pathname;
const N = 600;

describe('workload profile from Prometheus', () => {
  let prom: PrometheusServer;
  let server: Server;
  let metricsUrl: string;
  const metrics = new DynamoMetrics({ model: 'Qwen/Qwen3-8B', dynamoNamespace: 'ns-graph', env: {} });
  let startS = 0;
  let endS = 0;
  let input: Int32Array;
  let output: Int32Array;

  beforeAll(async () => {
    server = createServer(async (_req, res) => {
      res.setHeader('content-type', metrics.contentType);
      res.end(await metrics.metrics());
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as { port: number }).port;
    metricsUrl = `http://127.0.0.1:${port}`;
    prom = await PrometheusServer.start({
      scrapeInterval: '500ms',
      targets: [{ address: `127.0.0.1:${port}`, labels: { dynamo_namespace: 'ns-graph' } }],
    });
    await prom.waitForTargetsUp();
    const rec = await readRecordedWindow(SAMPLE);
    input = rec.workload.inputLength.slice(0, N);
    output = rec.workload.outputLength.slice(0, N);
    // Let a few scrapes see the counters at 0, then play the requests: 4 s at 50 req/s, 4 s at 100 req/s.
    await new Promise((r) => setTimeout(r, 2000));
    startS = Math.floor(Date.now() / 1000);
    await new Promise((r) => setTimeout(r, 1000));
    let i = 0;
    for (const [seconds, rps] of [
      [4, 50],
      [4, 100],
    ] as const) {
      for (let t = 0; t < seconds * 10; t++) {
        for (let k = 0; k < rps / 10 && i < N; k++, i++) {
          metrics.requestStarted('chat_completions', 'stream');
          metrics.firstToken(0.05, input[i]);
          metrics.cachedTokens(Math.floor(input[i] / 4));
          metrics.tokens(output[i]);
          metrics.requestFinished({
            endpoint: 'chat_completions',
            type: 'stream',
            durationS: 1,
            outputTokens: output[i],
            hadFirstToken: true,
            errorType: '',
          });
        }
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    await waitFor('every request scraped', async () => {
      const v = await prom.scalar('sum(dynamo_frontend_requests_started_total)');
      return v === N ? v : undefined;
    });
    await new Promise((r) => setTimeout(r, 2000));
    endS = Math.ceil(Date.now() / 1000);
  }, 120_000);

  afterAll(async () => {
    await prom?.stop();
    await new Promise((r) => server?.close(r));
  });

  it("matches the trace's own profile: exact counts and means, distributions within the buckets", async () => {
    const client = new PrometheusClient({ url: prom.url });
    const p = await profileFromPrometheus(client, {
      selector: { model: 'Qwen/Qwen3-8B', dynamo_namespace: 'ns-graph' },
      windowS: endS - startS + 5,
      stepS: 1,
      endS,
    });
    await client.close();
    expect(p.requests).toBe(N);
    expect(p.rate.counts.reduce((a, b) => a + b, 0)).toBe(N);
    // The 100 req/s half shows up as about twice the 50 req/s half (scrapes are 0.5 s apart, bins 1 s).
    const busy = [...p.rate.counts].sort((a, b) => b - a);
    expect(busy[0]).toBeGreaterThanOrEqual(80);
    expect(p.rate.peak_rps).toBeGreaterThanOrEqual(80);
    const mean = (a: Int32Array) => a.reduce((s, v) => s + v, 0) / a.length;
    expect(p.input_tokens.mean).toBeCloseTo(mean(input), 6);
    expect(p.output_tokens.mean).toBeCloseTo(mean(output), 6);
    expect(p.input_tokens.count).toBe(N);
    const sumIn = input.reduce((s, v) => s + v, 0);
    const cached = input.reduce((s, v) => s + Math.floor(v / 4), 0);
    expect(p.prefix_reuse).toEqual({ share: cached / sumIn, basis: 'cached_tokens' });
    expect(p.observed?.ttft_ms?.count).toBe(N);
    expect(p.observed?.output_tokens_per_s).toBeGreaterThan(0);
    // The same requests' own (exact) distributions: within the buckets.
    expect(log2Wasserstein(distributionOf(input), p.input_tokens)).toBeLessThan(0.05);
    expect(log2Wasserstein(distributionOf(output), p.output_tokens)).toBeLessThan(0.05);
  });

  it('servetune profile --prometheus prints it; an empty selector, garbage and a stopped server are one line each', async () => {
    const r = await cli(
      'profile',
      '--prometheus',
      prom.url,
      '--window',
      '2m',
      '--step',
      '1s',
      '--selector',
      'model=Qwen/Qwen3-8B',
      '--json',
    );
    expect(r.code, r.err).toBe(0);
    expect(JSON.parse(r.out).requests).toBe(N);
    const none = await cli(
      'profile',
      '--prometheus',
      prom.url,
      '--window',
      '2m',
      '--selector',
      'model=nobody',
    );
    expect(none.code).toBe(2);
    expect(none.err).toMatch(
      /no dynamo_frontend_requests_started_total\{model="nobody"\} samples in the window/,
    );
    // The metrics endpoint is not a query API: garbage to the client.
    const garbage = new PrometheusClient({ url: metricsUrl });
    const e = await profileFromPrometheus(garbage, { selector: {}, windowS: 60 }).catch((x) => x);
    expect(e).toBeInstanceOf(PrometheusError);
    expect((e as PrometheusError).failure).toBe('BadResponse');
    await garbage.close();
  });
});
