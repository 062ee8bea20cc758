import { createReadStream } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import { z } from 'zod';
import { type Workload, WorkloadBuilder } from '../sim/workload/workload.ts';

/** A problem with one line of a trace, located precisely enough to fix by hand. */
export interface TraceIssue {
  source: string;
  line: number;
  field: string | null;
  message: string;
}

export class TraceError extends Error {
  readonly issue: TraceIssue;
  constructor(issue: TraceIssue) {
    super(formatIssue(issue));
    this.issue = issue;
    this.name = 'TraceError';
  }
}

export function formatIssue(i: TraceIssue): string {
  return `${i.source}${i.line > 0 ? `:${i.line}` : ''}: ${i.field ? `field '${i.field}': ` : ''}${i.message}`;
}

const count = z.number().int('must be an integer').nonnegative('must not be negative');

/** One Mooncake JSONL row (FAST'25 format plus the session extension); aliases as the reference accepts. */
const RowSchema = z
  .object({
    timestamp: z.number().nonnegative('must not be negative').optional(),
    created_time: z.number().nonnegative('must not be negative').optional(),
    input_length: count.optional(),
    input_tokens: count.optional(),
    output_length: count.optional(),
    output_tokens: count.optional(),
    hash_ids: z
      .array(z.number().int('must hold integers').nonnegative('must hold non-negative integers'))
      .optional(),
    session_id: z.union([z.string(), z.number()]).optional(),
    delay: z.number().nonnegative('must not be negative').optional(),
    delay_ms: z.number().nonnegative('must not be negative').optional(),
  })
  .passthrough();

type Row = z.infer<typeof RowSchema>;

const isCount = (v: unknown) => v === undefined || (typeof v === 'number' && Number.isInteger(v) && v >= 0);
const isTime = (v: unknown) => v === undefined || (typeof v === 'number' && v >= 0);

/**
 * The schema's checks, by hand, for the common case: a row that passes is used as is, anything else goes
 * through the schema, which names what is wrong. Saves most of the cost of loading large traces.
 */
function validRow(raw: Record<string, unknown>): Row | null {
  if (!isTime(raw.timestamp) || !isTime(raw.created_time) || !isTime(raw.delay) || !isTime(raw.delay_ms))
    return null;
  if (!isCount(raw.input_length) || !isCount(raw.input_tokens)) return null;
  if (!isCount(raw.output_length) || !isCount(raw.output_tokens)) return null;
  const h = raw.hash_ids;
  if (h !== undefined) {
    if (!Array.isArray(h)) return null;
    for (let i = 0; i < h.length; i++) {
      const v = h[i];
      if (typeof v !== 'number' || !Number.isInteger(v) || v < 0) return null;
    }
  }
  const sid = raw.session_id;
  if (sid !== undefined && typeof sid !== 'string' && typeof sid !== 'number') return null;
  return raw as Row;
}

export interface TraceLoadOptions {
  /** Name used in messages (usually the file path). */
  source: string;
  /** Tokens per hash id (Mooncake: 512). */
  traceBlockSize?: number;
  /** Skip bad lines (counting them) instead of failing on the first. */
  lenient?: boolean;
  /** Keep only first turns arriving in [fromMs, toMs) of the raw timestamps (a window of the trace). */
  windowMs?: { from: number; to: number };
}

export interface TraceLoadResult {
  workload: Workload;
  lines: number;
  badLines: number;
  issues: TraceIssue[];
}

/** Incremental Mooncake JSONL parser: feed lines, then `finish()`. */
export class MooncakeParser {
  private readonly builder: WorkloadBuilder;
  private readonly sessionLast = new Map<string, number>();
  private lineNo = 0;
  private bad = 0;
  readonly issues: TraceIssue[] = [];

  private readonly opts: TraceLoadOptions;
  constructor(opts: TraceLoadOptions) {
    this.opts = opts;
    const tb = opts.traceBlockSize ?? 512;
    if (!Number.isInteger(tb) || tb < 1) throw new RangeError('trace block size must be a positive integer');
    this.builder = new WorkloadBuilder(tb);
  }

  private fail(field: string | null, message: string): void {
    const issue = { source: this.opts.source, line: this.lineNo, field, message };
    if (!this.opts.lenient) throw new TraceError(issue);
    this.bad++;
    if (this.issues.length < 20) this.issues.push(issue);
  }

  line(text: string): void {
    this.lineNo++;
    const trimmed = text.trim();
    if (trimmed === '') return;
    let raw: unknown;
    try {
      raw = JSON.parse(trimmed);
    } catch (e) {
      this.fail(null, `not valid JSON (${(e as Error).message})`);
      return;
    }
    if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
      this.fail(null, 'expected a JSON object');
      return;
    }
    let row = validRow(raw as Record<string, unknown>);
    if (row === null) {
      const parsed = RowSchema.safeParse(raw);
      if (!parsed.success) {
        const first = parsed.error.issues[0];
        const field = first.path.length > 0 ? String(first.path[0]) : null;
        const got = field !== null ? (raw as Record<string, unknown>)[field] : undefined;
        this.fail(field, `${first.message}${got !== undefined ? `, got ${JSON.stringify(got)}` : ''}`);
        return;
      }
      row = parsed.data;
    }
    const tb = this.builder.traceBlockSize;
    const ts = row.timestamp ?? row.created_time;
    const output = row.output_length ?? row.output_tokens;
    if (output === undefined) {
      this.fail('output_length', 'is required');
      return;
    }
    let input = row.input_length ?? row.input_tokens;
    const hashes = row.hash_ids;
    if (hashes === undefined || hashes.length === 0) {
      if (input === undefined || input < 1) {
        this.fail('hash_ids', 'is required unless input_length is given');
        return;
      }
      // No prefix information: the prompt shares nothing with any other.
      const ids: number[] = [];
      for (let k = 0; k < Math.ceil(input / tb); k++) ids.push(this.builder.freshHash());
      this.add(row, ts, input, output, ids, true);
      return;
    }
    const capacity = hashes.length * tb;
    if (input === undefined) input = capacity;
    if (input < 1) {
      this.fail(row.input_length !== undefined ? 'input_length' : 'input_tokens', 'must be at least 1');
      return;
    }
    if (input > capacity) {
      this.fail(
        row.input_length !== undefined ? 'input_length' : 'input_tokens',
        `${input} exceeds the ${capacity} tokens its ${hashes.length} hash_ids cover (${tb} tokens each)`,
      );
      return;
    }
    this.add(row, ts, input, output, hashes, false);
  }

  private add(
    row: Row,
    ts: number | undefined,
    input: number,
    output: number,
    hashes: number[],
    dense: boolean,
  ): void {
    const sessionKey = row.session_id === undefined ? undefined : String(row.session_id);
    const delay = row.delay ?? row.delay_ms;
    let session: number | undefined;
    let delayMs: number | undefined;
    if (sessionKey !== undefined) {
      const prev = this.sessionLast.get(sessionKey);
      session = this.sessionIndex(sessionKey);
      if (prev === undefined) {
        if (delay !== undefined) {
          this.fail(row.delay !== undefined ? 'delay' : 'delay_ms', 'is only valid on follow-up turns');
          return;
        }
        if (ts === undefined) {
          this.fail('timestamp', 'is required on the first turn of a session');
          return;
        }
      } else {
        delayMs = delay ?? (ts !== undefined && !Number.isNaN(prev) ? Math.max(0, ts - prev) : 0);
      }
      this.sessionLast.set(sessionKey, ts ?? Number.NaN);
    } else if (ts === undefined) {
      this.fail('timestamp', 'is required');
      return;
    }
    if (this.opts.windowMs && session === undefined && ts !== undefined) {
      if (ts < this.opts.windowMs.from || ts >= this.opts.windowMs.to) return;
    }
    this.builder.add({
      arrivalMs: ts ?? Number.NaN,
      inputLength: input,
      outputLength: output,
      hashIds: hashes,
      denseHashIds: dense,
      session,
      delayMs,
      sourceLine: this.lineNo,
    });
  }

  private readonly sessionIds = new Map<string, number>();
  private sessionIndex(key: string): number {
    let s = this.sessionIds.get(key);
    if (s === undefined) {
      s = this.sessionIds.size;
      this.sessionIds.set(key, s);
    }
    return s;
  }

  finish(): TraceLoadResult {
    if (this.builder.size === 0) {
      const issue = {
        source: this.opts.source,
        line: this.lineNo,
        field: null,
        message: 'no usable requests in the trace',
      };
      throw new TraceError(issue);
    }
    return { workload: this.builder.build(), lines: this.lineNo, badLines: this.bad, issues: this.issues };
  }
}

/** Parses Mooncake JSONL held in memory. */
export function parseMooncake(text: string, opts: TraceLoadOptions): TraceLoadResult {
  const p = new MooncakeParser(opts);
  let start = 0;
  for (;;) {
    const nl = text.indexOf('\n', start);
    // A final newline ends the last line; it does not start another (as when streaming).
    if (nl < 0 && start === text.length && start > 0) break;
    p.line(nl < 0 ? text.slice(start) : text.slice(start, nl));
    if (nl < 0) break;
    start = nl + 1;
  }
  return p.finish();
}

/** Files up to this size are read whole (faster); larger ones are streamed line by line. */
const READ_WHOLE_BYTES = 256 * 2 ** 20;

/** Reads a Mooncake JSONL file. Missing or unreadable files raise a TraceError naming the path. */
export async function readMooncakeFile(
  path: string,
  opts: Omit<TraceLoadOptions, 'source'> = {},
): Promise<TraceLoadResult> {
  const size = await stat(path).then(
    (s) => (s.isFile() ? s.size : Number.POSITIVE_INFINITY),
    () => Number.POSITIVE_INFINITY,
  );
  if (size <= READ_WHOLE_BYTES) return parseMooncake(await readFile(path, 'utf8'), { ...opts, source: path });
  const p = new MooncakeParser({ ...opts, source: path });
  const stream = createReadStream(path, { encoding: 'utf8' });
  const opened = new Promise<void>((resolve, reject) => {
    stream.once('open', () => resolve());
    stream.once('error', reject);
  });
  try {
    await opened;
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    const why =
      err.code === 'ENOENT' ? 'file not found' : err.code === 'EISDIR' ? 'is a directory' : err.message;
    throw new TraceError({ source: path, line: 0, field: null, message: why });
  }
  const rl = createInterface({ input: stream, crlfDelay: Number.POSITIVE_INFINITY });
  for await (const line of rl) p.line(line);
  return p.finish();
}
