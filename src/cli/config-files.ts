import type { z } from 'zod';
import { UsageError } from './errors.ts';
import { leafPaths, shapeLines } from './schema-fields.ts';

/**
 * Messages for a config file that does not match its schema: the file and field, an unknown key by name (with
 * the known path it probably meant), and the shape expected at the level that failed, so the user can fix the
 * file without reading the source. `example` points at a commented example under config/examples/.
 */
export function fileProblem(where: string, schema: z.ZodType, error: z.ZodError, example?: string): string {
  const issue = error.issues[0];
  const at = issue.path.map(String);
  let head: string;
  let level = at;
  if (issue.code === 'unrecognized_keys') {
    const key = issue.keys[0];
    const full = [...at, key].join('.');
    const guess = leafPaths(schema).find((p) => p !== full && p.split('.').at(-1) === key);
    head = `${where}: unknown key '${full}'${guess ? ` (did you mean '${guess}'?)` : ''}`;
  } else {
    head = `${where}: ${at.length > 0 ? `field '${at.join('.')}': ` : ''}${issue.message}`;
    level = at.slice(0, -1);
  }
  return withShape(head, schema, level, example);
}

/** A message followed by what the schema accepts at `level` (the top when empty). */
export function withShape(head: string, schema: z.ZodType, level: string[], example?: string): string {
  // Array indices are not levels of the object schema.
  const path = level.filter((p) => !/^\d+$/.test(p)).join('.');
  const lines = shapeLines(schema, path);
  if (lines.length === 0) return head;
  const where = path ? `under '${path}'` : 'at the top level';
  return [head, `expected ${where}${example ? ` (commented example: ${example})` : ''}:`, ...lines].join(
    '\n',
  );
}

/** A parsed YAML/JSON document that must be a mapping. */
export function asMapping(where: string, doc: unknown, example?: string): Record<string, unknown> {
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) {
    const got =
      doc === null || doc === undefined ? 'an empty file' : Array.isArray(doc) ? 'a list' : typeof doc;
    throw new UsageError(
      `${where}: expected a mapping of settings, got ${got}${example ? ` (see ${example})` : ''}`,
    );
  }
  return doc as Record<string, unknown>;
}
