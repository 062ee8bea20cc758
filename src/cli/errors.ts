import type { z } from 'zod';

/** An error the user can fix (bad flag, bad file): printed as one line, exit code 2, no stack trace. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

/**
 * Formats the first zod issue as `<where>: field 'a.b': message`. `names` maps config paths to flag names: a
 * field a flag sets is named by the flag (`--workers: must be positive`; an element of it keeps its path).
 */
export function zodMessage(where: string, error: z.ZodError, names?: Map<string, string>): string {
  const issue = error.issues[0];
  const parts = issue.path.map(String);
  const path = parts.join('.');
  for (let n = parts.length; n > 0; n--) {
    const flag = names?.get(parts.slice(0, n).join('.'));
    if (flag)
      return n === parts.length ? `${flag}: ${issue.message}` : `${flag}: field '${path}': ${issue.message}`;
  }
  return `${where}: ${path ? `field '${path}': ` : ''}${issue.message}`;
}
