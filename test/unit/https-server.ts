import { readFileSync } from 'node:fs';
import { createSecureServer, type Http2ServerRequest, type Http2ServerResponse } from 'node:http2';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';

/**
 * A local HTTPS server that offers HTTP/2 over ALPN and accepts HTTP/1.1, as kube-apiserver and most HTTPS
 * servers do, with the test certificate of test/fixtures/tls (self-signed, for 127.0.0.1).
 */
export async function startHttpsServer(
  handler: (req: Http2ServerRequest, res: Http2ServerResponse) => void,
): Promise<{ url: string; ca: Buffer; close: () => Promise<void> }> {
  const dir = join(import.meta.dirname, '..', 'fixtures', 'tls');
  const ca = readFileSync(join(dir, 'localhost.crt'));
  const server = createSecureServer(
    { key: readFileSync(join(dir, 'localhost.key')), cert: ca, allowHTTP1: true },
    handler,
  );
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `https://127.0.0.1:${(server.address() as AddressInfo).port}`,
    ca,
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}
