import type { ObservedRequest, RowParser, TraceFormat, TraceRecord } from '../format.ts';
import { DenseIdTable } from '../id-table.ts';
import { RowError } from '../issues.ts';
import { jsonObject } from './mooncake.ts';

/**
 * NVIDIA Dynamo's request traces (`DYN_REQUEST_TRACE`, schema `dynamo.request.trace.v1`), as its frontend
 * writes them and its `request_trace_to_mooncake` converter reads them (ai-dynamo/dynamo:
 * `lib/llm/src/request_trace/`, `lib/data-gen/src/request_trace/load.rs`, `docs/dynosim/trace-formats.md`):
 *
 * - a line is a record, or `{"timestamp": ..., "event": record}` as the rotating gzip sink wraps it;
 * - `request_end` records carry one request: `request.request_id`, `request_received_ms` (epoch ms, the
 *   arrival), `output_tokens`, and `replay: {trace_block_size, input_length, input_sequence_hashes}` with
 *   exactly ceil(input_length / trace_block_size) chained hashes (the partial last block included), so two
 *   prompts share leading hashes exactly as far as they share leading blocks: the prefix structure survives;
 * - `request_payload` and `tool_*` records carry no request of their own and are skipped; any other
 *   event type, another schema, or a request id seen before is a bad row (as in Dynamo's loader).
 *
 * The hashes are u64, beyond JavaScript's exact integers: each distinct value is mapped to a small dense id
 * (two hashes within 2^11 of each other near 2^64 would collide as doubles: about one chance in 2^40 for a
 * million distinct blocks, so equal ids mean equal prefixes for any real trace). What the frontend measured
 * (`ttft_ms`, `avg_itl_ms`, `total_time_ms`, `cached_tokens`) is kept for calibration. `agent_context`
 * sessions are replayed as independent timestamped requests, as Dynamo's non-agentic converter does.
 */

export const REQUEST_TRACE_SCHEMA = 'dynamo.request.trace.v1';

const SKIPPED = new Set(['request_payload', 'tool_start', 'tool_end', 'tool_error']);
const MAX_REQUEST_ID_CHARS = 1024;
/** Largest latency kept (ms): 115 days; anything above is not a measurement. */
const MAX_OBSERVED_MS = 1e10;

const FIELDS: TraceRecord['fields'] = {
  timestampMs: 'request.request_received_ms',
  inputLength: 'request.replay.input_length',
  outputLength: 'request.output_tokens',
  hashIds: 'request.replay.input_sequence_hashes',
  traceBlockSize: 'request.replay.trace_block_size',
};

const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

function count(o: Record<string, unknown>, key: string, path: string): number {
  const v = o[key];
  if (v === undefined || v === null) throw new RowError(path, 'is required');
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0)
    throw new RowError(path, `must be a non-negative integer, got ${JSON.stringify(v)}`);
  return v;
}

/** An optional measurement: absent is NaN; present must be a number in [0, max]. */
function measured(o: Record<string, unknown>, key: string, max: number): number {
  const v = o[key];
  if (v === undefined || v === null) return Number.NaN;
  if (typeof v !== 'number' || !(v >= 0 && v <= max))
    throw new RowError(`request.${key}`, `must be a number in [0, ${max}], got ${JSON.stringify(v)}`);
  return v;
}

class DynamoRowParser implements RowParser {
  /** u64 sequence hash (as a double) -> dense id, across every row and file of the trace. */
  private readonly dense = new DenseIdTable();
  private readonly requestIds = new Set<string>();

  parse(line: string): TraceRecord | null {
    const outer = jsonObject(line);
    const rec = isObject(outer.event) ? outer.event : outer;
    if (rec.schema !== REQUEST_TRACE_SCHEMA)
      throw new RowError(
        'schema',
        `${JSON.stringify(rec.schema)} is not a Dynamo request-trace schema this reader knows (${REQUEST_TRACE_SCHEMA})`,
      );
    const type = rec.event_type;
    if (typeof type === 'string' && SKIPPED.has(type)) return null;
    if (type !== 'request_end')
      throw new RowError(
        'event_type',
        `${JSON.stringify(type)} is not a request-trace event (request_end, request_payload, tool_start, tool_end, tool_error)`,
      );
    const req = rec.request;
    if (!isObject(req)) throw new RowError('request', 'is required on a request_end record');
    const id = req.request_id;
    if (typeof id !== 'string' || id.length === 0 || id.length > MAX_REQUEST_ID_CHARS)
      throw new RowError('request.request_id', `must be a string of 1 to ${MAX_REQUEST_ID_CHARS} characters`);
    const received = req.request_received_ms;
    if (received === undefined || received === null)
      throw new RowError('request.request_received_ms', 'is required (the arrival time)');
    if (typeof received !== 'number')
      throw new RowError('request.request_received_ms', `must be a number, got ${JSON.stringify(received)}`);
    const output = count(req, 'output_tokens', 'request.output_tokens');
    const replay = req.replay;
    if (!isObject(replay))
      throw new RowError(
        'request.replay',
        'is required (the frontend writes it when request tracing is on; without it the prompt is unknown)',
      );
    const blockSize = count(replay, 'trace_block_size', 'request.replay.trace_block_size');
    if (blockSize < 1) throw new RowError('request.replay.trace_block_size', 'must be at least 1');
    const input = count(replay, 'input_length', 'request.replay.input_length');
    if (input < 1) throw new RowError('request.replay.input_length', 'must be at least 1');
    const hashes = replay.input_sequence_hashes;
    if (!Array.isArray(hashes))
      throw new RowError('request.replay.input_sequence_hashes', 'must be an array of hashes');
    const needed = Math.ceil(input / blockSize);
    if (hashes.length !== needed)
      throw new RowError(
        'request.replay.input_sequence_hashes',
        `input_length ${input} in blocks of ${blockSize} needs exactly ${needed} hashes, got ${hashes.length}`,
      );
    for (let i = 0; i < hashes.length; i++) {
      const h = hashes[i];
      if (typeof h !== 'number' || !Number.isInteger(h) || h < 0)
        throw new RowError(
          'request.replay.input_sequence_hashes',
          `must hold non-negative integers, got ${JSON.stringify(h)}`,
        );
    }
    const observed: ObservedRequest = {
      ttftMs: measured(req, 'ttft_ms', MAX_OBSERVED_MS),
      itlMs: measured(req, 'avg_itl_ms', MAX_OBSERVED_MS),
      e2eMs: measured(req, 'total_time_ms', MAX_OBSERVED_MS),
      cachedTokens: measured(req, 'cached_tokens', input),
    };
    // Only now, with the row known good here: a rejected row must not claim its id or its hashes.
    if (this.requestIds.has(id))
      throw new RowError('request.request_id', `'${id.slice(0, 80)}' was already read (duplicate record)`);
    this.requestIds.add(id);
    const ids = new Array<number>(hashes.length);
    for (let i = 0; i < hashes.length; i++) ids[i] = this.dense.idOf(hashes[i]);
    return {
      timestampMs: received,
      inputLength: input,
      outputLength: output,
      hashIds: ids,
      traceBlockSize: blockSize,
      observed,
      fields: FIELDS,
    };
  }
}

export const dynamoRequestTraceFormat: TraceFormat = {
  name: 'dynamo',
  description:
    'NVIDIA Dynamo request traces (DYN_REQUEST_TRACE, dynamo.request.trace.v1): request_end records, gzip segments',
  defaultBlockSize: 64,
  denseHashIds: true,
  detect: (firstLine) =>
    firstLine.trimStart().startsWith('{') && firstLine.includes('"dynamo.request.trace.'),
  createParser: () => new DynamoRowParser(),
};
