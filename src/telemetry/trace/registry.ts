import type { TraceFormat } from './format.ts';
import { agenticMooncakeFormat } from './formats/agentic-mooncake.ts';
import { appliedComputeFormat } from './formats/applied-compute.ts';
import { azureFormat } from './formats/azure.ts';
import { dynamoRequestTraceFormat } from './formats/dynamo.ts';
import { mooncakeFormat } from './formats/mooncake.ts';
import { mooncakeDeltaFormat } from './formats/mooncake-delta.ts';

/**
 * The trace formats the reader knows, in detection order (the first whose `detect` accepts the first
 * non-empty line wins). Adding a format: write one module under formats/ and list it here.
 */
// Dynamo records hold Mooncake's key names inside `replay`, so Dynamo is tried first; agentic rows are
// Mooncake rows with a request_id, so they come before Mooncake. mooncake-delta is only used when named.
const FORMATS: readonly TraceFormat[] = [
  dynamoRequestTraceFormat,
  agenticMooncakeFormat,
  mooncakeFormat,
  mooncakeDeltaFormat,
  appliedComputeFormat,
  azureFormat,
];

export function traceFormats(): readonly TraceFormat[] {
  return FORMATS;
}

export function traceFormatNames(): string[] {
  return FORMATS.map((f) => f.name);
}

/** The format of that name, or undefined. */
export function traceFormat(name: string): TraceFormat | undefined {
  return FORMATS.find((f) => f.name === name);
}

/** The first format that recognises the line, or undefined. */
export function detectTraceFormat(firstLine: string): TraceFormat | undefined {
  return FORMATS.find((f) => f.detect(firstLine));
}
