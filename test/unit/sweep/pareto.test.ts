import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { type Direction, dominates, type ParetoPoint, paretoFrontier } from '../../../src/sweep/pareto.ts';

const point = fc.record({ x: fc.integer({ min: 0, max: 20 }), y: fc.integer({ min: 0, max: 20 }) });
const dirs: [Direction, Direction][] = [
  ['lower', 'higher'],
  ['higher', 'higher'],
  ['lower', 'lower'],
  ['higher', 'lower'],
];

describe('Pareto frontier', () => {
  for (const [xb, yb] of dirs) {
    it(`contains exactly the non-dominated points (x ${xb}, y ${yb} is better)`, () => {
      fc.assert(
        fc.property(fc.array(point, { maxLength: 60 }), (raw) => {
          const pts: ParetoPoint[] = raw.map((p, id) => ({ id, ...p }));
          const front = paretoFrontier(pts, xb, yb);
          const onFront = new Set(front.map((p) => p.id));
          // No frontier point is dominated by any point.
          for (const f of front) for (const p of pts) expect(dominates(p, f, xb, yb)).toBe(false);
          // Every other point is dominated by, or equal to, a frontier point.
          for (const p of pts) {
            if (onFront.has(p.id)) continue;
            expect(front.some((f) => dominates(f, p, xb, yb) || (f.x === p.x && f.y === p.y))).toBe(true);
          }
          // Frontier points are distinct and ordered best x first.
          for (let i = 1; i < front.length; i++) {
            expect(xb === 'lower' ? front[i].x > front[i - 1].x : front[i].x < front[i - 1].x).toBe(true);
          }
        }),
        { numRuns: 300 },
      );
    });
  }

  it('ignores points with non-finite coordinates', () => {
    const f = paretoFrontier(
      [
        { id: 0, x: Number.NaN, y: 5 },
        { id: 1, x: 1, y: Number.POSITIVE_INFINITY },
        { id: 2, x: 2, y: 3 },
      ],
      'lower',
      'higher',
    );
    expect(f.map((p) => p.id)).toEqual([2]);
  });
});
