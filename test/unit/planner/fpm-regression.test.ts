import { describe, expect, it } from 'vitest';
import {
  FpmRegression,
  type PassWork,
  passFeatures,
  RegressionStore,
  storeKind,
} from '../../../src/sim/planner/fpm-regression.ts';

const pass = (o: Partial<PassWork>): PassWork => ({
  numPrefillRequests: 0,
  sumPrefillTokens: 0,
  sumPrefillKvTokens: 0,
  numDecodeRequests: 0,
  sumDecodeKvTokens: 0,
  ...o,
});

describe('forward-pass regression: features, stores, retention, readiness', () => {
  it('critical attention and token-wise FFN work per role', () => {
    // Two prefill requests, 1000 fresh tokens over 400 cached: Q = 400 x 1000 / 2 + 1000² / 4 + 500.
    const w = pass({ numPrefillRequests: 2, sumPrefillTokens: 1000, sumPrefillKvTokens: 400 });
    const q = 200_000 + 250_000 + 500;
    expect(passFeatures('prefill', w)).toEqual([400 + q, 1000]);
    const mixed = { ...w, numDecodeRequests: 3, sumDecodeKvTokens: 9000 };
    expect(passFeatures('aggregated', mixed)).toEqual([400 + 9000 + q, 1003]);
    expect(passFeatures('decode', pass({ numDecodeRequests: 3, sumDecodeKvTokens: 9000 }))).toEqual([
      9000, 3,
    ]);
    // Cached prompt tokens without fresh ones cost no attention; an empty pass has no features.
    expect(
      passFeatures(
        'aggregated',
        pass({ sumPrefillKvTokens: 500, numDecodeRequests: 1, sumDecodeKvTokens: 10 }),
      ),
    ).toEqual([10, 1]);
    expect(passFeatures('aggregated', pass({}))).toBeNull();
    expect([
      storeKind(w),
      storeKind(mixed),
      storeKind(pass({ numDecodeRequests: 1 })),
      storeKind(pass({})),
    ]).toEqual(['pure_prefill', 'contains_locally_mixed', 'pure_decode', null]);
  });

  it('an aggregated worker answers from the store of the query kind only; an empty pass costs 0', () => {
    const m = new FpmRegression('aggregated', { maxObservations: 64, minObservations: 5, bucketCount: 16 });
    for (let b = 1; b <= 6; b++)
      m.tune(pass({ numDecodeRequests: b, sumDecodeKvTokens: 1000 * b * b }), 0.01 * b);
    expect(m.ready).toBe(true);
    expect(m.estimateMs(pass({ numDecodeRequests: 3, sumDecodeKvTokens: 9000 }))).not.toBeNull();
    expect(m.estimateMs(pass({ numPrefillRequests: 1, sumPrefillTokens: 100 }))).toBeNull();
    expect(m.estimateMs(pass({}))).toBe(0);
    // A decode worker takes no prefill work.
    const d = new FpmRegression('decode', { maxObservations: 64, minObservations: 5, bucketCount: 16 });
    d.tune(pass({ numPrefillRequests: 1, sumPrefillTokens: 100, numDecodeRequests: 1 }), 0.01);
    expect(d.observations).toBe(0);
  });

  it('needs min observations and a load signal; a fit without one keeps the previous fit', () => {
    const s = new RegressionStore({ maxObservations: 64, minObservations: 5, bucketCount: 16 });
    // y = 2 + 0.5 x0 (ms), x1 constant: one active axis.
    for (let i = 1; i <= 4; i++) s.add([i, 7], 2 + 0.5 * i);
    expect(s.ready).toBe(false);
    s.add([5, 7], 4.5);
    expect(s.ready).toBe(true);
    expect(s.predict([10, 7])).toBeCloseTo(7, 9);
    expect(s.rawFit()).toEqual({ intercept: expect.closeTo(2, 9), coef: [expect.closeTo(0.5, 9), 0] });
    // Heavy passes that took no time: the best non-negative fit has no slope, so the previous fit serves on.
    for (let i = 0; i < 20; i++) s.add([100 + i, 7], 0.5);
    expect(s.predict([10, 7])).toBeCloseTo(7, 9);
    // Predictions are floored at 1e-6 ms.
    const f = new RegressionStore({ maxObservations: 64, minObservations: 5, bucketCount: 16 });
    for (let i = 1; i <= 5; i++) f.add([i * 10, 1], i);
    expect(f.predict([0, 1])).toBe(1e-6);
  });

  it('retains at most max samples, dropping the oldest of the fullest log1p cell', () => {
    const s = new RegressionStore({ maxObservations: 8, minObservations: 5, bucketCount: 16 });
    // Spread samples first (a 4 x 4 grid over log1p of each feature), then a crowd at one point.
    const spread = [1, 10, 100, 1000, 10_000].map((x) => [x, x]);
    for (const x of spread) s.add(x, 1 + Math.log1p(x[0]));
    for (let i = 0; i < 10; i++) s.add([10_000, 10_000], 50 + i);
    expect(s.observations).toBe(8);
    // The crowd's cell lost its oldest samples; the spread ones survived: the fit still sees them.
    expect(s.predict([1, 1])).toBeLessThan(s.predict([10_000, 10_000]) as number);
  });
});
