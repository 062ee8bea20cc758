import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Rng } from '../../src/sim/random.ts';
import type { Workload } from '../../src/sim/workload/workload.ts';
import { readTrace } from '../../src/telemetry/trace/index.ts';
import { DynamoMetrics } from '../../src/twin/dynamo-metrics.ts';
import { RequestTraceWriter, requestEndRecord } from '../../src/twin/request-trace.ts';

/**
 * Recorded traffic of a Dynamo deployment, as the twin's exporters give it: the frontend's metrics
 * (DynamoMetrics, Dynamo's names and buckets, served over HTTP for a real Prometheus to scrape) and its
 * request traces (RequestTraceWriter, DYN_REQUEST_TRACE segments in a directory), fed with the requests of a
 * trace at a Poisson rate in real time. Latencies follow a fixed rule (TTFT grows with the prompt, a constant
 * inter-token gap): this stands for the live twin's traffic until the twin runs its simulation live; what is
 * under test is everything downstream (Prometheus, the operator's sources, profiles, drift, calibration).
 * `switchTo` changes the workload mid-run, as the twin's --drift-at does.
 */

export interface TrafficOptions {
  model: string;
  /** Requests per second (Poisson). */
  rps: number;
  trace: string;
  /** Write request traces here (a temporary directory when true). */
  requestTraces?: boolean;
  seed?: number;
}

export class DynamoTraffic {
  readonly metrics: DynamoMetrics;
  readonly url: string;
  readonly address: string;
  readonly traceDir: string | undefined;
  private readonly server: Server;
  private readonly writer: RequestTraceWriter | undefined;
  private workload: Workload;
  private rps: number;
  private next = 0;
  private timer: NodeJS.Timeout | undefined;
  private readonly rng: Rng;
  private served = 0;

  private constructor(o: TrafficOptions, workload: Workload, server: Server, port: number) {
    this.metrics = new DynamoMetrics({ model: o.model, dynamoNamespace: 'test', env: {} });
    this.server = server;
    this.address = `127.0.0.1:${port}`;
    this.url = `http://${this.address}`;
    this.workload = workload;
    this.rps = o.rps;
    this.rng = new Rng(o.seed ?? 1);
    if (o.requestTraces) {
      this.traceDir = mkdtempSync(join(tmpdir(), 'servetune-reqtrace-'));
      this.writer = new RequestTraceWriter({
        path: join(this.traceDir, 'dynamo-request-trace'),
        flushIntervalMs: 200,
        rollLines: 500,
      });
    }
  }

  static async start(o: TrafficOptions): Promise<DynamoTraffic> {
    let self: DynamoTraffic | undefined;
    const server = createServer(async (req, res) => {
      if (!self || req.url !== '/metrics') {
        res.statusCode = 404;
        res.end('not found');
        return;
      }
      res.setHeader('content-type', self.metrics.contentType);
      res.end(await self.metrics.metrics());
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as { port: number }).port;
    self = new DynamoTraffic(o, (await readTrace(o.trace)).workload, server, port);
    self.schedule();
    return self;
  }

  /** Requests served so far. */
  get requests(): number {
    return this.served;
  }

  /** Plays another trace from now on (at another rate, if given). */
  async switchTo(trace: string, rps = this.rps): Promise<void> {
    this.workload = (await readTrace(trace)).workload;
    this.next = 0;
    this.rps = rps;
  }

  private schedule(): void {
    const gap = this.rng.exponential(1000 / this.rps);
    this.timer = setTimeout(() => {
      this.serveOne();
      this.schedule();
    }, gap);
  }

  private serveOne(): void {
    const w = this.workload;
    const i = this.next;
    this.next = (this.next + 1) % w.size;
    const input = w.inputLength[i];
    const output = Math.max(1, w.outputLength[i]);
    const ttftS = 0.02 + input * 2e-6;
    const itlS = 0.015;
    const cached = Math.floor(input / 3);
    const m = this.metrics;
    m.requestStarted('chat_completions', 'stream');
    m.firstToken(ttftS, input);
    m.cachedTokens(cached);
    m.tokens(output);
    for (let k = 1; k < Math.min(output, 64); k++) m.interTokenLatency(itlS);
    const durationS = ttftS + (output - 1) * itlS;
    m.requestFinished({
      endpoint: 'chat_completions',
      type: 'stream',
      durationS,
      outputTokens: output,
      hadFirstToken: true,
      errorType: '',
    });
    this.writer?.write(
      requestEndRecord({
        requestId: `r-${this.served}`,
        model: m.model,
        inputTokens: input,
        outputTokens: output,
        cachedTokens: cached,
        receivedUnixMs: Date.now(),
        ttftMs: ttftS * 1000,
        totalTimeMs: durationS * 1000,
        avgItlMs: itlS * 1000,
        traceBlockSize: w.traceBlockSize,
        blockIds: Array.from(w.hashIds.subarray(w.hashOffsets[i], w.hashOffsets[i + 1])),
      }),
    );
    this.served++;
  }

  async stop(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    await this.writer?.close();
    this.server.closeAllConnections();
    await new Promise((r) => this.server.close(r));
    if (this.traceDir) rmSync(this.traceDir, { recursive: true, force: true });
  }
}
