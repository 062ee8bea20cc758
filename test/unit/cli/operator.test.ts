import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { main } from '../../../src/cli/main.ts';

async function run(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  const out = new PassThrough();
  const err = new PassThrough();
  let o = '';
  let e = '';
  out.on('data', (d) => {
    o += d;
  });
  err.on('data', (d) => {
    e += d;
  });
  const code = await main(argv, out, err);
  return { code, out: o, err: e };
}

describe('servetune operator', () => {
  it('documents its flags', async () => {
    const r = await run('operator', '--help');
    expect(r.code).toBe(0);
    for (const flag of [
      '--kubeconfig',
      '--namespace',
      '--http-port',
      '--max-concurrent-sweeps',
      '--sweep-threads',
      '--leader-election-id',
    ]) {
      expect(r.out).toContain(flag);
    }
  });

  it('refuses a missing kubeconfig and bad numbers with one line and exit code 2', async () => {
    const missing = await run('operator', '--kubeconfig', '/nonexistent/kubeconfig');
    expect(missing.code).toBe(2);
    expect(missing.err).toBe('servetune operator: --kubeconfig: /nonexistent/kubeconfig not found\n');
    const zero = await run('operator', '--kubeconfig', '/dev/null', '--workers', '0');
    expect(zero.code).toBe(2);
    expect(zero.err).toContain('--workers: must be at least 1');
    expect((await run('operator', '--bogus')).code).toBe(2);
  });
});
