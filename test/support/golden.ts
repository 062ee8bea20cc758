import { readdirSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import type { SimulationReport } from '../../src/sim/metrics/report.ts';
import type { SimulationResult } from '../../src/sim/simulation.ts';
import type { Workload } from '../../src/sim/workload/workload.ts';
import { parseTrace } from '../../src/telemetry/trace/index.ts';
import { run } from './sim.ts';

/** A recorded case of the reference simulator (see test/fixtures/reference/README.md). */
export interface Golden {
  name: string;
  num_workers: number;
  trace_block_size: number;
  engine: Record<string, unknown> & {
    timing_model?: { type: string; prefill_ms?: number; decode_ms?: number };
  };
  extra_kwargs: { arrival_speedup_ratio?: number };
  trace: object[];
  per_request: {
    arrival_time_ms: number;
    first_admit_ms: number | null;
    first_token_ms: number | null;
    last_token_ms: number | null;
    terminal_time_ms: number | null;
    input_length: number;
    requested_output_length: number;
    output_length: number;
    reused_input_tokens: number;
    terminal_status: string;
  }[];
  summary: Record<string, number>;
}

export function loadGoldens(dir: string): Golden[] {
  return readdirSync(dir)
    .filter((f) => f.endsWith('.json'))
    .sort()
    .map((f) => JSON.parse(readFileSync(dir + f, 'utf8')) as Golden);
}

/** The timing section of a servetune config for a golden case's engine arguments. */
export function goldenTiming(g: Golden): Record<string, unknown> {
  const t = g.engine.timing_model;
  return t?.type === 'fixed'
    ? { model: 'fixed', prefillMs: t.prefill_ms, decodeMs: t.decode_ms }
    : { model: 'polynomial' };
}

const close = (a: number | null, b: number | null) =>
  a === null || b === null || Number.isNaN(a) || Number.isNaN(b)
    ? (a === null || Number.isNaN(a as number)) === (b === null || Number.isNaN(b as number))
    : Math.abs(a - b) <= 1e-5;

/** Asserts per-request agreement (1e-5 ms) and summary agreement of a run with a golden case. */
export function expectAgreement(
  g: Golden,
  workload: Workload,
  result: SimulationResult,
  report: SimulationReport,
  label: string,
): void {
  const c = result.records;
  const mine = Array.from({ length: workload.size }, (_, r) => ({
    arrival: c.arrivalMs[r],
    admit: c.firstAdmitMs[r],
    first: c.firstTokenMs[r],
    last: c.lastTokenMs[r],
    terminal: c.terminalMs[r],
    input: workload.inputLength[r],
    requested: workload.outputLength[r],
    output: c.tokens[r],
    reused: Math.max(0, c.reusedBest[r]),
    rejected: result.records.status[r] === 4,
  })).sort(
    (a, b) =>
      a.arrival - b.arrival ||
      a.input - b.input ||
      a.requested - b.requested ||
      (a.first ?? 0) - (b.first ?? 0) ||
      a.reused - b.reused,
  );
  // Equal sort keys come in random order in the reference's records: order ties the same way.
  const ref = g.per_request
    .slice()
    .sort(
      (a, b) =>
        a.arrival_time_ms - b.arrival_time_ms ||
        a.input_length - b.input_length ||
        a.requested_output_length - b.requested_output_length ||
        (a.first_token_ms ?? 0) - (b.first_token_ms ?? 0) ||
        a.reused_input_tokens - b.reused_input_tokens,
    );
  expect(mine.length).toBe(ref.length);
  for (let i = 0; i < ref.length; i++) {
    const m = mine[i];
    const x = ref[i];
    const where = `${g.name} request #${i} (${label})`;
    expect(close(m.arrival, x.arrival_time_ms), `${where} arrival ${m.arrival} vs ${x.arrival_time_ms}`).toBe(
      true,
    );
    expect(m.rejected, `${where} rejected`).toBe(x.terminal_status === 'rejected');
    if (m.rejected) continue;
    expect(close(m.admit, x.first_admit_ms), `${where} admit ${m.admit} vs ${x.first_admit_ms}`).toBe(true);
    expect(close(m.first, x.first_token_ms), `${where} first token ${m.first} vs ${x.first_token_ms}`).toBe(
      true,
    );
    expect(close(m.last, x.last_token_ms), `${where} last token ${m.last} vs ${x.last_token_ms}`).toBe(true);
    expect(
      close(m.terminal, x.terminal_time_ms),
      `${where} terminal ${m.terminal} vs ${x.terminal_time_ms}`,
    ).toBe(true);
    expect(m.output, `${where} output`).toBe(x.output_length);
    expect(m.reused, `${where} reused`).toBe(x.reused_input_tokens);
  }
  const s = g.summary;
  expect(report.completed_requests).toBe(s.completed_requests);
  expect(Math.abs(report.simulated_duration_s * 1000 - s.duration_ms)).toBeLessThan(1e-5);
  expect(report.prefix_cache_reused_ratio).toBeCloseTo(s.prefix_cache_reused_ratio, 12);
  if (s.num_ttft_samples > 0) expect(report.ttft_ms.mean).toBeCloseTo(s.mean_ttft_ms, 5);
  if (s.num_tpot_samples > 0) expect(report.tpot_ms.mean).toBeCloseTo(s.mean_tpot_ms, 5);
  expect(report.committed_prefill_tokens).toBe(s.committed_prefill_tokens);
}

/**
 * One test per golden case: replays its trace with the case's settings, with and without coalesced decode
 * runs (the fast path must agree with the plain one), and asserts agreement with the reference.
 */
export function describeGoldens<G extends Golden>(
  title: string,
  cases: G[],
  overrides: (g: G) => Record<string, unknown>,
): void {
  describe(title, () => {
    for (const g of cases) {
      it(g.name, () => {
        const text = g.trace.map((r) => JSON.stringify(r)).join('\n');
        const format = (g as { trace_format?: string }).trace_format;
        const { workload } = parseTrace(text, {
          source: g.name,
          traceBlockSize: g.trace_block_size,
          ...(format !== undefined ? { format } : {}),
        });
        for (const coalesce of [true, false]) {
          const { result, report } = run(workload, { ...overrides(g), coalesceDecode: coalesce });
          expectAgreement(g, workload, result, report, `coalesce ${coalesce}`);
        }
      });
    }
  });
}
