import { closeSync, openSync, readdirSync, unlinkSync, writeSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { gzip } from 'node:zlib';

/**
 * Request traces in NVIDIA Dynamo's own format (`DYN_REQUEST_TRACE`, the default `jsonl_gz` sink), so that
 * whatever reads a real deployment's recorded traffic can be tested against the twin.
 *
 * Format, from Dynamo's source (`lib/llm/src/request_trace/{types,record,config,replay}.rs`,
 * `lib/llm/src/telemetry/jsonl_gz.rs`) and `docs/dynosim/trace-formats.md`:
 * - files `<prefix>.NNNNNN.jsonl.gz` (index zero-padded to 6 digits), the first index one past the highest
 *   already in the directory, a new file never overwriting an existing one;
 * - each line `{"timestamp": <ms since the writer started>, "event": <record>}`; records are batched and each
 *   flush (every second, or when 1 MiB is pending) appends one complete gzip member, so a reader can stop at
 *   any member boundary (and a partial last segment is readable up to its last flush);
 * - a segment rolls when the next line would take its uncompressed size over 256 MiB, or (optionally) after
 *   a number of lines;
 * - a record is `{"schema": "dynamo.request.trace.v1", "event_type": "request_end", "event_time_unix_ms",
 *   "request": {...}}` with the request's id, model, token counts, `request_received_ms`, timings, and
 *   `replay: {trace_block_size, input_length, input_sequence_hashes}`: one chained (sequence) hash per block
 *   of `trace_block_size` prompt tokens, the partial last block included, so requests share leading hashes
 *   exactly as far as their prompts share leading blocks.
 *
 * Not reproduced: Dynamo's hash function (XXH3 over token ids; the twin's prompts are not real tokens, so only
 * the sharing structure matters), the prefix lock file and retention by bytes or age (a twin is the only
 * writer of its directory; `maxSegments` bounds the disk instead).
 */

export const REQUEST_TRACE_SCHEMA = 'dynamo.request.trace.v1';
/** Dynamo's default output prefix (DYN_REQUEST_TRACE_OUTPUT_PATH=/tmp/dynamo-request-trace). */
export const DEFAULT_PREFIX = 'dynamo-request-trace';

export interface RequestTraceEntry {
  requestId: string;
  model: string;
  inputTokens: number;
  outputTokens: number;
  cachedTokens?: number;
  /** Wall-clock (epoch) ms when the request was received. */
  receivedUnixMs: number;
  ttftMs?: number;
  totalTimeMs: number;
  avgItlMs?: number;
  kvHitRate?: number;
  prefillWorkerId?: number;
  decodeWorkerId?: number;
  /** Tokens per content id of `blockIds`. */
  traceBlockSize: number;
  /** Content id per prompt block (not chained); turned into sequence hashes here. */
  blockIds: ArrayLike<number>;
}

/** The record Dynamo writes for a finished request. */
export function requestEndRecord(e: RequestTraceEntry): Record<string, unknown> {
  const finite = (v: number | undefined) => (v !== undefined && Number.isFinite(v) ? v : undefined);
  const worker =
    e.prefillWorkerId !== undefined || e.decodeWorkerId !== undefined
      ? {
          ...(e.prefillWorkerId !== undefined && {
            prefill_worker_id: e.prefillWorkerId,
            prefill_dp_rank: 0,
          }),
          ...(e.decodeWorkerId !== undefined && { decode_worker_id: e.decodeWorkerId, decode_dp_rank: 0 }),
        }
      : undefined;
  return {
    schema: REQUEST_TRACE_SCHEMA,
    event_type: 'request_end',
    event_time_unix_ms: e.receivedUnixMs + Math.max(0, Math.round(e.totalTimeMs)),
    request: {
      request_id: e.requestId,
      model: e.model,
      input_tokens: e.inputTokens,
      output_tokens: e.outputTokens,
      ...(e.cachedTokens !== undefined && { cached_tokens: e.cachedTokens }),
      request_received_ms: e.receivedUnixMs,
      ...(finite(e.ttftMs) !== undefined && { ttft_ms: e.ttftMs }),
      total_time_ms: e.totalTimeMs,
      ...(finite(e.avgItlMs) !== undefined && { avg_itl_ms: e.avgItlMs }),
      ...(finite(e.kvHitRate) !== undefined && { kv_hit_rate: e.kvHitRate }),
      ...(worker && { worker }),
      replay: {
        trace_block_size: e.traceBlockSize,
        input_length: e.inputTokens,
        input_sequence_hashes: sequenceHashes(e.blockIds),
      },
    },
  };
}

/** Chained hashes of content ids: hash i depends on ids 0..i (53-bit, exact in JSON). */
export function sequenceHashes(ids: ArrayLike<number>): number[] {
  const out = new Array<number>(ids.length);
  let hi = 0x6a09e667;
  let lo = 0xbb67ae85;
  for (let i = 0; i < ids.length; i++) {
    const id = ids[i];
    const idLo = id >>> 0;
    const idHi = Math.floor(id / 2 ** 32) >>> 0;
    lo = Math.imul(lo ^ idLo, 0x9e3779b1) ^ (hi >>> 15);
    hi = Math.imul(hi ^ idHi ^ (lo >>> 13), 0x85ebca77);
    lo = Math.imul(lo ^ (lo >>> 16), 0x7feb352d);
    hi = Math.imul(hi ^ (hi >>> 15), 0x846ca68b);
    out[i] = (hi >>> 11) * 2 ** 32 + (lo >>> 0);
  }
  return out;
}

/** `<prefix>.NNNNNN.jsonl.gz`, as Dynamo names segments. */
export function segmentName(prefix: string, index: number): string {
  return `${prefix}.${String(index).padStart(6, '0')}.jsonl.gz`;
}

/** Indices of the existing segments of `prefix` in `dir`, ascending. */
export function segmentIndices(dir: string, prefix: string): number[] {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return [];
  }
  const out: number[] = [];
  for (const n of names) {
    if (!n.startsWith(`${prefix}.`) || !n.endsWith('.jsonl.gz')) continue;
    const mid = n.slice(prefix.length + 1, -'.jsonl.gz'.length);
    if (mid.length >= 6 && /^[0-9]+$/.test(mid)) out.push(Number(mid));
  }
  return out.sort((a, b) => a - b);
}

export interface RequestTraceWriterOptions {
  /** Output prefix path, e.g. `/tmp/traces/dynamo-request-trace` (Dynamo's DYN_REQUEST_TRACE_OUTPUT_PATH). */
  path: string;
  /** Flush pending records as a gzip member this often (ms). Default 1000, as Dynamo. */
  flushIntervalMs?: number;
  /** Flush when this many uncompressed bytes are pending. Default 1 MiB. */
  bufferBytes?: number;
  /** Roll the segment before it exceeds this many uncompressed bytes. Default 256 MiB. */
  rollBytes?: number;
  /** Roll after this many lines (optional). */
  rollLines?: number;
  /** Keep at most this many segments (oldest removed); default unlimited. */
  maxSegments?: number;
  /** Records held while writes lag behind, before new ones are dropped (and counted). Default 64 MiB. */
  maxPendingBytes?: number;
  /** Called once per write failure (the writer keeps going). */
  onError?: (e: Error) => void;
}

/** Rotating gzip JSONL writer; one per twin. */
export class RequestTraceWriter {
  private readonly dir: string;
  private readonly prefix: string;
  private readonly opts: Required<Omit<RequestTraceWriterOptions, 'rollLines' | 'maxSegments' | 'onError'>> &
    RequestTraceWriterOptions;
  private readonly started = performance.now();
  private index: number;
  private fd: number | undefined;
  private segmentBytes = 0;
  private segmentLines = 0;
  private batch: string[] = [];
  private batchBytes = 0;
  /** Bytes accepted but not yet on disk (batch + gzip in flight). */
  private pendingBytes = 0;
  private chain: Promise<void> = Promise.resolve();
  private timer: NodeJS.Timeout | undefined;
  private closed = false;
  /** Records written, dropped because writes lagged, and write failures. */
  written = 0;
  dropped = 0;
  failures = 0;

  constructor(opts: RequestTraceWriterOptions) {
    this.opts = {
      flushIntervalMs: 1000,
      bufferBytes: 1 << 20,
      rollBytes: 256 * 1024 * 1024,
      maxPendingBytes: 64 * 1024 * 1024,
      ...opts,
    };
    this.dir = dirname(opts.path);
    this.prefix = basename(opts.path).replace(/\.jsonl(\.gz)?$/, '');
    const existing = segmentIndices(this.dir, this.prefix);
    this.index = existing.length > 0 ? existing[existing.length - 1] + 1 : 0;
    this.timer = setInterval(() => this.flush(), this.opts.flushIntervalMs);
    this.timer.unref();
  }

  /** The current segment's path (it exists once the first batch is flushed). */
  get currentPath(): string {
    return join(this.dir, segmentName(this.prefix, this.index));
  }

  write(record: unknown): void {
    if (this.closed) return;
    const line = `${JSON.stringify({ timestamp: Math.floor(performance.now() - this.started), event: record })}\n`;
    const bytes = Buffer.byteLength(line);
    if (this.pendingBytes + bytes > this.opts.maxPendingBytes) {
      this.dropped++;
      return;
    }
    const rollLines = this.opts.rollLines;
    if (
      this.segmentLines > 0 &&
      (this.segmentBytes + bytes > this.opts.rollBytes ||
        (rollLines !== undefined && this.segmentLines >= rollLines))
    ) {
      this.flush();
      this.roll();
    }
    this.batch.push(line);
    this.batchBytes += bytes;
    this.pendingBytes += bytes;
    this.segmentBytes += bytes;
    this.segmentLines++;
    if (this.batchBytes >= this.opts.bufferBytes) this.flush();
  }

  /** Starts writing the pending batch as one gzip member (writes are serialised). */
  flush(): Promise<void> {
    if (this.batch.length === 0) return this.chain;
    const lines = this.batch;
    const bytes = this.batchBytes;
    const count = lines.length;
    this.batch = [];
    this.batchBytes = 0;
    // The segment index is captured now: a roll after this flush must not move these lines.
    const index = this.index;
    this.chain = this.chain.then(async () => {
      try {
        const member = await new Promise<Buffer>((resolve, reject) =>
          gzip(lines.join(''), (e, out) => (e ? reject(e) : resolve(out))),
        );
        this.appendMember(index, member);
        this.written += count;
      } catch (e) {
        this.failures++;
        this.opts.onError?.(e as Error);
      } finally {
        this.pendingBytes -= bytes;
      }
    });
    return this.chain;
  }

  private appendMember(index: number, member: Buffer): void {
    if (this.fd === undefined || this.fdIndex !== index) {
      if (this.fd !== undefined) closeSync(this.fd);
      this.fd = undefined;
      // 'wx': never overwrite a segment someone else created; skip to the next free index as Dynamo does.
      let i = index;
      for (;;) {
        try {
          this.fd = openSync(join(this.dir, segmentName(this.prefix, i)), 'wx');
          break;
        } catch (e) {
          if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
          i++;
        }
      }
      // Later batches of the current segment carry the index they were queued under: follow the skip.
      if (i !== index && this.index === index) this.index = i;
      this.fdIndex = this.index === i ? i : index;
      this.prune();
    }
    let off = 0;
    while (off < member.length) off += writeSync(this.fd, member, off);
  }

  private fdIndex = -1;

  private roll(): void {
    this.index++;
    this.segmentBytes = 0;
    this.segmentLines = 0;
  }

  private prune(): void {
    const max = this.opts.maxSegments;
    if (max === undefined) return;
    const all = segmentIndices(this.dir, this.prefix);
    for (const i of all.slice(0, Math.max(0, all.length - max))) {
      try {
        unlinkSync(join(this.dir, segmentName(this.prefix, i)));
      } catch {
        // already gone
      }
    }
  }

  /** Flushes what is pending and closes the segment (on SIGTERM). */
  async close(): Promise<void> {
    if (this.closed) return this.chain;
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
    await this.flush();
    await this.chain;
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = undefined;
  }
}
