import type { TraceFormat } from './format.ts';
import { mooncakeFormat } from './formats/mooncake.ts';

/**
 * The trace formats the reader knows, in detection order (the first whose `detect` accepts the first
 * non-empty line wins). Adding a format: write one module under formats/ and list it here.
 */
const FORMATS: readonly TraceFormat[] = [mooncakeFormat];

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
