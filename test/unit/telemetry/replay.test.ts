import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { toSimulationOptions } from '../../../src/config/run.ts';
import { buildReport } from '../../../src/sim/metrics/report.ts';
import { type SimulationResult, simulate } from '../../../src/sim/simulation.ts';
import { parseTrace, replayTrace } from '../../../src/telemetry/trace/index.ts';
import { config, FIXTURES } from '../../support/sim.ts';

const SAMPLE = readFileSync(`${FIXTURES}traces/conversation-sample.jsonl`, 'utf8')
  .split('\n')
  .slice(0, 1200)
  .join('\n');

/** A multi-turn trace: sessions with timestamped first turns and delayed follow-ups, in time order. */
function sessionsTrace(sessions: number): string {
  const rows: { ts: number; line: string }[] = [];
  for (let s = 0; s < sessions; s++) {
    const start = s * 37;
    const turns = 1 + (s % 4);
    let ctx: number[] = [];
    for (let k = 0; k < turns; k++) {
      ctx = ctx.concat([s * 100 + k * 10 + 1, s * 100 + k * 10 + 2]);
      const row: Record<string, unknown> = {
        session_id: `s${s}`,
        input_length: ctx.length * 512 - 7,
        output_length: 20 + ((s * 7 + k) % 50),
        hash_ids: ctx.slice(),
      };
      if (k === 0) row.timestamp = start;
      else row.delay = 100 + ((s * 13) % 400);
      rows.push({ ts: start + k * 2000, line: JSON.stringify(row) });
    }
  }
  rows.sort((a, b) => a.ts - b.ts);
  return rows.map((r) => r.line).join('\n');
}

/** The records of a streamed run, by trace line, against a whole-trace run's (rows by workload index). */
function expectSameAsWhole(whole: SimulationResult, streamed: SimulationResult): void {
  const w = whole.workload;
  if (w === null || w.sourceLine === null) throw new Error('whole run without source lines');
  const rowOfLine = new Map<number, number>();
  for (let i = 0; i < streamed.records.size; i++) rowOfLine.set(streamed.records.source[i], i);
  expect(streamed.records.size).toBe(whole.records.size);
  const a = whole.records;
  const b = streamed.records;
  for (let i = 0; i < w.size; i++) {
    const j = rowOfLine.get(w.sourceLine[i]);
    expect(j, `line ${w.sourceLine[i]}`).toBeDefined();
    const at = j as number;
    const where = `line ${w.sourceLine[i]}`;
    for (const f of [
      'arrivalMs',
      'firstAdmitMs',
      'firstTokenMs',
      'lastTokenMs',
      'terminalMs',
      'tokens',
      'reusedBest',
      'status',
      'engine',
    ] as const)
      expect(b[f][at], `${where} ${f}`).toBe(a[f][i]);
  }
  const strip = (r: SimulationResult) => {
    const rep = buildReport(r, 0);
    return { ...rep, simulator: { ...rep.simulator, events_per_s: 0 }, queue_depth: null };
  };
  expect(strip(streamed)).toEqual(strip(whole));
}

const cases: [string, () => string, Record<string, unknown>][] = [
  ['vLLM, round-robin', () => SAMPLE, { workers: 4, engine: { blockSize: 64 } }],
  [
    'vLLM, KV router, speed-up 2',
    () => SAMPLE,
    { workers: 3, router: { mode: 'kv' }, workload: { trace: 'x', arrivalSpeedupRatio: 2 } },
  ],
  [
    'SGLang, KV router',
    () => SAMPLE,
    { workers: 3, engine: { engine: 'sglang', blockSize: 64 }, router: { mode: 'kv' } },
  ],
  [
    'disaggregated',
    () => SAMPLE,
    {
      engine: { blockSize: 64 },
      router: { mode: 'kv' },
      disaggregation: { prefill: { workers: 2 }, decode: { workers: 3 } },
    },
  ],
  ['sessions', () => sessionsTrace(300), { workers: 2, engine: { blockSize: 64 } }],
  ['closed loop', () => SAMPLE, { workers: 2, workload: { trace: 'x', concurrency: 16 } }],
  [
    'closed loop, sessions',
    () => sessionsTrace(120),
    { workers: 2, workload: { trace: 'x', concurrency: 8 } },
  ],
];

describe('streamed replay (reading while simulating)', () => {
  for (const [name, text, overrides] of cases) {
    it(`gives the results of reading the whole trace first: ${name}`, async () => {
      const cfg = config(overrides);
      const options = toSimulationOptions(cfg);
      const whole = simulate(parseTrace(text(), { source: 't' }).workload, options);
      // Small chunks and a small reorder window: the simulation must stop and wait for rows many times.
      const bytes = Buffer.from(text());
      async function* chunks() {
        for (let i = 0; i < bytes.length; i += 2000) yield bytes.subarray(i, i + 2000);
      }
      let calls = 0;
      const streamed = await replayTrace({ stream: chunks(), source: 't' }, {}, options, {
        reorderRows: 64,
        sessionLookaheadRows: 1000,
        onProgress: () => {
          calls++;
        },
      });
      expectSameAsWhole(whole, streamed.result);
      expect(streamed.stream.lateRows.count).toBe(0);
      expect(streamed.stream.lateTurns.count).toBe(0);
      expect(calls).toBeGreaterThan(10);
    });
  }

  it('puts rows within the reorder window in timestamp order, and counts the ones further out', async () => {
    // Distinct timestamps, then pairs 3 rows apart swapped: within a window of 8, out of a window of 1.
    const lines = SAMPLE.split('\n').map((l, i) => JSON.stringify({ ...JSON.parse(l), timestamp: i * 10 }));
    for (let i = 0; i + 3 < lines.length; i += 50) [lines[i], lines[i + 3]] = [lines[i + 3], lines[i]];
    const text = lines.join('\n');
    const options = toSimulationOptions(config({ workers: 2 }));
    const whole = simulate(parseTrace(text, { source: 't' }).workload, options);
    const ok = await replayTrace({ text, source: 't' }, {}, options, { reorderRows: 8 });
    expect(ok.stream.lateRows.count).toBe(0);
    expectSameAsWhole(whole, ok.result);
    const tight = await replayTrace({ text, source: 't' }, {}, options, { reorderRows: 1 });
    expect(tight.stream.lateRows.count).toBeGreaterThan(0);
    expect(tight.result.records.size).toBe(whole.records.size);
  });

  it('reads gzip files and stops at the simulated time limit', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'servetune-replay-'));
    const p = join(dir, 't.jsonl.gz');
    writeFileSync(p, gzipSync(SAMPLE));
    const options = toSimulationOptions(config({ workers: 4, maxSimTimeS: 30 }));
    const r = await replayTrace(p, {}, options);
    expect(r.trace.compressed).toBe(true);
    expect(r.result.endTimeMs).toBeLessThanOrEqual(30_000);
    const report = buildReport(r.result, r.wallMs);
    expect(report.completed_requests).toBeGreaterThan(0);
    expect(report.simulated_duration_s).toBeLessThanOrEqual(30);
  });
});
