import { createServer, type Server } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DynamoMetrics } from '../../src/twin/dynamo-metrics.ts';
import { PrometheusServer } from '../support/prometheus.ts';
import { waitFor } from './support.ts';

/**
 * The Prometheus test server (hack/install-prometheus.sh) scrapes Dynamo-named metrics, and PromQL written
 * for a real Dynamo deployment answers over them.
 */
describe('real Prometheus scraping Dynamo metrics', () => {
  let prom: PrometheusServer;
  let server: Server;
  const metrics = new DynamoMetrics({ model: 'Qwen/Qwen3-8B', dynamoNamespace: 'ns-graph', env: {} });

  beforeAll(async () => {
    server = createServer(async (_req, res) => {
      res.setHeader('content-type', metrics.contentType);
      res.end(await metrics.metrics());
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as { port: number }).port;
    prom = await PrometheusServer.start({
      scrapeInterval: '500ms',
      targets: [{ address: `127.0.0.1:${port}`, labels: { dynamo_namespace: 'ns-graph' } }],
    });
    await prom.waitForTargetsUp();
  });

  afterAll(async () => {
    await prom?.stop();
    await new Promise((r) => server?.close(r));
  });

  it('answers histogram_quantile and counters over the frontend metrics', async () => {
    // 100 requests: TTFT 0.05 s for 90 of them, 3 s for 10.
    for (let i = 0; i < 100; i++) {
      metrics.requestStarted('chat_completions', 'stream');
      metrics.firstToken(i < 90 ? 0.05 : 3, 1000);
      metrics.tokens(1);
      metrics.requestFinished({
        endpoint: 'chat_completions',
        type: 'stream',
        durationS: 4,
        outputTokens: 1,
        hadFirstToken: true,
        errorType: '',
      });
    }
    const sel = '{model="qwen/qwen3-8b",dynamo_namespace="ns-graph"}';
    const total = await waitFor('requests counted', async () => {
      const v = await prom.scalar(`sum(dynamo_frontend_requests_total${sel})`);
      return v === 100 ? v : undefined;
    });
    expect(total).toBe(100);
    // p50 inside the (0.047, 0.1] bucket, p95 inside (2.2, 4.7].
    const p50 = await prom.scalar(
      `histogram_quantile(0.5, sum by (le) (dynamo_frontend_time_to_first_token_seconds_bucket${sel}))`,
    );
    const p95 = await prom.scalar(
      `histogram_quantile(0.95, sum by (le) (dynamo_frontend_time_to_first_token_seconds_bucket${sel}))`,
    );
    expect(p50).toBeGreaterThan(0.047);
    expect(p50).toBeLessThanOrEqual(0.1);
    expect(p95).toBeGreaterThan(2.2);
    expect(p95).toBeLessThanOrEqual(4.7);
    // The planner's window average: increase(sum) / increase(count).
    expect(
      await prom.scalar(
        `sum(dynamo_frontend_input_sequence_tokens_sum${sel}) / sum(dynamo_frontend_input_sequence_tokens_count${sel})`,
      ),
    ).toBe(1000);
  });
});
