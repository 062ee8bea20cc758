import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { KubeClient } from '../../src/operator/kube/client.ts';
import { labelValue } from '../../src/operator/kube/names.ts';
import { DEPLOYMENT_TUNINGS, pathOf, TUNING_RECOMMENDATIONS } from '../../src/operator/kube/resources.ts';
import type { Operator } from '../../src/operator/manager.ts';
import { runSweepJob, SweepJobError } from '../../src/operator/sweep/job.ts';
import { parseUrlAllowList } from '../../src/operator/sweep/url-policy.ts';
import { LABEL_TUNING } from '../../src/operator/tuning/recommendations.ts';
import {
  apiserverPort,
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
  putConfigMap,
  startOperator,
  traceSample,
  tuningSpec,
  updateTuningStatus,
  waitFor,
} from './support.ts';

/**
 * What a tenant with `edit` rights in one namespace can make the operator do: fetch URLs, name objects, write
 * schedules and search spaces, feed traces that crash sweeps. Each case against the real API server.
 */

let client: KubeClient;
let ns: string;
const NODES = ['hardening-gpu'];
let server: Server;
let hits = 0;
let traceUrl = '';

beforeAll(async () => {
  client = kube();
  await installCrds(client);
  ns = await createNamespace(client, 'hardening');
  await createGpuNode(client, NODES[0], 'NVIDIA-H100-SXM5-80GB', 8);
  await createDgd(client, ns, 'llama', 4);
  await putConfigMap(client, ns, 'traffic', { 'trace.jsonl': traceSample(120) });
  server = createServer((_req, res) => {
    hits++;
    res.end(traceSample(120));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  traceUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}/trace.jsonl`;
});

afterAll(async () => {
  server.close();
  await deleteNodes(client, NODES);
  await client.close();
});

async function withOperator(opts: Parameters<typeof startOperator>[0], fn: (op: Operator) => Promise<void>) {
  const op = startOperator(opts);
  await op.start();
  try {
    await fn(op);
  } finally {
    await op.stop();
  }
}

const degraded = (name: string, reason: string) =>
  waitFor(`${name} Degraded with ${reason}`, async () => {
    const d = await getTuning(client, ns, name);
    const c = condition(d, 'Degraded');
    return c?.status === 'True' && c.reason === reason ? c : undefined;
  });

const warned = async (name: string, reason: string) =>
  waitFor(`a Warning ${reason} Event for ${name}`, async () =>
    (await listEvents(client, ns)).find(
      (e) => e.regarding.name === name && e.reason === reason && e.type === 'Warning',
    ),
  );

const urlSpec = (url: string) => tuningSpec('llama', 'traffic', { workload: { source: { url: { url } } } });

describe('URL trace sources', () => {
  it('refuse loopback, metadata, cluster-internal and API server addresses without connecting', async () => {
    await withOperator({ namespace: ns }, async () => {
      const targets = {
        'ssrf-loopback': traceUrl,
        'ssrf-metadata': 'https://169.254.169.254/latest/meta-data/iam/security-credentials/',
        'ssrf-svc': 'https://kubernetes.default.svc/api',
        'ssrf-apiserver': `https://127.0.0.1:${apiserverPort()}/metrics`,
        'ssrf-decimal': 'https://2130706433/trace',
      };
      for (const [name, url] of Object.entries(targets)) await createTuning(client, ns, name, urlSpec(url));
      for (const name of Object.keys(targets)) {
        const c = await degraded(name, 'TraceUnavailable');
        expect(c.message).toMatch(/is not allowed/);
        // No status codes, connection errors or content of the target leak into status.
        expect(c.message).not.toMatch(/ECONN|HTTP \d|refused|timed out/);
        await warned(name, 'TraceUnavailable');
      }
      expect(hits).toBe(0);
    });
  });

  it('fetch what an administrator allows with --trace-url-allow', async () => {
    await withOperator({ namespace: ns, urlPolicy: parseUrlAllowList(['127.0.0.1/32']) }, async () => {
      await createTuning(client, ns, 'allowed-url', urlSpec(traceUrl));
      await waitFor('a recommendation from the allowed URL', async () => {
        const d = await getTuning(client, ns, 'allowed-url');
        return d.status?.currentRecommendation;
      });
      expect(hits).toBeGreaterThan(0);
    });
  });
});

describe('schedules and names', () => {
  it('reports a schedule that never fires as Degraded with a Warning Event, in one line', async () => {
    await withOperator({ namespace: ns }, async () => {
      await createTuning(client, ns, 'never', tuningSpec('llama', 'traffic', { schedule: '0 0 31 2 *' }));
      const c = await degraded('never', 'InvalidSchedule');
      expect(c.message).not.toContain('\n');
      expect(c.message).toMatch(/never fires or is not valid/);
      await warned('never', 'InvalidSchedule');
    });
  });

  it('sweeps a schedule that fires every second at most once per minimum interval, and says so', async () => {
    // The operator's default minimum interval (5 minutes), not the tests' short one.
    await withOperator({ namespace: ns, minScheduleIntervalMs: undefined }, async () => {
      await createTuning(
        client,
        ns,
        'every-second',
        tuningSpec('llama', 'traffic', { schedule: '* * * * * *' }),
      );
      const d = await waitFor('the first sweep', async () => {
        const x = await getTuning(client, ns, 'every-second');
        return x.status?.lastSweepTime ? x : undefined;
      });
      const gap = Date.parse(d.status!.nextSweepTime!) - Date.parse(d.status!.lastSweepTime!);
      expect(gap).toBeGreaterThanOrEqual(5 * 60_000 - 1_000);
      await warned('every-second', 'ScheduleTooFrequent');
    });
  });

  it('recommends for a DeploymentTuning whose name is too long for a label value', async () => {
    const name = `a-very-long-deployment-tuning-name-${'x'.repeat(60)}`;
    await withOperator({ namespace: ns }, async () => {
      await createTuning(client, ns, name, tuningSpec('llama', 'traffic', { historyLimit: 1 }));
      const d = await waitFor('a recommendation', async () => {
        const x = await getTuning(client, ns, name);
        return x.status?.currentRecommendation ? x : undefined;
      });
      expect(condition(d, 'Degraded')).toMatchObject({ status: 'False' });
      const recs = (await listRecommendations(client, ns)).filter((r) => r.spec.deploymentTuning === name);
      expect(recs).toHaveLength(1);
      expect(recs[0].metadata.labels?.[LABEL_TUNING]).toBe(labelValue(name));
      expect(recs[0].metadata.name.length).toBeLessThanOrEqual(253);
    });
  });
});

describe('hostile traces', () => {
  it('cannot take the operator down: absurd rows are counted as bad lines and the rest is used', async () => {
    const good = Array.from({ length: 60 }, (_, i) =>
      JSON.stringify({
        timestamp: i * 200,
        input_length: 32,
        output_length: 8,
        hash_ids: Array.from({ length: 32 }, (_, k) => (i % 4) * 100 + k),
      }),
    );
    const hostile = [
      '{"timestamp":1,"input_length":120000000,"output_length":10,"hash_ids":[1]}',
      '{"timestamp":2,"input_length":32,"output_length":1e12,"hash_ids":[1]}',
      '{"timestamp":1e300,"input_length":32,"output_length":8,"hash_ids":[1]}',
      '{"timestamp":3,"input_length":32,"output_length":8,"hash_ids":[-1]}',
    ];
    await putConfigMap(client, ns, 'hostile', { 'trace.jsonl': [...good, ...hostile].join('\n') });
    await withOperator({ namespace: ns }, async () => {
      await createTuning(
        client,
        ns,
        'hostile',
        tuningSpec('llama', 'hostile', {
          workload: { source: { configMap: { name: 'hostile', key: 'trace.jsonl' } }, traceBlockSize: 1 },
        }),
      );
      const d = await waitFor('the sweep', async () => {
        const x = await getTuning(client, ns, 'hostile');
        return x.status?.lastSweepTime ? x : undefined;
      });
      expect(d.status?.workload).toMatchObject({ requests: 60 });
      expect(d.status?.workload?.badLines).toBe(4);
      expect(condition(d, 'Degraded')).toMatchObject({ status: 'False' });
      const skipped = await warned('hostile', 'TraceLinesSkipped');
      expect(skipped.note).toMatch(/line 61: field 'input_length'/);
    });
  });
});

describe('sweeps that crash, hang or crowd out others', () => {
  it('gives a slot up as Failed after a few crashes instead of retrying for ever', async () => {
    let calls = 0;
    await withOperator(
      {
        namespace: ns,
        failureRetryMs: 200,
        runJob: async () => {
          calls++;
          throw new SweepJobError(
            'SweepCrashed',
            'the sweep ran out of memory (its limit is 128 MiB per thread)',
          );
        },
      },
      async () => {
        await createTuning(client, ns, 'crashy', tuningSpec('llama', 'traffic', { schedule: '0 0 1 1 *' }));
        await waitFor('the slot given up', async () =>
          /crashed 3 times in a row/.test(
            condition(await getTuning(client, ns, 'crashy'), 'Degraded')?.message ?? '',
          ),
        );
        await warned('crashy', 'SweepCrashed');
        const d = await getTuning(client, ns, 'crashy');
        expect(d.status?.history?.[0]).toMatchObject({ outcome: 'Failed' });
        // The next attempt follows the (yearly) schedule.
        expect(Date.parse(d.status!.nextSweepTime!)).toBeGreaterThan(Date.now() + 86_400_000);
        const at = calls;
        await new Promise((r) => setTimeout(r, 1_500));
        expect(calls).toBe(at);
        expect(at).toBe(3);
      },
    );
  });

  it('counts a sweep that died with the operator, so a trace that kills it cannot loop', async () => {
    await createTuning(client, ns, 'killer', tuningSpec('llama', 'traffic', { schedule: '0 0 1 1 *' }));
    for (let restart = 1; restart <= 4; restart++) {
      // Each operator starts the sweep and "dies" (stops without finishing it), as an OOM kill would.
      let started!: () => void;
      const running = new Promise<void>((r) => {
        started = r;
      });
      const op = startOperator({
        namespace: ns,
        runJob: (_input, signal) =>
          new Promise((_resolve, reject) => {
            started();
            signal.addEventListener('abort', () => reject(new Error('killed')));
          }),
      });
      await op.start();
      if (restart < 4) {
        await running;
        await op.stop({ releaseLease: false });
        const d = await getTuning(client, ns, 'killer');
        expect(d.status?.sweepCrashes ?? 0).toBe(restart - 1);
      } else {
        // The fourth start finds three crashes behind it: it gives the slot up instead of a fourth try.
        const c = await degraded('killer', 'SweepCrashed');
        expect(c.message).toMatch(/operator stopped while running it/);
        await op.stop();
      }
    }
  });

  it('stops a sweep at its deadline and frees the slot for the next one', async () => {
    await withOperator(
      {
        namespace: ns,
        runJob: (input, signal) =>
          input.source.includes('slow')
            ? new Promise((_r, reject) =>
                signal.addEventListener('abort', () => reject(new Error('stopped'))),
              )
            : runSweepJob(input, signal),
      },
      async () => {
        await putConfigMap(client, ns, 'slow', { 'trace.jsonl': traceSample(120) });
        await createTuning(
          client,
          ns,
          'hangs',
          tuningSpec('llama', 'slow', { schedule: '0 0 1 1 *', sweepTimeout: '2s' }),
        );
        await createTuning(client, ns, 'waits', tuningSpec('llama', 'traffic', { schedule: '0 0 1 1 *' }));
        const c = await waitFor('the deadline', async () => {
          const d = await getTuning(client, ns, 'hangs');
          return d.status?.history?.[0]?.outcome === 'Failed' ? condition(d, 'Degraded') : undefined;
        });
        expect(c).toMatchObject({ status: 'True', reason: 'SweepTimeout' });
        expect(c!.message).toMatch(/did not finish within 2s/);
        await waitFor(
          'the other sweep',
          async () => (await getTuning(client, ns, 'waits')).status?.currentRecommendation,
        );
      },
    );
  });

  it('shares the sweep slot between namespaces: a second tenant does not wait for all of the first', async () => {
    const other = await createNamespace(client, 'tenant-b');
    await createDgd(client, other, 'llama', 4);
    await putConfigMap(client, other, 'traffic', { 'trace.jsonl': traceSample(120) });
    const order: string[] = [];
    let release!: () => void;
    const gate = new Promise<void>((r) => {
      release = r;
    });
    // One slot: the first sweep holds it until every other sweep is queued.
    await withOperator(
      {
        namespace: undefined as unknown as string,
        leaderElection: { enabled: false, namespace: ns },
        runJob: async (input, signal) => {
          // Objects of other test files may fall due meanwhile: only this test's sweeps take part.
          if (!input.source.includes('/fair-') && !input.source.includes(`${other}/`))
            throw new Error('not part of this test');
          order.push(input.source);
          if (order.length === 1) await gate;
          return runSweepJob(input, signal);
        },
      },
      async () => {
        for (const n of ['a1', 'a2', 'a3']) {
          await putConfigMap(client, ns, `fair-${n}`, { 'trace.jsonl': traceSample(60) });
          await createTuning(
            client,
            ns,
            `fair-${n}`,
            tuningSpec('llama', `fair-${n}`, { schedule: '0 0 1 1 *' }),
          );
        }
        await waitFor('the first sweep', () => order.length === 1);
        await new Promise((r) => setTimeout(r, 500));
        await createTuning(
          client,
          other,
          'fair-b1',
          tuningSpec('llama', 'traffic', { schedule: '0 0 1 1 *' }),
        );
        await waitFor('all sweeps queued', async () => {
          const d = await getTuning(client, other, 'fair-b1');
          return condition(d, 'Sweeping')?.reason === 'SweepQueued';
        });
        release();
        await waitFor('four sweeps', () => order.length === 4, 120_000);
        // The other namespace's sweep runs right after the first, ahead of the first tenant's backlog.
        expect(order[1]).toContain(`configmap://${other}/`);
      },
    );
  });
});

describe('recommendation adoption after a crash', () => {
  it('gives a recommendation found without a state its state, and supersedes the previous one', async () => {
    await withOperator({ namespace: ns }, async () => {
      await createTuning(client, ns, 'adopt', tuningSpec('llama', 'traffic'));
      await waitFor(
        'a first recommendation',
        async () => (await getTuning(client, ns, 'adopt')).status?.currentRecommendation,
      );
    });
    const first = (await getTuning(client, ns, 'adopt')).status!.currentRecommendation!;
    const firstRec = (await listRecommendations(client, ns)).find((r) => r.metadata.name === first)!;
    // A second slot's recommendation exists without a state, as a crash right after creating it leaves it.
    const slot = new Date(Math.floor(Date.now() / 1000) * 1000 + 5_000).toISOString().replace(/\.\d+Z$/, 'Z');
    const secondName = `adopt-${Math.floor(Date.parse(slot) / 1000)}`;
    const body = structuredClone(firstRec) as unknown as {
      metadata: Record<string, unknown>;
      spec: { sweep: { scheduledTime: string } };
      status?: unknown;
    };
    body.metadata = {
      name: secondName,
      namespace: ns,
      labels: firstRec.metadata.labels,
      ownerReferences: firstRec.metadata.ownerReferences,
    };
    body.spec.sweep.scheduledTime = slot;
    delete body.status;
    await client.create(pathOf(TUNING_RECOMMENDATIONS, ns), body);
    await updateTuningStatus(client, ns, 'adopt', (d) => {
      d.status!.nextSweepTime = slot;
    });
    await new Promise((r) => setTimeout(r, Date.parse(slot) - Date.now() + 200));
    await withOperator({ namespace: ns }, async () => {
      await waitFor(
        'the adoption',
        async () => (await getTuning(client, ns, 'adopt')).status?.currentRecommendation === secondName,
      );
      const recs = new Map((await listRecommendations(client, ns)).map((r) => [r.metadata.name, r]));
      expect(recs.get(secondName)?.status?.state).toBe('Proposed');
      expect(recs.get(first)?.status).toMatchObject({ state: 'Superseded', supersededBy: secondName });
    });
  });
});

describe('admission and runtime agree', () => {
  it('a DeploymentTuning the API server accepts is never refused by the operator for its shape', async () => {
    await withOperator({ namespace: ns }, async () => {
      await createTuning(
        client,
        ns,
        'edge-of-limits',
        tuningSpec('llama', 'traffic', {
          schedule: '0 0 ? * 1#2',
          sweepTimeout: '24h',
          gpuBudget: { mode: 'Auto', maxTotalGPUs: 16384, gpus: { h100_sxm: 4096 } },
        }),
      );
      await waitFor(
        'a reconcile',
        async () => (await getTuning(client, ns, 'edge-of-limits')).status?.observedGeneration,
      );
      const d = await getTuning(client, ns, 'edge-of-limits');
      expect(condition(d, 'Degraded')?.reason).not.toBe('InvalidSpec');
      await client.delete(pathOf(DEPLOYMENT_TUNINGS, ns, 'edge-of-limits'));
    });
  });
});
