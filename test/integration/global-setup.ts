import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { TestProject } from 'vitest/node';

/**
 * Starts a real control plane (etcd + kube-apiserver from hack/control-plane) for the integration tests and
 * stops it afterwards. build.sh returns at once when the binaries are cached (a cold build takes ~11 min).
 */

declare module 'vitest' {
  export interface ProvidedContext {
    kubeconfig: string;
    controlPlaneDir: string;
    /** JSON-lines audit log of every write the API server accepted for processing. */
    auditLog: string;
  }
}

/**
 * Writes (not reads) are audited at Metadata level: verb, object, user agent and the time the server received
 * them. Tests use it to prove who wrote what when (a deposed leader must write nothing).
 */
const AUDIT_POLICY = `apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
  - level: Metadata
    verbs: [create, update, patch, delete, deletecollection]
  - level: None
`;

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

function script(name: string, ...args: string[]): string {
  return execFileSync('bash', [join(ROOT, 'hack/control-plane', name), ...args], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
    timeout: 30 * 60_000,
  }).trim();
}

export default function setup(project: TestProject): () => void {
  const bin = script('build.sh').split('\n').pop()!;
  const dir = mkdtempSync(join(tmpdir(), 'servetune-it-'));
  process.env.SERVETUNE_CONTROL_PLANE_BIN = bin;
  const auditLog = join(dir, 'audit.log');
  writeFileSync(join(dir, 'audit-policy.yaml'), AUDIT_POLICY);
  process.env.SERVETUNE_APISERVER_EXTRA_ARGS = [
    `--audit-policy-file=${join(dir, 'audit-policy.yaml')}`,
    `--audit-log-path=${auditLog}`,
    '--audit-log-format=json',
    '--audit-log-maxsize=0',
  ].join(' ');
  const kubeconfig = script('up.sh', dir).split('\n').pop()!;
  project.provide('kubeconfig', kubeconfig);
  project.provide('controlPlaneDir', dir);
  project.provide('auditLog', auditLog);
  return () => {
    script('down.sh', dir, '--rm');
  };
}
