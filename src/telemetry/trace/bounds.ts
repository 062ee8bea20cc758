import { LARGEST_CATALOGUED_CONTEXT } from '../../hardware/models.ts';

/**
 * Limits on every number a trace row carries, enforced at parse so that an absurd row (an output of 1e12
 * tokens, a timestamp of 1e300) ends with a message naming its line and field instead of a RangeError or a
 * run that allocates without bound later.
 */
export interface TraceBounds {
  /** Longest prompt in tokens. Default: the largest context of any catalogued model. */
  maxPromptTokens: number;
  /** Longest requested output in tokens. Default: the same as prompts (an output cannot outgrow a context). */
  maxOutputTokens: number;
  /** Latest timestamp in ms (1e13: epoch milliseconds until the year 2286, or any relative clock). */
  maxTimestampMs: number;
  /** Longest think time of a follow-up turn in ms (1e10: 115 days). */
  maxDelayMs: number;
}

export { LARGEST_CATALOGUED_CONTEXT };

export const DEFAULT_BOUNDS: TraceBounds = {
  maxPromptTokens: LARGEST_CATALOGUED_CONTEXT,
  maxOutputTokens: LARGEST_CATALOGUED_CONTEXT,
  maxTimestampMs: 1e13,
  maxDelayMs: 1e10,
};

/** Size limits of the input itself (before any row is parsed). */
export interface InputLimits {
  /** Bytes of (decompressed) text read at most. */
  maxBytes: number;
  /** Rows (non-empty lines) read at most. */
  maxRows: number;
  /** Longest line in characters; a longer one is a bad row and is never buffered whole. */
  maxLineChars: number;
}

export const DEFAULT_INPUT_LIMITS: InputLimits = {
  maxBytes: 64 * 2 ** 30,
  maxRows: 200_000_000,
  maxLineChars: 16 * 2 ** 20,
};
