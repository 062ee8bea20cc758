import { describe, expect, it } from 'vitest';
import {
  type CandidateMetrics,
  compareScored,
  parseSlos,
  type Scored,
  score,
  violation,
} from '../../../src/sweep/objective.ts';

function metrics(over: Partial<CandidateMetrics> = {}): CandidateMetrics {
  const d = { mean: 100, p50: 100, p75: 120, p90: 150, p95: 170, p99: 200 };
  return {
    gpus: 4,
    completed: 100,
    requests: 100,
    duration_s: 60,
    output_tok_s: 4000,
    throughput_per_gpu: 1000,
    user_tok_s: 50,
    request_rps: 1.6,
    goodput_rps: 1.5,
    gpu_hours: 4 / 60,
    requests_per_gpu_hour: 1500,
    cost_per_1k_requests: 0.67,
    prefix_reuse: 0.2,
    preemptions: 0,
    scaling_events: 0,
    mean_gpus: 4,
    ttft: { ...d },
    itl: { ...d, p90: 20 },
    tpot: { ...d, mean: 20 },
    e2e: { ...d },
    ...over,
  };
}

describe('SLO parsing', () => {
  it('reads metric, percentile and unit', () => {
    expect(parseSlos('ttft_p90=2000ms, itl_p99=50ms,e2e=30s,tpot_mean<=40')).toEqual([
      { metric: 'ttft', percentile: 'p90', maxMs: 2000 },
      { metric: 'itl', percentile: 'p99', maxMs: 50 },
      { metric: 'e2e', percentile: 'p90', maxMs: 30000 },
      { metric: 'tpot', percentile: 'mean', maxMs: 40 },
    ]);
  });
  it('rejects what it cannot read, naming the part', () => {
    expect(() => parseSlos('ttft_p90=fast')).toThrow("cannot read 'ttft_p90=fast'");
    expect(() => parseSlos('latency_p90=100ms')).toThrow("cannot read 'latency_p90=100ms'");
    expect(() => parseSlos('ttft_p91=100ms')).toThrow('cannot read');
    expect(() => parseSlos('ttft_p90=0ms')).toThrow('positive');
    expect(() => parseSlos(' , ')).toThrow('no SLO');
  });
});

describe('scoring and ranking', () => {
  const slos = parseSlos('ttft_p90=200ms,itl_p90=25ms');
  it('sums relative SLO excesses into a violation penalty', () => {
    expect(violation(metrics(), slos)).toBe(0);
    expect(violation(metrics({ ttft: { ...metrics().ttft, p90: 300 } }), slos)).toBeCloseTo(0.5, 12);
    expect(
      violation(metrics({ ttft: { ...metrics().ttft, p90: 300 }, itl: { ...metrics().itl, p90: 50 } }), slos),
    ).toBeCloseTo(1.5, 12);
    // Unfinished requests make a candidate infeasible on their own.
    expect(violation(metrics({ completed: 90 }), slos)).toBeGreaterThan(1);
  });

  it('ranks feasible candidates by objective ahead of any infeasible one, infeasible ones by penalty', () => {
    const mk = (id: number, feasible: boolean, v: number, s: number, gpus = 4): Scored => ({
      id,
      feasible,
      violation: v,
      score: s,
      metrics: metrics({ gpus }),
    });
    const list = [
      mk(0, false, 0.1, 9000),
      mk(1, true, 0, 500),
      mk(2, true, 0, 800),
      mk(3, false, 0.05, 10),
      mk(4, true, 0, 800, 2),
    ];
    expect(list.sort(compareScored).map((s) => s.id)).toEqual([4, 2, 1, 3, 0]);
  });

  it('turns each objective into higher-is-better', () => {
    const m = metrics();
    expect(score(m, 'throughput_per_gpu')).toBe(1000);
    expect(score(m, 'goodput')).toBe(1.5);
    expect(score(m, 'goodput_per_gpu')).toBeCloseTo(0.375, 12);
    expect(score(m, 'requests_per_gpu_hour')).toBe(1500);
    expect(score(m, 'cost')).toBe(-0.67);
  });
});
