import { z } from 'zod';
import type { TraceFormat, TraceRecord } from '../format.ts';
import { RowError } from '../issues.ts';

/**
 * Mooncake JSONL (FAST'25 trace release) plus the session extension NVIDIA's reference simulator reads:
 * `timestamp` (ms), `input_length`, `output_length`, `hash_ids` (512 tokens each), and for multi-turn traces
 * `session_id` with `delay` (ms of think time) on follow-up turns. The aliases the reference accepts
 * (`created_time`, `input_tokens`, `output_tokens`, `delay_ms`) are read too.
 */

const count = z.number().int('must be an integer').nonnegative('must not be negative');
const time = z.number().nonnegative('must not be negative');

const RowSchema = z
  .object({
    timestamp: time.optional(),
    created_time: time.optional(),
    input_length: count.optional(),
    input_tokens: count.optional(),
    output_length: count.optional(),
    output_tokens: count.optional(),
    hash_ids: z
      .array(z.number().int('must hold integers').nonnegative('must hold non-negative integers'))
      .optional(),
    session_id: z.union([z.string(), z.number()]).optional(),
    delay: time.optional(),
    delay_ms: time.optional(),
  })
  .passthrough();

type Row = z.infer<typeof RowSchema>;

const isCount = (v: unknown) => v === undefined || (typeof v === 'number' && Number.isInteger(v) && v >= 0);
const isTime = (v: unknown) => v === undefined || (typeof v === 'number' && v >= 0);

/**
 * The schema's checks by hand for the common case: a row that passes is used as is, anything else goes
 * through the schema, which names what is wrong. Saves most of the cost of reading large traces.
 */
function validRow(raw: Record<string, unknown>): Row | null {
  if (!isTime(raw.timestamp) || !isTime(raw.created_time) || !isTime(raw.delay) || !isTime(raw.delay_ms))
    return null;
  if (!isCount(raw.input_length) || !isCount(raw.input_tokens)) return null;
  if (!isCount(raw.output_length) || !isCount(raw.output_tokens)) return null;
  const h = raw.hash_ids;
  if (h !== undefined) {
    if (!Array.isArray(h)) return null;
    for (let i = 0; i < h.length; i++) {
      const v = h[i];
      if (typeof v !== 'number' || !Number.isInteger(v) || v < 0) return null;
    }
  }
  const sid = raw.session_id;
  if (sid !== undefined && typeof sid !== 'string' && typeof sid !== 'number') return null;
  return raw as Row;
}

/** Parses one JSONL line into an object, or names what is wrong with it. */
export function jsonObject(line: string): Record<string, unknown> {
  let raw: unknown;
  try {
    raw = JSON.parse(line);
  } catch (e) {
    throw new RowError(null, `not valid JSON (${(e as Error).message})`);
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw))
    throw new RowError(null, 'expected a JSON object');
  return raw as Record<string, unknown>;
}

/** A Mooncake row as a record (the delta and agentic formats read the same fields). */
export function mooncakeRecord(raw: Record<string, unknown>): TraceRecord {
  let row = validRow(raw);
  if (row === null) {
    const parsed = RowSchema.safeParse(raw);
    if (!parsed.success) {
      const first = parsed.error.issues[0];
      const field = first.path.length > 0 ? String(first.path[0]) : null;
      const got = field !== null ? raw[field] : undefined;
      throw new RowError(field, `${first.message}${got !== undefined ? `, got ${JSON.stringify(got)}` : ''}`);
    }
    row = parsed.data;
  }
  const output = row.output_length ?? row.output_tokens;
  if (output === undefined) throw new RowError('output_length', 'is required');
  const rec: TraceRecord = { outputLength: output };
  const ts = row.timestamp ?? row.created_time;
  if (ts !== undefined) rec.timestampMs = ts;
  const input = row.input_length ?? row.input_tokens;
  if (input !== undefined) rec.inputLength = input;
  if (row.hash_ids !== undefined) rec.hashIds = row.hash_ids;
  if (row.session_id !== undefined) rec.sessionId = String(row.session_id);
  const delay = row.delay ?? row.delay_ms;
  if (delay !== undefined) rec.delayMs = delay;
  if (
    row.output_length === undefined ||
    (row.timestamp === undefined && row.created_time !== undefined) ||
    (row.input_length === undefined && row.input_tokens !== undefined) ||
    (row.delay === undefined && row.delay_ms !== undefined)
  ) {
    rec.fields = {
      outputLength: row.output_length !== undefined ? 'output_length' : 'output_tokens',
      timestampMs: row.timestamp !== undefined ? 'timestamp' : 'created_time',
      inputLength: row.input_length !== undefined ? 'input_length' : 'input_tokens',
      delayMs: row.delay !== undefined ? 'delay' : 'delay_ms',
    };
  }
  return rec;
}

const KEYS = /"(?:hash_ids|input_length|output_length|input_tokens|output_tokens)"\s*:/;

export const mooncakeFormat: TraceFormat = {
  name: 'mooncake',
  description:
    "Mooncake JSONL (FAST'25): timestamp, input_length, output_length, hash_ids; session_id, delay",
  defaultBlockSize: 512,
  detect: (firstLine) => firstLine.trimStart().startsWith('{') && KEYS.test(firstLine),
  createParser: () => ({ parse: (line) => mooncakeRecord(jsonObject(line)) }),
};
