/** The trace reader: formats (registry.ts), bounds, incremental parsing and reading (see each module). */
export {
  DEFAULT_BOUNDS,
  DEFAULT_INPUT_LIMITS,
  type InputLimits,
  LARGEST_CATALOGUED_CONTEXT,
  type TraceBounds,
} from './bounds.ts';
export type { ObservedRequest, RowParser, TraceFormat, TraceRecord } from './format.ts';
export { formatIssue, RowError, TraceError, type TraceIssue } from './issues.ts';
export {
  describeTraceNotes,
  type Tally,
  type TraceParseOptions,
  TraceParser,
  type TraceRequest,
  type TraceSummary,
} from './parser.ts';
export {
  addToWorkload,
  decodeTrace,
  parseTrace,
  readTrace,
  type TraceInput,
  type TraceLoadResult,
  TraceReader,
  type TraceReadOptions,
} from './read.ts';
export { detectTraceFormat, traceFormat, traceFormatNames, traceFormats } from './registry.ts';
export { type ReplayOptions, type ReplayProgress, type ReplayResult, replayTrace } from './replay.ts';
export { listSegments, parseSegmentName, type Segment, type SegmentOptions } from './segments.ts';
