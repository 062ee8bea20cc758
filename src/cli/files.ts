import { readFile, writeFile } from 'node:fs/promises';
import { UsageError } from './errors.ts';

/** Reads a YAML or JSON file (JSON is YAML); errors name the file and, for syntax errors, the line. */
export async function readStructuredFile(path: string): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    throw new UsageError(`${path}: ${err.code === 'ENOENT' ? 'file not found' : err.message}`);
  }
  // Loaded on first use: commands that read no file do not pay for the YAML parser.
  const { parse: parseYaml } = await import('yaml');
  try {
    return parseYaml(text, { prettyErrors: false });
  } catch (e) {
    const err = e as Error & { linePos?: { line: number }[] };
    const line = err.linePos?.[0]?.line;
    throw new UsageError(
      `${path}${line ? `:${line}` : ''}: not valid YAML/JSON (${err.message.split('\n')[0]})`,
    );
  }
}

/** Writes JSON (pretty) to a file, reporting failures as usage errors. */
export async function writeJson(path: string, value: unknown): Promise<void> {
  try {
    await writeFile(path, `${JSON.stringify(value, jsonReplacer, 2)}\n`);
  } catch (e) {
    throw new UsageError(`${path}: cannot write (${(e as Error).message})`);
  }
}

/** NaN and infinities are not JSON; write them as null. */
function jsonReplacer(_key: string, v: unknown): unknown {
  return typeof v === 'number' && !Number.isFinite(v) ? null : v;
}
