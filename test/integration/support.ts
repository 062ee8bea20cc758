import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { type AddressInfo, connect, createServer as createNetServer, type Socket } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import { inject } from 'vitest';
import { toCrd } from '../../src/api/crd.ts';
import { CRDS, DEV_CRDS, type TuningRecommendation } from '../../src/api/index.ts';
import { isAlreadyExists, isConflict, isNotFound, KubeClient } from '../../src/operator/kube/client.ts';
import {
  CONFIG_MAPS,
  CRDS as CRD_RESOURCE,
  DEPLOYMENT_TUNINGS,
  DYNAMO_GRAPH_DEPLOYMENTS,
  type KubeList,
  NODES,
  PODS,
  pathOf,
  TUNING_RECOMMENDATIONS,
} from '../../src/operator/kube/resources.ts';
import { Operator, type OperatorOptions } from '../../src/operator/manager.ts';

export const ROOT = fileURLToPath(new URL('../../', import.meta.url));

export function kube(): KubeClient {
  return KubeClient.load(inject('kubeconfig'));
}

/** Polls until `fn` returns a truthy value; fails with the last value/error after `timeoutMs`. */
export async function waitFor<T>(
  what: string,
  fn: () => Promise<T | undefined | null | false> | T | undefined | null | false,
  timeoutMs = 60_000,
  intervalMs = 200,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
      last = v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) {
      throw new Error(
        `timed out waiting for ${what}; last: ${last instanceof Error ? last.message : JSON.stringify(last)}`,
      );
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

/** Applies the servetune CRDs and the stand-in DGD CRD, and waits until they are served. */
export async function installCrds(client: KubeClient): Promise<void> {
  for (const { def } of [...CRDS, ...DEV_CRDS]) {
    const crd = toCrd(def) as { metadata: { name: string } };
    await client.apply(pathOf(CRD_RESOURCE, undefined, crd.metadata.name), crd, 'servetune-tests');
  }
  for (const { def } of [...CRDS, ...DEV_CRDS]) {
    await waitFor(`CRD ${def.plural} established`, async () => {
      const c = await client.get<{ status?: { conditions?: { type: string; status: string }[] } }>(
        pathOf(CRD_RESOURCE, undefined, `${def.plural}.${def.group}`),
      );
      return c.status?.conditions?.some((x) => x.type === 'Established' && x.status === 'True');
    });
    // Established can precede the first successful list by a moment.
    await waitFor(`${def.plural} served`, () =>
      client.get(`/apis/${def.group}/${def.version}/${def.plural}`).then(() => true),
    );
  }
}

export async function createNamespace(client: KubeClient, prefix: string): Promise<string> {
  const name = `${prefix}-${Math.random().toString(36).slice(2, 7)}`;
  await client.create('/api/v1/namespaces', { apiVersion: 'v1', kind: 'Namespace', metadata: { name } });
  return name;
}

/** A GPU node as GPU Feature Discovery labels it, with allocatable GPUs set through the status subresource. */
export async function createGpuNode(
  client: KubeClient,
  name: string,
  product: string,
  gpus: number,
): Promise<void> {
  try {
    await client.create(pathOf(NODES), {
      apiVersion: 'v1',
      kind: 'Node',
      metadata: {
        name,
        labels: {
          'nvidia.com/gpu.present': 'true',
          'nvidia.com/gpu.product': product,
          'nvidia.com/gpu.count': String(gpus),
        },
      },
    });
  } catch (e) {
    if (!isAlreadyExists(e)) throw e;
  }
  const resources = { 'nvidia.com/gpu': String(gpus), cpu: '64', memory: '512Gi', pods: '110' };
  await client.mergePatch(pathOf(NODES, undefined, name, 'status'), {
    status: {
      capacity: resources,
      allocatable: resources,
      conditions: [{ type: 'Ready', status: 'True', reason: 'KubeletReady', message: 'ready' }],
    },
  });
  // The apiserver taints new nodes not-ready; no node lifecycle controller runs here to lift it.
  await client.mergePatch(pathOf(NODES, undefined, name), { spec: { taints: null } });
}

export async function deleteNodes(client: KubeClient, names: string[]): Promise<void> {
  for (const n of names) {
    try {
      await client.delete(pathOf(NODES, undefined, n));
    } catch (e) {
      if (!isNotFound(e)) throw e;
    }
  }
}

/** A running pod bound to a node, holding GPUs (no scheduler or kubelet here: bound by spec.nodeName). */
export async function createGpuPod(
  client: KubeClient,
  namespace: string,
  name: string,
  node: string,
  gpus: number,
) {
  await client.create(pathOf(PODS, namespace), {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace },
    spec: {
      nodeName: node,
      containers: [
        { name: 'main', image: 'busybox', resources: { limits: { 'nvidia.com/gpu': String(gpus) } } },
      ],
    },
  });
}

/** The first `rows` rows of the bundled conversation trace, plus `extra` raw lines. */
export function traceSample(rows: number, extra: string[] = []): string {
  const text = readFileSync(join(ROOT, 'test/fixtures/traces/conversation-sample.jsonl'), 'utf8');
  return [...text.split('\n').slice(0, rows), ...extra].join('\n');
}

export async function putConfigMap(
  client: KubeClient,
  namespace: string,
  name: string,
  data: Record<string, string>,
) {
  await client.apply(
    pathOf(CONFIG_MAPS, namespace, name),
    { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name, namespace }, data },
    'servetune-tests',
  );
}

/**
 * `workerArgs`: more arguments of the worker's command (e.g. a feature the simulator does not model);
 * `gpuProduct`: pin the workers to a GPU product by nodeSelector.
 */
export async function createDgd(
  client: KubeClient,
  namespace: string,
  name: string,
  workers: number,
  workerArgs: string[] = [],
  o: { gpuProduct?: string } = {},
) {
  await client.create(pathOf(DYNAMO_GRAPH_DEPLOYMENTS, namespace), {
    apiVersion: 'nvidia.com/v1alpha1',
    kind: 'DynamoGraphDeployment',
    metadata: { name, namespace },
    spec: {
      services: {
        Frontend: {
          componentType: 'frontend',
          replicas: 1,
          extraPodSpec: { mainContainer: { args: ['python3 -m dynamo.frontend --router-mode round-robin'] } },
        },
        VllmDecodeWorker: {
          componentType: 'worker',
          replicas: workers,
          resources: { limits: { gpu: '1' } },
          extraPodSpec: {
            ...(o.gpuProduct && { nodeSelector: { 'nvidia.com/gpu.product': o.gpuProduct } }),
            mainContainer: {
              command: ['python3', '-m', 'dynamo.vllm'],
              args: ['--model', 'Qwen/Qwen3-8B', '--tensor-parallel-size', '1', ...workerArgs],
            },
          },
        },
      },
    },
  });
}

/** A small, fast DeploymentTuning: few candidates, the trace in a ConfigMap, proposals allowed at once. */
export function tuningSpec(target: string, configMap: string, overrides: Record<string, unknown> = {}) {
  return {
    targetRef: { name: target },
    objective: 'ThroughputPerGPU',
    slos: [
      { metric: 'TTFT', percentile: 90, maxMs: 8000 },
      { metric: 'ITL', percentile: 90, maxMs: 100 },
    ],
    gpuBudget: { mode: 'Auto', maxTotalGPUs: 4 },
    searchSpace: {
      tensorParallel: { aggregated: [1] },
      routers: ['RoundRobin', 'KV'],
      kvOverlapWeights: [1],
    },
    workload: { source: { configMap: { name: configMap, key: 'trace.jsonl' } } },
    schedule: '0 0 1 1 *',
    guardrails: { minImprovementPercent: 10, minProposalInterval: '0s' },
    historyLimit: 5,
    ...overrides,
  };
}

export async function createTuning(client: KubeClient, namespace: string, name: string, spec: object) {
  return client.create<{ metadata: { uid: string; generation: number } }>(
    pathOf(DEPLOYMENT_TUNINGS, namespace),
    {
      apiVersion: 'servetune.dev/v1alpha1',
      kind: 'DeploymentTuning',
      metadata: { name, namespace },
      spec,
    },
  );
}

export interface TuningObject {
  metadata: { name: string; uid: string; generation: number; creationTimestamp?: string };
  spec: Record<string, unknown>;
  status?: {
    observedGeneration?: number;
    conditions?: {
      type: string;
      status: string;
      reason: string;
      message: string;
      observedGeneration?: number;
    }[];
    currentRecommendation?: string;
    sweepCrashes?: number;
    lastSweepTime?: string;
    nextSweepTime?: string;
    history?: { outcome: string; recommendation?: string }[];
    gpuInventory?: {
      types: { gpuType: string; gpus: number; requested: number; available: number }[];
      unknownProducts: { product: string }[];
      budget: Record<string, number>;
    };
    workload?: { requests: number; badLines: number; hash: string };
  };
}

export async function getTuning(client: KubeClient, namespace: string, name: string): Promise<TuningObject> {
  return client.get<TuningObject>(pathOf(DEPLOYMENT_TUNINGS, namespace, name));
}

/** Read-modify-write of a tuning's status, retried on conflicts with the operator's own writes. */
export async function updateTuningStatus(
  client: KubeClient,
  namespace: string,
  name: string,
  mutate: (dt: TuningObject) => void,
): Promise<void> {
  for (let attempt = 0; ; attempt++) {
    const dt = await getTuning(client, namespace, name);
    mutate(dt);
    try {
      await client.replace(pathOf(DEPLOYMENT_TUNINGS, namespace, name, 'status'), dt);
      return;
    } catch (e) {
      if (!isConflict(e) || attempt > 20) throw e;
    }
  }
}

/**
 * Makes the next sweep of a tuning due now. Slots name recommendations to the second, so the new slot must
 * come after every earlier one (the creation time and the last sweep), else the controller would find the
 * earlier slot's recommendation and skip the sweep; it may then lie up to a second ahead.
 */
export function makeDue(client: KubeClient, namespace: string, name: string): Promise<void> {
  return updateTuningStatus(client, namespace, name, (dt) => {
    const after = (iso?: string) => (iso ? Math.floor(Date.parse(iso) / 1000) * 1000 + 1000 : 0);
    const slot = Math.max(
      Date.now() - 1000,
      after(dt.metadata.creationTimestamp),
      after(dt.status?.lastSweepTime),
    );
    dt.status!.nextSweepTime = new Date(slot).toISOString().replace(/\.\d+Z$/, 'Z');
  });
}

export function condition(dt: TuningObject, type: string) {
  return dt.status?.conditions?.find((c) => c.type === type);
}

export async function listRecommendations(client: KubeClient, namespace: string) {
  const l = await client.get<
    KubeList<{
      metadata: {
        name: string;
        labels?: Record<string, string>;
        ownerReferences?: { uid: string; controller?: boolean }[];
      };
      spec: TuningRecommendation['spec'];
      status?: { state: string; supersededBy?: string };
    }>
  >(pathOf(TUNING_RECOMMENDATIONS, namespace));
  return l.items;
}

export async function listEvents(client: KubeClient, namespace: string) {
  const l = await client.get<
    KubeList<{
      reason: string;
      type: string;
      note: string;
      regarding: { name: string; kind: string };
      reportingInstance: string;
    }>
  >(`/apis/events.k8s.io/v1/namespaces/${namespace}/events`);
  return l.items;
}

/** An operator tuned for tests: short leases, fast backoff, one sweep thread, quiet logs. */
export function startOperator(opts: Partial<OperatorOptions> & { namespace: string }): Operator {
  const op = new Operator({
    client: kube(),
    httpPort: 0,
    httpHost: '127.0.0.1',
    workers: 2,
    maxConcurrentSweeps: 1,
    sweepThreads: 1,
    failureRetryMs: 2_000,
    // Tests sweep every few seconds; the default (5 minutes) is tested on its own.
    minScheduleIntervalMs: 1_000,
    leaderElection: {
      enabled: true,
      namespace: opts.namespace,
      name: `servetune-${opts.namespace}`,
      leaseDurationMs: 3_000,
      renewDeadlineMs: 2_000,
      retryPeriodMs: 300,
    },
    informer: { backoffInitialMs: 100, backoffMaxMs: 1_000, watchTimeoutSeconds: 60 },
    queue: { baseDelayMs: 50, maxDelayMs: 2_000 },
    logger: pino({ level: process.env.SERVETUNE_TEST_LOG ?? 'silent' }),
    onLostLease: () => {},
    ...opts,
  });
  return op;
}

/** Kills kube-apiserver with SIGKILL (no graceful close of watches), then starts it again on the same etcd. */
export async function killAndRestartApiserver(): Promise<void> {
  const dir = inject('controlPlaneDir');
  const line = readFileSync(join(dir, 'pids'), 'utf8')
    .split('\n')
    .find((l) => l.startsWith('kube-apiserver '));
  const pid = Number(line?.split(' ')[1]);
  if (!pid) throw new Error(`no kube-apiserver pid in ${dir}/pids`);
  process.kill(pid, 'SIGKILL');
  await waitFor('kube-apiserver to die', () => {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      return stat.split(') ')[1]?.startsWith('Z');
    } catch {
      return true;
    }
  });
  execFileSync('bash', [join(ROOT, 'hack/control-plane/up.sh'), dir], {
    stdio: ['ignore', 'ignore', 'inherit'],
    timeout: 120_000,
  });
}

export interface AuditEvent {
  verb: string;
  userAgent?: string;
  objectRef?: { resource?: string; subresource?: string; namespace?: string; name?: string };
  responseStatus?: { code?: number };
  requestReceivedTimestamp: string;
}

/** Writes the API server audited (see global-setup.ts), optionally those of one namespace only. */
export function auditedWrites(namespace?: string): AuditEvent[] {
  const text = readFileSync(inject('auditLog'), 'utf8');
  const out: AuditEvent[] = [];
  for (const line of text.split('\n')) {
    if (!line) continue;
    const e = JSON.parse(line) as AuditEvent & { stage?: string };
    if (e.stage !== 'ResponseComplete') continue;
    if (namespace !== undefined && e.objectRef?.namespace !== namespace) continue;
    out.push(e);
  }
  return out;
}

/** An operator run as users run it: `bin/servetune.js operator` in a child process, JSON logs collected. */
export interface OperatorProcess {
  child: ChildProcess;
  logs: Record<string, unknown>[];
  /** The replica's identity, as it puts it in the Lease and in its user agent. */
  identity: () => string | undefined;
  exited: Promise<number | null>;
  waitForLog: (msg: string | RegExp, timeoutMs?: number) => Promise<Record<string, unknown>>;
}

export function spawnOperator(args: string[], opts: { kubeconfig?: string } = {}): OperatorProcess {
  const child = spawn(
    process.execPath,
    [
      '--no-memory-protection-keys',
      join(ROOT, 'bin/servetune.js'),
      'operator',
      '--kubeconfig',
      opts.kubeconfig ?? inject('kubeconfig'),
      ...args,
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  const logs: Record<string, unknown>[] = [];
  let buf = '';
  child.stdout!.on('data', (d: Buffer) => {
    buf += d.toString('utf8');
    let nl = buf.indexOf('\n');
    while (nl >= 0) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      try {
        logs.push(JSON.parse(line) as Record<string, unknown>);
      } catch {
        logs.push({ msg: line });
      }
      nl = buf.indexOf('\n');
    }
  });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => {
    stderr += d.toString('utf8');
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const find = (msg: string | RegExp) =>
    logs.find((l) => (typeof msg === 'string' ? l.msg === msg : msg.test(String(l.msg))));
  return {
    child,
    logs,
    exited,
    identity: () => {
      const l = logs.find((x) => typeof x.identity === 'string');
      return l ? String(l.identity) : undefined;
    },
    waitForLog: (msg, timeoutMs = 60_000) =>
      waitFor(
        `operator ${child.pid} to log ${msg} (stderr: ${stderr.slice(-300)})`,
        () => find(msg),
        timeoutMs,
        100,
      ),
  };
}

/**
 * A TCP proxy in front of the API server that can freeze: while frozen it stops reading from both sides, so
 * requests stall in flight and are delivered late when it thaws (a network partition that heals).
 */
export async function freezableProxy(targetPort: number) {
  const pairs: { a: Socket; b: Socket }[] = [];
  let frozen = false;
  const server = createNetServer((a) => {
    const b = connect(targetPort, '127.0.0.1');
    a.pipe(b);
    b.pipe(a);
    const end = () => {
      a.destroy();
      b.destroy();
    };
    a.on('error', end);
    b.on('error', end);
    a.on('close', end);
    b.on('close', end);
    if (frozen) {
      a.pause();
      b.pause();
    }
    pairs.push({ a, b });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as AddressInfo).port,
    freeze() {
      frozen = true;
      for (const { a, b } of pairs) {
        a.pause();
        b.pause();
      }
    },
    thaw() {
      frozen = false;
      for (const { a, b } of pairs) {
        a.resume();
        b.resume();
      }
    },
    async close() {
      for (const { a, b } of pairs) {
        a.destroy();
        b.destroy();
      }
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

/** A copy of the test kubeconfig pointing at another port on loopback (e.g. a proxy). */
export function kubeconfigVia(port: number, dir: string): string {
  const text = readFileSync(inject('kubeconfig'), 'utf8').replace(
    /server: https:\/\/127\.0\.0\.1:\d+/,
    `server: https://127.0.0.1:${port}`,
  );
  const path = join(dir, `kubeconfig-${port}`);
  writeFileSync(path, text);
  return path;
}

/** The API server's port, from the test kubeconfig. */
export function apiserverPort(): number {
  const m = /server: https:\/\/127\.0\.0\.1:(\d+)/.exec(readFileSync(inject('kubeconfig'), 'utf8'));
  if (!m) throw new Error('no loopback server in the test kubeconfig');
  return Number(m[1]);
}
