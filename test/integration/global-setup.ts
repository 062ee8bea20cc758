import { execFileSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
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
  }
}

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
  const kubeconfig = script('up.sh', dir).split('\n').pop()!;
  project.provide('kubeconfig', kubeconfig);
  project.provide('controlPlaneDir', dir);
  return () => {
    script('down.sh', dir, '--rm');
  };
}
