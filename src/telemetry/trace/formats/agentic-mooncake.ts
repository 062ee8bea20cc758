import { z } from 'zod';
import type { RowParser, TraceDependency, TraceFormat, TraceRecord } from '../format.ts';
import { RowError } from '../issues.ts';
import { jsonObject, mooncakeRecord } from './mooncake.ts';

/**
 * Agentic Mooncake JSONL (NVIDIA's reference simulator's `agentic_mooncake`): Mooncake rows, each with a
 * `request_id`, some waiting for others. Two spellings:
 *
 * - First version: `wait_for` (ids of rows whose completion the row waits for), `delay` and `tool_wait_ms`: a
 *   row that waits starts `delay + tool_wait_ms` ms after the last of them completed; a row that waits for
 *   nothing starts at its `timestamp`. `branches`, `prefix_reset` and `tool_events` are metadata.
 * - Version 2 (a `{"schema": "dynamo.agentic_mooncake", "version": 2, "block_size": N, ...}` header line, as
 *   Dynamo writes them now): `not_before_ms` and `dependencies` of `{request_id, trigger: completion |
 *   dispatch, delay_ms, relation}`: a row starts once every dependency's trigger (the predecessor's completion
 *   or its dispatch) happened plus that dependency's delay, and not before `not_before_ms`; a row without
 *   dependencies starts at `not_before_ms`. `play_id`, `session_id`, `model`, `relation` and the priorities
 *   are metadata; the header's `block_size` is the tokens per hash id.
 *
 * `session_id` only labels rows (the dependencies order them). A row may only wait for rows above it (as in
 * every trace written in start order), so a cycle or a missing id is a bad row named by its line, never a
 * stalled run.
 */

const id = z.union([z.string().min(1, 'must not be empty'), z.number()]);
const ms = z.number().nonnegative('must not be negative');

const FirstVersion = z
  .object({
    request_id: id,
    wait_for: z.array(z.union([z.string(), z.number()])).optional(),
    delay: ms.optional(),
    delay_ms: ms.optional(),
    tool_wait_ms: ms.optional(),
  })
  .passthrough();

const Dependency = z
  .object({
    request_id: id,
    trigger: z.enum(['completion', 'dispatch']).default('completion'),
    delay_ms: ms.default(0),
  })
  .passthrough();

const SecondVersion = z
  .object({
    request_id: id,
    not_before_ms: ms,
    dependencies: z.array(Dependency).optional(),
  })
  .passthrough();

const Header = z
  .object({
    schema: z.literal('dynamo.agentic_mooncake'),
    version: z.literal(2, 'only version 2 is known'),
    block_size: z.number().int('must be an integer').positive('must be positive'),
  })
  .passthrough();

function parsed<S extends z.ZodType>(schema: S, raw: unknown): z.output<S> {
  const r = schema.safeParse(raw);
  if (r.success) return r.data;
  const first = r.error.issues[0];
  throw new RowError(first.path.length > 0 ? first.path.map(String).join('.') : null, first.message);
}

/** The Mooncake fields of a row (without the session fields agentic rows reuse differently). */
function base(raw: Record<string, unknown>): TraceRecord {
  const rec = mooncakeRecord({ ...raw, session_id: undefined, delay: undefined, delay_ms: undefined });
  delete rec.sessionId;
  delete rec.delayMs;
  if (rec.fields) delete rec.fields.delayMs;
  return rec;
}

function firstVersion(raw: Record<string, unknown>): TraceRecord {
  const a = parsed(FirstVersion, raw);
  const rec: TraceRecord = { ...base(raw), requestId: String(a.request_id) };
  const wait = a.wait_for ?? [];
  if (wait.length > 0) {
    const delayMs = (a.delay ?? a.delay_ms ?? 0) + (a.tool_wait_ms ?? 0);
    rec.waitFor = wait.map((w) => ({ requestId: String(w), delayMs }));
    delete rec.timestampMs;
  } else if (rec.timestampMs === undefined) {
    throw new RowError('timestamp', 'is required on a row that waits for nothing');
  }
  return rec;
}

function secondVersion(raw: Record<string, unknown>, blockSize: number | undefined): TraceRecord {
  const a = parsed(SecondVersion, raw);
  const rec: TraceRecord = { ...base({ ...raw, timestamp: undefined }), requestId: String(a.request_id) };
  if (blockSize !== undefined) rec.traceBlockSize = blockSize;
  const deps = a.dependencies ?? [];
  if (deps.length === 0) {
    rec.timestampMs = a.not_before_ms;
    return rec;
  }
  rec.waitFor = deps.map(
    (d): TraceDependency => ({
      requestId: String(d.request_id),
      delayMs: d.delay_ms,
      ...(d.trigger === 'dispatch' ? { onDispatch: true } : {}),
    }),
  );
  if (a.not_before_ms > 0) rec.notBeforeMs = a.not_before_ms;
  return rec;
}

class AgenticRowParser implements RowParser {
  private blockSize: number | undefined;
  private rows = 0;

  parse(line: string): TraceRecord | null {
    const raw = jsonObject(line);
    if (raw.schema !== undefined) {
      if (this.rows > 0) throw new RowError('schema', 'a header line must come first');
      this.blockSize = parsed(Header, raw).block_size;
      return null;
    }
    this.rows++;
    if (this.blockSize !== undefined || raw.not_before_ms !== undefined || raw.dependencies !== undefined)
      return secondVersion(raw, this.blockSize);
    return firstVersion(raw);
  }
}

const KEYS = /"(?:hash_ids|input_length|output_length|input_tokens|output_tokens)"\s*:/;

export const agenticMooncakeFormat: TraceFormat = {
  name: 'agentic_mooncake',
  description:
    'Agentic Mooncake JSONL: request_id with wait_for, delay, tool_wait_ms; or version 2 (dependencies, not_before_ms)',
  defaultBlockSize: 512,
  wholeTrace: true,
  detect: (firstLine) =>
    firstLine.trimStart().startsWith('{') &&
    (/"schema"\s*:\s*"dynamo\.agentic_mooncake"/.test(firstLine) ||
      (/"request_id"\s*:/.test(firstLine) && KEYS.test(firstLine))),
  createParser: () => new AgenticRowParser(),
};
