import { describe, expect, it } from 'vitest';
import { BucketedRegression, MovingAverage } from '../../../src/sim/planner/regression.ts';

describe('bucketed regression of pass time', () => {
  it('fits a plane exactly and predicts from it', () => {
    const r = new BucketedRegression(2, 64, 5, 16);
    for (let a = 1; a <= 4; a++)
      for (let b = 0; b < 4; b++) r.add([a, b * 1000], 0.002 + 0.001 * a + 1e-6 * b * 1000);
    expect(r.ensureFitted()).toBe(true);
    expect(r.predict([10, 5000])).toBeCloseTo(0.002 + 0.01 + 0.005, 9);
  });

  it('waits for enough observations, and keeps at most max samples spread over buckets', () => {
    const r = new BucketedRegression(1, 16, 5, 4);
    const y = (x: number) => 0.01 + 0.001 * x;
    for (let i = 0; i < 4; i++) r.add([i], y(i));
    expect(r.ensureFitted()).toBe(false);
    // Many samples at one operating point, a few elsewhere: retirement trims the crowded bucket only.
    for (let i = 0; i < 100; i++) r.add([1000], y(1000));
    r.add([0], y(0));
    expect(r.observations).toBe(16);
    expect(r.ensureFitted()).toBe(true);
    expect(r.predict([500])).toBeCloseTo(y(500), 9);
  });

  it('rejects a negative coefficient unless the feature is clippable', () => {
    const strict = new BucketedRegression(1, 64, 2, 16);
    const lax = new BucketedRegression(2, 64, 2, 16, [0]);
    for (let i = 0; i < 10; i++) {
      strict.add([i], 10 - i);
      const kv = i * 10 + (i % 3) * 7;
      lax.add([i, kv], 5 - 0.5 * i + 0.2 * kv);
    }
    expect(strict.ensureFitted()).toBe(false);
    expect(lax.ensureFitted()).toBe(true);
    expect(lax.fit()?.coef[0]).toBe(0);
  });

  it('moving average skips leading zeros', () => {
    const m = new MovingAverage(3);
    for (const v of [0, 0, 4, 0, 8, 6]) m.add(v);
    expect(m.value).toBeCloseTo((0 + 8 + 6) / 3, 9);
  });
});
