import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { builtTools, pinned } from '../../../hack/check-prerequisites.ts';

/**
 * `npm test` (hack/test.sh) checks the integration prerequisites first, runs the unit tests whatever they say,
 * and fails naming what it skipped. vitest is replaced by a stub that logs its arguments, so these tests run
 * the real script without running the suite again.
 */
const root = join(import.meta.dirname, '..', '..', '..');

function sandbox(opts: { cached: boolean; unitExit?: number }) {
  const dir = mkdtempSync(join(tmpdir(), 'servetune-npm-test-'));
  const bin = join(dir, 'bin');
  mkdirSync(bin);
  const log = join(dir, 'vitest.log');
  const stub = (path: string, body: string) => {
    mkdirSync(dirname(path), { recursive: true });
    writeFileSync(path, `#!/bin/sh\n${body}\n`);
    chmodSync(path, 0o755);
  };
  stub(
    join(bin, 'vitest'),
    `echo "$*" >> ${log}\ncase "$*" in *unit*) exit ${opts.unitExit ?? 0};; esac\nexit 0`,
  );
  stub(join(bin, 'node'), `exec ${process.execPath} "$@"`);
  const cache = join(dir, 'cache');
  if (opts.cached) for (const t of builtTools(cache)) for (const f of t.files) stub(f, 'exit 0');
  const chromium = join(dir, 'chromium');
  stub(chromium, 'exit 0');
  // No Go on this PATH: bin (node, the vitest stub) and the system's shell tools.
  const env = {
    PATH: `${bin}:/usr/bin:/bin`,
    HOME: dir,
    SERVETUNE_CACHE_DIR: cache,
    CHROMIUM_PATH: chromium,
  };
  const run = spawnSync('sh', [join(root, 'hack/test.sh')], { env, encoding: 'utf8' });
  let calls: string[] = [];
  try {
    calls = readFileSync(log, 'utf8').trim().split('\n');
  } catch {}
  return { run, calls };
}

describe('npm test (hack/test.sh)', () => {
  it('without Go and nothing cached: runs the unit tests, then fails naming what it skipped and why', () => {
    const { run, calls } = sandbox({ cached: false });
    expect(calls).toEqual(['run --project unit']);
    expect(run.status).toBe(1);
    expect(run.stderr).toMatch(
      /^npm test: integration prerequisites missing \(the unit tests run anyway\):\n {2}- Go >= 1\.26\.7 \(no go on PATH\): builds kube-apiserver/,
    );
    expect(run.stderr).toMatch(
      /npm test: FAILED: the unit tests passed, but the integration tests \(test\/integration\/\) were SKIPPED because:\n {2}- Go >= /,
    );
    expect(run.stdout + run.stderr).not.toMatch(/No test files found/);
  });

  it('says so when the unit tests failed too', () => {
    const { run } = sandbox({ cached: false, unitExit: 1 });
    expect(run.status).toBe(1);
    expect(run.stderr).toMatch(
      /npm test: FAILED: the unit tests FAILED, but the integration tests .* were SKIPPED/,
    );
  });

  it('with the tools cached (no Go needed): runs unit then integration tests and passes', () => {
    const { run, calls } = sandbox({ cached: true });
    expect(run.stderr).toBe('');
    expect(calls).toEqual(['run --project unit', 'run --project integration']);
    expect(run.status).toBe(0);
  });

  it('reads the pinned versions from the hack scripts it checks', () => {
    expect(pinned('hack/install-helm.sh', 'HELM_VERSION')).toMatch(/^\d+\.\d+\.\d+$/);
    expect(builtTools().map((t) => t.script)).toEqual([
      'hack/control-plane/build.sh',
      'hack/install-helm.sh',
      'hack/install-prometheus.sh',
    ]);
  });
});
