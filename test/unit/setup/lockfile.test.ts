import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { describe, expect, it } from 'vitest';

/**
 * The committed lockfile is accepted unchanged by both installs a fresh clone meets: `npm ci` (which refuses a
 * lock missing another platform's optional packages) and hack/run.sh's `npm install` (which would rewrite
 * such a lock and leave the clone dirty). Both run on copies of package.json and the lock in a temporary
 * directory, so the real node_modules is never touched: `npm ci --dry-run` offline with an empty cache, the
 * install with npm's cache (filled by hack/run.sh), preferring it to the network.
 */
const root = join(import.meta.dirname, '..', '..', '..');
const npm = join(dirname(process.execPath), 'npm');

function inCopy(
  args: string[],
  cache: 'empty' | 'shared',
): { status: number | null; output: string; lock: string } {
  const dir = mkdtempSync(join(tmpdir(), 'servetune-lock-'));
  copyFileSync(join(root, 'package.json'), join(dir, 'package.json'));
  copyFileSync(join(root, 'package-lock.json'), join(dir, 'package-lock.json'));
  const run = spawnSync(
    npm,
    [
      ...args,
      '--ignore-scripts',
      '--no-audit',
      '--no-fund',
      ...(cache === 'empty' ? ['--offline', '--cache', join(dir, '.npm-cache')] : ['--prefer-offline']),
    ],
    { cwd: dir, encoding: 'utf8', timeout: 120_000 },
  );
  return {
    status: run.status,
    output: `${run.stdout}${run.stderr}`,
    lock: readFileSync(join(dir, 'package-lock.json'), 'utf8'),
  };
}

describe('package-lock.json', () => {
  it('npm ci accepts it (every platform of every optional package is recorded)', () => {
    const r = inCopy(['ci', '--dry-run'], 'empty');
    expect(r.output).not.toMatch(/Missing: .* from lock file/);
    expect(r.status).toBe(0);
  });

  it("hack/run.sh's npm install leaves it byte for byte as committed", () => {
    // With npm's own cache, as hack/run.sh installs: a lock short of what this platform resolves is rewritten.
    const r = inCopy(['install', '--package-lock-only'], 'shared');
    expect(r.status).toBe(0);
    expect(r.lock).toBe(readFileSync(join(root, 'package-lock.json'), 'utf8'));
  });
});
