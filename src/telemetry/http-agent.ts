// biome-ignore lint/style/noRestrictedImports: this is the one place undici pools are made.
import { Agent } from 'undici';

/**
 * The one way servetune makes an undici connection pool (Kubernetes API, Prometheus, trace URLs): HTTP/1.1
 * only, whatever the server offers over ALPN.
 *
 * Why not HTTP/2 (undici 8 negotiates it by default on https): when a request is aborted after its HEADERS
 * left but before the answer came back, undici resets and destroys the stream at once, so Node's http2 no
 * longer knows the stream id; the server's answer then arrives and Node makes a fresh ClientHttp2Stream for
 * it (a 'stream' event on the client session, as for a push) that nothing listens to. Whenever that session
 * is later destroyed with an error, which `Agent.close()` always does (Client.destroy() defaults to a
 * ClientDestroyedError) as does any socket error, Node hands the error to every stream still open, and the
 * orphan's 'error' event, with no listener, becomes an uncaughtException. The operator aborts requests all the
 * time (leadership terms, timeouts, cancelled sweeps), so over HTTP/2 stopping it could crash the process.
 * Over HTTP/1.1 an aborted request takes its socket down with it and no stream can outlive its reader.
 */
export function httpAgent(options: Omit<Agent.Options, 'allowH2'> = {}): Agent {
  return new Agent({ ...options, allowH2: false });
}
