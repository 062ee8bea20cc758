import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import type { LiveEndReason } from '../sim/live.ts';
import type { ErrorType } from './dynamo-metrics.ts';
import {
  type ApiError,
  type ApiLimits,
  completionBody,
  type Endpoint,
  errorBody,
  invalid,
  modelsBody,
  type ParsedRequest,
  parseRequest,
  STREAM_DONE,
  streamChunk,
  usageChunk,
} from './openai.ts';
import { errorTypeOf, type TwinRequest, type TwinRuntime } from './runtime.ts';
import { generatedText } from './tokenizer.ts';

/**
 * The twin's HTTP face: an OpenAI-compatible API (`POST /v1/chat/completions`, `POST /v1/completions`,
 * streaming or not, `GET /v1/models`), `/metrics` (Dynamo's frontend and worker metrics), `/healthz` and
 * `/readyz` (plus Dynamo's `/live` and `/health`). Tokens are delivered when the simulation produces them on
 * the virtual clock; a client that disconnects cancels its request in the simulation.
 *
 * Bounds: request bodies (`maxBodyBytes`, 413 beyond), concurrent completion requests (`maxConcurrent`, 503
 * beyond, Dynamo's `overload`), prompt and output lengths (the model's context, see openai.ts). Errors are
 * OpenAI-style JSON and are counted in `dynamo_frontend_requests_total` with Dynamo's `error_type`.
 *
 * Plain `node:http` rather than a framework: five routes, and the streaming path wants direct control of
 * writes and of the socket's close.
 */

export interface TwinHttpOptions {
  runtime: TwinRuntime;
  /** Served model name (`/v1/models`; requests naming another model get 404, case-insensitively). */
  model: string;
  limits: ApiLimits;
  maxBodyBytes?: number;
  maxConcurrent?: number;
  logger?: Logger;
}

export interface DrainResult {
  /** Requests still running when the drain deadline passed (then cancelled). */
  abandoned: number;
}

export class TwinHttpServer {
  readonly server: Server;
  private readonly opts: Required<Omit<TwinHttpOptions, 'logger'>> & TwinHttpOptions;
  private readonly created = Math.floor(Date.now() / 1000);
  private active = new Set<TwinRequest>();
  private draining = false;
  private drainWaiters: (() => void)[] = [];

  constructor(opts: TwinHttpOptions) {
    this.opts = { maxBodyBytes: 8 * 1024 * 1024, maxConcurrent: 4096, ...opts };
    this.server = createServer((req, res) => {
      this.route(req, res).catch((e) => {
        this.opts.logger?.error({ err: e }, 'request handler failed');
        if (!res.headersSent)
          this.sendError(res, {
            status: 500,
            type: 'server_error',
            message: 'internal error',
            errorType: 'internal',
          });
        else res.destroy();
      });
    });
    this.server.keepAliveTimeout = 5_000;
    this.server.headersTimeout = 15_000;
    this.server.requestTimeout = 0; // streams may legitimately last long; bodies are bounded by size instead.
    this.server.maxHeadersCount = 100;
  }

  async listen(port: number, host = '0.0.0.0'): Promise<number> {
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, host, () => {
        this.server.off('error', reject);
        resolve();
      });
    });
    return (this.server.address() as AddressInfo).port;
  }

  get inflight(): number {
    return this.active.size;
  }

  /**
   * SIGTERM: refuse new work (readiness fails, new completions get 503), let requests in flight finish for up
   * to `timeoutMs`, cancel what is left, then close the listener.
   */
  async drain(timeoutMs: number): Promise<DrainResult> {
    this.draining = true;
    this.server.closeIdleConnections();
    if (this.active.size > 0) {
      await Promise.race([
        new Promise<void>((r) => this.drainWaiters.push(r)),
        new Promise<void>((r) => setTimeout(r, timeoutMs).unref()),
      ]);
    }
    const abandoned = this.active.size;
    for (const r of [...this.active]) this.opts.runtime.cancel(r);
    await new Promise<void>((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
    return { abandoned };
  }

  private async route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = (req.url ?? '/').split('?')[0];
    const method = req.method ?? 'GET';
    if (method === 'GET' && (path === '/healthz' || path === '/live')) return this.text(res, 200, 'ok\n');
    if (method === 'GET' && (path === '/readyz' || path === '/health')) {
      return this.draining ? this.text(res, 503, 'draining\n') : this.text(res, 200, 'ok\n');
    }
    if (method === 'GET' && path === '/metrics') {
      const body = await this.opts.runtime.scrape();
      res.writeHead(200, { 'content-type': this.opts.runtime.metrics.contentType });
      res.end(body);
      return;
    }
    if (method === 'GET' && path === '/v1/models') {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(modelsBody(this.opts.model, this.created));
      return;
    }
    const endpoint: Endpoint | undefined =
      path === '/v1/chat/completions'
        ? 'chat_completions'
        : path === '/v1/completions'
          ? 'completions'
          : undefined;
    if (!endpoint) {
      return this.sendError(res, {
        status: 404,
        type: 'not_found_error',
        message: `no route for ${method} ${path}`,
        errorType: 'not_found',
      });
    }
    if (method !== 'POST') {
      res.setHeader('allow', 'POST');
      return this.sendError(res, {
        status: 405,
        type: 'invalid_request_error',
        message: `${path} takes POST`,
        errorType: 'validation',
      });
    }
    await this.completion(endpoint, req, res);
  }

  private async completion(endpoint: Endpoint, req: IncomingMessage, res: ServerResponse): Promise<void> {
    const fail = (e: ApiError, stream = false) => {
      this.countError(endpoint, stream, e.errorType);
      this.sendError(res, e);
    };
    if (this.draining) {
      return fail({
        status: 503,
        type: 'service_unavailable',
        message: 'the twin is shutting down',
        errorType: 'overload',
      });
    }
    const body = await readBody(req, this.opts.maxBodyBytes);
    if (typeof body !== 'string') return fail(body);
    let json: unknown;
    try {
      json = JSON.parse(body);
    } catch (e) {
      return fail(invalid(`the body is not valid JSON: ${(e as Error).message}`));
    }
    const parsed = parseRequest(endpoint, json, this.opts.limits);
    if ('status' in parsed) return fail(parsed, isStream(json));
    if (parsed.model.toLowerCase() !== this.opts.model.toLowerCase()) {
      return fail(
        {
          status: 404,
          type: 'not_found_error',
          message: `model '${parsed.model}' not found; this twin serves '${this.opts.model}'`,
          param: 'model',
          code: 'model_not_found',
          errorType: 'not_found',
        },
        parsed.stream,
      );
    }
    if (this.active.size >= this.opts.maxConcurrent) {
      return fail(
        {
          status: 503,
          type: 'service_unavailable',
          message: `too many requests in flight (limit ${this.opts.maxConcurrent})`,
          errorType: 'overload',
        },
        parsed.stream,
      );
    }
    this.serve(parsed, req, res);
  }

  /** Submits the request to the simulation and answers it (streamed or whole) as tokens come. */
  private serve(p: ParsedRequest, req: IncomingMessage, res: ServerResponse): void {
    const id = `${p.endpoint === 'chat_completions' ? 'chatcmpl' : 'cmpl'}-${randomBytes(12).toString('hex')}`;
    const created = Math.floor(Date.now() / 1000);
    const model = this.opts.model;
    let text = '';
    let cached = 0;
    let finished = false;
    const usage = (tokens: number) => ({
      promptTokens: p.prompt.tokens,
      completionTokens: tokens,
      cachedTokens: cached,
    });
    const write = (s: string) => {
      if (!res.destroyed) res.write(s);
    };
    let handle: TwinRequest | undefined;
    handle = this.opts.runtime.submit({
      requestId: id,
      endpoint: p.endpoint,
      stream: p.stream,
      inputTokens: p.prompt.tokens,
      outputTokens: p.maxTokens,
      blockIds: p.prompt.blockIds,
      listener: {
        firstToken: (_t, c) => {
          cached = c;
        },
        token: (index) => {
          const piece = generatedText(index - 1);
          if (p.stream) {
            write(
              streamChunk(
                p.endpoint,
                id,
                model,
                created,
                index === 1 ? { role: 'assistant', text: piece } : { text: piece },
                null,
              ),
            );
          } else text += piece;
        },
        end: (reason: LiveEndReason, tokens: number) => {
          finished = true;
          if (handle) this.active.delete(handle);
          if (this.draining && this.active.size === 0) for (const w of this.drainWaiters.splice(0)) w();
          if (res.destroyed) return;
          if (reason === 'finished') {
            if (p.stream) {
              if (!res.headersSent)
                res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
              write(streamChunk(p.endpoint, id, model, created, {}, 'length'));
              if (p.includeUsage) write(usageChunk(p.endpoint, id, model, created, usage(tokens)));
              res.end(STREAM_DONE);
            } else {
              res.writeHead(200, { 'content-type': 'application/json' });
              res.end(completionBody(p.endpoint, id, model, created, text, 'length', usage(tokens)));
            }
            return;
          }
          const e = endError(reason);
          if (!res.headersSent) this.sendError(res, e);
          else res.end(`data: ${errorBody(e)}\n\n`);
        },
      },
    });
    const h = handle;
    if (!finished) this.active.add(h);
    // A stream's headers go out when the request is taken, as a server does; its events follow as tokens come.
    if (p.stream && !finished && !res.headersSent) {
      res.writeHead(200, {
        'content-type': 'text/event-stream',
        'cache-control': 'no-cache',
        connection: 'keep-alive',
      });
      res.flushHeaders();
    }
    // A client that goes away (connection closed before the response ended) cancels its request.
    res.on('close', () => {
      if (!finished) this.opts.runtime.cancel(h);
    });
    req.on('error', () => {
      if (!finished) this.opts.runtime.cancel(h);
    });
  }

  /** An error answered before the request reached the simulation still counts, as in Dynamo. */
  private countError(endpoint: Endpoint, stream: boolean, errorType: ErrorType): void {
    const m = this.opts.runtime.metrics;
    const type = stream ? 'stream' : 'unary';
    m.requestStarted(endpoint, type);
    m.requestFinished({ endpoint, type, durationS: 0, outputTokens: 0, hadFirstToken: false, errorType });
  }

  private sendError(res: ServerResponse, e: ApiError): void {
    if (res.headersSent) return;
    res.writeHead(e.status, { 'content-type': 'application/json' });
    res.end(errorBody(e));
  }

  private text(res: ServerResponse, status: number, body: string): void {
    res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8' });
    res.end(body);
  }
}

function isStream(json: unknown): boolean {
  return typeof json === 'object' && json !== null && (json as { stream?: unknown }).stream === true;
}

/** The HTTP error for a request the simulation ended without finishing it. */
function endError(reason: LiveEndReason): ApiError {
  const t = errorTypeOf(reason);
  if (t === 'validation') return invalid(`the simulated deployment cannot serve this request: ${reason}`);
  return {
    status: 503,
    type: 'service_unavailable',
    message: `the request failed: ${reason}`,
    errorType: 'internal',
  };
}

/** Reads a body of at most `max` bytes; beyond that the request is answered 413 without reading the rest. */
function readBody(req: IncomingMessage, max: number): Promise<string | ApiError> {
  const declared = Number(req.headers['content-length']);
  const tooLarge: ApiError = {
    status: 413,
    type: 'invalid_request_error',
    message: `the request body exceeds ${max} bytes`,
    errorType: 'validation',
  };
  if (Number.isFinite(declared) && declared > max) {
    req.resume();
    return Promise.resolve(tooLarge);
  }
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let done = false;
    req.on('data', (c: Buffer) => {
      if (done) return;
      size += c.length;
      if (size > max) {
        done = true;
        req.resume();
        resolve(tooLarge);
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => {
      if (!done) resolve(Buffer.concat(chunks).toString('utf8'));
      done = true;
    });
    req.on('error', () => {
      if (!done) resolve(invalid('the request body could not be read'));
      done = true;
    });
  });
}
