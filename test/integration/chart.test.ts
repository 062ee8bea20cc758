import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { parse, parseAllDocuments } from 'yaml';
import { parseFlags } from '../../src/cli/flags.ts';
import { OPERATOR_FLAGS } from '../../src/cli/operator.ts';
import { isNotFound, type KubeClient } from '../../src/operator/kube/client.ts';
import {
  createDgd,
  createGpuNode,
  createNamespace,
  createTuning,
  deleteNodes,
  getTuning,
  installCrds,
  kube,
  putConfigMap,
  ROOT,
  traceSample,
  tuningSpec,
  waitFor,
} from './support.ts';

/**
 * The Helm chart (charts/servetune) on a real kube-apiserver: `helm lint`, `helm template` with several value
 * sets applied object by object (kinds this API server does not serve, such as ServiceMonitor, are skipped
 * and listed), the Deployment's spec against the operator's real flags, the service account's permissions
 * by SubjectAccessReview, the operator run with the rendered arguments and a token of that service account,
 * and `helm install` / `helm uninstall` themselves. helm comes from hack/install-helm.sh (cached).
 */

interface Manifest {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string> };
  [key: string]: unknown;
}
interface Container {
  name: string;
  image: string;
  args: string[];
  ports: { name: string; containerPort: number }[];
  livenessProbe: { httpGet: { path: string; port: string } };
  readinessProbe: { httpGet: { path: string; port: string } };
  securityContext: Record<string, unknown>;
  volumeMounts: { name: string; mountPath: string }[];
}
interface DeploymentObject {
  spec: {
    replicas: number;
    template: {
      metadata: { labels: Record<string, string> };
      spec: {
        serviceAccountName: string;
        securityContext: Record<string, unknown>;
        containers: Container[];
        volumes: { name: string; emptyDir?: object }[];
      };
    };
  };
}
interface Rule {
  apiGroups: string[];
  resources: string[];
  verbs: string[];
}

const CHART = join(ROOT, 'charts/servetune');
const MANAGER = 'servetune-chart-test';
let admin: KubeClient;
let helmBin: string;
let helmEnv: NodeJS.ProcessEnv;
let scratch: string;

function helm(...args: string[]): string {
  return execFileSync(helmBin, args, {
    encoding: 'utf8',
    env: helmEnv,
    stdio: ['ignore', 'pipe', 'pipe'],
    timeout: 120_000,
  });
}

function values(set: Record<string, string | number | boolean>): string[] {
  return Object.entries(set).flatMap(([k, v]) => ['--set', `${k}=${v}`]);
}

function render(release: string, namespace: string, set: Record<string, string | number | boolean>) {
  const text = helm('template', release, CHART, '--namespace', namespace, '--include-crds', ...values(set));
  return parseAllDocuments(text)
    .map((d) => d.toJS() as Manifest | null)
    .filter((m): m is Manifest => m !== null);
}

/** REST paths from API discovery; undefined when the server does not serve the group/version. */
const discovery = new Map<string, Map<string, { name: string; namespaced: boolean }> | undefined>();
async function resourceFor(apiVersion: string, kind: string) {
  if (!discovery.has(apiVersion)) {
    const base = apiVersion.includes('/') ? `/apis/${apiVersion}` : `/api/${apiVersion}`;
    try {
      const list = await admin.get<{ resources: { name: string; kind: string; namespaced: boolean }[] }>(
        base,
      );
      discovery.set(
        apiVersion,
        new Map(list.resources.filter((r) => !r.name.includes('/')).map((r) => [r.kind, r])),
      );
    } catch (e) {
      if (!isNotFound(e)) throw e;
      discovery.set(apiVersion, undefined);
    }
  }
  const r = discovery.get(apiVersion)?.get(kind);
  if (!r) return undefined;
  const base = apiVersion.includes('/') ? `/apis/${apiVersion}` : `/api/${apiVersion}`;
  return { base, ...r };
}

/** Server-side applies every manifest the server has a kind for; returns the kinds it had none for. */
async function applyAll(manifests: Manifest[], namespace: string): Promise<string[]> {
  const skipped: string[] = [];
  for (const m of manifests) {
    const r = await resourceFor(m.apiVersion, m.kind);
    if (!r) {
      skipped.push(`${m.apiVersion}/${m.kind}`);
      continue;
    }
    if (r.namespaced) expect(m.metadata.namespace, `${m.kind} ${m.metadata.name}`).toBeDefined();
    const ns = r.namespaced ? `/namespaces/${m.metadata.namespace ?? namespace}` : '';
    await admin.apply(`${r.base}${ns}/${r.name}/${m.metadata.name}`, m, MANAGER);
  }
  return skipped;
}

const one = (ms: Manifest[], kind: string, name: string) => {
  const found = ms.filter((m) => m.kind === kind && m.metadata.name === name);
  expect(found, `${kind} ${name}`).toHaveLength(1);
  return found[0];
};
const kinds = (ms: Manifest[]) => ms.map((m) => `${m.kind}/${m.metadata.name}`).sort();

interface Access {
  verb: string;
  group: string;
  resource: string;
  subresource?: string;
  namespace?: string;
  name?: string;
}
async function allowed(sa: { namespace: string; name: string }, a: Access): Promise<boolean> {
  const r = await admin.create<{ status: { allowed: boolean } }>(
    '/apis/authorization.k8s.io/v1/subjectaccessreviews',
    {
      apiVersion: 'authorization.k8s.io/v1',
      kind: 'SubjectAccessReview',
      spec: {
        user: `system:serviceaccount:${sa.namespace}:${sa.name}`,
        groups: ['system:serviceaccounts', `system:serviceaccounts:${sa.namespace}`, 'system:authenticated'],
        resourceAttributes: a,
      },
    },
  );
  return r.status.allowed;
}
const show = (a: Access) =>
  `${a.verb} ${a.group || 'core'}/${a.resource}${a.subresource ? `/${a.subresource}` : ''} in ${a.namespace ?? '(cluster)'}`;

/** Every call the operator makes (src/operator/), by where it makes it. */
const NEEDS: { where: 'watched' | 'cluster' | 'lease'; access: Omit<Access, 'namespace'> }[] = [
  // Informers (list, watch) and fresh reads before status writes.
  ...['get', 'list', 'watch'].map((verb) => ({
    where: 'watched' as const,
    access: { verb, group: 'servetune.dev', resource: 'deploymenttunings' },
  })),
  {
    where: 'watched',
    access: { verb: 'update', group: 'servetune.dev', resource: 'deploymenttunings', subresource: 'status' },
  },
  ...['get', 'list', 'watch', 'create', 'delete'].map((verb) => ({
    where: 'watched' as const,
    access: { verb, group: 'servetune.dev', resource: 'tuningrecommendations' },
  })),
  {
    where: 'watched',
    access: {
      verb: 'update',
      group: 'servetune.dev',
      resource: 'tuningrecommendations',
      subresource: 'status',
    },
  },
  // The target: read, and server-side apply of the owned fields; replicas via scaling adapters.
  ...['get', 'list', 'watch', 'patch'].map((verb) => ({
    where: 'watched' as const,
    access: { verb, group: 'nvidia.com', resource: 'dynamographdeployments' },
  })),
  {
    where: 'watched',
    access: { verb: 'list', group: 'nvidia.com', resource: 'dynamographdeploymentscalingadapters' },
  },
  {
    where: 'watched',
    access: {
      verb: 'patch',
      group: 'nvidia.com',
      resource: 'dynamographdeploymentscalingadapters',
      subresource: 'scale',
    },
  },
  { where: 'watched', access: { verb: 'get', group: '', resource: 'configmaps' } },
  { where: 'watched', access: { verb: 'create', group: 'events.k8s.io', resource: 'events' } },
  { where: 'watched', access: { verb: 'patch', group: 'events.k8s.io', resource: 'events' } },
  // The GPU inventory: every Node, and Pods in all namespaces.
  { where: 'cluster', access: { verb: 'list', group: '', resource: 'nodes' } },
  { where: 'cluster', access: { verb: 'list', group: '', resource: 'pods' } },
  // Leader election in the release namespace.
  ...['get', 'create', 'update'].map((verb) => ({
    where: 'lease' as const,
    access: { verb, group: 'coordination.k8s.io', resource: 'leases' },
  })),
];

/** What it must not do: it changes targets only by server-side apply, and reads no secrets. */
const MUST_NOT: Omit<Access, 'namespace'>[] = [
  ...['delete', 'update', 'create'].map((verb) => ({
    verb,
    group: 'nvidia.com',
    resource: 'dynamographdeployments',
  })),
  ...['create', 'update', 'delete'].map((verb) => ({
    verb,
    group: 'servetune.dev',
    resource: 'deploymenttunings',
  })),
  { verb: 'update', group: 'servetune.dev', resource: 'tuningrecommendations' },
  { verb: 'get', group: '', resource: 'secrets' },
  { verb: 'list', group: '', resource: 'configmaps' },
  { verb: 'delete', group: '', resource: 'pods' },
  { verb: 'create', group: '', resource: 'pods' },
  { verb: 'delete', group: 'apps', resource: 'deployments' },
];

async function checkAccess(
  sa: { namespace: string; name: string },
  opts: { watched: string[]; unwatched: string[] },
): Promise<void> {
  const failures: string[] = [];
  const expectAccess = async (a: Access, want: boolean) => {
    if ((await allowed(sa, a)) !== want) failures.push(`${want ? 'denied' : 'allowed'}: ${show(a)}`);
  };
  for (const { where, access } of NEEDS) {
    if (where === 'cluster') await expectAccess(access, true);
    else if (where === 'lease') {
      await expectAccess({ ...access, namespace: sa.namespace }, true);
      for (const ns of opts.unwatched) await expectAccess({ ...access, namespace: ns }, false);
    } else {
      for (const ns of opts.watched) await expectAccess({ ...access, namespace: ns }, true);
      for (const ns of opts.unwatched) await expectAccess({ ...access, namespace: ns }, false);
    }
  }
  for (const access of MUST_NOT) {
    for (const ns of [...opts.watched, ...opts.unwatched, sa.namespace])
      await expectAccess({ ...access, namespace: ns }, false);
  }
  await expectAccess({ verb: 'delete', group: '', resource: 'nodes' }, false);
  expect(failures).toEqual([]);
}

function deploymentChecks(d: DeploymentObject, sa: string) {
  const pod = d.spec.template.spec;
  expect(pod.serviceAccountName).toBe(sa);
  expect(pod.securityContext).toMatchObject({
    runAsNonRoot: true,
    runAsUser: 1000,
    seccompProfile: { type: 'RuntimeDefault' },
  });
  expect(pod.containers).toHaveLength(1);
  const c = pod.containers[0];
  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string };
  expect(c.image).toBe(`servetune:${pkg.version}`);
  expect(c.securityContext).toEqual({
    allowPrivilegeEscalation: false,
    readOnlyRootFilesystem: true,
    runAsNonRoot: true,
    capabilities: { drop: ['ALL'] },
  });
  // The read-only root filesystem leaves /tmp (an emptyDir) for Node's compile cache.
  const tmp = c.volumeMounts.find((m) => m.mountPath === '/tmp');
  expect(pod.volumes.find((v) => v.name === tmp?.name)?.emptyDir).toBeDefined();
  expect(c.ports).toEqual([expect.objectContaining({ name: 'http', containerPort: 8080 })]);
  expect(c.livenessProbe.httpGet).toMatchObject({ path: '/healthz', port: 'http' });
  expect(c.readinessProbe.httpGet).toMatchObject({ path: '/readyz', port: 'http' });
  // The arguments are the operator's own flags (parseFlags throws on any other), no positionals.
  const parsed = parseFlags(c.args, OPERATOR_FLAGS);
  expect(parsed.positionals).toEqual([]);
  return Object.fromEntries(parsed.values);
}

beforeAll(() => {
  admin = kube();
  helmBin = execFileSync('bash', [join(ROOT, 'hack/install-helm.sh')], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
    timeout: 30 * 60_000,
  })
    .trim()
    .split('\n')
    .pop()!;
  scratch = mkdtempSync(join(tmpdir(), 'servetune-chart-'));
  helmEnv = {
    PATH: process.env.PATH,
    HOME: scratch,
    HELM_CACHE_HOME: join(scratch, 'cache'),
    HELM_CONFIG_HOME: join(scratch, 'config'),
    HELM_DATA_HOME: join(scratch, 'data'),
    KUBECONFIG: inject('kubeconfig'),
  };
  return installCrds(admin);
});

afterAll(() => admin.close());

describe('charts/servetune', () => {
  it('passes helm lint --strict with each value set', () => {
    const sets: Record<string, string | number | boolean>[] = [
      {},
      { watchNamespace: 'team-a', 'serviceMonitor.enabled': true },
      { replicas: 1, 'leaderElection.enabled': false, 'rbac.userRoles': false },
    ];
    for (const set of sets) {
      expect(helm('lint', '--strict', CHART, ...values(set))).toContain('0 chart(s) failed');
    }
  });

  it('refuses values that would break the install', () => {
    expect(() => helm('template', 'x', CHART, '--set', 'leaderElection.enabled=false')).toThrow(
      /replicas: 1/,
    );
    expect(() => helm('template', 'x', CHART, '--set', 'logLevel=loud')).toThrow(/logLevel must be one of/);
  });

  it('defaults: cluster-wide watch, two replicas with leader election, exactly the operator rules', async () => {
    const ns = await createNamespace(admin, 'chart');
    const other = await createNamespace(admin, 'chart-other');
    const release = `st-${ns.slice(-5)}`;
    const full = `${release}-servetune`;
    const ms = render(release, ns, {});
    expect(kinds(ms)).toEqual(
      [
        `ClusterRole/${full}-editor`,
        `ClusterRole/${full}-operator`,
        `ClusterRole/${full}-viewer`,
        `ClusterRoleBinding/${full}-operator`,
        `ConfigMap/${full}-dashboards`,
        'CustomResourceDefinition/deploymenttunings.servetune.dev',
        'CustomResourceDefinition/tuningrecommendations.servetune.dev',
        `Deployment/${full}`,
        `PodDisruptionBudget/${full}`,
        `Role/${full}-leader-election`,
        `RoleBinding/${full}-leader-election`,
        `Service/${full}-metrics`,
        `ServiceAccount/${full}`,
        'ValidatingAdmissionPolicy/servetune-review-identity',
        'ValidatingAdmissionPolicyBinding/servetune-review-identity',
      ].sort(),
    );
    expect(await applyAll(ms, ns)).toEqual([]);

    // The rendered rules are config/rbac/'s, rule for rule.
    const config = parseAllDocuments(readFileSync(join(ROOT, 'config/rbac/role.yaml'), 'utf8')).map(
      (d) => d.toJS() as { kind: string; rules: Rule[] },
    );
    const role = await admin.get<{ rules: Rule[] }>(
      `/apis/rbac.authorization.k8s.io/v1/clusterroles/${full}-operator`,
    );
    expect(role.rules).toEqual(config.find((o) => o.kind === 'ClusterRole')!.rules);
    const lease = await admin.get<{ rules: Rule[] }>(
      `/apis/rbac.authorization.k8s.io/v1/namespaces/${ns}/roles/${full}-leader-election`,
    );
    expect(lease.rules).toEqual(config.find((o) => o.kind === 'Role')!.rules);

    const d = await admin.get<DeploymentObject>(`/apis/apps/v1/namespaces/${ns}/deployments/${full}`);
    expect(d.spec.replicas).toBe(2);
    expect(deploymentChecks(d, full)).toEqual({
      'http-port': 8080,
      'log-level': 'info',
      workers: 2,
      'max-concurrent-sweeps': 1,
      'sweep-threads': 1,
      'max-sweep-duration': '30m',
      'min-schedule-interval': '5m',
      'leader-election-namespace': ns,
      'leader-election-id': full,
    });
    const svc = await admin.get<{
      spec: { selector: Record<string, string>; ports: { name: string; targetPort: string }[] };
    }>(`/api/v1/namespaces/${ns}/services/${full}-metrics`);
    expect(svc.spec.ports).toEqual([expect.objectContaining({ name: 'metrics', targetPort: 'http' })]);
    expect(d.spec.template.metadata.labels).toMatchObject(svc.spec.selector);

    // Everywhere: all namespaces ('') and any one of them.
    await checkAccess({ namespace: ns, name: full }, { watched: ['', other], unwatched: [] });
    expect(
      await allowed(
        { namespace: ns, name: full },
        { verb: 'create', group: 'coordination.k8s.io', resource: 'leases', namespace: other },
      ),
    ).toBe(false);
  });

  it('watchNamespace: rules bound in that namespace only, the inventory cluster-wide; the operator runs as the service account', async () => {
    const ns = await createNamespace(admin, 'chart');
    const watched = await createNamespace(admin, 'chart-watched');
    const other = await createNamespace(admin, 'chart-other');
    const release = `st-${ns.slice(-5)}`;
    const full = `${release}-servetune`;
    const ms = render(release, ns, { watchNamespace: watched, 'serviceMonitor.enabled': true });
    expect(one(ms, 'RoleBinding', `${full}-operator`).metadata.namespace).toBe(watched);
    one(ms, 'ClusterRole', `${full}-inventory`);
    one(ms, 'ClusterRoleBinding', `${full}-inventory`);
    expect(ms.filter((m) => m.kind === 'ClusterRoleBinding')).toHaveLength(1);
    one(ms, 'ServiceMonitor', full);
    // The test API server has no Prometheus Operator CRDs: the ServiceMonitor, and only it, is skipped.
    expect(await applyAll(ms, ns)).toEqual(['monitoring.coreos.com/v1/ServiceMonitor']);

    const d = await admin.get<DeploymentObject>(`/apis/apps/v1/namespaces/${ns}/deployments/${full}`);
    const args = deploymentChecks(d, full);
    expect(args).toMatchObject({
      namespace: watched,
      'leader-election-namespace': ns,
      'leader-election-id': full,
    });
    await checkAccess({ namespace: ns, name: full }, { watched: [watched], unwatched: ['', other] });

    // Run the operator with the Deployment's arguments and a token of the chart's service account.
    const token = await admin.create<{ status: { token: string } }>(
      `/api/v1/namespaces/${ns}/serviceaccounts/${full}/token`,
      { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenRequest', spec: { expirationSeconds: 3600 } },
    );
    const kc = parse(readFileSync(inject('kubeconfig'), 'utf8'));
    kc.users = [{ name: 'sa', user: { token: token.status.token } }];
    kc.contexts[0].context.user = 'sa';
    const kubeconfig = join(scratch, `${full}.kubeconfig`);
    writeFileSync(kubeconfig, JSON.stringify(kc), { mode: 0o600 });
    const container = d.spec.template.spec.containers[0];
    const argv = container.args.map((a) => (a.startsWith('--http-port=') ? '--http-port=0' : a));
    const gpuNode = `chart-gpu-${ns.slice(-5)}`;
    await createGpuNode(admin, gpuNode, 'NVIDIA-H100-SXM5-80GB', 8);
    await createDgd(admin, watched, 'llama', 4);
    await putConfigMap(admin, watched, 'traffic', { 'trace.jsonl': traceSample(100) });
    let child: ChildProcess | undefined;
    try {
      child = spawn(
        process.execPath,
        [join(ROOT, 'bin/servetune.js'), 'operator', ...argv, '--kubeconfig', kubeconfig],
        {
          stdio: ['ignore', 'pipe', 'pipe'],
          env: { PATH: process.env.PATH, HOME: scratch },
        },
      );
      let log = '';
      child.stdout!.on('data', (b) => {
        log += b;
      });
      child.stderr!.on('data', (b) => {
        log += b;
      });
      const port = await waitFor(
        'the operator to serve HTTP',
        () => {
          if (child!.exitCode !== null) throw new Error(`operator exited ${child!.exitCode}: ${log}`);
          const m = /"port":(\d+),"msg":"Serving/.exec(log);
          return m ? Number(m[1]) : undefined;
        },
        30_000,
      );
      const get = (path: string) => fetch(`http://127.0.0.1:${port}${path}`);
      expect((await get(container.livenessProbe.httpGet.path)).status).toBe(200);
      await waitFor(
        'readiness',
        async () => (await get(container.readinessProbe.httpGet.path)).status === 200,
      );
      await createTuning(admin, watched, 'llama', tuningSpec('llama', 'traffic'));
      const dt = await waitFor(
        `a recommendation made as the service account (log: ${log.slice(-2000)})`,
        async () => {
          const t = await getTuning(admin, watched, 'llama');
          return t.status?.currentRecommendation ? t : undefined;
        },
        180_000,
      );
      expect(dt.status!.gpuInventory!.types.map((t) => t.gpuType)).toContain('h100_sxm');
      const leaseObj = await admin.get<{ spec: { holderIdentity: string } }>(
        `/apis/coordination.k8s.io/v1/namespaces/${ns}/leases/${full}`,
      );
      expect(leaseObj.spec.holderIdentity).toBeTruthy();
      expect(await (await get('/metrics')).text()).toContain('servetune_recommendations');
      // No permission error anywhere in its log.
      expect(log).not.toMatch(/forbidden/i);
    } finally {
      if (child && child.exitCode === null) {
        const exited = new Promise((r) => child!.once('exit', r));
        child.kill('SIGTERM');
        await exited;
      }
      await deleteNodes(admin, [gpuNode]);
    }
  });

  it('prometheusTokenSecrets: the operator may get exactly those Secrets, and nothing else of Secrets', async () => {
    const ns = await createNamespace(admin, 'chart');
    const tenant = await createNamespace(admin, 'chart-tenant');
    const release = `st-${ns.slice(-5)}`;
    const full = `${release}-servetune`;
    const ms = render(release, ns, {
      'prometheusTokenSecrets[0]': 'prometheus-token',
      prometheusUrl: 'https://prometheus.example.com',
      'dashboards.enabled': false,
    });
    expect(ms.some((m) => m.kind === 'ConfigMap')).toBe(false);
    expect(await applyAll(ms, ns)).toEqual([]);
    const d = await admin.get<DeploymentObject>(`/apis/apps/v1/namespaces/${ns}/deployments/${full}`);
    expect(d.spec.template.spec.containers[0].args).toContain('--prometheus-token-secrets=prometheus-token');
    const sa = { namespace: ns, name: full };
    const secret = (verb: string, name?: string) =>
      allowed(sa, { verb, group: '', resource: 'secrets', namespace: tenant, ...(name && { name }) });
    expect(await secret('get', 'prometheus-token')).toBe(true);
    expect(await secret('get', 'db-password')).toBe(false);
    expect(await secret('list')).toBe(false);
    expect(await secret('watch')).toBe(false);
  });

  it('single replica without leader election and without ServiceMonitor or user roles', async () => {
    const ns = await createNamespace(admin, 'chart');
    const release = `st-${ns.slice(-5)}`;
    const full = `${release}-servetune`;
    const ms = render(release, ns, {
      replicas: 1,
      'leaderElection.enabled': false,
      'serviceMonitor.enabled': false,
      'rbac.userRoles': false,
      logLevel: 'debug',
      'sweep.threads': 4,
      'traceRoots[0]': '/traces',
    });
    expect(
      ms
        .map((m) => m.kind)
        .filter((k) => ['Role', 'RoleBinding', 'PodDisruptionBudget', 'ServiceMonitor'].includes(k)),
    ).toEqual([]);
    expect(ms.filter((m) => m.kind === 'ClusterRole').map((m) => m.metadata.name)).toEqual([
      `${full}-operator`,
    ]);
    expect(await applyAll(ms, ns)).toEqual([]);
    const d = await admin.get<DeploymentObject>(`/apis/apps/v1/namespaces/${ns}/deployments/${full}`);
    expect(d.spec.replicas).toBe(1);
    expect(deploymentChecks(d, full)).toEqual({
      'http-port': 8080,
      'log-level': 'debug',
      workers: 2,
      'max-concurrent-sweeps': 1,
      'sweep-threads': 4,
      'max-sweep-duration': '30m',
      'min-schedule-interval': '5m',
      'no-leader-elect': true,
      'trace-root': '/traces',
    });
  });

  it('installs and uninstalls with helm itself', async () => {
    const ns = await createNamespace(admin, 'chart');
    const release = `st-${ns.slice(-5)}`;
    const full = `${release}-servetune`;
    // The review policy is cluster-wide and already installed by the other tests: this release leaves it be.
    const out = helm('install', release, CHART, '--namespace', ns, '--set', 'reviewPolicy.create=false');
    expect(out).toContain('STATUS: deployed');
    expect(out).toContain(`kubectl -n ${ns} rollout status deployment/${full}`);
    await admin.get(`/apis/apps/v1/namespaces/${ns}/deployments/${full}`);
    await admin.get(`/apis/rbac.authorization.k8s.io/v1/clusterroles/${full}-operator`);
    helm('uninstall', release, '--namespace', ns);
    for (const path of [
      `/apis/rbac.authorization.k8s.io/v1/clusterroles/${full}-operator`,
      `/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/${full}-operator`,
    ]) {
      await expect(admin.get(path)).rejects.toMatchObject({ status: 404 });
    }
    // CRDs stay (Helm never deletes the ones in crds/).
    await admin.get(
      '/apis/apiextensions.k8s.io/v1/customresourcedefinitions/deploymenttunings.servetune.dev',
    );
  });
});
