import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { KubeConfig } from '@kubernetes/client-node';
import { afterEach, describe, expect, it } from 'vitest';
import { FencedError, KubeClient } from '../../../src/operator/kube/client.ts';
import { startHttpsServer } from '../https-server.ts';

/** The REST client's guarantees the operator's safety rests on, against a local HTTP server. */

const servers: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const close of servers.splice(0)) await close();
});

async function server(handler: (req: IncomingMessage, res: import('node:http').ServerResponse) => void) {
  const seen: string[] = [];
  const s = createServer((req, res) => {
    seen.push(`${req.method} ${req.url}`);
    handler(req, res);
  });
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  servers.push(
    () =>
      new Promise<void>((r) => {
        s.closeAllConnections();
        s.close(() => r());
      }),
  );
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [
      { name: 'c', server: `http://127.0.0.1:${(s.address() as AddressInfo).port}`, skipTLSVerify: true },
    ],
    users: [{ name: 'u', token: 't' }],
    contexts: [{ name: 'x', cluster: 'c', user: 'u' }],
    currentContext: 'x',
  });
  return { client: new KubeClient(kc), seen };
}

describe('KubeClient', () => {
  it('sends no write while its fence is closed, in any view, and still reads', async () => {
    const { client, seen } = await server((_req, res) => res.writeHead(200).end('{}'));
    let leading = true;
    client.setWriteFence((what) => {
      if (!leading) throw new FencedError(what);
    });
    const view = client.withSignal(new AbortController().signal);
    await view.create('/api/v1/namespaces/a/configmaps', {});
    leading = false;
    await expect(view.replace('/api/v1/namespaces/a/configmaps/x', {})).rejects.toBeInstanceOf(FencedError);
    await expect(client.mergePatch('/api/v1/namespaces/a/configmaps/x', {})).rejects.toThrow(
      /not the leader/,
    );
    await expect(client.delete('/api/v1/namespaces/a/configmaps/x')).rejects.toBeInstanceOf(FencedError);
    await view.get('/api/v1/namespaces/a/configmaps/x');
    // The lease's own writes bypass it.
    await client.replace('/apis/coordination.k8s.io/v1/namespaces/a/leases/l', {}, { unfenced: true });
    expect(seen).toEqual([
      'POST /api/v1/namespaces/a/configmaps',
      'GET /api/v1/namespaces/a/configmaps/x',
      'PUT /apis/coordination.k8s.io/v1/namespaces/a/leases/l',
    ]);
  });

  it('aborts requests in flight when the view signal fires (the end of a leadership term)', async () => {
    const { client } = await server(() => {}); // never answers
    const term = new AbortController();
    const view = client.withSignal(term.signal);
    const pending = view.get('/api/v1/namespaces/a/configmaps/x');
    setTimeout(() => term.abort(new Error('term over')), 50);
    const t0 = Date.now();
    await expect(pending).rejects.toThrow();
    expect(Date.now() - t0).toBeLessThan(5_000);
  });

  it('decodes watch streams as one UTF-8 stream: characters split across chunks survive', async () => {
    const line = `${JSON.stringify({ type: 'ADDED', object: { metadata: { name: 'a', annotations: { note: 'café ✓' } } } })}\n`;
    const bytes = Buffer.from(line, 'utf8');
    const cut = bytes.indexOf(Buffer.from('✓', 'utf8')) + 1; // inside the 3-byte character
    const { client } = await server((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.write(bytes.subarray(0, cut));
      setTimeout(() => res.end(bytes.subarray(cut)), 30);
    });
    const got: string[] = [];
    await client.watch<{ metadata: { annotations: { note: string } } }>(
      '/api/v1/configmaps',
      {},
      (e) => got.push(e.object.metadata.annotations.note),
      new AbortController().signal,
    );
    expect(got).toEqual(['café ✓']);
  });

  it('stops cleanly when a term ends while its answers are on the way, against a server offering HTTP/2', async () => {
    const versions = new Set<string>();
    let onRequest = () => {};
    // Offers h2 like kube-apiserver. The term ends while the server is answering, so each aborted request's
    // answer is already on the wire when the client gives the request up.
    const https = await startHttpsServer((req, res) => {
      versions.add(req.httpVersion);
      onRequest();
      res.end('{}');
    });
    servers.push(https.close);
    const kc = new KubeConfig();
    kc.loadFromOptions({
      clusters: [{ name: 'c', server: https.url, caData: https.ca.toString('base64') }],
      users: [{ name: 'u', token: 't' }],
      contexts: [{ name: 'x', cluster: 'c', user: 'u' }],
      currentContext: 'x',
    });
    const uncaught: unknown[] = [];
    const record = (e: unknown) => uncaught.push(e);
    process.on('uncaughtException', record);
    try {
      for (let round = 0; round < 5; round++) {
        const client = new KubeClient(kc);
        const term = new AbortController();
        const view = client.withSignal(term.signal);
        onRequest = () => term.abort(new FencedError('the test term'));
        const abandoned = [1, 2, 3, 4].map((i) => view.get(`/api/v1/namespaces/a/configmaps/c${i}`));
        await Promise.allSettled(abandoned);
        // Work not tied to the term keeps the connection busy, then the operator stops (Operator.stop()).
        onRequest = () => {};
        await client.get('/api/v1/namespaces/a/configmaps/late');
        await client.close();
        await new Promise((r) => setTimeout(r, 20));
      }
    } finally {
      process.off('uncaughtException', record);
    }
    expect(uncaught).toEqual([]);
    expect([...versions]).toEqual(['1.1']);
  });
});
