import { describe, expect, it } from 'vitest';
import { PlannerConfigSchema, type PredictorName } from '../../../src/sim/planner/config.ts';
import { createPredictor } from '../../../src/sim/planner/predictors.ts';

const make = (name: PredictorName, extra: object = {}) =>
  createPredictor(PlannerConfigSchema.parse({ load_predictor: name, ...extra }));

function feed(name: PredictorName, series: number[], extra: object = {}): number {
  const p = make(name, extra);
  for (const v of series) p.add(v);
  return p.predict();
}

describe('load predictors', () => {
  const ramp = Array.from({ length: 30 }, (_, i) => 10 + 2 * i); // next: 70

  it('constant and moving average', () => {
    expect(feed('constant', [3, 5, 8])).toBe(8);
    expect(feed('moving_average', [1, 2, 3, 4, 5, 6], { moving_average_window: 3 })).toBe(5);
    expect(make('constant').predict()).toBe(0);
  });

  it('trend predictors extrapolate a ramp', () => {
    expect(feed('arima', ramp)).toBeCloseTo(70, 6);
    expect(feed('prophet', ramp)).toBeCloseTo(70, 6);
    expect(feed('kalman', ramp)).toBeGreaterThan(66);
    expect(feed('holt_winters', ramp)).toBeCloseTo(70, 0);
    // A moving average lags behind it.
    expect(feed('moving_average', ramp)).toBeLessThan(60);
  });

  it('holt_winters follows a season', () => {
    const period = 6;
    const shape = [10, 30, 50, 30, 10, 0];
    const series = Array.from({ length: period * 6 }, (_, i) => 100 + shape[i % period]);
    expect(feed('holt_winters', series, { seasonal_period: period })).toBeCloseTo(100 + shape[0], 0);
  });

  it('skip the idle start, forecast the last value while short of points, never go negative', () => {
    for (const name of ['arima', 'kalman', 'prophet', 'holt_winters'] as const) {
      expect(feed(name, [0, 0, 0, 7]), name).toBe(7);
      expect(feed(name, [100, 80, 60, 40, 20, 5, 1]), name).toBeGreaterThanOrEqual(0);
    }
    expect(feed('arima', [4, 4, 4, 4, 4, 4])).toBe(4);
  });

  it('log1p mode forecasts in log space', () => {
    const v = feed('constant', [1, 1000], { load_predictor_log1p: true });
    expect(v).toBeCloseTo(1000, 6);
  });
});
