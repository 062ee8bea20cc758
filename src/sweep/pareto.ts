/**
 * Pareto frontiers over two objectives. `x` is minimised or maximised per `xBetter`, `y` likewise; a point is on
 * the frontier when no other point is at least as good on both and strictly better on one.
 */
export interface ParetoPoint {
  id: number;
  x: number;
  y: number;
}

export type Direction = 'lower' | 'higher';

export function dominates(a: ParetoPoint, b: ParetoPoint, xBetter: Direction, yBetter: Direction): boolean {
  const ax = xBetter === 'lower' ? -a.x : a.x;
  const bx = xBetter === 'lower' ? -b.x : b.x;
  const ay = yBetter === 'lower' ? -a.y : a.y;
  const by = yBetter === 'lower' ? -b.y : b.y;
  return ax >= bx && ay >= by && (ax > bx || ay > by);
}

/** Frontier points sorted by x (best x first), in O(n log n). Non-finite points are ignored. */
export function paretoFrontier(
  points: readonly ParetoPoint[],
  xBetter: Direction,
  yBetter: Direction,
): ParetoPoint[] {
  const sx = xBetter === 'lower' ? 1 : -1;
  const sy = yBetter === 'lower' ? 1 : -1;
  const pts = points
    .filter((p) => Number.isFinite(p.x) && Number.isFinite(p.y))
    .slice()
    .sort((a, b) => sx * (a.x - b.x) || sy * (a.y - b.y) || a.id - b.id);
  const out: ParetoPoint[] = [];
  let bestY = Number.POSITIVE_INFINITY; // in "lower is better" units
  for (let i = 0; i < pts.length; i++) {
    const p = pts[i];
    const y = sy * p.y;
    if (y < bestY) {
      // Skip exact duplicates of the previous frontier point.
      out.push(p);
      bestY = y;
    }
  }
  return out;
}
