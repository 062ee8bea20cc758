import { createServer } from 'node:net';
import { describe, expect, it } from 'vitest';
import { resolveTwinOptions } from '../../../src/cli/twin.ts';
import { cli } from '../../support/cli.ts';

const TRACE = 'test/fixtures/traces/conversation-sample.jsonl';

describe('servetune twin: flags', () => {
  it('lists its own flags and the simulator settings it takes in --help', async () => {
    const r = await cli('twin', '--help');
    expect(r.code).toBe(0);
    for (const flag of [
      '--http-port',
      '--time-scale',
      '--drift-trace',
      '--request-trace-dir',
      '--degrade',
      '--target',
      '--workers',
      '--router',
      '--startup-time',
      '--restart-after',
    ])
      expect(r.out).toContain(flag);
    // Traffic flags of `simulate` are not the twin's (it has --trace and HTTP clients).
    expect(r.out).not.toContain('--request-count');
  });

  it('turns flags into twin options: standalone with a trace, faults, request traces', async () => {
    const { options } = await resolveTwinOptions([
      '--trace',
      TRACE,
      '--workers',
      '3',
      '--router',
      'kv',
      '--time-scale',
      '5',
      '--once',
      '--degrade',
      '2:role=aggregated',
      '--stall',
      '10s:5s,1m:2s',
      '--crash-worker',
      '30s:1',
      '--startup-time',
      '12',
      '--http-port',
      '0',
    ]);
    expect(options.config).toMatchObject({ workers: 3, router: { mode: 'kv' }, startupTimeS: 12 });
    expect(options.trace).toMatchObject({ path: TRACE, loop: false });
    expect(options.timeScale).toBe(5);
    expect(options.faults).toEqual({
      degrade: { factor: 2, selector: { role: 'aggregated' } },
      stalls: [
        { atMs: 10_000, durationMs: 5_000 },
        { atMs: 60_000, durationMs: 2_000 },
      ],
      crashes: [{ atMs: 30_000, worker: 1 }],
      // A crashed worker comes back after --startup-time unless --restart-after says otherwise.
      restartAfterMs: 12_000,
    });
    const live = await resolveTwinOptions(['--workers', '2']);
    expect(live.options.trace).toBeUndefined();
    expect(live.options.port).toBe(8000);
    // Neither flag: startTwin's default (the catalog's model load).
    expect(live.options.faults?.restartAfterMs).toBeUndefined();
    const restart = async (...argv: string[]) =>
      (await resolveTwinOptions(['--workers', '2', '--crash-worker', '1m', ...argv])).options.faults
        ?.restartAfterMs;
    expect(await restart('--restart-after', '2m', '--startup-time', '12')).toBe(120_000);
    expect(await restart('--restart-after', 'never')).toBeNull();
    expect(await restart('--restart-after=0s')).toBe(0);
  });

  it('refuses bad flags with one message naming the flag and exit 2', async () => {
    const cases: [string[], RegExp][] = [
      [['--time-scale', '0'], /--time-scale: 0 must be above 0/],
      [['--degrade', '0.5'], /--degrade: factor '0.5'/],
      [['--degrade', '2:colour=red'], /--degrade: 'colour=red'/],
      [['--stall', '10s'], /--stall: '10s' needs AT:DURATION/],
      [['--stall', 'soon:5s'], /--stall: 'soon' is not a duration/],
      [['--crash-worker', '10s:x'], /--crash-worker: 'x' is not a worker id/],
      [['--restart-after', 'later'], /--restart-after: 'later' is not a duration/],
      [['--restart-after', '48h'], /--restart-after: '48h' must be from 0s to 24h/],
      [
        ['--restart-after', '1m', '--target', 'x', '--namespace', 'y'],
        /--restart-after: a twin following a DGD restarts a crashed worker after --startup-time/,
      ],
      [['--namespace', 'ns'], /--namespace needs --target NAME/],
      [['--target', 'x'], /--target needs --namespace NS/],
      [['--drift-at', '5m'], /--drift-at needs --drift-trace/],
      [['--trace', 'no-such.jsonl'], /no-such.jsonl/],
      [['--startup-time=-1'], /--startup-time: -1 must be from 0/],
      [['--workers', '0'], /workers/],
      [['--request-count', '5'], /unknown option '--request-count'/],
      [
        ['--kubeconfig', '/no/such/kubeconfig', '--target', 'x', '--namespace', 'y'],
        /--kubeconfig: \/no\/such\/kubeconfig not found/,
      ],
    ];
    for (const [argv, re] of cases) {
      const r = await cli('twin', ...argv);
      expect(r.code, argv.join(' ')).toBe(2);
      expect(r.err, argv.join(' ')).toMatch(re);
      expect(r.err.split('\n').filter((l) => l !== '')).toHaveLength(1);
    }
  });

  it('says when its port is taken', async () => {
    const blocker = createServer();
    await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', r));
    const port = (blocker.address() as { port: number }).port;
    const r = await cli('twin', '--host', '127.0.0.1', '--http-port', String(port));
    blocker.close();
    expect(r.code).toBe(2);
    expect(r.err).toMatch(new RegExp(`--http-port: port ${port} is in use`));
  });
});
