import { CronExpressionParser } from 'cron-parser';

/**
 * Cron schedules in UTC. The next run is kept in status, so restarts neither lose nor repeat a run. The
 * operator also enforces a minimum interval between sweeps of one object (a `* * * * * *` schedule must not
 * keep a sweep slot busy forever): a schedule that fires more often is followed at that interval instead,
 * on its own fire times, and the object says so.
 */

export function validateCron(expr: string): string | undefined {
  try {
    CronExpressionParser.parse(expr, { tz: 'UTC' }).next();
    return undefined;
  } catch (e) {
    return (e as Error).message;
  }
}

/** The first time strictly after `after` that the schedule fires. */
export function nextRun(expr: string, after: Date): Date {
  return CronExpressionParser.parse(expr, { currentDate: after, tz: 'UTC' }).next().toDate();
}

/** The shortest gap between consecutive fires over the next `samples` fires (ms). */
export function shortestInterval(expr: string, from: Date, samples = 16): number {
  const it = CronExpressionParser.parse(expr, { currentDate: from, tz: 'UTC' });
  let prev = it.next().toDate().getTime();
  let min = Number.POSITIVE_INFINITY;
  for (let i = 1; i < samples; i++) {
    const t = it.next().toDate().getTime();
    min = Math.min(min, t - prev);
    prev = t;
  }
  return min;
}

/**
 * The next sweep time: the schedule's first fire after `after` that is at least `minIntervalMs` after the
 * last sweep started (`lastMs`), so sweeps keep to the schedule's fire times but never come closer.
 */
export function nextSweep(
  expr: string,
  after: Date,
  lastMs: number | undefined,
  minIntervalMs: number,
): Date {
  const floor =
    lastMs === undefined ? after.getTime() : Math.max(after.getTime(), lastMs + minIntervalMs - 1);
  return nextRun(expr, new Date(floor));
}

export function formatInterval(ms: number): string {
  if (ms % 3_600_000 === 0) return `${ms / 3_600_000}h`;
  if (ms % 60_000 === 0) return `${ms / 60_000}m`;
  if (ms % 1000 === 0) return `${ms / 1000}s`;
  return `${ms}ms`;
}
