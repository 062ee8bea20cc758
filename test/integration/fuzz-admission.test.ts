import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ApiError, type KubeClient } from '../../src/operator/kube/client.ts';
import { DEPLOYMENT_TUNINGS, pathOf } from '../../src/operator/kube/resources.ts';
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
  type OperatorProcess,
  putConfigMap,
  spawnOperator,
  traceSample,
  tuningSpec,
  waitFor,
} from './support.ts';

/**
 * Malformed DeploymentTunings, generated, against the real API server and the real operator command: each
 * is either refused at admission or, once accepted, answered by the operator (its status observed, and any
 * Degraded condition with a Warning Event and a one-line message), the operator never crashes, and good
 * objects created between the bad ones keep being reconciled. Seeded (FUZZ_SEED overrides) so a failure
 * replays; FUZZ_RUNS sets how many objects.
 */

const SEED = Number(process.env.FUZZ_SEED ?? 20261203);
const RUNS = Number(process.env.FUZZ_RUNS ?? 200);

let client: KubeClient;
let ns: string;
let op: OperatorProcess;
const NODES = ['fuzz-gpu'];

beforeAll(async () => {
  client = kube();
  await installCrds(client);
  ns = await createNamespace(client, 'fuzz');
  await createGpuNode(client, NODES[0], 'NVIDIA-H100-SXM5-80GB', 8);
  await createDgd(client, ns, 'llama', 2);
  await putConfigMap(client, ns, 'traffic', { 'trace.jsonl': traceSample(40) });
  op = spawnOperator(['--namespace', ns, '--http-port', '0', '--no-leader-elect']);
});

afterAll(async () => {
  op.child.kill('SIGTERM');
  await op.exited;
  await deleteNodes(client, NODES);
  await client.close();
});

/** Values that have broken parsers before: wrong types, extremes, long and odd strings. */
const nasty = fc.oneof(
  fc.string({ maxLength: 40 }),
  fc.string({ unit: 'grapheme', maxLength: 20 }),
  fc.constantFrom('', ' ', 'null', '0', '-1', '1e309', 'NaN', '\u0000', 'é✓', 'x'.repeat(5000)),
  fc.integer({ min: -(2 ** 31), max: 2 ** 31 }),
  fc.constantFrom(0, -1, 1, 2 ** 53 + 2, -(2 ** 53), 1e300, 0.5, 1e-300),
  fc.double({ noNaN: true, noDefaultInfinity: true }),
  fc.boolean(),
  fc.constant(null),
  fc.array(fc.oneof(fc.integer(), fc.string({ maxLength: 8 })), { maxLength: 30 }),
  fc.dictionary(fc.string({ maxLength: 12 }), fc.oneof(fc.integer(), fc.string({ maxLength: 8 })), {
    maxKeys: 8,
  }),
  // Near misses of the real syntaxes.
  fc
    .array(
      fc.constantFrom('*', '0', '59', '60', '*/0', '*/7', '1-5', '5-1', 'L', '?', 'MON', '31', '2', ','),
      {
        minLength: 3,
        maxLength: 7,
      },
    )
    .map((f) => f.join(' ')),
  fc.constantFrom('0 0 31 2 *', '0 0 30 2 *', '@reboot', '@hourly', '* * * * * *', '0 0 29 2 *'),
  fc.constantFrom('0s', '0ms', '1h', '99999999h', '1.5h', '1h30m', '-1s', '1d', '15', 'm'),
  fc.constantFrom(
    'http://',
    'http:///x',
    'https://169.254.169.254/latest/meta-data/',
    'http://127.0.0.1:1/x',
    'https://user:pw@example.com/t',
    'https://kubernetes.default.svc/api',
    'ftp://example.com/t',
    'https://[::1]/t',
  ),
);

/** Paths of a DeploymentTuning spec worth breaking. */
const PATHS = [
  'targetRef',
  'targetRef.name',
  'targetRef.kind',
  'targetRef.apiVersion',
  'model',
  'objective',
  'slos',
  'slos.0.maxMs',
  'slos.0.percentile',
  'gpuBudget',
  'gpuBudget.mode',
  'gpuBudget.gpus',
  'gpuBudget.maxTotalGPUs',
  'searchSpace',
  'searchSpace.topologies',
  'searchSpace.tensorParallel.aggregated',
  'searchSpace.workers.aggregated',
  'searchSpace.workers.aggregated.max',
  'searchSpace.routers',
  'searchSpace.kvOverlapWeights',
  'searchSpace.blockSizes',
  'searchSpace.maxNumSeqs',
  'searchSpace.optimizer',
  'workload',
  'workload.source',
  'workload.source.url',
  'workload.source.configMap.name',
  'workload.source.configMap.key',
  'workload.lookback',
  'workload.traceBlockSize',
  'schedule',
  'sweepTimeout',
  'suspend',
  'updatePolicy.mode',
  'guardrails.minImprovementPercent',
  'guardrails.minProposalInterval',
  'historyLimit',
  'unknownField',
];

function setPath(o: Record<string, unknown>, path: string, value: unknown): void {
  const parts = path.split('.');
  let cur: Record<string, unknown> = o;
  for (const p of parts.slice(0, -1)) {
    if (typeof cur[p] !== 'object' || cur[p] === null) cur[p] = {};
    cur = cur[p] as Record<string, unknown>;
  }
  const last = parts[parts.length - 1];
  if (value === undefined) delete cur[last];
  else cur[last] = value;
}

const mutation = fc.array(
  fc.record({ path: fc.constantFrom(...PATHS), value: fc.oneof(nasty, fc.constant(undefined)) }),
  { minLength: 1, maxLength: 3 },
);

describe('malformed DeploymentTunings (generated)', () => {
  it(`are refused at admission or answered by the operator, which keeps going (${RUNS} objects)`, async () => {
    await op.waitForLog('Caches synced; starting workers');
    // Most objects target a DGD that does not exist (cheap to answer); some the real one, so that sweeps run
    // with broken budgets, sources and spaces too.
    const cases = fc.sample(fc.tuple(mutation, fc.boolean(), fc.integer({ min: 0, max: 2 })), {
      numRuns: RUNS,
      seed: SEED,
    });
    let refused = 0;
    let accepted = 0;
    const reasons = new Map<string, number>();
    const problems: string[] = [];
    for (const [i, [muts, , pick]] of cases.entries()) {
      const spec = structuredClone(
        tuningSpec(pick < 2 ? 'llama' : 'fuzz-missing', 'traffic', {
          schedule: '0 0 1 1 *',
          searchSpace: {
            tensorParallel: { aggregated: [1] },
            workers: { aggregated: { min: 1, max: 2 } },
            routers: ['KV'],
          },
        }),
      ) as Record<string, unknown>;
      for (const m of muts) setPath(spec, m.path, m.value);
      const name = `fuzz-${i}`;
      try {
        await createTuning(client, ns, name, spec);
      } catch (e) {
        if (e instanceof ApiError && (e.status === 422 || e.status === 400)) {
          refused++;
          continue;
        }
        throw e;
      }
      accepted++;
      // Observed, and for objects with a target, through their first sweep (or held back before it).
      const dt = await waitFor(
        `${name} answered (${JSON.stringify(muts).slice(0, 300)})`,
        async () => {
          const d = await getTuning(client, ns, name);
          if (d.status?.observedGeneration !== d.metadata.generation || !condition(d, 'Ready'))
            return undefined;
          const settled =
            pick === 2 ||
            condition(d, 'Degraded')?.status === 'True' ||
            d.status?.lastSweepTime ||
            condition(d, 'Ready')?.reason === 'Suspended';
          return settled ? d : undefined;
        },
        60_000,
        100,
      );
      for (const c of dt.status?.conditions ?? []) {
        if (c.message.includes('\n') || c.message.length > 32768)
          problems.push(`${name}: ${c.type} message is not one bounded line`);
      }
      const degraded = condition(dt, 'Degraded');
      const outcome =
        degraded?.status === 'True'
          ? degraded.reason
          : (dt.status?.history?.[0]?.outcome ?? `Ready:${condition(dt, 'Ready')?.reason}`);
      reasons.set(outcome, (reasons.get(outcome) ?? 0) + 1);
      if (degraded?.status === 'True') {
        const warned = await waitFor(
          `a Warning Event for ${name} (${degraded.reason})`,
          async () =>
            (await listEvents(client, ns)).some((e) => e.regarding.name === name && e.type === 'Warning'),
          15_000,
          200,
        ).catch(() => false);
        if (!warned) problems.push(`${name}: Degraded ${degraded.reason} without a Warning Event`);
      }
      // Objects with a sweep are removed again so that sweeps do not pile up behind the fuzz.
      if (pick < 2) await client.delete(pathOf(DEPLOYMENT_TUNINGS, ns, name));
      // A good object every 25: the operator keeps reconciling while bad ones come and go.
      if (i % 25 === 24) {
        const good = `good-${i}`;
        await createTuning(
          client,
          ns,
          good,
          tuningSpec('fuzz-missing', 'traffic', { schedule: '0 0 1 1 *' }),
        );
        await waitFor(`${good} reconciled`, async () => {
          const d = await getTuning(client, ns, good);
          return condition(d, 'Degraded')?.reason === 'TargetNotFound';
        });
      }
      expect(op.child.exitCode, `the operator exited after ${name}`).toBeNull();
    }
    console.log(
      `fuzz seed ${SEED}: ${refused} refused at admission, ${accepted} accepted;`,
      Object.fromEntries(reasons),
    );
    expect(problems).toEqual([]);
    // Both paths were exercised.
    expect(refused).toBeGreaterThan(RUNS / 10);
    expect(accepted).toBeGreaterThan(RUNS / 10);
    // And at the end a good object still gets its recommendation.
    await createTuning(client, ns, 'good-last', tuningSpec('llama', 'traffic', { schedule: '0 0 1 1 *' }));
    await waitFor(
      'a recommendation after the fuzz',
      async () => (await getTuning(client, ns, 'good-last')).status?.currentRecommendation,
      120_000,
    );
    expect(op.logs.filter((l) => Number(l.level) >= 60)).toEqual([]);
    expect(op.child.exitCode).toBeNull();
  });
});
