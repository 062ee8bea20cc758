import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { counterIncrements, profileFromPrometheus } from '../../../src/telemetry/profile/from-prometheus.ts';
import {
  PrometheusClient,
  PrometheusError,
  type Series,
  selectorOf,
} from '../../../src/telemetry/prometheus/client.ts';
import { DYNAMO } from '../../../src/telemetry/prometheus/dynamo-queries.ts';
import { DynamoMetrics } from '../../../src/twin/dynamo-metrics.ts';
import { startHttpsServer } from '../https-server.ts';

/**
 * The client's defences against what a server chosen by a tenant may send. A real Prometheus never sends
 * these answers, so they come from a local server written to misbehave (the real server is exercised by the
 * integration tests).
 */

type Handler = (req: IncomingMessage, body: string, res: ServerResponse) => void;
let handler: Handler = (_q, _b, res) => res.end('{}');
let server: Server;
let url: string;
const requests: { path: string; body: string; auth?: string }[] = [];

beforeAll(async () => {
  server = createServer((req, res) => {
    let body = '';
    req.on('data', (c) => {
      body += c;
    });
    req.on('end', () => {
      requests.push({ path: req.url ?? '', body, auth: req.headers.authorization });
      handler(req, body, res);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  url = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
});
afterAll(async () => {
  server.closeAllConnections();
  await new Promise((r) => server.close(r));
});

const json =
  (o: unknown, status = 200): Handler =>
  (_q, _b, res) => {
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(JSON.stringify(o));
  };
const matrix = (result: unknown[]) => json({ status: 'success', data: { resultType: 'matrix', result } });

async function failure(f: () => Promise<unknown>): Promise<PrometheusError> {
  try {
    await f();
  } catch (e) {
    expect(e).toBeInstanceOf(PrometheusError);
    return e as PrometheusError;
  }
  throw new Error('expected a PrometheusError');
}

describe('Prometheus client', () => {
  it('posts the query with the bearer token and reads a matrix', async () => {
    handler = matrix([
      {
        metric: { model: 'm' },
        values: [
          [100, '1'],
          [115, '+Inf'],
        ],
      },
    ]);
    const c = new PrometheusClient({ url: `${url}/prefix/`, bearerToken: 'secret' });
    const s = await c.queryRange('up{a="b"}', 100, 130, 15);
    expect(s).toEqual([
      {
        metric: { model: 'm' },
        values: [
          [100, 1],
          [115, Number.POSITIVE_INFINITY],
        ],
      },
    ]);
    const last = requests[requests.length - 1];
    expect(last.path).toBe('/prefix/api/v1/query_range');
    expect(new URLSearchParams(last.body).get('query')).toBe('up{a="b"}');
    expect(last.auth).toBe('Bearer secret');
    await c.close();
  });

  it('refuses garbage, errors and oversized answers with one line each', async () => {
    const c = new PrometheusClient({
      url,
      limits: { maxResponseBytes: 10_000, maxSeries: 3, maxLabels: 4, maxLabelChars: 50 },
    });
    const cases: [Handler, string, RegExp][] = [
      [
        (_q, _b, res) => res.end('<html>login</html>'),
        'BadResponse',
        /not a JSON answer \(is it Prometheus\?\)$/,
      ],
      [json({ hello: 'world' }), 'BadResponse', /not a Prometheus API answer$/],
      [
        json({ status: 'success', data: { resultType: 'matrix', result: [{ metric: 1 }] } }),
        'BadResponse',
        /a malformed matrix$/,
      ],
      [
        json({ status: 'success', data: { resultType: 'vector', result: [] } }),
        'BadResponse',
        /expected a matrix, got a vector$/,
      ],
      [
        json({ status: 'error', errorType: 'bad_data', error: 'parse error\nat char 3' }, 400),
        'QueryRefused',
        /HTTP 400: parse error at char 3$/,
      ],
      [json({}, 503), 'Unreachable', /HTTP 503$/],
      [json({ status: 'error', error: 'denied' }, 403), 'Unreachable', /HTTP 403: denied$/],
      [
        (_q, _b, res) => {
          res.writeHead(302, { location: 'http://169.254.169.254/' });
          res.end();
        },
        'BadResponse',
        /HTTP 302; redirects are not followed$/,
      ],
      [
        (_q, _b, res) =>
          res.end(
            `{"status":"success","data":{"resultType":"matrix","result":[]},"pad":"${'x'.repeat(20_000)}"}`,
          ),
        'TooLarge',
        /answer larger than 10000 bytes$/,
      ],
      [
        (_q, _b, res) => {
          res.writeHead(200, { 'content-length': '99999999' });
          res.end();
        },
        'TooLarge',
        /answer larger than 10000 bytes$/,
      ],
      [
        matrix([1, 2, 3, 4].map((i) => ({ metric: { i: String(i) }, values: [] }))),
        'TooLarge',
        /4 series for up \(at most 3; narrow the selector\)$/,
      ],
      [
        matrix([{ metric: { a: '1', b: '2', c: '3', d: '4', e: '5' }, values: [] }]),
        'TooLarge',
        /a series with 5 labels \(at most 4\)$/,
      ],
      [
        matrix([{ metric: { a: 'x'.repeat(51) }, values: [] }]),
        'TooLarge',
        /a label longer than 50 characters$/,
      ],
    ];
    for (const [h, kind, message] of cases) {
      handler = h;
      const e = await failure(() => c.queryRange('up', 0, 60, 15));
      expect(e.failure, e.message).toBe(kind);
      expect(e.message).toMatch(message);
      expect(e.message.startsWith(url)).toBe(true);
      expect(e.message).not.toContain('\n');
    }
    await c.close();
  });

  it('bounds points per series before asking, and gives up on a silent or absent server', async () => {
    const c = new PrometheusClient({ url, timeoutMs: 300 });
    expect((await failure(() => c.queryRange('up', 0, 86_400 * 30, 1))).message).toMatch(
      /a window of 2592000 s at a 1 s step is 2592001 points \(at most 11000\)/,
    );
    handler = () => {}; // never answers
    expect((await failure(() => c.query('up', 0))).message).toBe(`${url}: no answer within 300 ms`);
    await c.close();
    const closed = new PrometheusClient({ url: 'http://127.0.0.1:1' });
    const e = await failure(() => closed.query('up', 0));
    expect(e.failure).toBe('Unreachable');
    expect(e.message).toBe('http://127.0.0.1:1: the server could not be reached');
    await closed.close();
  });

  it('refuses URLs with credentials or other schemes', () => {
    expect(() => new PrometheusClient({ url: 'http://u:p@h/' })).toThrow(
      /credentials in the URL are not accepted/,
    );
    expect(() => new PrometheusClient({ url: 'file:///etc/passwd' })).toThrow(/file: URLs are not supported/);
    expect(() => new PrometheusClient({ url: 'not a url' })).toThrow(/is not a URL/);
  });

  it('speaks HTTP/1.1 to an HTTPS server that offers HTTP/2 (see src/telemetry/http-agent.ts)', async () => {
    const versions: string[] = [];
    const https = await startHttpsServer((req, res) => {
      versions.push(req.httpVersion);
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ status: 'success', data: { resultType: 'vector', result: [] } }));
    });
    const c = new PrometheusClient({ url: https.url, ca: https.ca.toString() });
    try {
      await c.query('up', 0);
      expect(versions).toEqual(['1.1']);
    } finally {
      await c.close();
      await https.close();
    }
  });
});

describe('selectors', () => {
  it('escape values so none can break out of its quotes', () => {
    expect(selectorOf({ model: 'qwen/qwen3-8b', ns: 'a"} or vector(1) #\\' })).toBe(
      '{model="qwen/qwen3-8b",ns="a\\"} or vector(1) #\\\\"}',
    );
    expect(selectorOf({})).toBe('{}');
  });
  it('refuse bad label names, reserved names, long values and too many labels', () => {
    expect(() => selectorOf({ 'a-b': 'x' })).toThrow(/'a-b' is not a label name/);
    expect(() => selectorOf({ __name__: 'x' })).toThrow(/is not a label name/);
    expect(() => selectorOf({ a: 'x'.repeat(300) })).toThrow(/label a: a value longer than 256 characters/);
    expect(() =>
      selectorOf(Object.fromEntries(Array.from({ length: 17 }, (_, i) => [`l${i}`, 'x']))),
    ).toThrow(/at most 16 labels/);
  });
});

describe('counter increments', () => {
  const s = (values: [number, number][]): Series => ({ metric: {}, values });
  it('diff per step, read drops as resets, count a series born in the window, and sum series', () => {
    const counts = counterIncrements(
      [
        s([
          [0, 10],
          [15, 12],
          [30, 3],
          [45, 5],
        ]),
        s([
          [30, 4],
          [45, 6],
        ]),
      ],
      0,
      15,
      3,
    );
    expect(counts).toEqual([2, 3 + 4, 2 + 2]);
  });
  it('refuse a negative or infinite counter', () => {
    expect(() => counterIncrements([s([[0, -1]])], 0, 15, 1)).toThrow(/counters are finite and >= 0/);
    expect(() => counterIncrements([s([[0, Number.POSITIVE_INFINITY]])], 0, 15, 1)).toThrow(PrometheusError);
  });
});

describe('profile from Prometheus: refusals before any query', () => {
  it('bounds the window and the step', async () => {
    const c = new PrometheusClient({ url });
    await expect(profileFromPrometheus(c, { selector: {}, windowS: 30 * 86_400 })).rejects.toThrow(
      /the window must be between 1 s and 604800 s/,
    );
    await expect(profileFromPrometheus(c, { selector: {}, windowS: 600, stepS: 0.5 })).rejects.toThrow(
      /the step must be between 1 s and the window/,
    );
    await expect(profileFromPrometheus(c, { selector: { 'bad label': 'x' }, windowS: 600 })).rejects.toThrow(
      /is not a label name/,
    );
    await c.close();
  });
  it('says which metric had no samples', async () => {
    handler = matrix([]);
    const c = new PrometheusClient({ url });
    const e = await failure(() => profileFromPrometheus(c, { selector: { model: 'Qwen/X' }, windowS: 600 }));
    expect(e.failure).toBe('NoData');
    expect(e.message).toBe(
      `${url}: no dynamo_frontend_requests_started_total{model="qwen/x"} samples in the window (is the selector right, and is the frontend scraped?)`,
    );
    await c.close();
  });
});

describe("the metric names read are the twin's (and so Dynamo's)", () => {
  it('every name is exported by the twin', async () => {
    const m = new DynamoMetrics({ model: 'm', dynamoNamespace: 'ns', env: {} });
    const text = await m.metrics();
    for (const name of Object.values(DYNAMO)) expect(text, name).toMatch(new RegExp(`^# TYPE ${name} `, 'm'));
  });
});
