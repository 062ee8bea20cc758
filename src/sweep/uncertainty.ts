import { selectRequests } from '../sim/workload/slice.ts';
import type { Workload } from '../sim/workload/workload.ts';
import { Evaluator, type SimulationBase } from './evaluate.ts';
import { type CandidateMetrics, OBJECTIVES, type Objective, score } from './objective.ts';
import type { Candidate } from './space.ts';

/**
 * Prediction intervals: a candidate replayed on contiguous sub-windows of the trace (by first-turn arrival,
 * sessions kept whole), each metric's interval the range it spans over them. A trace that shifts within its
 * window (a burst, a quiet spell) widens the interval, so a proposal is called better only when it is better
 * across that spread, not just on the average.
 */

export interface Interval {
  low: number;
  high: number;
}

export interface IntervalMetrics {
  objectiveValue: Interval;
  ttftP90Ms: Interval;
  itlP90Ms: Interval;
  e2eP90Ms: Interval;
  /** The objective in each sub-window, in order (for paired comparisons over the same traffic). */
  perWindow: number[];
}

/** `k` contiguous sub-windows of equal span, each shifted to start at 0; sessions stay with their first turn. */
export function subWindows(w: Workload, k: number): Workload[] {
  let lo = Number.POSITIVE_INFINITY;
  let hi = Number.NEGATIVE_INFINITY;
  for (let i = 0; i < w.size; i++) {
    const a = w.arrivalMs[i];
    if (Number.isNaN(a)) continue;
    if (a < lo) lo = a;
    if (a > hi) hi = a;
  }
  if (!(hi > lo)) return [w];
  const span = (hi - lo) / k;
  const ids: number[][] = Array.from({ length: k }, () => []);
  for (let i = 0; i < w.size; i++) {
    const a = w.arrivalMs[i];
    if (Number.isNaN(a)) continue;
    const part = Math.min(k - 1, Math.floor((a - lo) / span));
    for (let t = i; t >= 0; t = w.nextTurn[t]) ids[part].push(t);
  }
  return ids
    .filter((list) => list.length > 0)
    .map((list) => {
      // First turns sorted by arrival, each followed (later in the list) by its session's later turns.
      const firsts = list.filter((id) => !Number.isNaN(w.arrivalMs[id]));
      const rest = list.filter((id) => Number.isNaN(w.arrivalMs[id]));
      const sub = selectRequests(w, [...firsts, ...rest]);
      const t0 = sub.arrivalMs.reduce(
        (m, a) => (Number.isNaN(a) ? m : Math.min(m, a)),
        Number.POSITIVE_INFINITY,
      );
      for (let i = 0; i < sub.size; i++) if (!Number.isNaN(sub.arrivalMs[i])) sub.arrivalMs[i] -= t0;
      return sub;
    });
}

function objectiveOf(m: CandidateMetrics, objective: Objective): number {
  const s = score(m, objective);
  return OBJECTIVES[objective].better === 'higher' ? s : -s;
}

const span = (xs: number[]): Interval => {
  const finite = xs.filter(Number.isFinite);
  return finite.length === 0 ? { low: 0, high: 0 } : { low: Math.min(...finite), high: Math.max(...finite) };
};

/**
 * Paired gains over the same sub-windows (the same traffic for both): the interval of the relative gain in
 * percent, in the objective's direction. Its low end is the gain that survives the uncertainty.
 */
export function pairedGain(objective: Objective, base: number[], cand: number[]): Interval {
  const higher = OBJECTIVES[objective].better === 'higher';
  const gains = base
    .map((b, k) =>
      b === 0 || !Number.isFinite(b)
        ? Number.NaN
        : ((higher ? cand[k] - b : b - cand[k]) / Math.abs(b)) * 100,
    )
    .filter(Number.isFinite);
  const i = span(gains);
  return { low: Number(i.low.toFixed(2)), high: Number(i.high.toFixed(2)) };
}

/**
 * Intervals of each candidate over the same sub-windows; `widenPercent` (the live calibration error) widens the
 * latency intervals on both sides, since the simulator's own error adds to the spread of the traffic.
 */
export function predictionIntervals(
  workload: Workload,
  base: SimulationBase,
  candidates: Candidate[],
  objective: Objective,
  opts: { windows?: number; widenPercent?: number } = {},
): IntervalMetrics[] {
  const subs = subWindows(workload, opts.windows ?? 4);
  const widen = (opts.widenPercent ?? 0) / 100;
  return candidates.map((c) => {
    const ms = subs.map((w) => new Evaluator(w, base).evaluate(c, 1));
    const lat = (xs: number[]): Interval => {
      const i = span(xs);
      return { low: r3(i.low * (1 - widen)), high: r3(i.high * (1 + widen)) };
    };
    const perWindow = ms.map((m) => r3(objectiveOf(m, objective)));
    const obj = span(perWindow);
    return {
      perWindow,
      objectiveValue: { low: r3(obj.low), high: r3(obj.high) },
      ttftP90Ms: lat(ms.map((m) => m.ttft.p90)),
      itlP90Ms: lat(ms.map((m) => m.itl.p90)),
      e2eP90Ms: lat(ms.map((m) => m.e2e.p90)),
    };
  });
}

const r3 = (x: number) => (Number.isFinite(x) ? Number(x.toFixed(3)) : 0);
