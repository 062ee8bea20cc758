import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DeploymentTuningSpec, TuningRecommendation } from '../../src/api/index.ts';
import { ApiError, type KubeClient } from '../../src/operator/kube/client.ts';
import { DEPLOYMENT_TUNINGS, pathOf, TUNING_RECOMMENDATIONS } from '../../src/operator/kube/resources.ts';
import { createNamespace, installCrds, kube, tuningSpec } from './support.ts';

/** The generated CRDs on a real kube-apiserver: structural schemas, defaults, CEL rules, printer columns. */

let client: KubeClient;
let ns: string;

beforeAll(async () => {
  client = kube();
  await installCrds(client);
  ns = await createNamespace(client, 'crds');
});
afterAll(() => client.close());

async function rejection(path: string, body: unknown): Promise<string> {
  try {
    await client.create(path, body);
  } catch (e) {
    expect(e).toBeInstanceOf(ApiError);
    expect((e as ApiError).status).toBe(422);
    return (e as ApiError).message;
  }
  throw new Error('expected the apiserver to reject the object');
}

const dt = (name: string, spec: object) => ({
  apiVersion: 'servetune.dev/v1alpha1',
  kind: 'DeploymentTuning',
  metadata: { name },
  spec,
});

describe('DeploymentTuning CRD', () => {
  it('accepts a minimal object and fills the defaults', async () => {
    const created = await client.create<{ spec: DeploymentTuningSpec }>(
      pathOf(DEPLOYMENT_TUNINGS, ns),
      dt('minimal', {
        targetRef: { name: 'llama' },
        workload: { source: { url: { url: 'https://example.test/t.jsonl' } } },
      }),
    );
    expect(created.spec.targetRef).toEqual({
      apiVersion: 'nvidia.com/v1alpha1',
      kind: 'DynamoGraphDeployment',
      name: 'llama',
    });
    expect(created.spec.updatePolicy).toMatchObject({
      mode: 'Off',
      approvalWindow: '24h',
      forceConflicts: false,
      maxGPUsChanging: '50%',
      verification: { window: '5m', onInconclusive: 'Hold' },
      automatic: { coolDown: '2h' },
    });
    expect(created.spec.gpuBudget).toEqual({ mode: 'Auto' });
    expect(created.spec.schedule).toBe('0 * * * *');
    expect(created.spec.historyLimit).toBe(10);
    expect(created.spec.workload.traceBlockSize).toBe(512);
  });

  it('rejects cross-field mistakes with the CEL messages', async () => {
    const base = tuningSpec('llama', 'traffic');
    const twoSources = await rejection(
      pathOf(DEPLOYMENT_TUNINGS, ns),
      dt('two-sources', {
        ...base,
        workload: { source: { file: { path: '/t.jsonl' }, url: { url: 'http://x/t' } } },
      }),
    );
    expect(twoSources).toContain(
      'workload.source needs exactly one of configMap, file, url, requestTrace or prometheus',
    );
    const explicit = await rejection(
      pathOf(DEPLOYMENT_TUNINGS, ns),
      dt('explicit', { ...base, gpuBudget: { mode: 'Explicit' } }),
    );
    expect(explicit).toContain('gpuBudget.gpus is required when mode is Explicit');
    const range = await rejection(
      pathOf(DEPLOYMENT_TUNINGS, ns),
      dt('range', { ...base, searchSpace: { workers: { aggregated: { min: 4, max: 2 } } } }),
    );
    expect(range).toContain('min must not exceed max');
  });

  it('refuses at admission what the operator could not run: cron ranges, budget keys and sizes, URLs, durations, huge spaces', async () => {
    const base = tuningSpec('llama', 'traffic');
    const refused = async (name: string, spec: object, match: RegExp) =>
      expect(await rejection(pathOf(DEPLOYMENT_TUNINGS, ns), dt(name, { ...base, ...spec }))).toMatch(match);
    for (const [i, schedule] of [
      '61 * * * *',
      '*/0 * * * *',
      '0 24 * * *',
      '* * * *',
      '@reboot',
      'x',
    ].entries())
      await refused(`cron-${i}`, { schedule }, /schedule.*must be a cron expression/);
    await refused(
      'key-long',
      { gpuBudget: { mode: 'Explicit', gpus: { ['h'.repeat(300)]: 8 } } },
      /gpuBudget.gpus/,
    );
    const many = Object.fromEntries(Array.from({ length: 5000 }, (_, i) => [`gpu${i}`, 1]));
    await refused('keys-many', { gpuBudget: { mode: 'Explicit', gpus: many } }, /gpuBudget.gpus: Too many/);
    await refused('key-upper', { gpuBudget: { mode: 'Explicit', gpus: { H100: 8 } } }, /catalog GPU ids/);
    await refused(
      'gpus-huge',
      { gpuBudget: { mode: 'Explicit', gpus: { h100_sxm: 2 ** 53 + 2 } } },
      /gpuBudget.gpus.h100_sxm/,
    );
    await refused('total-huge', { gpuBudget: { mode: 'Auto', maxTotalGPUs: 1e9 } }, /maxTotalGPUs/);
    for (const [i, url] of [
      'http://',
      'http:///x',
      'https://user:pw@example.com/t',
      'ftp://example.com/t',
    ].entries())
      await refused(`url-${i}`, { workload: { source: { url: { url } } } }, /workload.source.url.url/);
    await refused(
      'lookback-huge',
      { workload: { ...base.workload, lookback: '99999999h' } },
      /must be at most 720h/,
    );
    await refused(
      'interval-huge',
      { guardrails: { minImprovementPercent: 10, minProposalInterval: '9999999h' } },
      /must be at most 8760h/,
    );
    await refused('timeout-huge', { sweepTimeout: '48h' }, /must be at most 24h/);
    await refused('block-huge', { workload: { ...base.workload, traceBlockSize: 1e9 } }, /traceBlockSize/);
    await refused(
      'space-huge',
      {
        searchSpace: {
          topologies: ['Aggregated', 'Disaggregated'],
          tensorParallel: { aggregated: [1, 2, 4, 8] },
          workers: { aggregated: { min: 1, max: 4096 } },
          routers: ['RoundRobin', 'KV'],
        },
      },
      /too many candidates/,
    );
    // The same object with a sane range is fine.
    await client.create(
      pathOf(DEPLOYMENT_TUNINGS, ns),
      dt('space-ok', {
        ...base,
        searchSpace: { workers: { aggregated: { min: 1, max: 64 } }, routers: ['KV'] },
      }),
    );
  });

  it('rejects schema violations: enums, patterns, percentiles', async () => {
    const base = tuningSpec('llama', 'traffic');
    expect(
      await rejection(
        pathOf(DEPLOYMENT_TUNINGS, ns),
        dt('pct', { ...base, slos: [{ metric: 'TTFT', percentile: 95, maxMs: 1 }] }),
      ),
    ).toMatch(/percentile: Unsupported value: 95/);
    expect(
      await rejection(
        pathOf(DEPLOYMENT_TUNINGS, ns),
        dt('mode', { ...base, updatePolicy: { mode: 'Auto' } }),
      ),
    ).toMatch(/updatePolicy.mode: Unsupported value: "Auto"/);
    expect(
      await rejection(
        pathOf(DEPLOYMENT_TUNINGS, ns),
        dt('lookback', { ...base, workload: { ...base.workload, lookback: 'a week' } }),
      ),
    ).toMatch(/lookback/);
  });

  it('serves printer columns for kubectl get', async () => {
    const t = await tableColumns(pathOf(DEPLOYMENT_TUNINGS, ns));
    expect(t).toEqual(
      expect.arrayContaining(['Name', 'Target', 'Mode', 'Ready', 'Recommendation', 'Last Sweep', 'Age']),
    );
    expect(await tableColumns(pathOf(TUNING_RECOMMENDATIONS, ns))).toEqual(
      expect.arrayContaining(['Target', 'State', 'GPUs Before', 'GPUs After', 'Gain %', 'Age']),
    );
  });
});

async function tableColumns(path: string): Promise<string[]> {
  const res = await client.request<{ columnDefinitions: { name: string }[] }>('GET', path, {
    query: { includeObject: 'None' },
    accept: 'application/json;as=Table;v=v1;g=meta.k8s.io',
  });
  return res.columnDefinitions.map((c) => c.name);
}

describe('TuningRecommendation CRD', () => {
  const settings = {
    gpuType: 'h100_sxm',
    gpus: 4,
    topology: 'Aggregated',
    aggregated: { workers: 4, tensorParallel: 1, gpusPerWorker: 1 },
    router: { mode: 'RoundRobin' },
    planner: { enabled: false },
  };
  const metrics = {
    ttftMs: { p50: 1, p90: 2, p99: 3 },
    itlMs: { p50: 1, p90: 2, p99: 3 },
    e2eMs: { p50: 1, p90: 2, p99: 3 },
    requestThroughputRps: 1,
    outputTokensPerSecond: 1,
    outputTokensPerSecondPerGpu: 1,
    goodputFraction: 1,
    meetsSlos: true,
    objectiveValue: 1,
  };
  const rec = (name: string, overrides: object = {}) => ({
    apiVersion: 'servetune.dev/v1alpha1',
    kind: 'TuningRecommendation',
    metadata: { name },
    spec: {
      deploymentTuning: 'x',
      targetRef: { name: 'llama' },
      objective: 'ThroughputPerGPU',
      baseline: settings,
      proposal: { ...settings, gpus: 2, aggregated: { workers: 2, tensorParallel: 1, gpusPerWorker: 1 } },
      predicted: { baseline: metrics, proposal: metrics, gainPercent: 50 },
      frontier: [],
      explanation: 'test',
      trace: { source: 's', hash: 'sha256:0', windowStartSeconds: 0, windowEndSeconds: 1, requests: 1 },
      sweep: {
        scheduledTime: '2026-01-01T00:00:00Z',
        startedTime: '2026-01-01T00:00:00Z',
        completedTime: '2026-01-01T00:00:01Z',
        candidates: 1,
        feasible: 1,
        optimizer: 'grid',
        simulatorVersion: 'x',
      },
      ...overrides,
    },
  });

  it('keeps the proposal immutable', async () => {
    await client.create(pathOf(TUNING_RECOMMENDATIONS, ns), rec('immutable'));
    let err: unknown;
    try {
      await client.mergePatch(pathOf(TUNING_RECOMMENDATIONS, ns, 'immutable'), {
        spec: { proposal: { gpus: 1 } },
      });
    } catch (e) {
      err = e;
    }
    expect((err as ApiError).status).toBe(422);
    expect((err as ApiError).message).toContain('the proposal of a TuningRecommendation is immutable');
  });

  it('checks the settings shape with CEL', async () => {
    const msg = await rejection(
      pathOf(TUNING_RECOMMENDATIONS, ns),
      rec('disagg', { proposal: { ...settings, topology: 'Disaggregated' } }),
    );
    expect(msg).toContain('Disaggregated needs prefill and decode workers');
  });

  it('lets the status (state) change through the status subresource', async () => {
    const obj = await client.get<TuningRecommendation>(pathOf(TUNING_RECOMMENDATIONS, ns, 'immutable'));
    obj.status = { state: 'Superseded' };
    const updated = await client.replace<TuningRecommendation>(
      pathOf(TUNING_RECOMMENDATIONS, ns, 'immutable', 'status'),
      obj,
    );
    expect(updated.status?.state).toBe('Superseded');
  });
});
