import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { connect, createServer as createNetServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import type { KubeClient } from '../../src/operator/kube/client.ts';
import type { Operator } from '../../src/operator/manager.ts';
import { parseUrlAllowList } from '../../src/operator/sweep/url-policy.ts';
import { DynamoTraffic } from '../support/dynamo-traffic.ts';
import { PrometheusServer } from '../support/prometheus.ts';
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
 * The operator on telemetry sources, against a real control plane and a real Prometheus scraping Dynamo's
 * frontend metrics (the twin's exporter, fed with the requests of the bundled traces in real time) and the
 * request traces the twin's writer records: recommendations from a Prometheus source and from a request-trace
 * directory; a workload switched mid-run triggers exactly one drift sweep, a stable one none; Prometheus
 * down, answering garbage or with no series degrades the object with a clear reason, keeps the previous
 * recommendation, and recovers when Prometheus does.
 */

const TRACES = new URL('../fixtures/traces/', import.meta.url).pathname;
const CONVERSATION = `${TRACES}conversation-sample.jsonl`;
const AZURE_CODE = `${TRACES}azure-code-sample.csv`;
const WINDOW = '30s';

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

let client: KubeClient;
let ns: string;
let op: Operator;
let prom: PrometheusServer;
let qwen: DynamoTraffic;
let drifting: DynamoTraffic;
let proxy: Awaited<ReturnType<typeof switchProxy>>;
const NODES = ['tel-gpu-a'];

/** A spec tuned from telemetry: a 30 s window at 1 s, drift checked every 5 s with a 10 s dwell. */
function telemetrySpec(source: object, extra: Record<string, unknown> = {}) {
  return tuningSpec('llama', 'unused', {
    gpuBudget: { mode: 'Auto', maxTotalGPUs: 6 },
    workload: { source },
    drift: { checkInterval: '5s', dwell: '10s', minInterval: '1h' },
    ...extra,
  });
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
  await createDgd(client, ns, 'llama', 4);
  qwen = await DynamoTraffic.start({
    model: 'Qwen/Qwen3-8B',
    rps: 3,
    trace: CONVERSATION,
    requestTraces: true,
  });
  drifting = await DynamoTraffic.start({ model: 'drift/model', rps: 3, trace: CONVERSATION, seed: 2 });
  prom = await PrometheusServer.start({
    scrapeInterval: '500ms',
    targets: [{ address: qwen.address }, { address: drifting.address }],
  });
  await prom.waitForTargetsUp();
  proxy = await switchProxy(portOf(prom.url));
  op = startOperator({
    namespace: ns,
    prometheusUrl: prom.url,
    metricsUrlPolicy: parseUrlAllowList(['127.0.0.0/8']),
    traceRoots: [qwen.traceDir as string],
  });
  await op.start();
  // Let the windows fill: a profile of a half-empty window would read as a rate change later.
  await new Promise((r) => setTimeout(r, 32_000));
}, 180_000);

afterAll(async () => {
  await op?.stop();
  await proxy?.close();
  await prom?.stop();
  await qwen?.stop();
  await drifting?.stop();
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
      calibration: { errorPercent: number; metrics: { metric: string; observed: number }[] };
    };
    expect(st.workload.source).toBe('prometheus:(default){model=Qwen/Qwen3-8B}');
    // About 3 requests per second over the 30 s window.
    expect(st.workload.requests).toBeGreaterThan(50);
    expect(st.workload.requests).toBeLessThan(150);
    expect(st.drift.baseline.prefixReuseBasis).toBe('cached_tokens');
    const ttft = st.calibration.metrics.find((m) => m.metric === 'ttft_p50');
    expect(ttft?.observed).toBeGreaterThan(20);
    expect(Number.isFinite(st.calibration.errorPercent)).toBe(true);
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
      telemetrySpec(
        {},
        { workload: { source: { requestTrace: { path: qwen.traceDir } }, lookback: WINDOW } },
      ),
    );
    const dt = await sweptOnce('segments');
    const st = dt.status as unknown as {
      workload: { source: string; requests: number; badLines: number };
      calibration: { metrics: { metric: string; observed: number }[] };
      currentRecommendation?: string;
    };
    expect(st.workload.source).toBe(`request-trace://${qwen.traceDir}`);
    expect(st.workload.requests).toBeGreaterThan(50);
    expect(st.workload.badLines).toBe(0);
    // Request traces carry what the frontend measured: TTFT is 20 ms plus 2 us per prompt token here.
    expect(st.calibration.metrics.find((m) => m.metric === 'ttft_p50')?.observed).toBeGreaterThan(20);
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
    const switched = Date.now();
    await drifting.switchTo(AZURE_CODE);
    const drifted = await waitFor(
      'a WorkloadDrift sweep',
      async () => {
        const d = await getTuning(client, ns, 'drifting');
        return d.status?.history?.some((h) => (h as { reason?: string }).reason === 'WorkloadDrift')
          ? d
          : undefined;
      },
      180_000,
    );
    const drift = (
      drifted.status as unknown as { drift: { lastTriggerTime: string; aboveSinceTime?: string } }
    ).drift;
    // The trigger came once the level had stayed up for the dwell time, checked every 5 s: the window fills
    // with the new traffic within 30 s, plus the dwell and two check intervals.
    const triggeredAfter = Date.parse(drift.lastTriggerTime) - switched;
    expect(triggeredAfter).toBeGreaterThanOrEqual(10_000);
    expect(triggeredAfter).toBeLessThan(30_000 + 10_000 + 2 * 5_000 + 10_000);
    const events = (await listEvents(client, ns)).filter(
      (e) => e.reason === 'WorkloadDrift' && e.regarding?.name === 'drifting',
    );
    expect(events).toHaveLength(1);
    expect(events[0].note).toMatch(/^The workload moved: .*output_tokens [\d.]+ -> [\d.]+ tokens \(p50\)/);
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
    proxy.to(qwen.url ? portOf(qwen.url) : null);
    const garbage = await degradedWith('PrometheusBadResponse');
    expect(garbage.c.message).toMatch(/not a JSON answer \(is it Prometheus\?\)/);
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
    prom.setTargets([
      { address: qwen.address },
      { address: drifting.address },
      { address: `127.0.0.1:${op.port}` },
    ]);
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
