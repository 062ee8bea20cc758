import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { RequestTraceWriter, requestEndRecord } from '../../../src/twin/request-trace.ts';
import { cli } from '../../support/cli.ts';

const TRACES = new URL('../../fixtures/traces/', import.meta.url).pathname;
const CONVERSATION = `${TRACES}conversation-sample.jsonl`;
const AZURE_CODE = `${TRACES}azure-code-sample.csv`;

const dirs: string[] = [];
const tmp = () => {
  const d = mkdtempSync(join(tmpdir(), 'servetune-profile-'));
  dirs.push(d);
  return d;
};
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

describe('servetune profile', () => {
  it('prints a trace profile, and --json has the fields the issue names', async () => {
    const text = await cli('profile', CONVERSATION);
    expect(text.code).toBe(0);
    expect(text.out).toMatch(/^source {7}.*conversation-sample\.jsonl \(mooncake\)$/m);
    expect(text.out).toMatch(/^requests {5}2,000 in 669 s: 2\.99 req\/s/m);
    expect(text.out).toMatch(/^input tokens /m);
    const j = await cli('profile', CONVERSATION, '--json');
    expect(j.code).toBe(0);
    const p = JSON.parse(j.out);
    expect(p).toMatchObject({ kind: 'WorkloadProfile', requests: 2000 });
    for (const k of ['duration_s', 'request_rate_rps']) expect(typeof p[k]).toBe('number');
    for (const k of ['input_tokens', 'output_tokens'])
      for (const q of ['mean', 'p50', 'p90', 'p99']) expect(typeof p[k][q]).toBe('number');
    expect(p.prefix_reuse.share).toBeGreaterThan(0);
    expect(p.rate.counts.reduce((a: number, b: number) => a + b, 0)).toBe(2000);
  });

  it('reads a request-trace directory and keeps what the deployment measured', async () => {
    const dir = tmp();
    const w = new RequestTraceWriter({ path: join(dir, 'dynamo-request-trace'), rollLines: 50 });
    for (let i = 0; i < 120; i++)
      w.write(
        requestEndRecord({
          requestId: `r${i}`,
          model: 'm',
          inputTokens: 200 + (i % 50),
          outputTokens: 20,
          receivedUnixMs: 1_763_000_000_000 + i * 500,
          ttftMs: 40 + (i % 10),
          totalTimeMs: 400,
          avgItlMs: 18,
          cachedTokens: 64,
          traceBlockSize: 64,
          blockIds: [1, 2, 3, 4 + i],
        }),
      );
    await w.close();
    const r = await cli('profile', dir, '--json');
    expect(r.code, r.err).toBe(0);
    const p = JSON.parse(r.out);
    expect(p.source).toMatchObject({ kind: 'request-trace', format: 'dynamo' });
    expect(p.requests).toBe(120);
    expect(p.observed.ttft_ms.p50).toBe(44);
    expect(p.observed.itl_ms.mean).toBe(18);
    // 64 cached tokens of each prompt of 200 + (i % 50) tokens.
    expect(p.observed.cached_token_share).toBeCloseTo((64 * 120) / (120 * 200 + 2 * 1225 + 190), 6);
    const text = await cli('profile', dir);
    expect(text.out).toMatch(/^TTFT \(observed\)/m);
  });

  it('--window keeps the last part; --out writes a profile that drift reads back', async () => {
    const dir = tmp();
    const out = join(dir, 'base.json');
    const r = await cli('profile', CONVERSATION, '--window', '5m', '--out', out);
    expect(r.code, r.err).toBe(0);
    const saved = JSON.parse(readFileSync(out, 'utf8'));
    expect(saved.duration_s).toBeCloseTo(300, 0);
    const d = await cli('drift', out, CONVERSATION, '--window', '5m', '--json');
    expect(d.code, d.err).toBe(0);
    expect(JSON.parse(d.out).drifted).toBe(false);
    expect(JSON.parse(d.out).level).toBe(0);
  });

  it('--synthesize writes a replayable trace that simulate reads', async () => {
    const dir = tmp();
    const trace = join(dir, 'synth.jsonl');
    const r = await cli('profile', AZURE_CODE, '--synthesize', trace, '--seed', '3');
    expect(r.code, r.err).toBe(0);
    expect(r.out).toMatch(/synthesised 2,000 requests to .*synth\.jsonl \(block size 64\)/);
    const again = await cli('profile', trace, '--json');
    expect(JSON.parse(again.out).requests).toBe(2000);
    const sim = await cli('simulate', '--trace', trace, '--workers', '2', '--trace-block-size', '64');
    expect(sim.code, sim.err).toBe(0);
    const drift = await cli('drift', AZURE_CODE, trace, '--json');
    expect(JSON.parse(drift.out).drifted).toBe(false);
  });

  it('refuses bad arguments with one line and exit 2', async () => {
    const dir = tmp();
    const cases: [string[], RegExp][] = [
      [[], /give a trace, a request-trace directory or --prometheus URL/],
      [[CONVERSATION, AZURE_CODE], /one source at a time/],
      [[CONVERSATION, '--prometheus', 'http://x'], /--prometheus http:\/\/x conflicts with/],
      [[CONVERSATION, '--selector', 'a=b'], /--selector applies to --prometheus only/],
      [['--prometheus', 'http://x', '--trace-format', 'azure'], /--trace-format applies to traces/],
      [[CONVERSATION, '--window', 'soon'], /--window: 'soon' is not a duration/],
      [[CONVERSATION, '--window', '30d'], /--window: '30d' is not a duration/],
      [[CONVERSATION, '--window', '9999h'], /--window: 9999h is outside \[1s, 168h\]/],
      [[CONVERSATION, '--seed', '1'], /--seed applies to --synthesize only/],
      [[join(dir, 'missing.jsonl')], /missing\.jsonl: file not found/],
      [
        ['--prometheus', 'http://127.0.0.1:1', '--selector', 'model'],
        /--selector: 'model' is not label=value/,
      ],
      [['--prometheus', 'http://127.0.0.1:1'], /http:\/\/127\.0\.0\.1:1: the server could not be reached/],
      [[CONVERSATION, '--out', dir], /--out .*: is a directory; give a file name/],
      [[CONVERSATION, '--out', CONVERSATION], /is also an input of this run/],
    ];
    for (const [args, message] of cases) {
      const r = await cli('profile', ...args);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.err).toMatch(new RegExp(`^servetune profile: .*${message.source}`));
      expect(r.err.trim().split('\n')).toHaveLength(1);
    }
  });
});

describe('servetune drift', () => {
  it('prints per-dimension scores and a verdict; --json has drifted and scores', async () => {
    const t = await cli('drift', CONVERSATION, AZURE_CODE);
    expect(t.code).toBe(0);
    expect(t.out).toMatch(/^output_tokens .* MOVED$/m);
    expect(t.out).toMatch(/^drifted: output_tokens 363 -> 13 tokens \(p50\)/m);
    const j = JSON.parse((await cli('drift', CONVERSATION, AZURE_CODE, '--json')).out);
    expect(j.drifted).toBe(true);
    expect(Object.keys(j.scores)).toEqual([
      'rate_level',
      'burstiness',
      'input_tokens',
      'output_tokens',
      'prefix_reuse',
      'sessions',
    ]);
    expect(j.scores.prefix_reuse).toBeNull();
    const same = JSON.parse((await cli('drift', CONVERSATION, CONVERSATION, '--json')).out);
    expect(same).toMatchObject({ drifted: false, level: 0 });
  });

  it('refuses a wrong number of sources, unknown dimensions and bad profile files', async () => {
    const dir = tmp();
    const bad = join(dir, 'p.json');
    writeFileSync(bad, JSON.stringify({ kind: 'WorkloadProfile', requests: -1 }));
    const cases: [string[], RegExp][] = [
      [[CONVERSATION], /give BASELINE and CURRENT \(got 1 sources\)/],
      [[CONVERSATION, CONVERSATION, '--threshold', 'speed=1'], /--threshold: unknown dimension 'speed'/],
      [
        [CONVERSATION, CONVERSATION, '--threshold', 'rate_level=-1'],
        /--threshold: rate_level needs a number in \(0, 100\]/,
      ],
      [[bad, CONVERSATION], /p\.json: field '.*': /],
    ];
    for (const [args, message] of cases) {
      const r = await cli('drift', ...args);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.err).toMatch(new RegExp(`^servetune drift: .*${message.source}`));
    }
  });
});
