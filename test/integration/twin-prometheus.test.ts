import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runSimulation } from '../../src/config/run.ts';
import { type SimulationConfig, SimulationConfigSchema } from '../../src/config/schema.ts';
import type { SimulationReport } from '../../src/sim/metrics/report.ts';
import type { SimulationResult } from '../../src/sim/simulation.ts';
import { readTrace } from '../../src/telemetry/trace/index.ts';
import { DEFAULT_BUCKETS, dynamoLogBuckets } from '../../src/twin/dynamo-metrics.ts';
import type { Twin } from '../../src/twin/twin.ts';
import { PrometheusServer } from '../support/prometheus.ts';
import { startTestTwin, stopTestTwins, twinTarget } from '../support/twin.ts';
import { waitFor } from './support.ts';

/**
 * A twin replaying a known trace, scraped by a real Prometheus: PromQL written for a real Dynamo deployment
 * (histogram_quantile over the frontend histograms, the request counters) reproduces the simulation's own
 * TTFT and ITL percentiles (a batch run of the same trace with the same settings) within the resolution of
 * Dynamo's buckets (the TTFT and duration buckets hold exactly the batch run's counts), and its request rate.
 */

const TRACE = fileURLToPath(new URL('../fixtures/traces/conversation-sample.jsonl', import.meta.url));
const SCALE = 30;
const MODEL = 'Qwen/Qwen3-8B';
const settings = {
  workers: 4,
  router: { mode: 'kv' },
  engine: { blockSize: 64 },
  seed: 11,
};

let prom: PrometheusServer;
let twin: Twin;
let report: SimulationReport;
let result: SimulationResult;
let requests: number;
let arrivals: number[];

beforeAll(async () => {
  const config: SimulationConfig = SimulationConfigSchema.parse({ ...settings, workload: { trace: TRACE } });
  const { workload } = await readTrace(TRACE, { traceBlockSize: 512 });
  requests = workload.size;
  arrivals = Array.from(workload.arrivalMs).sort((a, b) => a - b);
  ({ report, result } = runSimulation(config, workload));
  prom = await PrometheusServer.start({ scrapeInterval: '500ms' });
  twin = await startTestTwin({
    config: settings,
    model: MODEL,
    timeScale: SCALE,
    trace: { path: TRACE, loop: false },
  });
  prom.setTargets([twinTarget(twin)]);
  await prom.waitForTargetsUp();
});

afterAll(async () => {
  await stopTestTwins();
  await prom?.stop();
});

/** The index of the (lower, upper] bucket of `les` that holds `v`. */
function bucketIndex(les: number[], v: number): number {
  for (let i = 0; i < les.length; i++) if (v <= les[i]) return i;
  return les.length;
}

describe('a twin scraped by a real Prometheus', () => {
  it('serves the whole trace', async () => {
    await waitFor(
      'every request of the trace to end',
      () => twin.runtime.ended.finished + twin.runtime.ended.rejected === requests,
      (arrivals[arrivals.length - 1] / SCALE) * 1.5 + 60_000,
    );
    expect(twin.runtime.ended.rejected).toBe(0);
    // The twin kept up with its clock.
    expect(twin.runtime.maxLagMs).toBeLessThan(1000 * SCALE);
    const sel = `{model="${MODEL.toLowerCase()}",dynamo_namespace="dynamo"}`;
    const total = await waitFor('the last requests scraped', async () => {
      const v = await prom.scalar(`sum(dynamo_frontend_requests_total${sel})`);
      return v === requests ? v : undefined;
    });
    expect(total).toBe(requests);
  });

  it('gives the TTFT and request-duration distributions of the simulation, bucket for bucket', async () => {
    // The twin submits the trace's rows ahead of its clock at their trace times, so its simulation is the
    // batch run's, request for request: every bucket holds exactly the batch run's count.
    const rec = result.records;
    const cases = [
      { metric: 'time_to_first_token_seconds', end: rec.firstTokenMs },
      { metric: 'request_duration_seconds', end: rec.terminalMs },
    ];
    for (const { metric, end } of cases) {
      const seconds: number[] = [];
      for (let i = 0; i < rec.size; i++) seconds.push((end[i] - rec.arrivalMs[i]) / 1000);
      const rows = await prom.query(
        `sum by (le) (dynamo_frontend_${metric}_bucket{model="${MODEL.toLowerCase()}"})`,
      );
      expect(rows.length).toBeGreaterThan(10);
      for (const row of rows) {
        const le = row.metric.le === '+Inf' ? Number.POSITIVE_INFINITY : Number(row.metric.le);
        const batch = seconds.filter((t) => t <= le).length;
        expect(Number(row.value[1]), `${metric} le=${row.metric.le}`).toBe(batch);
      }
    }
  });

  it("gives TTFT and ITL percentiles in the bucket of the simulation's own", async () => {
    const sel = `{model="${MODEL.toLowerCase()}"}`;
    const cases = [
      { metric: 'time_to_first_token_seconds', spec: DEFAULT_BUCKETS.TTFT, exact: report.ttft_ms },
      { metric: 'inter_token_latency_seconds', spec: DEFAULT_BUCKETS.ITL, exact: report.itl_ms },
    ];
    for (const { metric, spec, exact } of cases) {
      const les = dynamoLogBuckets(spec.min, spec.max, spec.count);
      for (const [q, key] of [
        [0.5, 'p50'],
        [0.9, 'p90'],
        [0.99, 'p99'],
      ] as const) {
        const promql = `histogram_quantile(${q}, sum by (le) (dynamo_frontend_${metric}_bucket${sel}))`;
        const estimate = (await prom.scalar(promql)) as number;
        const truth = exact[key] / 1000;
        // The estimate interpolates inside the bucket the exact percentile lies in.
        expect(bucketIndex(les, estimate), `${promql}: ${estimate} vs the simulation's ${key} ${truth}`).toBe(
          bucketIndex(les, truth),
        );
      }
    }
  });

  it('answers the queries dashboards for a real Dynamo deployment make', async () => {
    // The shapes of Dynamo's documented queries and its Grafana panels (rates, quantiles per namespace,
    // gauges, KV usage per worker): each returns data for the twin.
    const queries = [
      'sum by (model) (rate(dynamo_frontend_requests_total[1m]))',
      'sum by (model, status) (increase(dynamo_frontend_requests_total[5m]))',
      'histogram_quantile(0.95, sum by (le, dynamo_namespace) (rate(dynamo_frontend_time_to_first_token_seconds_bucket[5m])))',
      'histogram_quantile(0.5, sum by (le) (rate(dynamo_frontend_inter_token_latency_seconds_bucket[5m])))',
      'sum(increase(dynamo_frontend_input_sequence_tokens_sum[5m])) / sum(increase(dynamo_frontend_input_sequence_tokens_count[5m]))',
      'sum(increase(dynamo_frontend_output_sequence_tokens_sum[5m])) / sum(increase(dynamo_frontend_output_sequence_tokens_count[5m]))',
      'sum(rate(dynamo_frontend_output_tokens_total[1m]))',
      'sum(dynamo_frontend_inflight_requests)',
      'sum(dynamo_frontend_queued_requests)',
      'sum(increase(dynamo_frontend_cached_tokens_sum[5m])) / sum(increase(dynamo_frontend_input_sequence_tokens_sum[5m]))',
      'avg(dynamo_component_kvstats_gpu_cache_usage_percent)',
      'avg by (worker_id) (dynamo_component_kvstats_gpu_prefix_cache_hit_rate)',
      'sum(dynamo_component_kvstats_total_blocks)',
      'max(dynamo_frontend_model_total_kv_blocks)',
    ];
    for (const q of queries) expect((await prom.query(q)).length, q).toBeGreaterThan(0);
    expect(await prom.scalar('count(dynamo_component_kvstats_total_blocks)')).toBe(4);
  });

  it('counts requests at the rate the trace sends them', async () => {
    // Every scrape's started counter against the trace's arrivals up to the simulated time of that scrape:
    // the sample's timestamp is the scrape's start and the twin answered within the scrape's duration (long
    // when the machine is busy), bringing its simulation up to the clock first.
    type Range = { data: { result: { values: [number, string][] }[] } };
    const range = (q: string) =>
      fetch(`${prom.url}/api/v1/query?query=${encodeURIComponent(q)}`).then(
        (r) => r.json() as Promise<Range>,
      );
    const counted = new Map<number, number>();
    for (const series of (await range('dynamo_frontend_requests_started_total[10m]')).data.result)
      for (const [ts, v] of series.values) counted.set(ts, (counted.get(ts) ?? 0) + Number(v));
    const took = new Map<number, number>();
    for (const [ts, v] of (await range('scrape_duration_seconds[10m]')).data.result[0].values)
      took.set(ts, Number(v));
    expect(counted.size).toBeGreaterThan(10);
    const epoch0 = twin.runtime.clock.epochAt(0);
    const origin = twin.feeders[0].originMs;
    const upTo = (ms: number) => arrivals.filter((a) => a <= ms).length;
    const simAt = (epochS: number) => (epochS * 1000 - epoch0) * SCALE - origin;
    // Clock granularity and the rounding of timestamps to the millisecond, in simulated ms.
    const slack = 20 * SCALE;
    let checked = 0;
    for (const [ts, value] of counted) {
      const start = simAt(ts);
      const end = simAt(ts + (took.get(ts) ?? 0));
      if (start < 0 || end > arrivals[arrivals.length - 1]) continue;
      const at = `at ${(start / 1000).toFixed(1)}-${(end / 1000).toFixed(1)} simulated s of the trace`;
      expect(value, at).toBeGreaterThanOrEqual(upTo(start - slack));
      expect(value, at).toBeLessThanOrEqual(upTo(end + slack));
      checked++;
    }
    expect(checked).toBeGreaterThan(5);
  });
});
