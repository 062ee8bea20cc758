import { createReadStream, type Stats } from 'node:fs';
import { stat } from 'node:fs/promises';
import { PassThrough, pipeline } from 'node:stream';
import { StringDecoder } from 'node:string_decoder';
import { createGunzip, gunzipSync } from 'node:zlib';
import { type Workload, WorkloadBuilder } from '../../sim/workload/workload.ts';
import { DEFAULT_INPUT_LIMITS, type InputLimits } from './bounds.ts';
import { TraceError, type TraceIssue } from './issues.ts';
import { type TraceParseOptions, TraceParser, type TraceRequest, type TraceSummary } from './parser.ts';
import { listSegments, type SegmentOptions } from './segments.ts';

/**
 * Reading traces from a file, a byte stream or an in-memory text, incrementally: gzip is recognised by its
 * magic bytes (whatever the name) and inflated on the fly, the text is cut into lines without ever holding
 * more than one chunk and one line, and every input is bounded in bytes, rows and line length (bounds.ts).
 * A path that is not a regular file (a FIFO, a device) is refused before it is opened, so it cannot block on a
 * FIFO without a writer; a directory (or a prefix path) of Dynamo request-trace segments is read segment by
 * segment through one parser (segments.ts), and a segment cut mid gzip member (still being written, or its
 * writer killed) is read up to its last whole line.
 */

/** A path, a stream of bytes (stdin, an HTTP body) or a text already in memory. */
export type TraceInput =
  | string
  | { stream: AsyncIterable<Uint8Array>; source: string }
  | { text: string | Uint8Array; source: string };

export interface TraceReadOptions extends Omit<TraceParseOptions, 'source'> {
  /** Name in messages; default: the path, or the input's `source`. */
  source?: string;
  /** Which segments of a request-trace directory to read. */
  segments?: SegmentOptions;
}

export interface TraceLoadResult {
  workload: Workload;
  summary: TraceSummary;
  /** Same as the summary's, for callers that only count. */
  lines: number;
  badLines: number;
  issues: TraceIssue[];
}

const CHUNK_BYTES = 1 << 20;

const isGzip = (b: Uint8Array) => b.length >= 2 && b[0] === 0x1f && b[1] === 0x8b;

/** zlib's error for a stream that stops inside a member. */
const isTruncation = (e: unknown) =>
  (e as NodeJS.ErrnoException).code === 'Z_BUF_ERROR' || /unexpected end of file/i.test((e as Error).message);

function sourceOf(input: TraceInput, opts: TraceReadOptions): string {
  return opts.source ?? (typeof input === 'string' ? input : input.source);
}

/** Why a path cannot be read as a trace, in words; null when it is a regular file. */
function refusal(s: Stats): string | null {
  if (s.isFile()) return null;
  if (s.isDirectory()) return 'is a directory, not a trace file';
  const kind = s.isFIFO()
    ? 'a FIFO'
    : s.isSocket()
      ? 'a socket'
      : s.isCharacterDevice()
        ? 'a character device'
        : s.isBlockDevice()
          ? 'a block device'
          : 'not a regular file';
  return `is ${kind}, not a regular file (give a trace file; streams are read through the API)`;
}

function ioMessage(e: unknown): string {
  const err = e as NodeJS.ErrnoException;
  switch (err.code) {
    case 'ENOENT':
      return 'file not found';
    case 'EACCES':
    case 'EPERM':
      return 'permission denied';
    case 'EISDIR':
      return 'is a directory, not a trace file';
    case 'ENOTDIR':
      return 'a component of the path is not a directory';
    case 'Z_DATA_ERROR':
    case 'Z_BUF_ERROR':
    case 'Z_STREAM_ERROR':
      return `not a valid gzip stream (${err.message})`;
    default:
      return err.message ?? String(e);
  }
}

async function openFile(path: string): Promise<AsyncIterable<Uint8Array>> {
  const fail = (message: string) => new TraceError({ source: path, line: 0, field: null, message });
  let s: Stats;
  try {
    s = await stat(path);
  } catch (e) {
    throw fail(ioMessage(e));
  }
  const why = refusal(s);
  if (why !== null) throw fail(why);
  const stream = createReadStream(path, { highWaterMark: CHUNK_BYTES });
  await new Promise<void>((resolve, reject) => {
    stream.once('open', () => resolve());
    stream.once('error', (e) => reject(fail(ioMessage(e))));
  });
  return stream;
}

/** The bytes of a source, inflated when they start with gzip's magic bytes. */
async function* inflated(
  chunks: AsyncIterable<Uint8Array>,
  onGzip: () => void,
): AsyncGenerator<Uint8Array, void, undefined> {
  const it = chunks[Symbol.asyncIterator]();
  let head: Uint8Array = new Uint8Array(0);
  while (head.length < 2) {
    const n = await it.next();
    if (n.done) break;
    head = head.length === 0 ? n.value : Buffer.concat([head, n.value]);
  }
  async function* all(): AsyncGenerator<Uint8Array> {
    if (head.length > 0) yield head;
    for (;;) {
      const n = await it.next();
      if (n.done) return;
      yield n.value;
    }
  }
  if (!isGzip(head)) {
    yield* all();
    return;
  }
  onGzip();
  const gunzip = createGunzip({ chunkSize: 256 * 1024 });
  const out = new PassThrough({ highWaterMark: CHUNK_BYTES });
  pipeline(all(), gunzip, out, () => {});
  yield* out;
}

/**
 * Reads a trace incrementally and hands out its validated requests a chunk at a time. The summary is complete
 * once iteration ends (it is live while reading, for progress).
 */
export class TraceReader {
  readonly source: string;
  private readonly input: TraceInput;
  private readonly parser: TraceParser;
  private readonly limits: InputLimits;
  private readonly segmentOptions: SegmentOptions | undefined;
  private pending: TraceRequest[] = [];

  /** `sink`: receives each request as it is parsed instead of the batches (which then come empty). */
  constructor(input: TraceInput, opts: TraceReadOptions = {}, sink?: (r: TraceRequest) => void) {
    this.input = input;
    this.source = sourceOf(input, opts);
    this.limits = { ...DEFAULT_INPUT_LIMITS, ...opts.limits };
    this.segmentOptions = opts.segments;
    this.parser = new TraceParser({ ...opts, source: this.source }, sink ?? ((r) => this.pending.push(r)));
  }

  get summary(): TraceSummary {
    return this.parser.summary;
  }

  private take(): TraceRequest[] {
    const batch = this.pending;
    this.pending = [];
    return batch;
  }

  private tooLarge(): TraceError {
    return new TraceError({
      source: this.source,
      line: this.parser.lines,
      field: null,
      message: `larger than ${this.limits.maxBytes} bytes (the size limit of this reader)`,
    });
  }

  /** Requests in file order, one batch per chunk read. Throws TraceError for unusable input. */
  async *batches(): AsyncGenerator<TraceRequest[], void, undefined> {
    const input = this.input;
    if (typeof input !== 'string' && 'text' in input) {
      this.parseAll(input.text);
      yield this.take();
      this.parser.finish();
      return;
    }
    if (typeof input === 'string') {
      const listing = await listSegments(input, this.segmentOptions);
      if (listing === null) yield* this.readStream(await openFile(input), false);
      else {
        if (listing.segments.length === 0)
          throw new TraceError({
            source: this.source,
            line: 0,
            field: null,
            message: `no segment was written within the window (${listing.older} older segments left out)`,
          });
        for (const seg of listing.segments) {
          this.parser.beginFile(seg.path);
          let stream: AsyncIterable<Uint8Array>;
          try {
            stream = await openFile(seg.path);
          } catch (e) {
            // Removed by retention between listing and opening: its requests left the window anyway.
            if (e instanceof TraceError && e.issue.message === 'file not found') continue;
            throw e;
          }
          yield* this.readStream(stream, true);
        }
      }
    } else yield* this.readStream(input.stream, false);
    this.parser.finish();
  }

  /**
   * The lines of one byte stream into the parser. `segment`: a gzip stream that ends mid member is the end of
   * the data (a writer appends one member per flush), not an error.
   */
  private async *readStream(
    raw: AsyncIterable<Uint8Array>,
    segment: boolean,
  ): AsyncGenerator<TraceRequest[], void, undefined> {
    const decoder = new StringDecoder('utf8');
    const max = this.limits.maxLineChars;
    let carry = '';
    let skipping = false; // inside a line longer than the limit: dropped up to its newline
    let compressed = false;
    try {
      for await (const chunk of inflated(raw, () => {
        compressed = true;
        this.parser.summary.compressed = true;
      })) {
        this.parser.summary.bytes += chunk.length;
        if (this.parser.summary.bytes > this.limits.maxBytes) throw this.tooLarge();
        const text = decoder.write(chunk as Buffer);
        let start = 0;
        for (;;) {
          const nl = text.indexOf('\n', start);
          if (nl < 0) break;
          if (skipping || carry.length + (nl - start) > max) {
            skipping = false;
            this.parser.skipLine(`longer than ${max} characters`);
          } else if (carry.length > 0) this.parser.line(carry + text.slice(start, nl));
          else this.parser.line(text.slice(start, nl));
          carry = '';
          start = nl + 1;
        }
        if (!skipping) {
          carry = carry.length > 0 ? carry + text.slice(start) : text.slice(start);
          if (carry.length > max) {
            skipping = true;
            carry = '';
          }
        }
        if (this.pending.length > 0) yield this.take();
      }
    } catch (e) {
      if (e instanceof TraceError) throw e;
      if (!(segment && compressed && isTruncation(e)))
        throw new TraceError({
          source: this.parser.currentSource,
          line: this.parser.lines,
          field: null,
          message: ioMessage(e),
        });
      // The last member is incomplete: its whole lines were read; the partial one is dropped.
      this.parser.noteTruncated();
      if (this.pending.length > 0) yield this.take();
      return;
    }
    carry += decoder.end();
    if (skipping) this.parser.skipLine(`longer than ${max} characters`);
    // A segment's writer ends every line; one without its newline was cut while being written.
    else if (carry.length > 0 && segment) this.parser.noteTruncated();
    else if (carry.length > 0) this.parser.line(carry);
    if (this.pending.length > 0) yield this.take();
  }

  /** A whole text in memory (inflated first when gzip), synchronously. */
  parseAll(data: string | Uint8Array): void {
    const text = typeof data === 'string' ? data : decodeTrace(data, this.source, this.limits.maxBytes);
    if (typeof data !== 'string' && isGzip(data)) this.parser.summary.compressed = true;
    this.parser.summary.bytes = Buffer.byteLength(text);
    if (this.parser.summary.bytes > this.limits.maxBytes) throw this.tooLarge();
    const max = this.limits.maxLineChars;
    let start = 0;
    for (;;) {
      const nl = text.indexOf('\n', start);
      // A final newline ends the last line; it does not start another.
      if (nl < 0 && start === text.length && start > 0) break;
      const end = nl < 0 ? text.length : nl;
      if (end - start > max) this.parser.skipLine(`longer than ${max} characters`);
      else this.parser.line(text.slice(start, end));
      if (nl < 0) break;
      start = nl + 1;
    }
  }

  /** Ends a synchronous parse (after parseAll). */
  finish(): TraceSummary {
    return this.parser.finish();
  }
}

/**
 * The text of a trace held in memory as bytes: inflated when gzip-compressed (never beyond `maxBytes`, so a
 * gzip bomb fails cleanly), else decoded as UTF-8.
 */
export function decodeTrace(
  data: Uint8Array,
  source: string,
  maxBytes = DEFAULT_INPUT_LIMITS.maxBytes,
): string {
  const buf = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  if (!isGzip(buf)) return buf.toString('utf8');
  try {
    // Node's Buffer limit also caps what one inflate may produce.
    return gunzipSync(buf, { maxOutputLength: Math.min(maxBytes, 2 ** 31 - 1) }).toString('utf8');
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    const message =
      err.code === 'ERR_BUFFER_TOO_LARGE' || err instanceof RangeError
        ? `inflates to more than ${Math.min(maxBytes, 2 ** 31 - 1)} bytes (the size limit of this reader)`
        : ioMessage(e);
    throw new TraceError({ source, line: 0, field: null, message });
  }
}

/**
 * Adds one validated request to a workload under construction. `denseIds`: the trace's hash ids are dense
 * already (the summary says so), and go in as they are (the builder only keeps its fresh ids above them).
 */
export function addToWorkload(b: WorkloadBuilder, r: TraceRequest, denseIds = false): void {
  let ids: ArrayLike<number>;
  let dense = false;
  if (denseIds && r.hashIds !== null) {
    ids = r.hashIds;
    dense = true;
    b.reserveDense(r.hashIds);
  } else if (r.hashIds === null) {
    // No prefix information: the prompt shares nothing with any other.
    const fresh: number[] = [];
    for (let k = 0; k < Math.ceil(r.inputLength / b.traceBlockSize); k++) fresh.push(b.freshHash());
    ids = fresh;
    dense = true;
  } else ids = r.hashIds;
  b.add({
    arrivalMs: r.arrivalMs,
    inputLength: r.inputLength,
    outputLength: r.outputLength,
    hashIds: ids,
    denseHashIds: dense,
    session: r.session < 0 ? undefined : r.session,
    delayMs: Number.isNaN(r.delayMs) ? undefined : r.delayMs,
    sourceLine: r.line,
    waitFor: r.waitFor ?? null,
    notBeforeMs: r.notBeforeMs,
    extendsPrevious: r.extendsPrevious ?? false,
    requestId: r.requestId,
  });
}

function result(workload: Workload, summary: TraceSummary): TraceLoadResult {
  return { workload, summary, lines: summary.lines, badLines: summary.badLines, issues: summary.issues };
}

/** A sink that builds a workload (created at the first request, once the format's block size is known). */
function workloadSink(summary: () => TraceSummary): {
  sink: (r: TraceRequest) => void;
  build: () => Workload;
} {
  let builder: WorkloadBuilder | null = null;
  return {
    sink: (r) => {
      builder ??= new WorkloadBuilder(summary().traceBlockSize);
      addToWorkload(builder, r, summary().denseHashIds);
    },
    build: () => (builder as WorkloadBuilder).build(),
  };
}

/** Reads a whole trace (file, stream or text) into a workload. Unusable input raises a TraceError. */
export async function readTrace(input: TraceInput, opts: TraceReadOptions = {}): Promise<TraceLoadResult> {
  let reader: TraceReader | null = null;
  const w = workloadSink(() => (reader as TraceReader).summary);
  reader = new TraceReader(input, opts, w.sink);
  for await (const _ of reader.batches());
  return result(w.build(), reader.summary);
}

/** Parses a trace held in memory (text or bytes, gzip or not) into a workload, synchronously. */
export function parseTrace(
  data: string | Uint8Array,
  opts: TraceReadOptions & { source: string },
): TraceLoadResult {
  let reader: TraceReader | null = null;
  const w = workloadSink(() => (reader as TraceReader).summary);
  reader = new TraceReader({ text: data, source: opts.source }, opts, w.sink);
  reader.parseAll(data);
  const summary = reader.finish();
  return result(w.build(), summary);
}
