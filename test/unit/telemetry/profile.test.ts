import { describe, expect, it } from 'vitest';
import { Rng } from '../../../src/sim/random.ts';
import { driftVerdict } from '../../../src/telemetry/drift/verdict.ts';
import {
  cdfAt,
  distributionFromBuckets,
  distributionOf,
  ksDistance,
  log2Wasserstein,
  quantile,
} from '../../../src/telemetry/profile/distribution.ts';
import {
  profileFromRecorded,
  type RecordedWindow,
  readRecordedWindow,
} from '../../../src/telemetry/profile/from-trace.ts';
import {
  allanFactor,
  type WorkloadProfile,
  WorkloadProfileSchema,
} from '../../../src/telemetry/profile/profile.ts';
import { drawLengths, synthesize } from '../../../src/telemetry/profile/synthesize.ts';
import { DEFAULT_BUCKETS, dynamoLogBuckets } from '../../../src/twin/dynamo-metrics.ts';

const TRACES = new URL('../../fixtures/traces/', import.meta.url).pathname;
const CONVERSATION = `${TRACES}conversation-sample.jsonl`;

/** The same lengths as Dynamo's frontend histogram would hold them (its default ISL/OSL buckets). */
function asDynamoHistogram(values: ArrayLike<number>, spec: { min: number; max: number; count: number }) {
  const bounds = dynamoLogBuckets(spec.min, spec.max, spec.count);
  let sum = 0;
  const cumulative = [...bounds, Number.POSITIVE_INFINITY].map((le) => ({ le, count: 0 }));
  for (let i = 0; i < values.length; i++) {
    sum += values[i];
    for (const b of cumulative) if (values[i] <= b.le) b.count++;
  }
  return distributionFromBuckets(cumulative, sum);
}

/** The profile of a synthesised workload, its bins aligned with the profile it came from. */
function profileOfSynthesis(p: WorkloadProfile, seed: number, blockSize = 64) {
  const s = synthesize(p, { seed, blockSize });
  const rec: RecordedWindow = {
    workload: s.workload,
    summary: {
      source: 'synthetic',
      files: 1,
      truncatedFiles: { count: 0, first: '' },
      format: 'synthetic',
      denseHashIds: false,
      traceBlockSize: blockSize,
      compressed: false,
      bytes: 0,
      lines: 0,
      requests: s.workload.size,
      sessions: 0,
      badLines: 0,
      issues: [],
      missingHashIds: {
        count: p.prefix_reuse.share === null ? s.workload.size : 0,
        firstLine: 0,
        firstSource: '',
      },
      extraHashIds: { count: 0, firstLine: 0, firstSource: '' },
      unsortedTimestamps: { count: 0, firstLine: 0, firstSource: '' },
      duplicateTimestamps: { count: 0, firstLine: 0, firstSource: '' },
    },
    observed: null,
    originMs: s.startOffsetMs,
    window: { startMs: 0, endMs: p.duration_s * 1000 },
  };
  return {
    synthesis: s,
    profile: profileFromRecorded(rec, { name: 'synthetic', kind: 'synthetic', stepS: p.rate.step_s }),
  };
}

describe('distributions', () => {
  it('interpolate quantiles inside buckets as histogram_quantile does, and CDFs on a log scale', () => {
    // 10 observations <= 1, 80 in (1, 10], 10 in (10, 100]
    const d = distributionFromBuckets(
      [
        { le: 1, count: 10 },
        { le: 10, count: 90 },
        { le: 100, count: 100 },
        { le: Number.POSITIVE_INFINITY, count: 100 },
      ],
      500,
    );
    expect(d.counts).toEqual([10, 80, 10, 0]);
    expect(d.mean).toBe(5);
    expect(quantile(d, 0.5)).toBeCloseTo(1 + 9 * (40 / 80), 10);
    expect(quantile(d, 0.95)).toBeCloseTo(10 + 90 * 0.5, 10);
    expect(cdfAt(d, 10)).toBeCloseTo(0.9, 10);
    expect(cdfAt(d, Math.sqrt(10))).toBeCloseTo(0.1 + 0.8 * 0.5, 10);
    expect(cdfAt(d, 1e6)).toBe(1);
    // Everything in the overflow bucket answers the highest finite bound.
    const over = distributionFromBuckets([
      { le: 5, count: 0 },
      { le: Number.POSITIVE_INFINITY, count: 3 },
    ]);
    expect(over.p99).toBe(5);
  });

  it('clamp decreasing cumulative counts (a scrape racing an observation)', () => {
    const d = distributionFromBuckets([
      { le: 1, count: 5 },
      { le: 2, count: 4 },
      { le: Number.POSITIVE_INFINITY, count: 6 },
    ]);
    expect(d.counts).toEqual([5, 0, 1]);
    expect(d.count).toBe(6);
  });

  it('measure distance: 0 for one distribution, doublings for a scaled one', () => {
    const rng = new Rng(3);
    const a = Array.from({ length: 20_000 }, () => Math.round(100 * 2 ** (rng.next() * 6)));
    const da = distributionOf(a);
    expect(ksDistance(da, da)).toBe(0);
    expect(log2Wasserstein(da, da)).toBe(0);
    const doubled = distributionOf(a.map((v) => v * 2));
    expect(log2Wasserstein(da, doubled)).toBeCloseTo(1, 1);
    expect(ksDistance(da, doubled)).toBeGreaterThan(0.1);
  });
});

describe('workload profiles from traces', () => {
  it('count every request in the rate curve and give exact length statistics', async () => {
    const rec = await readRecordedWindow(CONVERSATION);
    const p = profileFromRecorded(rec, { name: 'conv' });
    expect(WorkloadProfileSchema.safeParse(p).success).toBe(true);
    expect(p.requests).toBe(2000);
    expect(p.rate.counts.reduce((a, b) => a + b, 0)).toBe(2000);
    expect(p.rate.step_s).toBe(10);
    expect(p.duration_s).toBeCloseTo(669, 0);
    expect(p.request_rate_rps).toBeCloseTo(2000 / 669, 2);
    const sorted = Array.from(rec.workload.inputLength).sort((a, b) => a - b);
    expect(p.input_tokens.p50).toBe(sorted[999]);
    expect(p.input_tokens.p99).toBe(sorted[1979]);
    expect(p.input_tokens.mean).toBeCloseTo(sorted.reduce((a, b) => a + b, 0) / 2000, 6);
    expect(p.prefix_reuse.basis).toBe('blocks');
    expect(p.prefix_reuse.share).toBeGreaterThan(0.2);
    expect(p.sessions).toBeNull();
  });

  it('cut the last window back from the newest request', async () => {
    const rec = await readRecordedWindow(CONVERSATION, { lookbackMs: 300_000 });
    const p = profileFromRecorded(rec, { name: 'conv' });
    expect(p.duration_s).toBeCloseTo(300, 0);
    expect(p.window.end_ms - p.window.start_ms).toBe(300_000);
    const all = await readRecordedWindow(CONVERSATION);
    let inWindow = 0;
    const newest = Math.max(...Array.from(all.workload.arrivalMs));
    for (const a of all.workload.arrivalMs) if (a >= newest - 300_000) inWindow++;
    expect(p.requests).toBe(inWindow);
  });

  it('know nothing of prefixes in an Azure trace, and say so', async () => {
    const p = profileFromRecorded(await readRecordedWindow(`${TRACES}azure-code-sample.csv`), { name: 'az' });
    expect(p.prefix_reuse).toEqual({ share: null, basis: 'none' });
    expect(p.notes.join('\n')).toContain('no prefix information');
    // Azure code traffic arrives in bursts: far from Poisson.
    expect(p.rate.burstiness).toBeGreaterThan(10);
  });
});

describe('profiles from histograms', () => {
  it("from Dynamo's buckets: mean exact, percentiles within the bucket of the exact one", async () => {
    const rec = await readRecordedWindow(CONVERSATION);
    const exact = profileFromRecorded(rec, { name: 'conv' });
    for (const [values, spec, fromTrace] of [
      [rec.workload.inputLength, DEFAULT_BUCKETS.INPUT_SEQUENCE, exact.input_tokens],
      [rec.workload.outputLength, DEFAULT_BUCKETS.OUTPUT_SEQUENCE, exact.output_tokens],
    ] as const) {
      const h = asDynamoHistogram(values, spec);
      expect(h.count).toBe(2000);
      expect(h.mean).toBeCloseTo(fromTrace.mean, 6);
      for (const q of ['p50', 'p90', 'p99'] as const) {
        // The bucket holding the exact percentile brackets the interpolated one.
        const i = h.bounds.findIndex((b) => fromTrace[q] <= b);
        const lo = i > 0 ? h.bounds[i - 1] : 0;
        const hi = i >= 0 ? h.bounds[i] : Number.POSITIVE_INFINITY;
        expect(h[q]).toBeGreaterThanOrEqual(lo);
        expect(h[q]).toBeLessThanOrEqual(hi);
      }
      // Seen through Dynamo's coarse buckets the distribution barely moves (well under the drift threshold).
      expect(log2Wasserstein(fromTrace, h)).toBeLessThan(0.05);
    }
  });
});

describe('synthesis from a profile', () => {
  it('reproduces a trace profile: same rate curve, lengths and prefix reuse, and no drift', async () => {
    const p = profileFromRecorded(await readRecordedWindow(CONVERSATION), { name: 'conv' });
    const { synthesis, profile: q } = profileOfSynthesis(p, 7);
    expect(q.requests).toBe(p.requests);
    expect(q.rate.counts).toEqual(p.rate.counts);
    expect(Math.abs(q.input_tokens.mean / p.input_tokens.mean - 1)).toBeLessThan(0.01);
    expect(Math.abs(q.output_tokens.mean / p.output_tokens.mean - 1)).toBeLessThan(0.01);
    for (const k of ['p50', 'p90'] as const) {
      expect(Math.abs(q.input_tokens[k] / p.input_tokens[k] - 1)).toBeLessThan(0.1);
      expect(Math.abs(q.output_tokens[k] / p.output_tokens[k] - 1)).toBeLessThan(0.1);
    }
    expect(Math.abs((q.prefix_reuse.share as number) - (p.prefix_reuse.share as number))).toBeLessThan(0.01);
    expect(synthesis.achieved.prefixReuse).toBeCloseTo(q.prefix_reuse.share as number, 6);
    const v = driftVerdict(p, q);
    expect(v.drifted).toBe(false);
    expect(v.level).toBeLessThan(0.3);
  });

  it('reproduces a histogram profile to its buckets, and its cached-token share as block reuse', async () => {
    const rec = await readRecordedWindow(CONVERSATION);
    const base = profileFromRecorded(rec, { name: 'conv' });
    const p: WorkloadProfile = {
      ...base,
      input_tokens: asDynamoHistogram(rec.workload.inputLength, DEFAULT_BUCKETS.INPUT_SEQUENCE),
      output_tokens: asDynamoHistogram(rec.workload.outputLength, DEFAULT_BUCKETS.OUTPUT_SEQUENCE),
      prefix_reuse: { share: 0.45, basis: 'cached_tokens' },
    };
    const { profile: q } = profileOfSynthesis(p, 11);
    for (const [d, values] of [
      [p.input_tokens, q.input_tokens],
      [p.output_tokens, q.output_tokens],
    ] as const) {
      // Every bucket's share within sampling error (2,000 draws), and the mean matched.
      for (const [i, bound] of d.bounds.entries()) {
        const want = d.counts.slice(0, i + 1).reduce((a, b) => a + b, 0) / d.count;
        expect(Math.abs(cdfAt(values, bound) - want)).toBeLessThan(0.05);
      }
      expect(Math.abs(values.mean / d.mean - 1)).toBeLessThan(0.02);
    }
    expect(q.prefix_reuse.share).toBeCloseTo(0.45, 2);
  });

  it('is deterministic for a seed', async () => {
    const p = profileFromRecorded(await readRecordedWindow(CONVERSATION), { name: 'conv' });
    const a = synthesize(p, { seed: 5 }).workload;
    const b = synthesize(p, { seed: 5 }).workload;
    const c = synthesize(p, { seed: 6 }).workload;
    expect(Array.from(a.inputLength)).toEqual(Array.from(b.inputLength));
    expect(Array.from(a.hashIds)).toEqual(Array.from(b.hashIds));
    expect(Array.from(a.arrivalMs)).toEqual(Array.from(b.arrivalMs));
    expect(Array.from(a.inputLength)).not.toEqual(Array.from(c.inputLength));
  });

  it('keeps bursts at the curve resolution', async () => {
    const p = profileFromRecorded(await readRecordedWindow(`${TRACES}azure-code-sample.csv`), { name: 'az' });
    const { profile: q } = profileOfSynthesis(p, 3);
    expect(q.rate.counts).toEqual(p.rate.counts);
    expect(q.rate.burstiness).toBeCloseTo(allanFactor(p.rate.counts), 10);
    expect(q.prefix_reuse.share).toBeNull();
  });

  it('draws lengths inside their buckets even for a one-bucket histogram', () => {
    const d = distributionFromBuckets(
      [
        { le: 100, count: 0 },
        { le: 200, count: 10 },
        { le: Number.POSITIVE_INFINITY, count: 10 },
      ],
      1800,
    );
    const v = drawLengths(d, 1000, new Rng(1));
    expect(Math.min(...v)).toBeGreaterThan(100);
    expect(Math.max(...v)).toBeLessThanOrEqual(200);
    expect(v.reduce((a, b) => a + b, 0) / 1000).toBeCloseTo(180, -1);
  });
});
