import { describe, expect, it } from 'vitest';
import { runSimulation } from '../../../src/config/run.ts';
import { RequestStatus } from '../../../src/sim/engine/request-table.ts';
import type { SimulationReport } from '../../../src/sim/metrics/report.ts';
import type { SimulationResult } from '../../../src/sim/simulation.ts';
import { config, conversationSample, run } from '../../support/sim.ts';

/**
 * A warm-up (measureFromMs): the requests arriving before it run exactly as in the full run (it filters, it
 * does not re-simulate), and every statistic of the report counts only the requests arriving from it on.
 */

/** A report without the host's timing, which differs from run to run. */
function stable(r: SimulationReport): unknown {
  return { ...r, wall_s: 0, simulator: { ...r.simulator, events_per_s: 0 } };
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.round((s.length - 1) * 0.5)]; // the rank summarize uses
}

/** TTFTs and gap counts of the completed requests arriving at or after `from`, from a run's own records. */
function measuredOf(res: SimulationResult, from: number) {
  const c = res.records;
  const ttft: number[] = [];
  let gaps = 0;
  let rows = 0;
  let out = 0;
  for (let i = 0; i < c.size; i++) {
    if (!(c.arrivalMs[i] >= from)) continue;
    rows++;
    out += c.outputLength[i];
    gaps += Math.max(0, c.tokens[i] - 1);
    if (c.status[i] === RequestStatus.Done && c.tokens[i] >= 1) ttft.push(c.firstTokenMs[i] - c.arrivalMs[i]);
  }
  return { ttft, gaps, rows, out };
}

const cases: [string, Record<string, unknown>][] = [
  ['vLLM, coalesced decode runs', { workers: 2, coalesceDecode: true }],
  ['vLLM, plain stepping', { workers: 2, coalesceDecode: false }],
  ['SGLang, KV router', { workers: 2, router: { mode: 'kv' }, engine: { engine: 'sglang' } }],
];

describe('measureFromMs (warm-up)', () => {
  for (const [name, overrides] of cases) {
    it(`${name}: B's requests keep their full-run timelines; statistics leave A's out`, () => {
      const w = conversationSample(500);
      const full = run(w, overrides);
      // A: the first half of the arrivals (the warm-up), B: the rest.
      const from = full.result.records.arrivalMs[Math.floor(w.size / 2)];
      const warm = runSimulation(config(overrides), w, undefined, from);
      const a = full.result.records;
      const b = warm.result.records;
      for (const f of ['arrivalMs', 'firstTokenMs', 'lastTokenMs', 'terminalMs'] as const) {
        expect(Array.from(b[f]), f).toEqual(Array.from(a[f]));
      }
      const m = measuredOf(full.result, from);
      const all = measuredOf(full.result, Number.NEGATIVE_INFINITY);
      expect(m.rows).toBeGreaterThan(100);
      expect(m.rows).toBeLessThan(all.rows);
      const r = warm.report;
      expect(r.num_requests).toBe(m.rows);
      expect(r.completed_requests).toBe(m.ttft.length);
      expect(r.total_output_tokens).toBe(m.out);
      expect(r.ttft_ms.p50).toBeCloseTo(median(m.ttft), 6);
      expect(r.ttft_ms.max).toBeCloseTo(Math.max(...m.ttft), 6);
      // Pooled token gaps: only those of B's requests (the full run pools everyone's).
      expect(warm.result.collector.itl.count).toBe(m.gaps);
      expect(full.result.collector.itl.count).toBe(all.gaps);
      // Throughput over the measured span only.
      const spanS = r.simulated_duration_s - from / 1000;
      expect(r.output_throughput_tok_s).toBeCloseTo(m.out / spanS, 6);
      expect(r.ttft_ms.p50).not.toBe(full.report.ttft_ms.p50);
    });
  }

  it('absent, the report is the same as before; from the start, its statistics are the full ones', () => {
    const w = conversationSample(300);
    const plain = run(w, { workers: 2 });
    const absent = runSimulation(config({ workers: 2 }), w, undefined, undefined);
    expect(stable(absent.report)).toEqual(stable(plain.report));
    const zero = runSimulation(config({ workers: 2 }), w, undefined, 0);
    const { workers: _a, ...fullStats } = stable(plain.report) as Record<string, unknown>;
    const { workers: _b, ...zeroStats } = stable(zero.report) as Record<string, unknown>;
    expect(zeroStats).toEqual(fullStats);
  });
});
