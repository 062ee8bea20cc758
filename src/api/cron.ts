/**
 * A regular expression for the cron schedules the operator accepts, checked at admission (the CRD's
 * `pattern`, evaluated by the API server's RE2, and the same expression in zod). It checks every field's
 * range, so `61 * * * *` and `*\/0 * * * *` are refused when the object is created rather than found broken by
 * the operator later. What a pattern cannot see (a schedule that never fires, such as `0 0 31 2 *`, or one
 * that fires too often for the operator's minimum interval) is reported by the operator as a condition.
 *
 * Syntax: 5 fields (minute hour day-of-month month day-of-week) or 6 (seconds first); each a comma list of
 * `*`, `N`, `N-M`, with an optional `/STEP` (1-999); names for months and weekdays (any case); `?` for either
 * day field; `L` (last day) in the day of month; or one of `@hourly @daily @weekly @monthly @yearly @annually`.
 */

/** 'jan' -> '[jJ][aA][nN]' (RE2 and JavaScript agree on classes; a pattern carries no flags). */
const anyCase = (word: string) => [...word].map((c) => `[${c.toLowerCase()}${c.toUpperCase()}]`).join('');

const MONTHS = ['jan', 'feb', 'mar', 'apr', 'may', 'jun', 'jul', 'aug', 'sep', 'oct', 'nov', 'dec'];
const DAYS = ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'];

function field(value: string, extra: string[] = []): string {
  const range = `${value}(?:-${value})?`;
  const item = `(?:\\*|${range})(?:/[1-9][0-9]{0,2})?`;
  const alts = [item, ...extra].join('|');
  return `(?:${alts})(?:,(?:${alts}))*`;
}

const SECOND = '(?:[0-5]?[0-9])';
const MINUTE = SECOND;
const HOUR = '(?:[01]?[0-9]|2[0-3])';
const DOM = '(?:0?[1-9]|[12][0-9]|3[01])';
const MONTH = `(?:0?[1-9]|1[0-2]|${MONTHS.map(anyCase).join('|')})`;
const DOW = `(?:[0-7]|${DAYS.map(anyCase).join('|')})`;

const FIVE = [
  field(MINUTE),
  field(HOUR),
  field(DOM, ['\\?', 'L']),
  field(MONTH),
  field(DOW, ['\\?', '[0-7]L', '[0-7]#[1-5]']),
].join(' +');

const MACROS = ['hourly', 'daily', 'weekly', 'monthly', 'yearly', 'annually'];

export const CRON_PATTERN = `^(?:@(?:${MACROS.join('|')})|(?:${field(SECOND)} +)?${FIVE})$`;
