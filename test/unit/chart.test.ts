import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parse, parseAllDocuments } from 'yaml';
import {
  CHART_RBAC_FILE,
  CHART_REVIEW_POLICY_FILE,
  CLUSTER_WIDE_RESOURCES,
  REVIEW_POLICY_FILE,
  renderChartRbac,
} from '../../hack/chart-rbac.ts';
import { CHART_CRD_DIR, CRDS } from '../../src/api/index.ts';

/**
 * The Helm chart (charts/servetune) against its sources: CRDs from src/api/, RBAC rules from config/rbac/,
 * the version from package.json. `npm run generate:crds` rewrites the generated parts.
 * test/integration/chart.test.ts renders and applies the chart with helm.
 */

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const read = (file: string) => readFileSync(`${ROOT}${file}`, 'utf8');

interface Rule {
  apiGroups: string[];
  resources: string[];
  verbs: string[];
}
interface RbacDoc {
  kind: string;
  metadata: { name: string };
  rules: Rule[];
}

function rbacObject(file: string, kind: string, name: string): RbacDoc {
  const docs = parseAllDocuments(read(`config/rbac/${file}`)).map((d) => d.toJS() as RbacDoc);
  const o = docs.find((d) => d.kind === kind && d.metadata.name === name);
  if (!o) throw new Error(`no ${kind} ${name} in config/rbac/${file}`);
  return o;
}

describe('charts/servetune', () => {
  it('ships exactly the CRDs of crds/, byte for byte', () => {
    const names = CRDS.map(({ file }) => file.slice(file.lastIndexOf('/') + 1)).sort();
    expect(readdirSync(`${ROOT}${CHART_CRD_DIR}`).sort()).toEqual(names);
    for (const name of names) {
      expect(read(`${CHART_CRD_DIR}/${name}`), name).toBe(read(`crds/${name}`));
    }
  });

  it('has the RBAC rules of config/rbac/ (run `npm run generate:crds` after changing them)', () => {
    expect(read(CHART_RBAC_FILE)).toBe(renderChartRbac(ROOT));
    const chart = parse(read(CHART_RBAC_FILE)) as Record<string, Rule[]>;
    expect(chart.operator).toEqual(rbacObject('role.yaml', 'ClusterRole', 'servetune-operator').rules);
    expect(chart.leaderElection).toEqual(rbacObject('role.yaml', 'Role', 'servetune-leader-election').rules);
    expect(chart.viewer).toEqual(rbacObject('user-roles.yaml', 'ClusterRole', 'servetune-viewer').rules);
    expect(chart.editor).toEqual(rbacObject('user-roles.yaml', 'ClusterRole', 'servetune-editor').rules);
    // The cluster-wide part for a namespaced install: reading the review policy, listing Nodes and Pods.
    expect(chart.inventory).toEqual([
      {
        apiGroups: ['admissionregistration.k8s.io'],
        resources: ['validatingadmissionpolicies', 'validatingadmissionpolicybindings'],
        resourceNames: ['servetune-review-identity'],
        verbs: ['get'],
      },
      { apiGroups: [''], resources: ['nodes', 'pods'], verbs: ['list'] },
    ]);
    expect(CLUSTER_WIDE_RESOURCES).toContain('nodes');
    // The review admission policy ships with the chart as it is in config/admission/.
    expect(read(CHART_REVIEW_POLICY_FILE)).toBe(read(REVIEW_POLICY_FILE));
  });

  it('takes its appVersion from package.json and the image tag from the appVersion', () => {
    const chart = parse(read('charts/servetune/Chart.yaml')) as { appVersion: string; version: string };
    const pkg = JSON.parse(read('package.json')) as { version: string };
    expect(chart.appVersion).toBe(pkg.version);
    const values = parse(read('charts/servetune/values.yaml')) as { image: { tag: string } };
    expect(values.image.tag).toBe('');
  });

  it('defaults to two replicas with leader election and a hardened security context', () => {
    const v = parse(read('charts/servetune/values.yaml'));
    expect(v.replicas).toBe(2);
    expect(v.leaderElection.enabled).toBe(true);
    expect(v.podSecurityContext).toMatchObject({
      runAsNonRoot: true,
      seccompProfile: { type: 'RuntimeDefault' },
    });
    expect(v.securityContext).toEqual({
      allowPrivilegeEscalation: false,
      readOnlyRootFilesystem: true,
      runAsNonRoot: true,
      capabilities: { drop: ['ALL'] },
    });
    // The image's user is the one the pod runs as (a numeric uid, so the kubelet can check runAsNonRoot).
    const dockerfile = read('Dockerfile');
    expect(dockerfile).toMatch(new RegExp(`^USER ${v.podSecurityContext.runAsUser}:`, 'm'));
    expect(dockerfile).toContain(
      'ENTRYPOINT ["node", "--no-memory-protection-keys", "bin/servetune.js", "operator"]',
    );
  });
});
