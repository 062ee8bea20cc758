import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { constrainReplicas } from '../../../src/sim/planner/budget.ts';

const free = { min: 1, max: Number.POSITIVE_INFINITY };

describe('replica bounds and GPU budget', () => {
  it('clamps to the replica bounds and the ceiling', () => {
    expect(constrainReplicas([2], [9], [1], [{ min: 1, max: 5 }], -1, -1)).toEqual([5]);
    expect(constrainReplicas([2], [9], [2], [free], -1, 8)).toEqual([4]);
    expect(constrainReplicas([2], [0], [1], [free], -1, 8)).toEqual([1]);
  });

  it('shrinks a disaggregated proposal proportionally, never reversing a role', () => {
    // 6P + 6D at 1 GPU each against 8 GPUs, from 2P + 2D: both grow, proportionally.
    expect(constrainReplicas([2, 2], [6, 6], [1, 1], [free, free], -1, 8)).toEqual([4, 4]);
    // A rebalance that does not fit yet holds the growing side.
    expect(constrainReplicas([4, 4], [3, 6], [1, 1], [free, free], -1, 8)).toEqual([3, 5]);
  });

  it('the floor holds reductions', () => {
    expect(constrainReplicas([4], [2], [1], [free], 4, -1)).toEqual([4]);
    expect(constrainReplicas([4], [3], [1], [free], 4, 8)).toEqual([3]); // within one worker of slack
  });

  it('property: within bounds and budget, between current and proposal', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 4 }),
        fc.integer({ min: 1, max: 4 }),
        fc.integer({ min: 1, max: 3 }),
        fc.integer({ min: 1, max: 6 }),
        fc.integer({ min: 4, max: 40 }),
        fc.array(fc.integer({ min: 0, max: 20 }), { minLength: 4, maxLength: 4 }),
        (gp, gd, minR, span, budget, [cp, cd, pp, pd]) => {
          const bounds = [
            { min: minR, max: minR + span },
            { min: minR, max: minR + span },
          ];
          const gpus = [gp, gd];
          const clamp = (v: number) => Math.min(minR + span, Math.max(minR, v));
          const current = [clamp(cp), clamp(cd)];
          fc.pre(current[0] * gp + current[1] * gd <= budget);
          const out = constrainReplicas(current, [pp, pd], gpus, bounds, -1, budget);
          expect(out[0] * gp + out[1] * gd).toBeLessThanOrEqual(budget);
          out.forEach((v, i) => {
            expect(v).toBeGreaterThanOrEqual(bounds[i].min);
            expect(v).toBeLessThanOrEqual(bounds[i].max);
            const target = clamp([pp, pd][i]);
            expect(v).toBeGreaterThanOrEqual(Math.min(current[i], target));
            expect(v).toBeLessThanOrEqual(Math.max(current[i], target));
          });
        },
      ),
      { numRuns: 500 },
    );
  });
});
