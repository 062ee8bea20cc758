import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { afterEach, describe, expect, it } from 'vitest';
import { VirtualClock } from '../../../src/twin/clock.ts';
import { DynamoMetrics } from '../../../src/twin/dynamo-metrics.ts';
import { TwinHttpServer } from '../../../src/twin/http.ts';
import { RequestTraceWriter } from '../../../src/twin/request-trace.ts';
import { TwinRuntime } from '../../../src/twin/runtime.ts';
import { FakeLive } from '../../support/fake-live.ts';

/** The twin's HTTP layer over a fake simulation (the real one is exercised by the integration tests). */

const MODEL = 'Qwen/Qwen3-8B';
const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function twin(opts: { maxConcurrent?: number; maxBodyBytes?: number; trace?: boolean } = {}) {
  const sim = new FakeLive({ ttftMs: 20, itlMs: 5, maxPrompt: 3000 });
  const metrics = new DynamoMetrics({ model: MODEL, dynamoNamespace: 'dyn', env: {} });
  const dir = mkdtempSync(join(tmpdir(), 'twin-http-'));
  const traceWriter = opts.trace
    ? new RequestTraceWriter({ path: join(dir, 'dynamo-request-trace') })
    : undefined;
  const runtime = new TwinRuntime({
    sim,
    clock: new VirtualClock(1),
    metrics,
    contentBlockSize: 16,
    model: MODEL,
    traceWriter,
  });
  runtime.start();
  const http = new TwinHttpServer({
    runtime,
    model: MODEL,
    limits: { contextLength: 4096, defaultMaxTokens: 16, blockSize: 16 },
    maxConcurrent: opts.maxConcurrent,
    maxBodyBytes: opts.maxBodyBytes,
  });
  const port = await http.listen(0, '127.0.0.1');
  cleanups.push(async () => {
    runtime.stop();
    if (http.server.listening) await http.drain(0);
    await traceWriter?.close();
    rmSync(dir, { recursive: true, force: true });
  });
  return { sim, runtime, http, url: `http://127.0.0.1:${port}`, dir, traceWriter };
}

async function post(url: string, body: unknown) {
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  // biome-ignore lint/suspicious/noExplicitAny: response bodies are checked field by field
  return { status: res.status, json: (await res.json()) as Record<string, any> };
}

/** Reads a server-sent event stream, recording when each event arrived. */
async function sse(
  url: string,
  body: unknown,
): Promise<{ events: { t: number; data: string }[]; status: number }> {
  const t0 = performance.now();
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  const events: { t: number; data: string }[] = [];
  const decoder = new TextDecoder();
  let buf = '';
  for await (const chunk of res.body!) {
    buf += decoder.decode(chunk as Uint8Array, { stream: true });
    let i = buf.indexOf('\n\n');
    while (i >= 0) {
      events.push({ t: performance.now() - t0, data: buf.slice(6, i) });
      buf = buf.slice(i + 2);
      i = buf.indexOf('\n\n');
    }
  }
  return { events, status: res.status };
}

function sample(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

describe('twin HTTP API', () => {
  it('answers a chat completion with the simulated tokens and usage', async () => {
    const t = await twin();
    const r = await post(`${t.url}/v1/chat/completions`, {
      model: 'qwen/qwen3-8b',
      messages: [{ role: 'user', content: 'Hello there, how are you today?' }],
      max_tokens: 7,
    });
    expect(r.status).toBe(200);
    expect(r.json.object).toBe('chat.completion');
    expect(r.json.choices[0].finish_reason).toBe('length');
    expect(r.json.choices[0].message.content.length).toBeGreaterThan(0);
    expect(r.json.usage.completion_tokens).toBe(7);
    expect(r.json.usage.prompt_tokens).toBe(t.sim.submitted[0].inputLength);
    expect(t.sim.submitted[0].outputLength).toBe(7);
  });

  it('streams one event per token in order, then the finish, the usage and [DONE]', async () => {
    const t = await twin();
    const { events, status } = await sse(`${t.url}/v1/completions`, {
      model: MODEL,
      prompt: 'Once upon a time',
      max_tokens: 12,
      stream: true,
      stream_options: { include_usage: true },
    });
    expect(status).toBe(200);
    expect(events).toHaveLength(12 + 3);
    expect(events.at(-1)!.data).toBe('[DONE]');
    const usage = JSON.parse(events.at(-2)!.data);
    expect(usage.usage.completion_tokens).toBe(12);
    const finish = JSON.parse(events.at(-3)!.data);
    expect(finish.choices[0].finish_reason).toBe('length');
    // Tokens come as the simulation produces them: 11 gaps of 5 simulated ms after a 20 ms first token.
    expect(events[11].t - events[0].t).toBeGreaterThanOrEqual(40);
  });

  it('serves repeated prompt prefixes from the simulated cache', async () => {
    const t = await twin();
    const messages = [
      { role: 'system', content: 'You are a meticulous assistant. '.repeat(40) },
      { role: 'user', content: 'Hi' },
    ];
    const first = await post(`${t.url}/v1/chat/completions`, { model: MODEL, messages, max_tokens: 1 });
    const second = await post(`${t.url}/v1/chat/completions`, { model: MODEL, messages, max_tokens: 1 });
    expect(first.json.usage.prompt_tokens_details.cached_tokens).toBe(0);
    expect(second.json.usage.prompt_tokens_details.cached_tokens).toBeGreaterThan(200);
  });

  it('cancels the simulated request of a client that disconnects mid-stream', async () => {
    const t = await twin();
    const ac = new AbortController();
    const res = await fetch(`${t.url}/v1/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: MODEL, prompt: 'tell me a long story', max_tokens: 2000, stream: true }),
      signal: ac.signal,
    });
    const reader = res.body!.getReader();
    await reader.read();
    ac.abort();
    await expect.poll(() => t.sim.cancelledIds.length).toBe(1);
    await expect.poll(() => t.runtime.inflight).toBe(0);
    const text = await t.runtime.scrape();
    expect(sample(text, 'dynamo_frontend_disconnected_clients')).toBe(1);
    expect(
      sample(
        text,
        'dynamo_frontend_requests_total{model="qwen/qwen3-8b",endpoint="completions",request_type="stream",status="error",error_type="cancelled"}',
      ),
    ).toBe(1);
    expect(sample(text, 'dynamo_frontend_inflight_requests{model="qwen/qwen3-8b"}')).toBe(0);
    expect(t.sim.activeBlocks).toBe(0);
  });

  it('answers bad requests with OpenAI-style errors, counted by error type', async () => {
    const t = await twin({ maxBodyBytes: 10_000 });
    const wrongModel = await post(`${t.url}/v1/completions`, { model: 'gpt-4', prompt: 'x' });
    expect(wrongModel.status).toBe(404);
    expect(wrongModel.json.error).toMatchObject({ param: 'model', code: 'model_not_found' });
    const bad = await post(`${t.url}/v1/completions`, { model: MODEL, prompt: 'x', max_tokens: -3 });
    expect(bad.status).toBe(400);
    expect(bad.json.error.type).toBe('invalid_request_error');
    const huge = await post(`${t.url}/v1/completions`, { model: MODEL, prompt: 'x'.repeat(20_000) });
    expect(huge.status).toBe(413);
    const notJson = await fetch(`${t.url}/v1/chat/completions`, { method: 'POST', body: '{"model": ' });
    expect(notJson.status).toBe(400);
    expect(((await notJson.json()) as { error: { message: string } }).error.message).toMatch(
      /not valid JSON/,
    );
    expect((await fetch(`${t.url}/v1/completions`)).status).toBe(405);
    expect((await fetch(`${t.url}/v2/anything`)).status).toBe(404);
    // A prompt the simulated KV cache cannot hold is refused by the simulation.
    const tooBig = await post(`${t.url}/v1/completions`, {
      model: MODEL,
      prompt: 'x',
      prompt_tokens: 3500,
      max_tokens: 1,
    });
    expect(tooBig.status).toBe(400);
    expect(tooBig.json.error.message).toMatch(/KV cache/);
    const text = await t.runtime.scrape();
    expect(
      sample(
        text,
        'dynamo_frontend_requests_total{model="qwen/qwen3-8b",endpoint="completions",request_type="unary",status="error",error_type="validation"}',
      ),
    ).toBe(3);
    expect(
      sample(
        text,
        'dynamo_frontend_requests_total{model="qwen/qwen3-8b",endpoint="completions",request_type="unary",status="error",error_type="not_found"}',
      ),
    ).toBe(1);
  });

  it('refuses requests beyond the concurrency bound with 503', async () => {
    const t = await twin({ maxConcurrent: 1 });
    const long = post(`${t.url}/v1/completions`, { model: MODEL, prompt: 'x', max_tokens: 100 });
    await expect.poll(() => t.http.inflight).toBe(1);
    const refused = await post(`${t.url}/v1/completions`, { model: MODEL, prompt: 'y', max_tokens: 1 });
    expect(refused.status).toBe(503);
    expect((await long).status).toBe(200);
  });

  it('serves models, health and readiness; drains on shutdown and refuses new work meanwhile', async () => {
    const t = await twin();
    const models = (await (await fetch(`${t.url}/v1/models`)).json()) as { data: { id: string }[] };
    expect(models.data[0].id).toBe(MODEL);
    expect((await fetch(`${t.url}/healthz`)).status).toBe(200);
    expect((await fetch(`${t.url}/readyz`)).status).toBe(200);
    const running = sse(`${t.url}/v1/completions`, {
      model: MODEL,
      prompt: 'x',
      max_tokens: 40,
      stream: true,
    });
    await expect.poll(() => t.http.inflight).toBe(1);
    const drained = t.http.drain(10_000);
    const ready = await new Promise<number>((resolve) =>
      request(`${t.url}/readyz`, (res) => resolve(res.statusCode ?? 0)).end(),
    ).catch(() => 503);
    expect(ready).toBe(503);
    const { events } = await running;
    expect(events.at(-1)!.data).toBe('[DONE]');
    expect(await drained).toEqual({ abandoned: 0 });
  });

  it('writes a request trace record per finished request', async () => {
    const t = await twin({ trace: true });
    await post(`${t.url}/v1/completions`, { model: MODEL, prompt: 'some prompt text here', max_tokens: 3 });
    await t.traceWriter!.close();
    const files = readdirSync(t.dir);
    expect(files).toEqual(['dynamo-request-trace.000000.jsonl.gz']);
    const line = JSON.parse(
      gunzipSync(readFileSync(join(t.dir, files[0])))
        .toString()
        .trim(),
    );
    expect(line.event).toMatchObject({
      schema: 'dynamo.request.trace.v1',
      event_type: 'request_end',
      request: { model: MODEL, output_tokens: 3, replay: { trace_block_size: 16 } },
    });
    expect(line.event.request.ttft_ms).toBeCloseTo(20, 6);
    expect(line.event.request.avg_itl_ms).toBeCloseTo(5, 6);
  });
});
