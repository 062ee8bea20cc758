import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { toSimulationOptions } from '../../../src/config/run.ts';
import { simulate } from '../../../src/sim/simulation.ts';
import { sliceWorkload } from '../../../src/sim/workload/slice.ts';
import { parseTrace, replayTrace, TraceError } from '../../../src/telemetry/trace/index.ts';
import { cli } from '../../support/cli.ts';
import { config, run } from '../../support/sim.ts';

const jsonl = (rows: object[]) => rows.map((r) => JSON.stringify(r)).join('\n');
const row = (o: object) => ({ input_length: 1000, output_length: 10, hash_ids: [1, 2], ...o });

function errorOf(text: string, opts: object = {}): string {
  try {
    parseTrace(text, { source: 't', ...opts });
  } catch (e) {
    expect(e).toBeInstanceOf(TraceError);
    return (e as Error).message;
  }
  throw new Error('expected a TraceError');
}

const FIXED = { timing: { model: 'fixed' }, engine: { blockSize: 64 }, workers: 1 };

describe('agentic_mooncake rows', () => {
  it('are detected; a row that waits has no arrival and waits for each row it names', () => {
    const { workload: w, summary } = parseTrace(
      jsonl([
        row({ request_id: 'a', timestamp: 0 }),
        row({ request_id: 'b', timestamp: 5 }),
        row({ request_id: 'c', wait_for: ['a', 'b'], delay: 100, tool_wait_ms: 50 }),
      ]),
      { source: 't' },
    );
    expect(summary.format).toBe('agentic_mooncake');
    expect(Array.from(w.arrivalMs)).toEqual([0, 5, Number.NaN]);
    const g = w.dependents;
    expect(g).toBeTruthy();
    expect(Array.from(g?.waits ?? [])).toEqual([0, 0, 2]);
    expect(Array.from(g?.ids ?? [])).toEqual([2, 2]);
    expect(Array.from(g?.delayMs ?? [])).toEqual([150, 150]);
  });

  it('refuse a wait for a row below or missing (a cycle can never start), and a repeated id, by line', () => {
    expect(
      errorOf(
        jsonl([
          row({ request_id: 'a', timestamp: 0 }),
          row({ request_id: 'b', wait_for: ['c'] }),
          row({ request_id: 'c', wait_for: ['b'] }),
        ]),
      ),
    ).toMatch(/^t:2: field 'wait_for': waits for 'c', which no row above defines/);
    expect(
      errorOf(jsonl([row({ request_id: 'a', timestamp: 0 }), row({ request_id: 'b', wait_for: ['zz'] })])),
    ).toMatch(/^t:2: field 'wait_for': waits for 'zz'/);
    expect(
      errorOf(jsonl([row({ request_id: 'a', timestamp: 0 }), row({ request_id: 'a', timestamp: 1 })])),
    ).toMatch(/^t:2: field 'request_id': 'a' repeats an earlier row's/);
    expect(errorOf(jsonl([row({ request_id: 'a' })]))).toMatch(
      /field 'timestamp': is required on a row that waits/,
    );
    expect(
      errorOf(
        jsonl([row({ request_id: 'a', timestamp: 0 }), row({ request_id: 'b', wait_for: ['a'], delay: -1 })]),
      ),
    ).toMatch(/^t:2: field 'delay'/);
  });

  it('leniently: a bad row is skipped and so is every row waiting for it, each named', () => {
    const text = jsonl([
      row({ request_id: 'a', timestamp: 0 }),
      row({ request_id: 'b', wait_for: ['a'], output_length: -3 }),
      row({ request_id: 'c', wait_for: ['b'] }),
      row({ request_id: 'd', wait_for: ['a'] }),
    ]);
    const { workload: w, summary } = parseTrace(text, { source: 't', lenient: true });
    expect(w.size).toBe(2);
    expect(summary.badLines).toBe(2);
    expect(summary.issues.map((i) => i.line)).toEqual([2, 3]);
  });

  it('version 2: the header sets the block size; completion and dispatch edges, per-edge delays, not_before_ms', () => {
    const head = {
      schema: 'dynamo.agentic_mooncake',
      version: 2,
      block_size: 64,
      hash_id_scope: 'local',
      source: {},
    };
    const v2 = (o: object) => ({
      play_id: 'p',
      session_id: 's',
      model: 'm',
      input_length: 100,
      output_length: 2,
      hash_ids: [1, 2],
      ...o,
    });
    const { workload: w, summary } = parseTrace(
      jsonl([
        head,
        v2({ request_id: 'a', not_before_ms: 0 }),
        v2({
          request_id: 'b',
          not_before_ms: 500,
          dependencies: [
            { request_id: 'a', trigger: 'dispatch', delay_ms: 7, relation: 'spawn' },
            { request_id: 'a', trigger: 'completion', delay_ms: 30, relation: 'sequence' },
          ],
        }),
      ]),
      { source: 't' },
    );
    expect(summary.format).toBe('agentic_mooncake');
    expect(summary.traceBlockSize).toBe(64);
    const g = w.dependents;
    expect(Array.from(g?.waits ?? [])).toEqual([0, 2]);
    expect(Array.from(g?.delayMs ?? [])).toEqual([7, 30]);
    expect(Array.from(g?.onDispatch ?? [])).toEqual([1, 0]);
    expect(g?.notBeforeMs?.[1]).toBe(500);
    expect(errorOf(jsonl([{ ...head, version: 3 }, v2({ request_id: 'a', not_before_ms: 0 })]))).toMatch(
      /field 'version': only version 2 is known/,
    );
  });
});

describe('agentic requests in the simulation', () => {
  it('start once all they wait for ended, plus the delay; a rejected predecessor rejects them, by line', () => {
    const w = parseTrace(
      jsonl([
        row({ request_id: 'a', timestamp: 0 }),
        row({ request_id: 'big', timestamp: 1, input_length: 9000, hash_ids: undefined }),
        row({ request_id: 'c', wait_for: ['a'], delay: 40 }),
        row({ request_id: 'd', wait_for: ['big', 'a'] }),
        row({ request_id: 'e', wait_for: ['d'] }),
      ]),
      { source: 't' },
    ).workload;
    const { result, report } = run(w, { ...FIXED, engine: { blockSize: 64, numGpuBlocks: 100 } });
    const c = result.records;
    // a: prefill 10 ms then 9 decode steps of 5 ms (fixed timing) ends at 55; c arrives 40 ms later.
    expect(c.terminalMs[0]).toBe(55);
    expect(c.arrivalMs[2]).toBe(95);
    expect(report.completed_requests).toBe(2);
    expect(report.rejected_requests).toBe(3);
    expect(report.incomplete_requests).toBe(0);
    const reasons = [...c.rejectReasons].map(([r, why]) => [w.sourceLine?.[r], why]);
    expect(reasons.sort()).toEqual([
      [2, expect.stringMatching(/KV cache/)],
      [4, 'waits for a request that was rejected'],
      [5, 'waits for a request that was rejected'],
    ]);
  });

  it('a dispatch edge releases at the arrival; not_before_ms holds a request back', () => {
    const head = {
      schema: 'dynamo.agentic_mooncake',
      version: 2,
      block_size: 512,
      hash_id_scope: 'local',
      source: {},
    };
    const v2 = (o: object) => ({
      play_id: 'p',
      session_id: 's',
      model: 'm',
      input_length: 1000,
      output_length: 10,
      hash_ids: [1, 2],
      ...o,
    });
    const w = parseTrace(
      jsonl([
        head,
        v2({ request_id: 'a', not_before_ms: 0 }),
        v2({
          request_id: 'b',
          not_before_ms: 0,
          dependencies: [{ request_id: 'a', trigger: 'dispatch', delay_ms: 7 }],
        }),
        v2({
          request_id: 'c',
          not_before_ms: 900,
          dependencies: [{ request_id: 'a', trigger: 'completion', delay_ms: 0 }],
        }),
      ]),
      { source: 't' },
    ).workload;
    const { result } = run(w, FIXED);
    expect(Array.from(result.records.arrivalMs)).toEqual([0, 7, 900]);
  });

  it('refuse a closed loop (the trace is its own schedule), and a slice keeps what its requests wait for', () => {
    const w = parseTrace(
      jsonl([
        row({ request_id: 'a', timestamp: 0 }),
        row({ request_id: 'b', timestamp: 1000 }),
        row({ request_id: 'c', wait_for: ['a'] }),
        row({ request_id: 'd', wait_for: ['a', 'b'] }),
      ]),
      { source: 't' },
    ).workload;
    const opts = toSimulationOptions(config({ ...FIXED, workload: { trace: 'x', concurrency: 2 } }));
    expect(() => simulate(w, opts)).toThrow(/replay on their own schedule/);
    const s = sliceWorkload(w, 0.5);
    expect(s.size).toBe(2);
    expect(Array.from(s.dependents?.waits ?? [])).toEqual([0, 1]);
    expect(run(s, FIXED).report.completed_requests).toBe(2);
  });
});

describe('session traces that give only what is new', () => {
  it('mooncake-delta: a turn is the previous prompt, its output and the row; it finds their full blocks', () => {
    const w = parseTrace(
      jsonl([
        { session_id: 's', timestamp: 0, input_length: 1000, output_length: 100, hash_ids: [1, 2] },
        { session_id: 's', delay: 100, input_length: 600, output_length: 70, hash_ids: [3, 4] },
      ]),
      { source: 't', format: 'mooncake-delta' },
    ).workload;
    expect(Array.from(w.inputLength)).toEqual([1000, 1700]);
    const { result } = run(w, FIXED);
    // floor((1000 + 100) / 64) = 17 blocks of the first turn's prompt and output.
    expect(result.records.reusedBest[1]).toBe(17 * 64);
  });

  it('applied_compute_agentic: num_turns + 1 requests per row, the prompt growing by answer and tool output', () => {
    const rows = [
      {
        num_turns: 2,
        input_prompt_length: 1000,
        assistant_response_length: [20, 30],
        tool_call_output_length: [200, 100],
        tool_call_latency: [0.5, 0.25],
        final_assistant_response_length: 40,
      },
    ];
    const { workload: w, summary } = parseTrace(jsonl(rows), { source: 't' });
    expect(summary.format).toBe('applied_compute_agentic');
    expect(Array.from(w.inputLength)).toEqual([1000, 1220, 1350]);
    expect(Array.from(w.outputLength)).toEqual([20, 30, 40]);
    expect(Array.from(w.delayMs).slice(1)).toEqual([500, 250]);
    expect(errorOf(jsonl([{ ...rows[0], tool_call_latency: [0.5] }]))).toMatch(
      /field 'tool_call_latency': has 1 entries, num_turns is 2/,
    );
  });

  it('the CLI asks for a concurrency for applied_compute_agentic and refuses one for agentic rows', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'servetune-agentic-'));
    try {
      writeFileSync(
        `${dir}/ac.jsonl`,
        jsonl([
          {
            num_turns: 0,
            input_prompt_length: 100,
            assistant_response_length: [],
            tool_call_output_length: [],
            tool_call_latency: [],
            final_assistant_response_length: 4,
          },
        ]),
      );
      writeFileSync(
        `${dir}/ag.jsonl`,
        jsonl([row({ request_id: 'a', timestamp: 0 }), row({ request_id: 'b', wait_for: ['a'] })]),
      );
      const ac = await cli(...['simulate', '--trace', `${dir}/ac.jsonl`, '--quiet']);
      expect(ac.code).toBe(2);
      expect(ac.err).toMatch(
        /applied_compute_agentic rows carry no timestamps: replay them with --concurrency/,
      );
      expect(
        (await cli(...['simulate', '--trace', `${dir}/ac.jsonl`, '--concurrency', '1', '--quiet'])).code,
      ).toBe(0);
      const ag = await cli(...['simulate', '--trace', `${dir}/ag.jsonl`, '--concurrency', '2', '--quiet']);
      expect(ag.code).toBe(2);
      expect(ag.err).toMatch(/wait for others replay on the trace's own schedule: drop --concurrency/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('agentic traces replayed from a file', () => {
  it('read whole across chunks (gzip), the same per request as the trace parsed in memory', async () => {
    // Chains a -> b -> c (c also waits for a) every 10 ms: over 1 MiB, so several chunks reach the reader.
    const rows: object[] = [];
    for (let i = 0; i < 5000; i++) {
      const ids = Array.from({ length: 6 }, (_, k) => i * 8 + k);
      rows.push({
        request_id: `a${i}`,
        timestamp: i * 10,
        input_length: 300,
        output_length: 4,
        hash_ids: ids,
      });
      rows.push({
        request_id: `b${i}`,
        wait_for: [`a${i}`],
        delay: 3,
        input_length: 200,
        output_length: 2,
        hash_ids: ids,
      });
      rows.push({
        request_id: `c${i}`,
        wait_for: [`b${i}`, `a${i}`],
        tool_wait_ms: 5,
        input_length: 100,
        output_length: 2,
        hash_ids: ids,
      });
    }
    const text = jsonl(rows);
    expect(text.length).toBeGreaterThan(1 << 20);
    const dir = mkdtempSync(join(tmpdir(), 'servetune-agentic-'));
    try {
      writeFileSync(`${dir}/t.jsonl.gz`, gzipSync(text));
      const opts = toSimulationOptions(config(FIXED));
      const streamed = await replayTrace(`${dir}/t.jsonl.gz`, {}, opts);
      expect(streamed.trace.format).toBe('agentic_mooncake');
      const { workload } = parseTrace(text, { source: 't' });
      const whole = simulate(workload, opts);
      const byLine = new Map<number, number>();
      const rec = streamed.result.records;
      for (let row = 0; row < rec.size; row++) byLine.set(rec.source[row], rec.terminalMs[row]);
      expect(byLine.size).toBe(15_000);
      for (let i = 0; i < workload.size; i++)
        expect(byLine.get(workload.sourceLine?.[i] ?? -1)).toBe(whole.records.terminalMs[i]);
      const out = await cli(
        ...['simulate', '--trace', `${dir}/t.jsonl.gz`, '--quiet', '--json', `${dir}/r.json`],
      );
      expect(out.code).toBe(0);
      const report = JSON.parse(readFileSync(`${dir}/r.json`, 'utf8')).report;
      expect(report.completed_requests).toBe(15_000);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
