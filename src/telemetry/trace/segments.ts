import type { Stats } from 'node:fs';
import { lstat, readdir, stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { TraceError } from './issues.ts';

/**
 * The segments of a Dynamo request-trace directory (`DYN_REQUEST_TRACE`'s rotating sink writes
 * `<prefix>.NNNNNN.jsonl.gz`, the index zero-padded to at least 6 digits; the plain `jsonl` sink the same
 * names without `.gz`). A directory may hold several writers' prefixes (one per frontend): all are the
 * deployment's traffic and all are read. A path that is not a directory but the prefix itself
 * (`/traces/dynamo-request-trace`, as DYN_REQUEST_TRACE_OUTPUT_PATH names it) selects that prefix only.
 *
 * The lookback window selects segments by modification time: a segment's last write follows every record
 * in it, and a record is written when its request ends, after it arrived; so a segment last written before
 * the window opened holds no arrival in it and is skipped unread.
 */

export interface SegmentOptions {
  /** Keep only segments that can hold arrivals in the last `lookbackMs` (before `endMs`). */
  lookbackMs?: number;
  /**
   * End of the window (epoch ms, e.g. now). Default: the newest segment's modification time, with a margin
   * (twice the lookback plus 10 minutes) because the newest arrival may lie well before the last write.
   */
  endMs?: number;
  /** Most segments read (default 10,000): beyond, the oldest are left out and counted. */
  maxFiles?: number;
  /**
   * Skip segments that are symbolic links (the operator reads directories under its trace roots: a link
   * planted there must not lead it elsewhere).
   */
  noSymlinks?: boolean;
}

export interface Segment {
  path: string;
  prefix: string;
  index: number;
  mtimeMs: number;
  size: number;
}

export interface SegmentListing {
  segments: Segment[];
  /** Segments left out as older than the window. */
  older: number;
  /** Segments left out beyond maxFiles. */
  overLimit: number;
}

const SEGMENT = /^(.+)\.(\d{6,})\.jsonl(\.gz)?$/;
/** How far a file's modification time may trail the clock or its last record (flush interval, clock skew). */
const MTIME_SLACK_MS = 5_000;
const DEFAULT_MAX_FILES = 10_000;

/** `<prefix>.<index>` of a segment file name, or null. */
export function parseSegmentName(name: string): { prefix: string; index: number } | null {
  const m = SEGMENT.exec(name);
  return m ? { prefix: m[1], index: Number(m[2]) } : null;
}

/**
 * The segments `path` names (a directory, or a prefix path), oldest first; null when `path` is neither a
 * directory nor a prefix with segments (the caller reads it as a plain file). Throws for a directory without
 * segments.
 */
export async function listSegments(path: string, opts: SegmentOptions = {}): Promise<SegmentListing | null> {
  let st: Stats | null = null;
  try {
    st = await stat(path);
  } catch {
    st = null;
  }
  let dir: string;
  let onlyPrefix: string | undefined;
  if (st?.isDirectory()) dir = path;
  else if (st === null) {
    dir = dirname(path);
    onlyPrefix = basename(path).replace(/\.jsonl(\.gz)?$/, '');
    const parent = await stat(dir).catch(() => null);
    if (!parent?.isDirectory()) return null;
  } else return null;

  let names: string[];
  try {
    names = await readdir(dir);
  } catch (e) {
    throw new TraceError({
      source: path,
      line: 0,
      field: null,
      message: `cannot list the directory (${(e as NodeJS.ErrnoException).code ?? 'error'})`,
    });
  }
  const found: Segment[] = [];
  for (const name of names) {
    const p = parseSegmentName(name);
    if (!p || (onlyPrefix !== undefined && p.prefix !== onlyPrefix)) continue;
    const full = join(dir, name);
    const s = await (opts.noSymlinks ? lstat(full) : stat(full)).catch(() => null);
    // A segment that vanished meanwhile (retention) or is not a regular file is no segment.
    if (!s?.isFile()) continue;
    found.push({ path: full, prefix: p.prefix, index: p.index, mtimeMs: s.mtimeMs, size: s.size });
  }
  if (found.length === 0) {
    if (onlyPrefix !== undefined) return null;
    throw new TraceError({
      source: path,
      line: 0,
      field: null,
      message:
        'is a directory without request-trace segments (PREFIX.NNNNNN.jsonl.gz, as Dynamo writes them); give a trace file or such a directory',
    });
  }
  found.sort((a, b) => (a.prefix < b.prefix ? -1 : a.prefix > b.prefix ? 1 : a.index - b.index));
  let kept = found;
  let older = 0;
  if (opts.lookbackMs !== undefined) {
    const newest = Math.max(...found.map((s) => s.mtimeMs));
    const cutoff =
      opts.endMs !== undefined
        ? opts.endMs - opts.lookbackMs - MTIME_SLACK_MS
        : newest - 2 * opts.lookbackMs - 600_000;
    kept = found.filter((s) => s.mtimeMs >= cutoff);
    older = found.length - kept.length;
  }
  const max = opts.maxFiles ?? DEFAULT_MAX_FILES;
  let overLimit = 0;
  if (kept.length > max) {
    // The newest ones matter: drop the oldest by modification time.
    const byAge = [...kept].sort((a, b) => b.mtimeMs - a.mtimeMs).slice(0, max);
    const keep = new Set(byAge);
    overLimit = kept.length - max;
    kept = kept.filter((s) => keep.has(s));
  }
  return { segments: kept, older, overLimit };
}
