import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer as createHttpServer } from 'node:http';
import { connect, createServer as createNetServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import type { KubeClient } from '../../src/operator/kube/client.ts';
import type { Operator } from '../../src/operator/manager.ts';
import { parseUrlAllowList } from '../../src/operator/sweep/url-policy.ts';
import type { Twin } from '../../src/twin/twin.ts';
import { PrometheusServer } from '../support/prometheus.ts';
import { startTestTwin, stopTestTwins, twinTarget } from '../support/twin.ts';
import {
  condition,
  createDgd,
  createGpuNode,
  createNamespace,
  createTuning,
  deleteNodes,
  getTuning,
  installCrds,
  kube,
  listEvents,
  listRecommendations,
  ROOT,
  startOperator,
  tuningSpec,
  waitFor,
} from './support.ts';

/**
 * The operator on telemetry sources, against a real control plane and a real Prometheus scraping twins (the
 * live simulation serving Dynamo's frontend metrics, in real time): one follows the tuned
 * DynamoGraphDeployment and replays the bundled conversation trace while writing DYN_REQUEST_TRACE segments,
 * another switches from the conversation trace to the Azure code trace mid-run (the twin's --drift-at).
 * Recommendations from a Prometheus source and from a request-trace directory, calibrated against what the
 * twin measured; the switched workload triggers exactly one drift sweep, a stable one none; Prometheus down,
 * answering garbage or with no series degrades the object with a clear reason, keeps the previous
 * recommendation, and recovers when Prometheus does.
 */

const TRACES = new URL('../fixtures/traces/', import.meta.url).pathname;
const CONVERSATION = `${TRACES}conversation-sample.jsonl`;
const AZURE_CODE = `${TRACES}azure-code-sample.csv`;
const WINDOW = '30s';
/** When the drifting twin switches workloads (simulated = wall time at time scale 1): after both drift
 * tunings have swept and checked once on the first workload. */
const DRIFT_AT_MS = 100_000;

/** A TCP proxy whose target can be switched: Prometheus, another server, or nothing (connections refused). */
async function switchProxy(target: number | null) {
  let to = target;
  const sockets = new Set<Socket>();
  const server: Server = createNetServer((a) => {
    if (to === null) {
      a.destroy();
      return;
    }
    const b = connect(to, '127.0.0.1');
    sockets.add(a);
    sockets.add(b);
    a.pipe(b);
    b.pipe(a);
    const end = () => {
      a.destroy();
      b.destroy();
      sockets.delete(a);
      sockets.delete(b);
    };
    for (const s of [a, b]) {
      s.on('error', end);
      s.on('close', end);
    }
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as { port: number }).port,
    to(port: number | null) {
      to = port;
      for (const s of sockets) s.destroy();
      sockets.clear();
    },
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise((r) => server.close(r));
    },
  };
}

const portOf = (url: string) => Number(new URL(url).port);

/** A web server that is not Prometheus: every path answers 200 with an HTML page. */
async function htmlServer() {
  const server = createHttpServer((_req, res) => {
    res.setHeader('content-type', 'text/html');
    res.end('<html><body>It works!</body></html>');
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as { port: number }).port,
    close: () => new Promise((r) => server.close(r)),
  };
}

let client: KubeClient;
let ns: string;
let op: Operator;
let prom: PrometheusServer;
let qwen: Twin;
let drifting: Twin;
let traceDir: string;
/** Wall time of the drifting twin's switch. */
let driftAt: number;
let proxy: Awaited<ReturnType<typeof switchProxy>>;
let garbage: Awaited<ReturnType<typeof htmlServer>>;
const NODES = ['tel-gpu-a'];

/**
 * A spec tuned from telemetry: a 30 s window at 1 s, drift checked every 5 s with a 10 s dwell. A 30 s window
 * of the conversation trace holds 75 to 110 requests, so its scores are noisy where a 30-minute window's are
 * not: between any two disjoint 30 s windows of its first 260 s the largest scores are rate 0.64, burstiness
 * 0.55, input 0.70, output 0.94 (at a 1 s step). The thresholds are set above those (rate x2, lengths 1.2
 * and 1.5 doublings); the switch to the Azure code trace moves the lengths by 2.6 (input) and 4.8 (output)
 * doublings at the median, and its first minutes hold a fraction of the rate.
 */
function telemetrySpec(source: object, extra: Record<string, unknown> = {}) {
  return tuningSpec('llama', 'unused', {
    gpuBudget: { mode: 'Auto', maxTotalGPUs: 6 },
    workload: { source },
    drift: {
      checkInterval: '5s',
      dwell: '10s',
      minInterval: '1h',
      thresholds: { rateLevel: 1, inputTokens: 1.2, outputTokens: 1.5 },
    },
    ...extra,
  });
}

interface Calibration {
  errorPercent: number;
  metrics: {
    metric: string;
    observed: number;
    predicted: number;
    errorPercent: number;
    correctedErrorPercent?: number;
  }[];
  correction?: { applied: boolean; bounded: boolean };
  message?: string;
}

/**
 * The twin is the simulator on the same GPU and settings as the operator's baseline, and calibration measures
 * the replay as each source measured the twin (src/telemetry/calibration/measure.ts), so what is left is what
 * a 30 s window cannot say (docs/telemetry.md, "What is left"): a Prometheus window is synthesised from
 * histograms (its TTFT about 30-35 % low at the synthesis's fixed seed; its ITL, which the synthesis barely
 * moves, within a few %). Request records are written when requests end, so a request-trace window ends half a
 * window before the sweep reads it (window-input.ts): ending it at the read left the requests still running out
 * of the replay (TTFT, ITL and end to end 15-25 % low); now every metric measured within 10 %. Bounds per source,
 * with a margin over what the runs measured. What this catches: a metric in the wrong unit or measured another
 * way than the source measures it (ITL p90 from Prometheus read exactly rather than through the buckets was
 * -19 %, request-trace ITL p90 from pooled gaps -42 %), observed and predicted from different settings, a
 * broken correction or warm-up, an error the rollout cannot read.
 */
function expectCalibrated(
  c: Calibration,
  bound: { ttftP50: number; itlP50: number; itlP90: number },
  samples = Number.POSITIVE_INFINITY,
) {
  const m = (name: string) => {
    const x = c.metrics.find((v) => v.metric === name);
    expect(x, name).toBeDefined();
    return x!;
  };
  // 8k-token prompts on an H100 at about 3 requests/s: tenths of a second to seconds; ITL ~10-20 ms.
  expect(m('ttft_p50').observed).toBeGreaterThan(50);
  expect(m('ttft_p50').observed).toBeLessThan(10_000);
  expect(m('itl_p50').observed).toBeGreaterThan(3);
  expect(m('itl_p50').observed).toBeLessThan(100);
  expect(Math.abs(m('ttft_p50').errorPercent), JSON.stringify(c)).toBeLessThan(bound.ttftP50);
  expect(Math.abs(m('itl_p50').errorPercent), JSON.stringify(c)).toBeLessThan(bound.itlP50);
  // A p90 needs 100 observations (MIN_TAIL_SAMPLES): one per request record (the records of requests of one
  // token carry no gap, hence the margin), one per token gap from Prometheus.
  const p90 = c.metrics.find((v) => v.metric === 'itl_p90');
  if (samples < 100) expect(p90, 'itl_p90 over fewer than 100 records').toBeUndefined();
  if (samples >= 140) expect(p90, 'itl_p90').toBeDefined();
  if (p90) expect(Math.abs(p90.errorPercent), JSON.stringify(c)).toBeLessThan(bound.itlP90);
  expect(c.correction?.bounded).toBe(false);
  // The figure the rollout's Automatic guardrail reads: the largest error of the model as sweeps use it.
  const used = c.metrics.map((x) =>
    Math.abs(c.correction?.applied ? (x.correctedErrorPercent ?? x.errorPercent) : x.errorPercent),
  );
  expect(c.errorPercent).toBeCloseTo(Math.max(...used), 1);
}

async function sweptOnce(name: string) {
  return waitFor(
    `${name}: a finished sweep`,
    async () => {
      const d = await getTuning(client, ns, name);
      return d.status?.lastSweepTime && d.status.history?.length ? d : undefined;
    },
    240_000,
  );
}

beforeAll(async () => {
  client = kube();
  await installCrds(client);
  ns = await createNamespace(client, 'tel');
  await createGpuNode(client, NODES[0], 'NVIDIA-H100-SXM5-80GB', 8);
  // Pinned to the node's GPU, so the twin's fleet and the operator's baseline are priced on the same one.
  await createDgd(client, ns, 'llama', 4, [], { gpuProduct: 'NVIDIA-H100-SXM5-80GB' });
  traceDir = mkdtempSync(join(tmpdir(), 'servetune-reqtrace-'));
  // The tuned deployment: the twin's fleet is the DGD's (4 Qwen3-8B workers, round robin).
  qwen = await startTestTwin({
    config: { startupTimeS: 1 },
    cluster: { client, namespace: ns, target: 'llama' },
    trace: { path: CONVERSATION, loop: true },
    requestTrace: { dir: traceDir, rollLines: 500, flushIntervalMs: 200 },
  });
  drifting = await startTestTwin({
    config: { workers: 4, engine: { blockSize: 64 }, seed: 2 },
    model: 'drift/model',
    trace: { path: CONVERSATION, loop: true },
    drift: { atMs: DRIFT_AT_MS, path: AZURE_CODE },
  });
  driftAt = Date.now() + DRIFT_AT_MS;
  prom = await PrometheusServer.start({
    scrapeInterval: '500ms',
    targets: [twinTarget(qwen), twinTarget(drifting)],
  });
  await prom.waitForTargetsUp();
  proxy = await switchProxy(portOf(prom.url));
  garbage = await htmlServer();
  op = startOperator({
    namespace: ns,
    prometheusUrl: prom.url,
    metricsUrlPolicy: parseUrlAllowList(['127.0.0.0/8']),
    traceRoots: [traceDir],
  });
  await op.start();
  // Let the windows fill: a profile of a half-empty window would read as a rate change later.
  await new Promise((r) => setTimeout(r, 32_000));
}, 180_000);

afterAll(async () => {
  await op?.stop();
  await proxy?.close();
  await garbage?.close();
  await prom?.stop();
  await stopTestTwins();
  if (traceDir) rmSync(traceDir, { recursive: true, force: true });
  await deleteNodes(client, NODES);
  await client.close();
});

describe('DeploymentTunings on telemetry', () => {
  it("a Prometheus source yields a recommendation from the frontend's traffic, with a drift baseline and calibration", async () => {
    await createTuning(
      client,
      ns,
      'prom',
      telemetrySpec({ prometheus: { selector: { model: 'Qwen/Qwen3-8B' }, window: WINDOW, step: '1s' } }),
    );
    const dt = await sweptOnce('prom');
    expect(dt.status?.history?.[0]).toMatchObject({ reason: 'Schedule' });
    const st = dt.status as unknown as {
      workload: { source: string; requests: number };
      drift: { baseline: { requests: number; prefixReuseBasis: string } };
      calibration: Calibration;
    };
    expect(st.workload.source).toBe('prometheus:(default){model=Qwen/Qwen3-8B}');
    // About 3 requests per second over the 30 s window.
    expect(st.workload.requests).toBeGreaterThan(50);
    expect(st.workload.requests).toBeLessThan(150);
    expect(st.drift.baseline.prefixReuseBasis).toBe('cached_tokens');
    expectCalibrated(st.calibration, { ttftP50: 45, itlP50: 8, itlP90: 10 });
    const recs = (await listRecommendations(client, ns)).filter(
      (r) => r.metadata.labels?.['servetune.dev/deployment-tuning'] === 'prom',
    );
    expect(recs.length).toBe(1);
    expect(recs[0].spec.trace.source).toBe('prometheus:(default){model=Qwen/Qwen3-8B}');
    expect(dt.status?.currentRecommendation).toBe(recs[0].metadata.name);
  });

  it("a request-trace source yields a recommendation from the twin's segments", async () => {
    await createTuning(
      client,
      ns,
      'segments',
      telemetrySpec({}, { workload: { source: { requestTrace: { path: traceDir } }, lookback: WINDOW } }),
    );
    const dt = await sweptOnce('segments');
    const st = dt.status as unknown as {
      workload: { source: string; requests: number; badLines: number };
      calibration: Calibration;
      currentRecommendation?: string;
    };
    expect(st.workload.source).toBe(`request-trace://${traceDir}`);
    // A record is written when its request ends (seconds after it arrived here); the window ends half a window
    // ago (window-input.ts), so most of the 75 to 110 arrivals of a 30 s stretch of the trace have theirs.
    expect(st.workload.requests).toBeGreaterThan(50);
    expect(st.workload.requests).toBeLessThan(150);
    expect(st.workload.badLines).toBe(0);
    // Request traces carry what the frontend measured (TTFT, end to end, average ITL per request).
    expectCalibrated(st.calibration, { ttftP50: 10, itlP50: 10, itlP90: 15 }, st.workload.requests);
    // One record per request, fewer than 1,000: no tail to compare at p99 (MIN_TAIL_SAMPLES).
    expect(st.calibration.metrics.map((x) => x.metric)).not.toContain('itl_p99');
    expect(st.calibration.metrics.map((x) => x.metric)).not.toContain('ttft_p99');
    expect(st.calibration.message).toMatch(
      /Not compared, too few observations in the window: .*ttft_p99 \(\d+; needs 1000\)/,
    );
    expect(st.currentRecommendation).toBeDefined();
  });

  it('a workload switched mid-run triggers exactly one drift sweep; a stable one triggers none', async () => {
    const source = (model: string) => ({ prometheus: { selector: { model }, window: WINDOW, step: '1s' } });
    await createTuning(client, ns, 'drifting', telemetrySpec(source('drift/model')));
    await createTuning(client, ns, 'stable', telemetrySpec(source('Qwen/Qwen3-8B')));
    await sweptOnce('drifting');
    await sweptOnce('stable');
    // Both compared at least once before the switch.
    await waitFor('drift checks', async () => {
      const [a, b] = [await getTuning(client, ns, 'drifting'), await getTuning(client, ns, 'stable')];
      const checked = (d: typeof a) =>
        (d.status as { drift?: { scores?: object } } | undefined)?.drift?.scores;
      return checked(a) && checked(b) && Object.keys(checked(a)!).length > 0 ? true : undefined;
    });
    // The checks on the first workload must come before the switch, or the test proves nothing.
    expect(Date.now(), 'both tunings checked drift before the twin switched workloads').toBeLessThan(driftAt);
    const switched = driftAt;
    const drifted = await waitFor(
      'a WorkloadDrift sweep',
      async () => {
        const d = await getTuning(client, ns, 'drifting');
        return d.status?.history?.some((h) => (h as { reason?: string }).reason === 'WorkloadDrift')
          ? d
          : undefined;
      },
      DRIFT_AT_MS + 180_000,
    );
    const drift = (
      drifted.status as unknown as { drift: { lastTriggerTime: string; aboveSinceTime?: string } }
    ).drift;
    // The trigger came once the level had stayed up for the dwell time, checked every 5 s: the window fills
    // with the new traffic within 30 s, plus the dwell and two check intervals.
    const events = (await listEvents(client, ns)).filter(
      (e) => e.reason === 'WorkloadDrift' && e.regarding?.name === 'drifting',
    );
    const triggeredAfter = Date.parse(drift.lastTriggerTime) - switched;
    const why = `${events[0]?.note} ${JSON.stringify(drift)}`;
    expect(triggeredAfter, why).toBeGreaterThanOrEqual(10_000);
    expect(triggeredAfter, why).toBeLessThan(30_000 + 10_000 + 2 * 5_000 + 10_000);
    expect(events).toHaveLength(1);
    // The Azure code trace's first minutes are a few bursts of short prompts with very short answers: the
    // lengths or the rate move first (which one crosses first depends on the mix in the window).
    expect(events[0].note).toMatch(
      /^The workload moved: .*((input|output)_tokens [\d.]+ -> [\d.]+ tokens \(p50\) \(score [\d.]+ >= 1\.[25]\)|rate_level [\d.]+ -> [\d.]+ rps \(score [\d.]+ >= 1\))/,
    );
    // Watch as long again: still exactly one drift sweep, and none for the stable workload.
    await new Promise((r) => setTimeout(r, 45_000));
    const count = async (name: string) =>
      ((await getTuning(client, ns, name)).status?.history ?? []).filter(
        (h) => (h as { reason?: string }).reason === 'WorkloadDrift',
      ).length;
    expect(await count('drifting')).toBe(1);
    expect(await count('stable')).toBe(0);
    const stable = (await getTuning(client, ns, 'stable')).status as unknown as {
      drift: { phase: string; level: number };
    };
    expect(stable.drift.phase).toBe('Stable');
    expect(stable.drift.level).toBeLessThan(1);
    const metrics = await (await fetch(`http://127.0.0.1:${op.port}/metrics`)).text();
    expect(metrics).toMatch(/servetune_drift_triggers_total\{namespace="[^"]+",name="drifting"\} 1/);
    expect(metrics).toMatch(
      /servetune_drift_score\{namespace="[^"]+",name="stable",dimension="output_tokens"\} /,
    );
    expect(metrics).toMatch(
      /servetune_calibration_error_percent\{namespace="[^"]+",name="prom",metric="ttft_p50"\} /,
    );
  });

  it('Prometheus down, answering garbage or with no series: a clear Degraded reason, the recommendation kept, and recovery', async () => {
    await createTuning(
      client,
      ns,
      'flaky',
      telemetrySpec(
        { prometheus: { selector: { model: 'Qwen/Qwen3-8B' }, window: WINDOW, step: '1s' } },
        { metrics: { prometheusURL: `http://127.0.0.1:${proxy.port}` } },
      ),
    );
    const first = await sweptOnce('flaky');
    const kept = first.status?.currentRecommendation;
    expect(kept).toBeDefined();
    const degradedWith = (reason: string) =>
      waitFor(
        `Degraded ${reason}`,
        async () => {
          const d = await getTuning(client, ns, 'flaky');
          const c = condition(d, 'Degraded');
          return c?.status === 'True' && c.reason === reason ? { d, c } : undefined;
        },
        60_000,
      );
    proxy.to(null);
    const down = await degradedWith('PrometheusUnreachable');
    expect(down.c.message).toMatch(
      /^Drift check: http:\/\/127\.0\.0\.1:\d+: the server could not be reached\. The previous recommendation is kept\.$/,
    );
    expect(down.d.status?.currentRecommendation).toBe(kept);
    proxy.to(garbage.port);
    const answer = await degradedWith('PrometheusBadResponse');
    expect(answer.c.message).toMatch(/not a JSON answer \(is it Prometheus\?\)/);
    proxy.to(portOf(prom.url));
    const recovered = await waitFor(
      'recovery',
      async () => {
        const d = await getTuning(client, ns, 'flaky');
        return condition(d, 'Degraded')?.status === 'False' ? d : undefined;
      },
      60_000,
    );
    expect(recovered.status?.currentRecommendation).toBe(kept);
    expect(condition(recovered, 'Ready')?.status).toBe('True');
    expect((await listRecommendations(client, ns)).some((r) => r.metadata.name === kept)).toBe(true);
    // No series for the selector: the sweep fails with the reason, naming the metric and selector.
    await createTuning(
      client,
      ns,
      'empty',
      telemetrySpec({ prometheus: { selector: { model: 'nobody' }, window: WINDOW } }),
    );
    const empty = await waitFor(
      'Degraded PrometheusNoData',
      async () => {
        const d = await getTuning(client, ns, 'empty');
        const c = condition(d, 'Degraded');
        return c?.status === 'True' && c.reason === 'PrometheusNoData' ? c : undefined;
      },
      60_000,
    );
    expect(empty.message).toMatch(
      /no dynamo_frontend_requests_started_total\{model="nobody"\} samples in the window/,
    );
  });

  it("the chart's Grafana dashboard: every panel's PromQL answers with data from the twin's and the operator's metrics", async () => {
    const helm = execFileSync('bash', [join(ROOT, 'hack/install-helm.sh')], { encoding: 'utf8' })
      .trim()
      .split('\n')
      .pop()!;
    const rendered = parseYaml(
      execFileSync(
        helm,
        ['template', 'st', join(ROOT, 'charts/servetune'), '--show-only', 'templates/dashboards.yaml'],
        {
          encoding: 'utf8',
        },
      ),
    ) as { metadata: { labels: Record<string, string> }; data: Record<string, string> };
    expect(rendered.metadata.labels.grafana_dashboard).toBe('1');
    const json = rendered.data['servetune.json'];
    expect(json.trim()).toBe(
      readFileSync(join(ROOT, 'charts/servetune/dashboards/servetune.json'), 'utf8').trim(),
    );
    const dashboard = JSON.parse(json) as {
      templating: { list: { name: string; query?: { query: string } }[] };
      panels: { type: string; title: string; targets?: { expr: string }[] }[];
    };
    // Prometheus scrapes the operator too now.
    prom.setTargets([twinTarget(qwen), twinTarget(drifting), { address: `127.0.0.1:${op.port}` }]);
    await prom.waitForTargetsUp();
    const vars: Record<string, string> = { namespace: ns, tuning: '.*', model: 'qwen/qwen3-8b' };
    const substitute = (q: string) =>
      q
        .replaceAll('$__rate_interval', '1m')
        .replace(/\$(namespace|tuning|model)\b/g, (_, v: string) => vars[v]);
    // The variables' own queries answer.
    for (const v of dashboard.templating.list.filter((x) => x.query?.query)) {
      const m = /^label_values\((.*), (\w+)\)$/.exec(v.query!.query);
      expect(m, v.name).not.toBeNull();
      const r = await waitFor(`values of $${v.name}`, async () => {
        const x = await prom.query(`count by (${m![2]}) (${substitute(m![1])})`);
        return x.length > 0 ? x : undefined;
      });
      expect(r.length, `variable ${v.name}`).toBeGreaterThan(0);
    }
    const panels = dashboard.panels.filter((p) => p.type !== 'row');
    expect(panels.length).toBeGreaterThanOrEqual(10);
    for (const p of panels) {
      for (const t of p.targets ?? []) {
        const expr = substitute(t.expr);
        const samples = await waitFor(
          `data for '${p.title}': ${expr}`,
          async () => {
            const r = await prom.query(expr);
            return r.some((x) => Number.isFinite(Number(x.value[1]))) ? r : undefined;
          },
          60_000,
        );
        expect(samples.length, `${p.title}: ${expr}`).toBeGreaterThan(0);
      }
    }
  });
});
