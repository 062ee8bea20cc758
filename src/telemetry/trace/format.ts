/**
 * A trace format: how to recognise it from its first row and how to turn one line into a {@link TraceRecord}.
 * Formats only map fields: bounds, session linking, hash-id consistency and error locations are the reader's
 * (see assembler.ts), so a new format is one small module registered in registry.ts.
 */

/** One request as a trace describes it, in the format-neutral shape every format maps onto. */
export interface TraceRecord {
  /** Arrival time (ms) of an independent request or a session's first turn. */
  timestampMs?: number;
  /** Prompt tokens; when absent, all the tokens the hash ids cover. */
  inputLength?: number;
  outputLength: number;
  /** Prefix block ids (`traceBlockSize` tokens each; equal prefixes of ids = shared prompt prefix). */
  hashIds?: readonly number[];
  /** Multi-turn sessions: turns of a session follow one another in file order. */
  sessionId?: string;
  /** Follow-up turns: think time (ms) after the previous turn completes. */
  delayMs?: number;
  /**
   * Tokens per hash id, for formats whose rows say it (Dynamo request traces): the first row's value is the
   * trace's, and a row with another is bad. Overrides the caller's block size, which could only be wrong.
   */
  traceBlockSize?: number;
  /** What the serving system measured for this request, when the format records it. */
  observed?: ObservedRequest;
  /**
   * Agentic traces: the row's id, and the rows above it it waits for (it then has no timestamp of its own and
   * starts once every one of them completed, or was dispatched, plus that edge's delay; and not before
   * `notBeforeMs` when given).
   */
  requestId?: string;
  waitFor?: readonly TraceDependency[];
  notBeforeMs?: number;
  /** A follow-up turn whose prompt is the previous turn's prompt and output followed by new tokens. */
  extendsPrevious?: boolean;
  /** Names the fields the values came from (for messages), when they differ from the defaults. */
  fields?: Partial<
    Record<'timestampMs' | 'inputLength' | 'outputLength' | 'hashIds' | 'delayMs' | 'traceBlockSize', string>
  >;
}

/** Latencies and cache hits a recorded request carries (Dynamo request traces); each may be absent (NaN). */
export interface ObservedRequest {
  ttftMs: number;
  /** Mean inter-token latency of the request. */
  itlMs: number;
  /** End to end, from receipt to the last token. */
  e2eMs: number;
  /** Prompt tokens served from the prefix cache. */
  cachedTokens: number;
}

/** An agentic row's wait for an earlier row. */
export interface TraceDependency {
  requestId: string;
  /** Ms after the event below. */
  delayMs: number;
  /** Waits for the row's dispatch (its arrival) instead of its completion. */
  onDispatch?: boolean;
}

/** Parses the lines of one trace; may keep state (a CSV header, say). */
export interface RowParser {
  /**
   * The record of a non-empty line, or null for a line that carries no request (a header, a comment), or
   * several for a row that describes a whole session.
   */
  parse(line: string): TraceRecord | readonly TraceRecord[] | null;
}

/** What a row parser may need to know of the trace. */
export interface RowParserOptions {
  /** Tokens per hash id of the file (the caller's, else the format's default). */
  traceBlockSize: number;
}

export interface TraceFormat {
  /** Name used by `--trace-format` and in messages. */
  readonly name: string;
  readonly description: string;
  /** Tokens per hash id when the caller does not say. */
  readonly defaultBlockSize: number;
  /**
   * The format hands out hash ids already dense (0, 1, 2, ... in first-seen order, over the whole trace)
   * and every row has some: workload builders take them as they are, without a second map.
   */
  readonly denseHashIds?: boolean;
  /**
   * Rows refer to one another (dependency DAGs, turns continuing earlier turns' outputs): the trace is read
   * whole, within the reader's bounds, before it is replayed.
   */
  readonly wholeTrace?: boolean;
  /** True when the first non-empty line looks like this format (cheap; the row parser validates). */
  detect(firstLine: string): boolean;
  createParser(opts: RowParserOptions): RowParser;
}
