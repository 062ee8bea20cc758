import { execFileSync, spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { userDirectory } from '../../../src/cli/main.ts';

const root = fileURLToPath(new URL('../../../', import.meta.url));

describe('the servetune command (bin/servetune.js)', () => {
  it('runs the CLI: usage, a command, its exit code', () => {
    const usage = spawnSync(process.execPath, ['bin/servetune.js', '--help'], {
      cwd: root,
      encoding: 'utf8',
    });
    expect(usage.status).toBe(0);
    expect(usage.stdout).toContain('Usage: servetune <command>');
    const help = spawnSync(process.execPath, ['bin/servetune.js', 'simulate', '--help'], {
      cwd: root,
      encoding: 'utf8',
    });
    expect(help.status).toBe(0);
    expect(help.stdout).toContain('--trace FILE');
    const bad = spawnSync(process.execPath, ['bin/servetune.js', 'nope'], { cwd: root, encoding: 'utf8' });
    expect(bad.status).toBe(2);
    expect(bad.stderr).toContain("unknown command 'nope'");
  });

  // A Node older than the sources need, if this machine has one (Debian's is 20).
  const oldNode = ['/usr/bin/node', '/usr/local/bin/node'].find((p) => {
    if (!existsSync(p)) return false;
    const [major, minor] = execFileSync(p, ['-p', 'process.versions.node'], { encoding: 'utf8' })
      .trim()
      .split('.')
      .map(Number);
    return major < 22 || (major === 22 && minor < 18);
  });
  it.skipIf(oldNode === undefined)(
    'on an older Node, runs itself with the project Node (hack/run.sh)',
    () => {
      const r = spawnSync(oldNode as string, ['bin/servetune.js', 'catalog', '--json'], {
        cwd: root,
        encoding: 'utf8',
        env: { ...process.env, PATH: '/usr/bin:/bin' },
      });
      expect(r.status).toBe(0);
      expect(JSON.parse(r.stdout).gpus.length).toBeGreaterThan(5);
    },
  );
});

describe('under npm run', () => {
  const npm = join(dirname(process.execPath), 'npm');
  const env = { ...process.env, PATH: `${dirname(process.execPath)}:${process.env.PATH}` };

  it('npm run servetune -- catalog --json > f leaves npm banner out of f', () => {
    const r = spawnSync(npm, ['run', 'servetune', '--', 'catalog', '--json'], {
      cwd: root,
      encoding: 'utf8',
      env,
    });
    expect(r.status).toBe(0);
    expect(r.stdout).not.toMatch(/^> /m);
    expect(JSON.parse(r.stdout).gpus.length).toBeGreaterThan(5);
  });

  it("resolves paths from the user's directory (INIT_CWD), not the package root", () => {
    const dir = mkdtempSync(join(tmpdir(), 'servetune-npm-'));
    copyFileSync(join(root, 'test/fixtures/traces/conversation-sample.jsonl'), join(dir, 't.jsonl'));
    const r = spawnSync(
      npm,
      [
        '--prefix',
        root,
        'run',
        'servetune',
        '--',
        'simulate',
        '--trace',
        't.jsonl',
        '--json',
        'out.json',
        '--quiet',
      ],
      { cwd: dir, encoding: 'utf8', env },
    );
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(JSON.parse(readFileSync(join(dir, 'out.json'), 'utf8')).report.completed_requests).toBe(2000);
    expect(existsSync(join(root, 'out.json'))).toBe(false);
  });

  it('takes INIT_CWD only for a script that runs the command', () => {
    expect(
      userDirectory({ INIT_CWD: '/u', npm_lifecycle_script: 'sh hack/run.sh node bin/servetune.js' }),
    ).toBe('/u');
    expect(
      userDirectory({ INIT_CWD: '/u', npm_lifecycle_script: 'sh hack/run.sh sh hack/test.sh' }),
    ).toBeUndefined();
    expect(userDirectory({ npm_lifecycle_script: 'node bin/servetune.js' })).toBeUndefined();
    expect(userDirectory({})).toBeUndefined();
  });
});
