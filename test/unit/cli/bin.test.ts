import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

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
});
