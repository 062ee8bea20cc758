import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { FIXTURES } from '../support/sim.ts';

const CLI = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url));

describe('servetune sweep interrupted with Ctrl-C', () => {
  it('stops cleanly, writes the partial results and exits 130', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'servetune-int-'));
    const json = join(dir, 'partial.json');
    const html = join(dir, 'partial.html');
    const child = spawn(
      process.execPath,
      [
        '--no-memory-protection-keys', // as bin/servetune.js runs on CPUs with PKU: the sweep starts a thread
        CLI,
        'sweep',
        '--trace',
        `${FIXTURES}traces/conversation-sample.jsonl`,
        '--gpus',
        'h100:16',
        '--model',
        'llama-3.1-8b',
        '--threads',
        '1',
        '--json',
        json,
        '--html',
        html,
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let stderr = '';
    let stdout = '';
    child.stdout.on('data', (d) => {
      stdout += d;
    });
    const interrupted = new Promise<void>((resolve) => {
      child.stderr.on('data', (d) => {
        stderr += d;
        // Interrupt once a few candidates are done.
        if (/progress: ([3-9]|\d\d+)\/\d+/.test(stderr) && !child.killed) {
          child.kill('SIGINT');
          resolve();
        }
      });
    });
    await interrupted;
    const code = await new Promise<number | null>((resolve) => child.on('exit', (c) => resolve(c)));
    expect(code).toBe(130);
    expect(stderr).toMatch(/stopping after the simulations in flight/);
    expect(stdout).toMatch(/STOPPED EARLY, partial results/);
    const doc = JSON.parse(readFileSync(json, 'utf8'));
    expect(doc.stats.partial).toBe(true);
    const done = doc.candidates.filter((c: { metrics: unknown }) => c.metrics !== null).length;
    expect(done).toBeGreaterThanOrEqual(3);
    expect(done).toBeLessThan(doc.candidates.length);
    expect(readFileSync(html, 'utf8')).toMatch(/stopped early: partial results/);
  });
});
