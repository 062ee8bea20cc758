import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { VirtualClock } from '../../../src/twin/clock.ts';
import { DynamoMetrics } from '../../../src/twin/dynamo-metrics.ts';
import { TwinRuntime } from '../../../src/twin/runtime.ts';
import { TraceFeeder } from '../../../src/twin/trace-feed.ts';
import { FakeLive } from '../../support/fake-live.ts';

/** Feeding a trace into the twin: arrival times, prompt identity, looping, cut-off and bad traces. */

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function traceFile(rows: object[]): string {
  const dir = mkdtempSync(join(tmpdir(), 'twin-feed-'));
  dirs.push(dir);
  const path = join(dir, 'trace.jsonl');
  writeFileSync(path, rows.map((r) => JSON.stringify(r)).join('\n'));
  return path;
}

/** A runtime on a manual clock: the test moves simulated time. */
function runtime(contentBlockSize = 64) {
  let now = 0;
  const clock = new VirtualClock(1, { now: () => now });
  const sim = new FakeLive({ ttftMs: 1, itlMs: 1 });
  const rt = new TwinRuntime({
    sim,
    clock,
    metrics: new DynamoMetrics({ model: 'm', dynamoNamespace: 'd', env: {} }),
    contentBlockSize,
    model: 'm',
  });
  return {
    sim,
    rt,
    advance(ms: number) {
      now += ms;
      rt.pump();
    },
    /** Moves the wall clock only: the simulation falls behind until the next pump. */
    lag(ms: number) {
      now += ms;
    },
  };
}

const rows = [
  { timestamp: 1000, input_length: 1024, output_length: 2, hash_ids: [1, 2] },
  { timestamp: 1500, input_length: 600, output_length: 2, hash_ids: [1, 3] },
  { timestamp: 4000, input_length: 512, output_length: 2, hash_ids: [7] },
];

describe('TraceFeeder', () => {
  it('submits rows at their arrival times relative to the first, ahead of the clock within the horizon', async () => {
    const { sim, rt, advance } = runtime();
    const f = new TraceFeeder({ runtime: rt, path: traceFile(rows), startAtMs: 100, horizonMs: 1000 });
    await f.start();
    expect(sim.submitted.map((r) => r.atMs)).toEqual([100, 600]);
    advance(3000);
    await expect.poll(() => sim.submitted.map((r) => r.atMs)).toEqual([100, 600, 3100]);
    f.stop();
    // 512-token hash ids become 8 content ids of 64 tokens; shared hash ids give shared content ids.
    const [a, b] = sim.submitted;
    expect(a.hashIds).toHaveLength(16);
    expect(b.hashIds).toHaveLength(10);
    expect(Array.from(b.hashIds).slice(0, 8)).toEqual(Array.from(a.hashIds).slice(0, 8));
    expect(b.hashIds[8]).not.toBe(a.hashIds[8]);
    expect(a.hashIds[0]).not.toBe(a.hashIds[1]);
  });

  it("starts the trace at the simulation's now, and keeps its rows' times when the twin runs late", async () => {
    const { sim, rt, advance, lag } = runtime();
    advance(250);
    const f = new TraceFeeder({ runtime: rt, path: traceFile(rows), horizonMs: 5000 });
    // The wall clock moves on while the first rows are read; the simulation has not followed it yet, and
    // submitting scheduled rows does not move it.
    const started = f.start();
    lag(1000);
    await started;
    expect(f.originMs).toBe(250);
    await expect.poll(() => sim.submitted.map((r) => r.atMs)).toEqual([250, 750, 3250]);
    expect(sim.now).toBe(250);
    f.stop();
  });

  it('loops with each pass later and with its own prefix ids', async () => {
    const { sim, rt, advance } = runtime();
    const f = new TraceFeeder({
      runtime: rt,
      path: traceFile(rows),
      startAtMs: 0,
      loop: true,
      horizonMs: 1000,
    });
    await f.start();
    for (let i = 0; i < 40; i++) {
      await f.settled();
      advance(250);
    }
    f.stop();
    const at = sim.submitted.map((r) => r.atMs!);
    // Pass 0 at 0, 500, 3000; pass 1 one mean gap (1500) after the last arrival.
    expect(at.slice(0, 6)).toEqual([0, 500, 3000, 4500, 5000, 7500]);
    expect(at.length).toBeGreaterThanOrEqual(6);
    for (let i = 1; i < at.length; i++) expect(at[i]).toBeGreaterThanOrEqual(at[i - 1]);
    expect(sim.submitted[3].hashIds[0]).not.toBe(sim.submitted[0].hashIds[0]);
    expect(sim.submitted[3].inputLength).toBe(sim.submitted[0].inputLength);
  });

  it('stops at untilMs so another trace can take over', async () => {
    const { sim, rt, advance } = runtime();
    const f = new TraceFeeder({
      runtime: rt,
      path: traceFile(rows),
      startAtMs: 0,
      untilMs: 2000,
      horizonMs: 10_000,
    });
    await f.start();
    advance(5000);
    expect(sim.submitted).toHaveLength(2);
  });

  it('submits a session follow-up when the previous turn ends, after its delay', async () => {
    const { sim, rt, advance } = runtime();
    const path = traceFile([
      { session_id: 's1', timestamp: 0, input_length: 512, output_length: 3, hash_ids: [1] },
      { session_id: 's1', delay: 50, input_length: 1024, output_length: 1, hash_ids: [1, 2] },
    ]);
    const f = new TraceFeeder({ runtime: rt, path, startAtMs: 0 });
    await f.start();
    expect(sim.submitted).toHaveLength(1);
    advance(10); // the first turn ends at 3 ms (first token at 1 ms, then 1 ms per token)
    await expect
      .poll(() => {
        rt.pump();
        return sim.submitted.length;
      })
      .toBe(2);
    expect(sim.submitted[1].atMs).toBe(53);
  });

  it('fails at start on an unreadable trace, naming the file and line', async () => {
    const { rt } = runtime();
    const path = traceFile([{ timestamp: 0, input_length: 'many', output_length: 1, hash_ids: [1] }]);
    await expect(new TraceFeeder({ runtime: rt, path, startAtMs: 0 }).start()).rejects.toThrow(
      /trace.jsonl:1: field 'input_length'/,
    );
    await expect(
      new TraceFeeder({ runtime: rt, path: '/no/such/file.jsonl', startAtMs: 0 }).start(),
    ).rejects.toThrow(/not found/);
  });

  it('refuses a trace block size the content block does not divide', async () => {
    const { rt } = runtime(48);
    await expect(
      new TraceFeeder({ runtime: rt, path: traceFile(rows), startAtMs: 0 }).start(),
    ).rejects.toThrow(/not a multiple/);
  });
});
