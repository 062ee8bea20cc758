import { constants, realpathSync } from 'node:fs';
import { access, readFile, stat, writeFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { UsageError } from './errors.ts';

/** Largest config, space, planner or catalog file read: they are hand-written settings, not data. */
export const MAX_SETTINGS_FILE_BYTES = 4 * 2 ** 20;

/**
 * Reads a YAML or JSON file (JSON is YAML); errors name the file and, for syntax errors, the line. Files
 * over MAX_SETTINGS_FILE_BYTES, and anything but a regular file (a FIFO would block), are refused unread.
 */
export async function readStructuredFile(path: string): Promise<unknown> {
  let text: string;
  try {
    const info = await stat(path);
    if (info.isFile() && info.size > MAX_SETTINGS_FILE_BYTES) {
      throw new UsageError(
        `${path}: ${info.size.toLocaleString('en-US')} bytes; a settings file may have at most ${MAX_SETTINGS_FILE_BYTES.toLocaleString('en-US')}`,
      );
    }
    if (!info.isFile() && !info.isDirectory()) throw new UsageError(`${path}: not a regular file`);
    text = await readFile(path, 'utf8');
  } catch (e) {
    if (e instanceof UsageError) throw e;
    const err = e as NodeJS.ErrnoException;
    const why: Record<string, string> = {
      ENOENT: 'file not found',
      EISDIR: 'is a directory, not a file',
      EACCES: 'cannot be read (permission denied)',
    };
    throw new UsageError(`${path}: ${why[err.code ?? ''] ?? err.message}`);
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

/**
 * Checks, before a run, that `path` can be written: not a directory, in an existing writable directory, and
 * not one of the run's inputs (which writing it would destroy). A long run must not end with its report lost.
 */
export async function checkOutputPath(
  flag: string,
  path: string,
  inputs: readonly string[] = [],
): Promise<void> {
  const fail = (why: string) => {
    throw new UsageError(`${flag} ${path}: ${why}`);
  };
  const canonical = (p: string) => {
    try {
      return realpathSync(p);
    } catch {
      return resolve(p);
    }
  };
  const target = canonical(path);
  const input = inputs.find((i) => canonical(i) === target);
  if (input !== undefined) fail(`is also an input of this run (${input}); writing it would destroy it`);
  const existing = await stat(path).catch(() => null);
  if (existing?.isDirectory()) fail('is a directory; give a file name');
  if (existing) {
    await access(path, constants.W_OK).catch(() => fail('cannot be written (permission denied)'));
    return;
  }
  const dir = dirname(resolve(path));
  const parent = await stat(dir).catch(() => null);
  if (!parent) fail(`directory ${dir} does not exist`);
  if (!parent?.isDirectory()) fail(`${dir} is not a directory`);
  await access(dir, constants.W_OK).catch(() =>
    fail(`directory ${dir} cannot be written (permission denied)`),
  );
}
