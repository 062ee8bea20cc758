import type { z } from 'zod';

/** An error the user can fix (bad flag, bad file): printed as one line, exit code 2, no stack trace. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

/** Formats the first zod issue as `<where>: field 'a.b': message`. `names` maps config paths to flag names. */
export function zodMessage(where: string, error: z.ZodError, names?: Map<string, string>): string {
  const issue = error.issues[0];
  const path = issue.path.map(String).join('.');
  const flag = names?.get(path);
  if (flag) return `${flag}: ${issue.message}`;
  return `${where}: ${path ? `field '${path}': ` : ''}${issue.message}`;
}
