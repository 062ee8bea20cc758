// Says, one line each, which prerequisites of the integration tests are missing, before any test runs:
// `npm test` (hack/test.sh) then still runs the unit tests and fails saying what it skipped and why.
// Prints nothing and exits 0 when everything is there; exits 3 when something is missing.
// The built tools are found where their hack/ scripts cache them (versions read from the scripts, so this
// check follows a version bump); Go is needed only for those not cached yet.
import { execFileSync } from 'node:child_process';
import { accessSync, constants, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';

const root = join(import.meta.dirname, '..');
const cache = process.env.SERVETUNE_CACHE_DIR ?? join(homedir(), '.cache', 'servetune');

/** The pinned `NAME="value"` of a hack script. */
export function pinned(script: string, name: string): string {
  const m = new RegExp(`^${name}="([^"]+)"`, 'm').exec(readFileSync(join(root, script), 'utf8'));
  if (!m) throw new Error(`${script}: no ${name}="..." line`);
  return m[1];
}

/** Go-built tools: where each script caches its binaries, and the Go it needs. */
export function builtTools(
  cacheDir = cache,
): { name: string; script: string; files: string[]; go: string }[] {
  const k8s = pinned('hack/control-plane/build.sh', 'K8S_VERSION');
  const etcd = pinned('hack/control-plane/build.sh', 'ETCD_VERSION');
  const cp = join(cacheDir, 'control-plane', `k8s-${k8s}-etcd-${etcd}`, 'bin');
  const helm = pinned('hack/install-helm.sh', 'HELM_VERSION');
  const prom = pinned('hack/install-prometheus.sh', 'PROMETHEUS_VERSION');
  return [
    {
      name: `kube-apiserver ${k8s} and etcd ${etcd}`,
      script: 'hack/control-plane/build.sh',
      files: [join(cp, 'kube-apiserver'), join(cp, 'etcd')],
      go: '1.26.0',
    },
    {
      name: `helm ${helm}`,
      script: 'hack/install-helm.sh',
      files: [join(cacheDir, `helm-${helm}`, 'helm')],
      go: '1.26.0',
    },
    {
      name: `Prometheus ${prom}`,
      script: 'hack/install-prometheus.sh',
      files: [join(cacheDir, `prometheus-${prom}`, 'prometheus')],
      go: '1.26.7',
    },
  ];
}

const executable = (path: string) => {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
};

const onPath = (cmd: string) =>
  (process.env.PATH ?? '').split(':').some((dir) => dir !== '' && executable(join(dir, cmd)));

/** `go version` as [major, minor, patch], or null without Go. */
function goVersion(): number[] | null {
  if (!onPath('go')) return null;
  try {
    const out = execFileSync('go', ['version'], { encoding: 'utf8', timeout: 30_000 });
    const m = /go(\d+)\.(\d+)(?:\.(\d+))?/.exec(out);
    return m ? [Number(m[1]), Number(m[2]), Number(m[3] ?? 0)] : null;
  } catch {
    return null;
  }
}

const atLeast = (have: number[], want: string) => {
  const w = want.split('.').map(Number);
  for (let i = 0; i < 3; i++) if ((have[i] ?? 0) !== w[i]) return (have[i] ?? 0) > w[i];
  return true;
};

/** One line per missing prerequisite, each saying what needs it and how to get it. */
export function missingPrerequisites(): string[] {
  const missing: string[] = [];
  if (!onPath('bash'))
    missing.push('bash: the hack/ scripts the integration tests start run in bash; install it');
  const go = goVersion();
  const toBuild = builtTools().filter((t) => !t.files.every(executable));
  const needGo = toBuild.filter((t) => go === null || !atLeast(go, t.go));
  if (needGo.length > 0) {
    const want = needGo
      .map((t) => t.go)
      .sort()
      .at(-1);
    const have = go === null ? 'no go on PATH' : `go ${go.join('.')} on PATH`;
    missing.push(
      `Go >= ${want} (${have}): builds ${needGo.map((t) => t.name).join(', ')} from the Go module proxy into ` +
        `${cache} (not cached yet; the first build takes ~15 minutes). Install Go from https://go.dev/dl/, or ` +
        `build them elsewhere and copy ${cache} here`,
    );
  }
  const chromium = [process.env.CHROMIUM_PATH, '/usr/bin/chromium', '/usr/bin/chromium-browser'].find(
    (p) => p !== undefined && p !== '' && executable(p),
  );
  const canApt = onPath('apt-get') && (process.getuid?.() === 0 || onPath('sudo'));
  if (!chromium && !canApt) {
    missing.push(
      'Chromium: the HTML report tests render in headless Chromium; install it (Debian: apt-get install ' +
        'chromium) or set CHROMIUM_PATH to its executable',
    );
  }
  return missing;
}

if (import.meta.main) {
  const missing = missingPrerequisites();
  for (const m of missing) process.stdout.write(`${m}\n`);
  process.exitCode = missing.length > 0 ? 3 : 0;
}
