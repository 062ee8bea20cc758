import { describe, expect, it } from 'vitest';
import { parseTrace } from '../../../src/telemetry/trace/index.ts';
import {
  describeGoldens,
  expectAgreement,
  type Golden,
  goldenTiming,
  loadGoldens,
} from '../../support/golden.ts';
import { FIXTURES, run } from '../../support/sim.ts';

/**
 * Per-request agreement with the reference simulator on agentic and session traces: `agentic_mooncake`
 * (version 2: completion and dispatch dependencies, joins with their own delays, not_before_ms), mooncake-delta
 * and applied_compute_agentic, recorded in test/fixtures/reference/golden-agentic
 * (`python hack/reference/record-agentic-golden.py`, see the README).
 */
type AgenticGolden = Golden & {
  trace_format: string;
  extra_kwargs: { arrival_speedup_ratio?: number; replay_concurrency?: number };
};

const cases = loadGoldens(`${FIXTURES}reference/golden-agentic/`) as AgenticGolden[];

function overrides(g: AgenticGolden): Record<string, unknown> {
  const e = g.engine;
  const x = g.extra_kwargs;
  return {
    workers: g.num_workers,
    engine: e.block_size !== undefined ? { blockSize: e.block_size } : {},
    timing: goldenTiming(g),
    workload: {
      trace: 'inline',
      traceBlockSize: g.trace_block_size,
      ...(x.replay_concurrency !== undefined
        ? { concurrency: x.replay_concurrency }
        : { arrivalSpeedupRatio: x.arrival_speedup_ratio ?? 1 }),
    },
  };
}

describeGoldens('agentic and session traces: agreement with the reference simulator', cases, overrides);

/**
 * The first version of agentic_mooncake (request_id, wait_for, delay, tool_wait_ms) written from the
 * version-2 rows whose dependencies it can express (completion edges, one delay per row): same vectors.
 */
function firstVersion(rows: Record<string, unknown>[]): string[] {
  const out: string[] = [];
  for (const r of rows) {
    if (r.schema !== undefined) continue;
    const deps = (r.dependencies ?? []) as { request_id: string; trigger: string; delay_ms: number }[];
    const base = {
      request_id: r.request_id,
      input_length: r.input_length,
      output_length: r.output_length,
      hash_ids: r.hash_ids,
    };
    if (deps.length === 0) out.push(JSON.stringify({ ...base, timestamp: r.not_before_ms }));
    else {
      if (deps.some((d) => d.trigger !== 'completion' || d.delay_ms !== deps[0].delay_ms)) return [];
      if ((r.not_before_ms as number) > 0) return [];
      // The delay split in two, as agentic traces record a think time and a tool's wait.
      const half = Math.floor(deps[0].delay_ms / 2);
      out.push(
        JSON.stringify({
          ...base,
          wait_for: deps.map((d) => d.request_id),
          delay: half,
          tool_wait_ms: deps[0].delay_ms - half,
        }),
      );
    }
  }
  return out;
}

describe('agentic_mooncake, first version', () => {
  const expressible = cases.filter(
    (g) =>
      g.trace_format === 'agentic_mooncake' && firstVersion(g.trace as Record<string, unknown>[]).length > 0,
  );
  it('has a recorded case to check', () => expect(expressible.length).toBeGreaterThan(0));
  for (const g of expressible) {
    it(`${g.name}: the same vectors from wait_for, delay and tool_wait_ms`, () => {
      const text = firstVersion(g.trace as Record<string, unknown>[]).join('\n');
      const { workload, summary } = parseTrace(text, { source: g.name, traceBlockSize: g.trace_block_size });
      expect(summary.format).toBe('agentic_mooncake');
      const { result, report } = run(workload, overrides(g));
      expectAgreement(g, workload, result, report, 'first version');
    });
  }
});
