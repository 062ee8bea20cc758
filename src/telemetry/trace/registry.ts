import type { TraceFormat } from './format.ts';
import { azureFormat } from './formats/azure.ts';
import { dynamoRequestTraceFormat } from './formats/dynamo.ts';
import { mooncakeFormat } from './formats/mooncake.ts';

/**
 * The trace formats the reader knows, in detection order (the first whose `detect` accepts the first
 * non-empty line wins). Adding a format: write one module under formats/ and list it here.
 */
// Dynamo records hold Mooncake's key names inside `replay`, so Dynamo is tried first.
const FORMATS: readonly TraceFormat[] = [dynamoRequestTraceFormat, mooncakeFormat, azureFormat];

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
