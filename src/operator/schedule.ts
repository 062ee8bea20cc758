import { CronExpressionParser } from 'cron-parser';

/** Cron schedules in UTC. The next run is kept in status, so restarts neither lose nor repeat a run. */

export function validateCron(expr: string): string | undefined {
  try {
    CronExpressionParser.parse(expr, { tz: 'UTC' });
    return undefined;
  } catch (e) {
    return (e as Error).message;
  }
}

/** The first time strictly after `after` that the schedule fires. */
export function nextRun(expr: string, after: Date): Date {
  return CronExpressionParser.parse(expr, { currentDate: after, tz: 'UTC' }).next().toDate();
}
