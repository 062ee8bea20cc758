import { createServer, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { KubeConfig } from '@kubernetes/client-node';
import { afterEach, describe, expect, it } from 'vitest';
import { KubeClient } from '../../../src/operator/kube/client.ts';
import { Informer } from '../../../src/operator/kube/informer.ts';
import { DEPLOYMENT_TUNINGS, type KubeObject } from '../../../src/operator/kube/resources.ts';

/**
 * The informer's recovery paths against a scripted HTTP server (the integration suite covers a real
 * kube-apiserver; this pins down 410 handling and the stall watchdog deterministically).
 */

type Step = (res: ServerResponse) => void;

async function scriptedServer(lists: object[][], watches: Step[]) {
  const seen = { lists: 0, watches: [] as string[] };
  const open: ServerResponse[] = [];
  const server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    if (url.searchParams.get('watch') === 'true') {
      seen.watches.push(url.searchParams.get('resourceVersion') ?? '');
      open.push(res);
      const step = watches.shift();
      res.writeHead(200, { 'content-type': 'application/json' });
      if (step) step(res);
      return;
    }
    const items = lists[Math.min(seen.lists, lists.length - 1)];
    seen.lists++;
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ metadata: { resourceVersion: String(seen.lists * 10) }, items }));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [
      {
        name: 'c',
        server: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
        skipTLSVerify: true,
      },
    ],
    users: [{ name: 'u', token: 't' }],
    contexts: [{ name: 'x', cluster: 'c', user: 'u' }],
    currentContext: 'x',
  });
  const close = async () => {
    for (const r of open) r.destroy();
    await new Promise<void>((r) => server.close(() => r()));
  };
  return { client: new KubeClient(kc), seen, close };
}

const obj = (name: string, rv: string): KubeObject => ({
  metadata: { name, namespace: 'ns', resourceVersion: rv },
});
const event = (type: string, o: object) => `${JSON.stringify({ type, object: o })}\n`;

let cleanup: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanup) await c();
  cleanup = [];
});

describe('Informer', () => {
  it('relists on a 410 Gone watch event and reports vanished objects as deleted', async () => {
    const s = await scriptedServer(
      [[obj('a', '1')], [obj('b', '2')]],
      [
        (res) =>
          res.write(event('ERROR', { kind: 'Status', code: 410, reason: 'Expired', message: 'too old' })),
        () => {},
      ],
    );
    const inf = new Informer(s.client, DEPLOYMENT_TUNINGS, { backoffInitialMs: 10, backoffMaxMs: 50 });
    const events: string[] = [];
    inf.on((type, o) => events.push(`${type}:${o.metadata.name}`));
    inf.start();
    cleanup.push(async () => {
      await inf.stop();
      await s.client.close();
      await s.close();
    });
    await expect.poll(() => events, { timeout: 5000 }).toEqual(['add:a', 'add:b', 'delete:a']);
    expect(s.seen.lists).toBe(2);
    expect(s.seen.watches).toEqual(['10', '20']);
    expect(inf.list().map((o) => o.metadata.name)).toEqual(['b']);
  });

  it('resumes from the last resourceVersion after a server close, and applies events to the cache', async () => {
    const s = await scriptedServer(
      [[obj('a', '1')]],
      [
        (res) => {
          res.write(event('MODIFIED', obj('a', '11')));
          res.write(event('BOOKMARK', { metadata: { resourceVersion: '12' } }));
          res.end();
        },
        (res) => res.write(event('DELETED', obj('a', '13'))),
      ],
    );
    const inf = new Informer(s.client, DEPLOYMENT_TUNINGS, { backoffInitialMs: 10, backoffMaxMs: 50 });
    const events: string[] = [];
    inf.on((type, o) => events.push(`${type}:${o.metadata.name}:${o.metadata.resourceVersion}`));
    inf.start();
    cleanup.push(async () => {
      await inf.stop();
      await s.client.close();
      await s.close();
    });
    await expect.poll(() => events, { timeout: 5000 }).toEqual(['add:a:1', 'update:a:11', 'delete:a:13']);
    expect(s.seen.lists).toBe(1);
    expect(s.seen.watches).toEqual(['10', '12']);
    expect(inf.hasSynced()).toBe(true);
  });

  it('relists when a watch goes silent (watchdog)', async () => {
    const s = await scriptedServer([[obj('a', '1')], [obj('a', '1'), obj('c', '3')]], [() => {}, () => {}]);
    const lifecycle: string[] = [];
    const inf = new Informer(s.client, DEPLOYMENT_TUNINGS, {
      watchdogMs: 300,
      backoffInitialMs: 10,
      onLifecycle: (what) => lifecycle.push(what),
    });
    const events: string[] = [];
    inf.on((type, o) => events.push(`${type}:${o.metadata.name}`));
    inf.start();
    cleanup.push(async () => {
      await inf.stop();
      await s.client.close();
      await s.close();
    });
    await expect.poll(() => events, { timeout: 10_000 }).toEqual(['add:a', 'add:c']);
    expect(lifecycle).toContain('stall');
    expect(s.seen.lists).toBe(2);
  });
});
