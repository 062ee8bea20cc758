import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { resolveTwinOptions } from '../../src/cli/twin.ts';
import { KubeClient } from '../../src/operator/kube/client.ts';
import { DYNAMO_GRAPH_DEPLOYMENTS_V1BETA1, pathOf } from '../../src/operator/kube/resources.ts';
import { startTestTwin, stopTestTwins } from '../support/twin.ts';
import { createNamespace, installCrds, kube, ROOT, waitFor } from './support.ts';

/**
 * The chart's twins (`twin.enabled`): one Deployment and Service per target DGD (in the DGD's namespace, with
 * Prometheus scrape annotations and the labels of a Dynamo frontend pod), the twin's flags parsed by the real
 * command, and RBAC that lets the twin do its job in the targets' namespaces and nothing else there or
 * elsewhere, shown by SubjectAccessReview and by running a twin as that service account.
 */

interface Manifest {
  apiVersion: string;
  kind: string;
  metadata: {
    name: string;
    namespace?: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
  };
  spec?: Record<string, unknown>;
  [key: string]: unknown;
}

let admin: ReturnType<typeof kube>;
let release: string;
let serving: string;
let other: string;
let manifests: Manifest[];

function helmBin(): string {
  return execFileSync('bash', [join(ROOT, 'hack/install-helm.sh')], { encoding: 'utf8' })
    .trim()
    .split('\n')
    .pop()!;
}

beforeAll(async () => {
  admin = kube();
  await installCrds(admin);
  release = await createNamespace(admin, 'twin-release');
  serving = await createNamespace(admin, 'twin-serving');
  other = await createNamespace(admin, 'twin-other');
  const text = execFileSync(
    helmBin(),
    [
      'template',
      'st',
      join(ROOT, 'charts/servetune'),
      '--namespace',
      release,
      '--set',
      'twin.enabled=true',
      '--set',
      'twin.targets[0].name=llama',
      '--set',
      `twin.targets[0].namespace=${serving}`,
      '--set',
      'twin.targets[1].name=small',
      '--set',
      'twin.trace.configMap=traffic',
      '--set',
      'twin.trace.key=trace.jsonl',
      '--set',
      'twin.args[0]=--startup-time=30',
    ],
    { encoding: 'utf8' },
  );
  manifests = parseAllDocuments(text)
    .map((d) => d.toJS() as Manifest | null)
    .filter((m): m is Manifest => m !== null);
  // The twin's RBAC objects, applied as the chart renders them.
  for (const m of manifests) {
    const base =
      m.kind === 'ClusterRole' || m.kind === 'RoleBinding'
        ? '/apis/rbac.authorization.k8s.io/v1'
        : m.kind === 'ServiceAccount'
          ? '/api/v1'
          : undefined;
    if (!base || !m.metadata.name.includes('twin')) continue;
    const plural = {
      ClusterRole: 'clusterroles',
      RoleBinding: 'rolebindings',
      ServiceAccount: 'serviceaccounts',
    }[m.kind as 'ClusterRole'];
    const ns = m.kind === 'ClusterRole' ? '' : `/namespaces/${m.metadata.namespace}`;
    await admin.apply(`${base}${ns}/${plural}/${m.metadata.name}`, m, 'chart-twin-test');
  }
});

afterAll(async () => {
  await stopTestTwins();
  await admin.close();
});

const find = (kind: string, name: string) =>
  manifests.filter((m) => m.kind === kind && m.metadata.name === name);

describe('the chart with twin.enabled', () => {
  it('renders a Deployment and a scrapeable Service per target, in the target namespace', async () => {
    for (const [name, ns] of [
      ['llama', serving],
      ['small', release],
    ]) {
      const [d] = find('Deployment', `st-servetune-twin-${name}`);
      expect(d.metadata.namespace).toBe(ns);
      const pod = (
        d.spec as {
          template: {
            metadata: { labels: Record<string, string>; annotations: Record<string, string> };
            spec: { containers: { command: string[]; args: string[] }[]; serviceAccountName: string };
          };
        }
      ).template;
      expect(pod.metadata.annotations).toMatchObject({
        'prometheus.io/scrape': 'true',
        'prometheus.io/port': '8000',
      });
      expect(pod.metadata.labels).toMatchObject({
        'nvidia.com/dynamo-namespace': `${ns}-${name}`,
        'nvidia.com/dynamo-component-type': 'frontend',
      });
      expect(pod.spec.serviceAccountName).toBe('st-servetune-twin');
      const c = pod.spec.containers[0];
      expect(c.command.slice(-2)).toEqual(['bin/servetune.js', 'twin']);
      // The real command accepts the rendered arguments (the trace mount is not here, so it is left out).
      const args = c.args.filter((a) => !a.startsWith('--trace='));
      const { options } = await resolveTwinOptions(args);
      expect(options.cluster).toMatchObject({ namespace: ns, target: name });
      expect(options.port).toBe(8000);
      expect(options.config.startupTimeS).toBe(30);
      expect(c.args).toContain('--trace=/traces/trace.jsonl');
      const [svc] = find('Service', `st-servetune-twin-${name}`);
      expect(svc.metadata.annotations).toMatchObject({ 'prometheus.io/scrape': 'true' });
    }
  });

  it("grants the twin what it needs in the targets' namespaces and nothing elsewhere", async () => {
    const sa = `system:serviceaccount:${release}:st-servetune-twin`;
    const can = async (
      verb: string,
      resource: string,
      namespace: string,
      subresource?: string,
      group = 'nvidia.com',
    ) => {
      const r = await admin.create<{ status: { allowed: boolean } }>(
        '/apis/authorization.k8s.io/v1/subjectaccessreviews',
        {
          apiVersion: 'authorization.k8s.io/v1',
          kind: 'SubjectAccessReview',
          spec: {
            user: sa,
            groups: ['system:serviceaccounts', `system:serviceaccounts:${release}`, 'system:authenticated'],
            resourceAttributes: { verb, group, resource, subresource, namespace },
          },
        },
      );
      return r.status.allowed;
    };
    for (const ns of [serving, release]) {
      for (const verb of ['get', 'list', 'watch', 'patch'])
        expect(await can(verb, 'dynamographdeployments', ns), verb).toBe(true);
      expect(await can('patch', 'dynamographdeployments', ns, 'status')).toBe(true);
      expect(await can('create', 'dynamographdeploymentscalingadapters', ns)).toBe(true);
      expect(await can('patch', 'dynamographdeploymentscalingadapters', ns, 'scale')).toBe(true);
      expect(await can('delete', 'dynamographdeployments', ns)).toBe(false);
      expect(await can('update', 'deploymenttunings', ns, undefined, 'servetune.dev')).toBe(false);
      expect(await can('get', 'secrets', ns, undefined, '')).toBe(false);
    }
    expect(await can('get', 'dynamographdeployments', other)).toBe(false);
    expect(await can('patch', 'dynamographdeployments', other, 'status')).toBe(false);
  });

  it('is enough for a twin to follow its DGD and report it Ready', async () => {
    await admin.create(pathOf(DYNAMO_GRAPH_DEPLOYMENTS_V1BETA1, serving), {
      apiVersion: 'nvidia.com/v1beta1',
      kind: 'DynamoGraphDeployment',
      metadata: { name: 'llama' },
      spec: {
        components: [
          { name: 'Frontend', type: 'frontend', replicas: 1 },
          {
            name: 'decode',
            type: 'worker',
            replicas: 2,
            scalingAdapter: {},
            podTemplate: {
              spec: {
                containers: [
                  {
                    name: 'main',
                    args: ['--model', 'Qwen/Qwen3-8B'],
                    resources: { limits: { 'nvidia.com/gpu': '1' } },
                  },
                ],
              },
            },
          },
        ],
      },
    });
    const asTwin = new KubeClient(admin.config, {
      impersonate: {
        user: `system:serviceaccount:${release}:st-servetune-twin`,
        groups: ['system:serviceaccounts', 'system:authenticated'],
      },
    });
    await startTestTwin({ cluster: { client: asTwin, namespace: serving, target: 'llama' } });
    await waitFor('Ready written by the twin as its service account', async () => {
      const o = await admin.get<{ status?: { conditions?: { type: string; status: string }[] } }>(
        pathOf(DYNAMO_GRAPH_DEPLOYMENTS_V1BETA1, serving, 'llama'),
      );
      return o.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True');
    });
    await stopTestTwins();
    await asTwin.close();
  });
});
