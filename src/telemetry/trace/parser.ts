import type { StreamedRequest } from '../../sim/stream-source.ts';
import type { WaitEdge } from '../../sim/workload/workload.ts';
import { DEFAULT_BOUNDS, DEFAULT_INPUT_LIMITS, type InputLimits, type TraceBounds } from './bounds.ts';
import type { ObservedRequest, RowParser, TraceFormat, TraceRecord } from './format.ts';
import { RowError, TraceError, type TraceIssue } from './issues.ts';
import { detectTraceFormat, traceFormat, traceFormatNames } from './registry.ts';

/**
 * Turns the lines of a trace, in any registered format, into validated requests, one at a time: format
 * detection, every bound of bounds.ts, hash-id consistency, session linking, bad-row accounting and the
 * summary's notes. Synchronous and incremental: readers (read.ts) feed it lines as bytes arrive, and the
 * requests go to a sink as they are parsed, so nothing here grows with the trace except the session table.
 */

/**
 * One validated request, ready for a workload builder or a streaming simulation: the simulator's streamed
 * request (line, arrival, lengths, prefix ids as `traceBlockSize` content ids, session, think time) plus what
 * only a trace knows.
 */
export interface TraceRequest extends StreamedRequest {
  /** What the serving system measured for the request (request traces), else null. */
  observed: ObservedRequest | null;
  /** Agentic traces: requests (by their index among the requests handed over) this one waits for, else null. */
  waitFor?: readonly WaitEdge[] | null;
  /** With `waitFor`: the earliest arrival (raw trace clock). */
  notBeforeMs?: number;
  /** The prompt is the session's previous turn's prompt and output followed by new tokens. */
  extendsPrevious?: boolean;
  /** Agentic traces: the row's request id (requests ready at the same time start in its order). */
  requestId?: string;
}

export interface TraceParseOptions {
  /** Name used in messages (usually the file path). */
  source: string;
  /** Force a format by name instead of detecting it from the first row. */
  format?: string;
  /** Tokens per hash id (default: the format's, 512 for Mooncake). */
  traceBlockSize?: number;
  /** Skip bad rows, counting them, instead of failing on the first. */
  lenient?: boolean;
  /** Keep only independent requests arriving in [from, to) of the raw timestamps (a window of the trace). */
  windowMs?: { from: number; to: number };
  bounds?: Partial<TraceBounds>;
  limits?: Partial<InputLimits>;
}

/** How many rows had a property, and the first line (and file) that had it. */
export interface Tally {
  count: number;
  firstLine: number;
  firstSource: string;
}

export interface TraceSummary {
  source: string;
  /** Files read (a request-trace directory has several segments; 1 otherwise). */
  files: number;
  /** Segments whose gzip stream ended mid-member (a writer still writing, or killed): read up to there. */
  truncatedFiles: { count: number; first: string };
  /** The format read (detected or forced). */
  format: string;
  /** The format's hash ids are dense already (see TraceFormat.denseHashIds). */
  denseHashIds: boolean;
  traceBlockSize: number;
  /** The input was gzip-compressed. */
  compressed: boolean;
  /** Bytes of text read (after decompression). */
  bytes: number;
  lines: number;
  /** Requests kept (bad rows and rows outside the window excluded). */
  requests: number;
  sessions: number;
  badLines: number;
  /** The first bad rows (at most 20). */
  issues: TraceIssue[];
  /** Rows without hash_ids: their prompts share no prefix with any other. */
  missingHashIds: Tally;
  /** Rows with more hash_ids than their input_length covers: the extra ids are ignored. */
  extraHashIds: Tally;
  /** First turns timestamped before a first turn above them (out of order). */
  unsortedTimestamps: Tally;
  /** First turns with the same timestamp as the latest first turn above them. */
  duplicateTimestamps: Tally;
}

const MAX_ISSUES = 20;
const MAX_SESSION_ID_CHARS = 1024;

const tally = (): Tally => ({ count: 0, firstLine: 0, firstSource: '' });

export class TraceParser {
  private readonly opts: TraceParseOptions;
  private readonly sink: (r: TraceRequest) => void;
  private readonly bounds: TraceBounds;
  private readonly maxRows: number;
  private format: TraceFormat | null = null;
  private rows: RowParser | null = null;
  private blockSize = 0;
  private maxHashIds = 0;
  private lineNo = 0;
  /** Lines of the files finished before the current one. */
  private earlierLines = 0;
  private source: string;
  /** The block size the rows state (formats whose rows carry one), 0 until the first such row. */
  private rowBlockSize = 0;
  private nonEmpty = 0;
  private lastFirstTurnMs = Number.NaN;
  /** Per session: the dense index and the raw timestamp of its latest turn (NaN when it had none). */
  private readonly sessionIndex = new Map<string, number>();
  private readonly sessionLast: number[] = [];
  /** Agentic rows: request id -> index among the requests handed over; ids of rows left out by the window. */
  private readonly requestIds = new Map<string, number>();
  private readonly droppedIds = new Set<string>();
  readonly summary: TraceSummary;

  constructor(opts: TraceParseOptions, sink: (r: TraceRequest) => void) {
    this.opts = opts;
    this.source = opts.source;
    this.sink = sink;
    this.bounds = { ...DEFAULT_BOUNDS, ...opts.bounds };
    this.maxRows = opts.limits?.maxRows ?? DEFAULT_INPUT_LIMITS.maxRows;
    const tb = opts.traceBlockSize;
    if (tb !== undefined && (!Number.isInteger(tb) || tb < 1 || tb > 2 ** 24))
      throw new RangeError('trace block size must be an integer in [1, 16777216]');
    this.summary = {
      source: opts.source,
      files: 1,
      truncatedFiles: { count: 0, first: '' },
      format: '',
      denseHashIds: false,
      traceBlockSize: tb ?? 0,
      compressed: false,
      bytes: 0,
      lines: 0,
      requests: 0,
      sessions: 0,
      badLines: 0,
      issues: [],
      missingHashIds: tally(),
      extraHashIds: tally(),
      unsortedTimestamps: tally(),
      duplicateTimestamps: tally(),
    };
    if (opts.format !== undefined) {
      const f = traceFormat(opts.format);
      if (!f)
        throw new TraceError({
          source: opts.source,
          line: 0,
          field: null,
          message: `unknown trace format '${opts.format}' (known: ${traceFormatNames().join(', ')})`,
        });
      this.useFormat(f);
    }
  }

  private useFormat(f: TraceFormat): void {
    this.format = f;
    this.rows = f.createParser({ traceBlockSize: this.opts.traceBlockSize ?? f.defaultBlockSize });
    this.blockSize = this.opts.traceBlockSize ?? f.defaultBlockSize;
    this.maxHashIds = Math.ceil(this.bounds.maxPromptTokens / this.blockSize);
    this.summary.format = f.name;
    this.summary.denseHashIds = f.denseHashIds === true;
    this.summary.traceBlockSize = this.blockSize;
  }

  /** Lines seen so far in the current file. */
  get lines(): number {
    return this.lineNo;
  }

  /** The file messages name now. */
  get currentSource(): string {
    return this.source;
  }

  /**
   * The next file of a multi-file trace (request-trace segments): lines count from 1 again and messages name
   * it; formats, sessions and the row parser's state (hash ids seen) carry over.
   */
  beginFile(source: string): void {
    if (this.lineNo > 0 || this.source !== this.opts.source) {
      this.earlierLines += this.lineNo;
      this.summary.files++;
    }
    this.source = source;
    this.lineNo = 0;
  }

  /** The current file's gzip stream ended mid-member: what was read counts, the rest is noted. */
  noteTruncated(): void {
    const t = this.summary.truncatedFiles;
    if (t.count++ === 0) t.first = this.source;
  }

  private fail(field: string | null, message: string): void {
    const issue = { source: this.source, line: this.lineNo, field, message };
    if (!this.opts.lenient) throw new TraceError(issue);
    this.summary.badLines++;
    if (this.summary.issues.length < MAX_ISSUES) this.summary.issues.push(issue);
  }

  /** A line the reader could not hand over whole (longer than the line limit): one bad row. */
  skipLine(message: string): void {
    this.lineNo++;
    this.countRow();
    this.fail(null, message);
  }

  private countRow(): void {
    if (++this.nonEmpty > this.maxRows)
      throw new TraceError({
        source: this.source,
        line: this.lineNo,
        field: null,
        message: `more than ${this.maxRows} rows (the row limit of this reader)`,
      });
  }

  line(text: string): void {
    this.lineNo++;
    let trimmed = text.trim();
    if (this.lineNo === 1 && trimmed.charCodeAt(0) === 0xfeff) trimmed = trimmed.slice(1).trim();
    if (trimmed === '') return;
    this.countRow();
    if (this.rows === null) {
      const f = detectTraceFormat(trimmed);
      if (!f) {
        // Lenient: a bad first row is skipped like any other, and the next one tried.
        this.fail(
          null,
          `cannot tell the trace format from this row (known formats: ${traceFormatNames().join(', ')}; name one to force it)`,
        );
        return;
      }
      this.useFormat(f);
    }
    let rec: TraceRecord | readonly TraceRecord[] | null;
    try {
      rec = (this.rows as RowParser).parse(trimmed);
    } catch (e) {
      if (!(e instanceof RowError)) throw e;
      this.fail(e.field, e.message);
      return;
    }
    if (rec === null) return;
    if (Array.isArray(rec)) for (const r of rec as readonly TraceRecord[]) this.accept(r);
    else this.accept(rec as TraceRecord);
  }

  private accept(rec: TraceRecord): void {
    const b = this.bounds;
    const name = (k: keyof NonNullable<TraceRecord['fields']>, dflt: string) => rec.fields?.[k] ?? dflt;
    if (rec.traceBlockSize !== undefined && !this.adoptBlockSize(rec.traceBlockSize, name)) return;
    const tb = this.blockSize;
    const out = rec.outputLength;
    if (!Number.isInteger(out) || out < 0 || out > b.maxOutputTokens) {
      this.fail(name('outputLength', 'output_length'), outOfRange(out, 0, b.maxOutputTokens, 'tokens'));
      return;
    }
    const ts = rec.timestampMs;
    if (ts !== undefined && !(ts >= 0 && ts <= b.maxTimestampMs)) {
      this.fail(name('timestampMs', 'timestamp'), outOfRange(ts, 0, b.maxTimestampMs, 'ms'));
      return;
    }
    const delay = rec.delayMs;
    if (delay !== undefined && !(delay >= 0 && delay <= b.maxDelayMs)) {
      this.fail(name('delayMs', 'delay'), outOfRange(delay, 0, b.maxDelayMs, 'ms'));
      return;
    }
    const inputField = name('inputLength', 'input_length');
    let input = rec.inputLength;
    if (input !== undefined && (!Number.isInteger(input) || input < 0 || input > b.maxPromptTokens)) {
      this.fail(inputField, `${outOfRange(input, 1, b.maxPromptTokens, 'tokens')}${LIMIT_NOTE}`);
      return;
    }
    let hashes: readonly number[] | null = rec.hashIds ?? null;
    if (hashes !== null && hashes.length === 0) hashes = null;
    if (hashes === null) {
      if (input === undefined || input < 1) {
        this.fail(name('hashIds', 'hash_ids'), 'is required unless input_length is given');
        return;
      }
      note(this.summary.missingHashIds, this.lineNo, this.source);
    } else {
      if (hashes.length > this.maxHashIds) {
        this.fail(
          name('hashIds', 'hash_ids'),
          `${hashes.length} ids cover ${hashes.length * tb} tokens, more than the ${b.maxPromptTokens}-token prompt limit${LIMIT_NOTE}`,
        );
        return;
      }
      for (let i = 0; i < hashes.length; i++) {
        const v = hashes[i];
        if (!Number.isSafeInteger(v) || v < 0) {
          this.fail(name('hashIds', 'hash_ids'), `must hold integers in [0, 2^53), got ${JSON.stringify(v)}`);
          return;
        }
      }
      const capacity = hashes.length * tb;
      if (input === undefined) {
        if (capacity > b.maxPromptTokens) {
          this.fail(
            name('hashIds', 'hash_ids'),
            `${hashes.length} ids cover ${capacity} tokens, more than the ${b.maxPromptTokens}-token prompt limit${LIMIT_NOTE}`,
          );
          return;
        }
        input = capacity;
      }
      if (input < 1) {
        this.fail(inputField, 'must be at least 1');
        return;
      }
      if (input > capacity) {
        this.fail(
          inputField,
          `${input} exceeds the ${capacity} tokens its ${hashes.length} hash_ids cover (${tb} tokens each)`,
        );
        return;
      }
      const needed = Math.ceil(input / tb);
      if (hashes.length > needed) {
        note(this.summary.extraHashIds, this.lineNo, this.source);
        hashes = hashes.slice(0, needed);
      }
    }
    this.link(rec, ts, input as number, out, hashes);
  }

  /** A block size stated by a row: the first one is the trace's; another one later is a bad row. */
  private adoptBlockSize(
    size: number,
    name: (k: keyof NonNullable<TraceRecord['fields']>, dflt: string) => string,
  ): boolean {
    const field = name('traceBlockSize', 'trace_block_size');
    if (!Number.isInteger(size) || size < 1 || size > 2 ** 24) {
      this.fail(field, outOfRange(size, 1, 2 ** 24, 'tokens'));
      return false;
    }
    if (this.rowBlockSize === 0) {
      this.rowBlockSize = size;
      this.blockSize = size;
      this.maxHashIds = Math.ceil(this.bounds.maxPromptTokens / size);
      this.summary.traceBlockSize = size;
      return true;
    }
    if (size !== this.rowBlockSize) {
      this.fail(field, `is ${size}, but earlier rows use ${this.rowBlockSize} (one block size per trace)`);
      return false;
    }
    return true;
  }

  /** Session bookkeeping, the window, timestamp order; then hands the request to the sink. */
  private link(
    rec: TraceRecord,
    ts: number | undefined,
    input: number,
    output: number,
    hashes: readonly number[] | null,
  ): void {
    const dep = this.dependencies(rec);
    if (dep === 'bad') return;
    if (dep === 'dropped') {
      if (rec.requestId !== undefined) this.droppedIds.add(rec.requestId);
      return;
    }
    if (dep !== null) {
      // Waits for rows above it: no timestamp, no session; it starts once each of them ended plus its delay.
      let longest = 0;
      for (const e of dep) longest = Math.max(longest, e.delayMs);
      this.handOver(rec, Number.NaN, input, output, hashes, -1, longest, dep);
      return;
    }
    let session = -1;
    let delayMs = Number.NaN;
    const key = rec.sessionId;
    if (key !== undefined) {
      if (key.length > MAX_SESSION_ID_CHARS) {
        this.fail('session_id', `longer than ${MAX_SESSION_ID_CHARS} characters`);
        return;
      }
      const known = this.sessionIndex.get(key);
      if (known === undefined) {
        if (rec.delayMs !== undefined) {
          this.fail(rec.fields?.delayMs ?? 'delay', 'is only valid on follow-up turns');
          return;
        }
        if (ts === undefined) {
          this.fail(rec.fields?.timestampMs ?? 'timestamp', 'is required on the first turn of a session');
          return;
        }
        session = this.sessionLast.length;
        this.sessionIndex.set(key, session);
        this.sessionLast.push(ts);
        this.summary.sessions++;
      } else {
        session = known;
        const prev = this.sessionLast[known];
        delayMs = rec.delayMs ?? (ts !== undefined && !Number.isNaN(prev) ? Math.max(0, ts - prev) : 0);
        this.sessionLast[known] = ts ?? Number.NaN;
      }
    } else if (ts === undefined) {
      this.fail(rec.fields?.timestampMs ?? 'timestamp', 'is required');
      return;
    }
    const first = Number.isNaN(delayMs);
    if (first) {
      const w = this.opts.windowMs;
      if (w && session < 0 && ((ts as number) < w.from || (ts as number) >= w.to)) {
        if (rec.requestId !== undefined) this.droppedIds.add(rec.requestId);
        return;
      }
      const prev = this.lastFirstTurnMs;
      if ((ts as number) < prev) note(this.summary.unsortedTimestamps, this.lineNo, this.source);
      else if (ts === prev) note(this.summary.duplicateTimestamps, this.lineNo, this.source);
      if (!((ts as number) < prev)) this.lastFirstTurnMs = ts as number;
    }
    this.handOver(rec, first ? (ts as number) : Number.NaN, input, output, hashes, session, delayMs, null);
  }

  /** Registers the row's request id and hands the request to the sink. */
  private handOver(
    rec: TraceRecord,
    arrivalMs: number,
    input: number,
    output: number,
    hashes: readonly number[] | null,
    session: number,
    delayMs: number,
    waitFor: readonly WaitEdge[] | null,
  ): void {
    if (rec.requestId !== undefined) this.requestIds.set(rec.requestId, this.summary.requests);
    this.summary.requests++;
    this.sink({
      line: this.lineNo,
      arrivalMs,
      inputLength: input,
      outputLength: output,
      hashIds: hashes,
      session,
      delayMs,
      observed: rec.observed ?? null,
      ...(waitFor !== null ? { waitFor } : {}),
      ...(waitFor !== null && rec.notBeforeMs !== undefined ? { notBeforeMs: rec.notBeforeMs } : {}),
      ...(rec.extendsPrevious ? { extendsPrevious: true } : {}),
      ...(rec.requestId !== undefined ? { requestId: rec.requestId } : {}),
    });
  }

  /**
   * Agentic rows: the requests (indices among those handed over) a row waits for; null when it waits for none.
   * A dependency must name a row above it, so a cycle or a missing id is a bad row (named by line) and a run
   * can never wait forever; a row waiting for one the time window left out is left out too ('dropped').
   */
  private dependencies(rec: TraceRecord): readonly WaitEdge[] | null | 'bad' | 'dropped' {
    const id = rec.requestId;
    if (id !== undefined) {
      if (id.length > MAX_SESSION_ID_CHARS) {
        this.fail('request_id', `longer than ${MAX_SESSION_ID_CHARS} characters`);
        return 'bad';
      }
      if (this.requestIds.has(id) || this.droppedIds.has(id)) {
        this.fail('request_id', `'${id}' repeats an earlier row's`);
        return 'bad';
      }
    }
    const wait = rec.waitFor;
    if (wait === undefined || wait.length === 0) return null;
    if (wait.length > MAX_WAIT_FOR) {
      this.fail('wait_for', `names ${wait.length} requests, more than ${MAX_WAIT_FOR}`);
      return 'bad';
    }
    const nb = rec.notBeforeMs;
    if (nb !== undefined && !(nb >= 0 && nb <= this.bounds.maxTimestampMs)) {
      this.fail('not_before_ms', outOfRange(nb, 0, this.bounds.maxTimestampMs, 'ms'));
      return 'bad';
    }
    const out: WaitEdge[] = [];
    let dropped = false;
    for (const w of wait) {
      if (!(w.delayMs >= 0 && w.delayMs <= this.bounds.maxDelayMs)) {
        this.fail(rec.fields?.delayMs ?? 'delay', outOfRange(w.delayMs, 0, this.bounds.maxDelayMs, 'ms'));
        return 'bad';
      }
      const k = this.requestIds.get(w.requestId);
      if (k !== undefined) {
        // Each edge counts on its own (the same row twice just waits for both events).
        out.push({ index: k, delayMs: w.delayMs, onDispatch: w.onDispatch === true });
        continue;
      }
      if (this.droppedIds.has(w.requestId)) {
        dropped = true;
        continue;
      }
      this.fail(
        'wait_for',
        `waits for '${w.requestId}', which no row above defines (a request can only wait for rows before it: a cycle or a missing id would never start)`,
      );
      return 'bad';
    }
    return dropped ? 'dropped' : out;
  }

  /** Ends the input; a trace without a single usable request is an error in any mode. */
  finish(): TraceSummary {
    this.summary.lines = this.earlierLines + this.lineNo;
    if (this.summary.requests === 0) {
      const bad = this.summary.badLines;
      throw new TraceError({
        source: bad > 0 ? this.summary.issues[0].source : this.source,
        line: bad > 0 ? this.summary.issues[0].line : this.lineNo,
        field: null,
        message:
          bad > 0
            ? `no usable requests in the trace (${bad} bad rows; first: ${this.summary.issues[0].message})`
            : 'no usable requests in the trace',
      });
    }
    return this.summary;
  }
}

const LIMIT_NOTE = ' (the largest context of any catalogued model)';
/** Requests one agentic row may wait for. */
const MAX_WAIT_FOR = 256;

function note(t: Tally, line: number, source: string): void {
  if (t.count++ === 0) {
    t.firstLine = line;
    t.firstSource = source;
  }
}

function outOfRange(v: number, lo: number, hi: number, unit: string): string {
  const shown = Number.isFinite(v) ? String(v) : JSON.stringify(String(v));
  return `${shown} is outside [${lo}, ${hi}] ${unit}`;
}

/**
 * What the summary's tallies mean, one sentence each (only those that occurred); `streaming` says how the
 * streaming reader orders rows (see stream.ts) instead of the whole-trace sort.
 */
export function describeTraceNotes(s: TraceSummary, streaming?: { reorderRows: number }): string[] {
  const out: string[] = [];
  const where = (source: string, line: number) => (s.files > 1 ? `${source}:${line}` : `line ${line}`);
  const n = (t: Tally, what: string, then: string) => {
    if (t.count > 0) out.push(`${t.count} ${what} (first: ${where(t.firstSource, t.firstLine)}): ${then}`);
  };
  if (s.truncatedFiles.count > 0)
    out.push(
      `${s.truncatedFiles.count} of ${s.files} files end mid gzip member (first: ${s.truncatedFiles.first}; a writer still writing, or stopped): read up to their last whole line`,
    );
  n(s.missingHashIds, 'rows without hash_ids', 'their prompts share no prefix with any other request');
  n(s.extraHashIds, 'rows with more hash_ids than input_length covers', 'the extra ids are ignored');
  n(
    s.unsortedTimestamps,
    'requests timestamped before a row above them',
    streaming
      ? `replayed in timestamp order when within ${streaming.reorderRows} rows of their place, else at the latest time already replayed`
      : 'replayed in timestamp order',
  );
  n(
    s.duplicateTimestamps,
    'requests with the same timestamp as the latest row above them',
    'they arrive together, in file order',
  );
  if (s.badLines > 0)
    out.push(
      `${s.badLines} bad rows skipped (first: ${where(s.issues[0]?.source, s.issues[0]?.line)}: ${s.issues[0]?.field ? `field '${s.issues[0].field}': ` : ''}${s.issues[0]?.message})`,
    );
  return out;
}
