import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { DeploymentTuningSpecSchema, DriftBaselineSchema, DriftSpecSchema } from '../../../src/api/index.ts';
import { ApiError, type KubeClient } from '../../../src/operator/kube/client.ts';
import type { SweepJobResult } from '../../../src/operator/sweep/job.ts';
import { parseUrlAllowList } from '../../../src/operator/sweep/url-policy.ts';
import { loadJobWindow } from '../../../src/operator/sweep/window.ts';
import { baselineOf, profileOfBaseline } from '../../../src/operator/telemetry/baseline.ts';
import { calibrationStatus } from '../../../src/operator/telemetry/calibration-status.ts';
import { decideDrift, nextDriftCheck } from '../../../src/operator/telemetry/drift.ts';
import {
  prometheusProfile,
  requestTracePath,
  resolvePrometheus,
  type TelemetryError,
} from '../../../src/operator/telemetry/sources.ts';
import { selectRequests } from '../../../src/sim/workload/slice.ts';
import { driftVerdict } from '../../../src/telemetry/drift/verdict.ts';
import {
  profileFromRecorded,
  readRecordedWindow,
  tailFrom,
} from '../../../src/telemetry/profile/from-trace.ts';
import type { WorkloadProfile } from '../../../src/telemetry/profile/profile.ts';

const TRACES = new URL('../../fixtures/traces/', import.meta.url).pathname;
const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

async function halves(path: string): Promise<[WorkloadProfile, WorkloadProfile, WorkloadProfile]> {
  const rec = await readRecordedWindow(path);
  const w = rec.workload;
  const mid = Math.max(...Array.from(w.arrivalMs)) / 2;
  const ids: number[] = [];
  for (let i = 0; i < w.size; i++) if (w.arrivalMs[i] < mid) ids.push(i);
  const a = profileFromRecorded(
    { ...rec, workload: selectRequests(w, ids), window: { startMs: 0, endMs: mid } },
    { name: 'a' },
  );
  const t = tailFrom(w, mid);
  const b = profileFromRecorded(
    { ...rec, workload: t.workload, originMs: t.shiftMs, window: { startMs: mid, endMs: 2 * mid } },
    { name: 'b' },
  );
  return [profileFromRecorded(rec, { name: 'all' }), a, b];
}

describe('the drift baseline kept in status', () => {
  it('compares as the full profile does, in a few KB', async () => {
    const [, a, b] = await halves(`${TRACES}conversation-sample.jsonl`);
    const [azure] = await halves(`${TRACES}azure-code-sample.csv`);
    const base = baselineOf(a, new Date('2026-01-01T00:00:00Z'));
    expect(JSON.stringify(base).length).toBeLessThan(4096);
    for (const current of [b, azure]) {
      const full = driftVerdict(a, current);
      const compact = driftVerdict(profileOfBaseline(base), current);
      for (const d of ['rate_level', 'input_tokens', 'output_tokens', 'prefix_reuse'] as const)
        expect(compact.scores[d], d).toBeCloseTo(full.scores[d] as number, 2);
      expect(compact.drifted).toBe(full.drifted);
    }
  });

  it("spans the rows read, not a rejected row's timestamp, and always fits the status schema", async () => {
    const good = Array.from({ length: 60 }, (_, i) =>
      JSON.stringify({ timestamp: i * 200, input_length: 32, output_length: 8, hash_ids: [i % 4] }),
    );
    const text = [...good, '{"timestamp":1e300,"input_length":32,"output_length":8,"hash_ids":[1]}'].join(
      '\n',
    );
    const w = await loadJobWindow({ kind: 'trace', text, traceBlockSize: 512 }, { source: 'hostile' });
    expect(w.issues).toHaveLength(1);
    expect(w.windowS).toBeCloseTo(11.8, 6);
    expect(w.profile.request_rate_rps).toBeCloseTo(60 / 11.8, 3);
    const base = baselineOf(w.profile, new Date('2026-01-01T00:00:00Z'));
    expect(DriftBaselineSchema.safeParse(base).success).toBe(true);
    // A profile out of every bound still gives a baseline the API server takes.
    const absurd = { ...w.profile, request_rate_rps: 1e300, rate: { ...w.profile.rate, step_s: 1e300 } };
    expect(DriftBaselineSchema.safeParse(baselineOf(absurd, new Date())).success).toBe(true);
  });
});

describe('drift decisions', () => {
  const spec = DriftSpecSchema.parse({ dwell: '2m', minInterval: '30m', checkInterval: '1m' });

  it('dwell, trigger, then re-arm on the new baseline', async () => {
    const [, a] = await halves(`${TRACES}conversation-sample.jsonl`);
    const [azure] = await halves(`${TRACES}azure-code-sample.csv`);
    const base = baselineOf(a, new Date('2026-01-01T00:00:00Z'));
    const t0 = Date.parse('2026-01-01T01:00:00Z');
    const d1 = decideDrift(undefined, base, azure, spec, new Date(t0));
    expect(d1).toMatchObject({ trigger: false, status: { phase: 'Dwelling', drifted: true, armed: true } });
    expect(d1.status.moved).toEqual(expect.arrayContaining(['outputTokens', 'inputTokens', 'burstiness']));
    expect(d1.status.scores.prefixReuse).toBeUndefined();
    expect(d1.message).toMatch(/^The workload moved: output_tokens 366 -> 13 tokens \(p50\)/);
    expect(nextDriftCheck(d1.status, spec)).toBe(t0 + 60_000);
    const d2 = decideDrift(d1.status, base, azure, spec, new Date(t0 + 120_000));
    expect(d2).toMatchObject({ trigger: true, status: { phase: 'Triggered', armed: false } });
    expect(d2.status.lastTriggerTime).toBe('2026-01-01T01:02:00Z');
    // After the drift sweep the baseline is the new traffic: the level falls and the detector re-arms.
    const d3 = decideDrift(d2.status, baselineOf(azure, new Date(t0)), azure, spec, new Date(t0 + 180_000));
    expect(d3).toMatchObject({ trigger: false, status: { phase: 'Stable', armed: true, level: 0 } });
    expect(d3.status.lastTriggerTime).toBe('2026-01-01T01:02:00Z');
  });

  it('thresholds from the spec', async () => {
    const [, a, b] = await halves(`${TRACES}conversation-sample.jsonl`);
    const tight = DriftSpecSchema.parse({ thresholds: { inputTokens: 0.01 } });
    const d = decideDrift(undefined, baselineOf(a, new Date()), b, tight, new Date());
    expect(d.status.moved).toContain('inputTokens');
  });
});

describe('calibration status', () => {
  const result = (applied: boolean, bounded: boolean) =>
    ({
      profile: { window: { start_ms: 1_763_000_000_000, end_ms: 1_763_000_600_000 } },
      calibration: {
        observed: { ttft_p50: 100, itl_p50: 20 },
        predicted: { ttft_p50: 70, itl_p50: 16 },
        errors: { ttft_p50: -0.3, itl_p50: -0.2 },
        meanAbsError: 0.25,
        applied,
        windowS: 600,
        correction: {
          factors: { prefill: 1.4, decode: 1.25 },
          predicted: { ttft_p50: 99, itl_p50: 20.2 },
          errors: { ttft_p50: -0.01, itl_p50: 0.01 },
          meanAbsError: 0.01,
          bounded,
          iterations: 4,
        },
      },
    }) as unknown as SweepJobResult;

  it('gives the error of the model as sweeps use it, and every metric before and after', () => {
    const applied = calibrationStatus(result(true, false), '2026-01-01T00:10:00Z')!;
    expect(applied.errorPercent).toBe(1);
    expect(applied.meanAbsErrorPercent).toBe(25);
    expect(applied.metrics).toEqual([
      { metric: 'ttft_p50', observed: 100, predicted: 70, errorPercent: -30, correctedErrorPercent: -1 },
      { metric: 'itl_p50', observed: 20, predicted: 16, errorPercent: -20, correctedErrorPercent: 1 },
    ]);
    expect(applied.correction).toEqual({
      prefill: 1.4,
      decode: 1.25,
      bounded: false,
      applied: true,
      meanAbsErrorPercent: 1,
    });
    expect(applied.windowEndTime).toBe('2025-11-13T02:23:20Z');
    const notApplied = calibrationStatus(result(false, true), '2026-01-01T00:10:00Z')!;
    expect(notApplied.errorPercent).toBe(30);
    expect(notApplied.message).toMatch(/hit its bound/);
    // A fit that found nothing better than the model keeps factors of 1: not reported as a correction.
    const identity = result(false, false);
    identity.calibration!.correction!.factors = { prefill: 1, decode: 1 };
    const none = calibrationStatus(identity, '2026-01-01T00:10:00Z')!;
    expect(none.correction?.applied).toBe(false);
    expect(none.errorPercent).toBe(30);
    expect(none.message).toBe('No correction lowers the error: sweeps use the model as it is.');
    // Percentiles measured over too few observations are named, with how many they need.
    const few = result(false, false);
    (few as { profile: unknown }).profile = {
      ...few.profile,
      observed: {
        ttft_ms: { count: 71, mean: 1, p50: 100, p90: 300, p99: 900 },
        itl_ms: { count: 5000, mean: 1, p50: 20, p90: 30, p99: 40 },
      },
    };
    expect(calibrationStatus(few, '2026-01-01T00:10:00Z')!.message).toMatch(
      /Not compared, too few observations in the window: ttft_p90 \(71; needs 100\), ttft_p99 \(71; needs 1000\)\.$/,
    );
  });
});

describe('telemetry sources', () => {
  it('request-trace paths stay under the trace roots, links resolved', async () => {
    const root = mkdtempSync(join(tmpdir(), 'st-root-'));
    const other = mkdtempSync(join(tmpdir(), 'st-other-'));
    dirs.push(root, other);
    mkdirSync(join(root, 'traces'));
    writeFileSync(join(root, 'traces', 'p.000000.jsonl.gz'), '');
    symlinkSync(other, join(root, 'escape'));
    expect(await requestTracePath(join(root, 'traces'), [root])).toMatch(/traces$/);
    expect(await requestTracePath(join(root, 'traces', 'p'), [root])).toMatch(/traces\/p$/);
    const refusal = async (p: string, roots: string[]) =>
      (await requestTracePath(p, roots).catch((e) => e)) as TelemetryError;
    expect((await refusal(join(other, 'x'), [root])).message).toMatch(
      /is outside the operator's trace roots/,
    );
    expect((await refusal(join(root, 'escape'), [root])).message).toMatch(
      /is outside the operator's trace roots/,
    );
    expect((await refusal(join(root, 'nope', 'deeper'), [root])).message).toMatch(/no such directory/);
    expect((await refusal(join(root, 'traces'), [])).message).toMatch(/request-trace sources are disabled/);
    expect((await refusal('relative/dir', [root])).reason).toBe('RequestTraceUnavailable');
  });

  it("Prometheus: the source's URL and selector, else spec.metrics, else the operator's and the model", () => {
    const spec = (o: object) =>
      DeploymentTuningSpecSchema.parse({
        targetRef: { name: 't' },
        workload: { source: { prometheus: {} } },
        ...o,
      });
    expect(resolvePrometheus(spec({}), { prometheusUrl: 'http://prom:9090' }, 'Qwen/Qwen3-8B')).toEqual({
      url: 'http://prom:9090',
      tenant: false,
      selector: { model: 'Qwen/Qwen3-8B' },
      windowS: 1800,
      stepS: 15,
    });
    expect(
      resolvePrometheus(
        spec({ metrics: { prometheusURL: 'https://p.example', selector: { dynamo_namespace: 'x' } } }),
        { prometheusUrl: 'http://prom:9090' },
        'm',
      ),
    ).toMatchObject({ url: 'https://p.example', tenant: true, selector: { dynamo_namespace: 'x' } });
    const own = spec({
      workload: {
        source: {
          prometheus: { url: 'https://q.example', selector: { model: 'a' }, window: '5m', step: '5s' },
        },
      },
    });
    expect(resolvePrometheus(own, {}, 'm')).toMatchObject({
      url: 'https://q.example',
      selector: { model: 'a' },
      windowS: 300,
      stepS: 5,
    });
    expect(() => resolvePrometheus(spec({}), {}, 'm')).toThrow(/no Prometheus is configured/);
  });
  it('Prometheus credentials and policy: token Secrets only when allowed, tenant URLs under the URL policy', async () => {
    const seen: (string | undefined)[] = [];
    const server = createServer((req, res) => {
      seen.push(req.headers.authorization);
      res.setHeader('content-type', 'application/json');
      res.end('{"status":"success","data":{"resultType":"matrix","result":[]}}');
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const url = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
    const reads: string[] = [];
    const secrets: Record<string, Record<string, string>> = {
      '/api/v1/namespaces/team/secrets/prom-token': { token: Buffer.from('s3cret\n').toString('base64') },
    };
    const client = {
      get: async (path: string) => {
        reads.push(path);
        if (!secrets[path]) throw new ApiError(404, 'not found');
        return { data: secrets[path] };
      },
    } as unknown as KubeClient;
    const spec = (prometheus: object) =>
      DeploymentTuningSpecSchema.parse({
        targetRef: { name: 't' },
        workload: { source: { prometheus: { selector: { model: 'm' }, window: '1m', ...prometheus } } },
      });
    const fail = (s: ReturnType<typeof spec>, access: object) =>
      prometheusProfile(client, 'team', s, access, 'm').then(
        () => undefined,
        (e: TelemetryError) => e,
      );
    try {
      const token = { bearerTokenSecret: { name: 'prom-token', key: 'token' } };
      // Not a name the administrator listed: refused before any read.
      const notAllowed = await fail(spec(token), { prometheusUrl: url, tokenSecretNames: ['other'] });
      expect(notAllowed).toMatchObject({ reason: 'PrometheusCredentials' });
      expect(notAllowed?.message).toMatch(/Secret prom-token is not one the operator may read/);
      expect(reads).toEqual([]);
      // Listed: read from the object's own namespace, sent as a bearer token (trimmed).
      const empty = await fail(spec(token), { prometheusUrl: url, tokenSecretNames: ['prom-token'] });
      expect(reads).toEqual(['/api/v1/namespaces/team/secrets/prom-token']);
      expect(seen.at(-1)).toBe('Bearer s3cret');
      expect(empty).toMatchObject({ reason: 'PrometheusNoData' });
      // A listed name that does not exist, or a missing key.
      const missing = await fail(spec({ bearerTokenSecret: { name: 'gone', key: 'token' } }), {
        prometheusUrl: url,
        tokenSecretNames: ['gone'],
      });
      expect(missing?.message).toBe('Secret team/gone not found');
      const noKey = await fail(spec({ bearerTokenSecret: { name: 'prom-token', key: 'nope' } }), {
        prometheusUrl: url,
        tokenSecretNames: ['prom-token'],
      });
      expect(noKey?.message).toBe("Secret team/prom-token has no key 'nope'");
      // A tenant's URL goes through the URL policy: loopback http is refused, nothing is sent.
      const before = seen.length;
      const refused = await fail(spec({ url }), { prometheusUrl: url });
      expect(refused).toMatchObject({ reason: 'PrometheusRefused' });
      expect(seen.length).toBe(before);
      // ... unless the administrator allowed it.
      const allowed = await fail(spec({ url }), { urlPolicy: parseUrlAllowList(['127.0.0.0/8']) });
      expect(allowed).toMatchObject({ reason: 'PrometheusNoData' });
      expect(seen.length).toBeGreaterThan(before);
    } finally {
      server.close();
    }
  });
});
