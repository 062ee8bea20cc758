/** Problems with a trace, located precisely enough (file, line, field) to fix by hand. */

export interface TraceIssue {
  source: string;
  /** 1-based line, 0 when the problem is the file as a whole. */
  line: number;
  field: string | null;
  message: string;
}

export function formatIssue(i: TraceIssue): string {
  return `${i.source}${i.line > 0 ? `:${i.line}` : ''}: ${i.field ? `field '${i.field}': ` : ''}${i.message}`;
}

/** A trace that cannot be used (strict mode: the first bad row; any mode: unreadable or empty input). */
export class TraceError extends Error {
  readonly issue: TraceIssue;
  constructor(issue: TraceIssue) {
    super(formatIssue(issue));
    this.issue = issue;
    this.name = 'TraceError';
  }
}

/**
 * Thrown by a format's row parser for one bad field of the current row; the reader adds file and line. A
 * format never sees files or lines, so adding a format needs no error plumbing.
 */
export class RowError extends Error {
  readonly field: string | null;
  constructor(field: string | null, message: string) {
    super(message);
    this.field = field;
    this.name = 'RowError';
  }
}
