import { z } from 'zod';
import type { RowParser, RowParserOptions, TraceFormat, TraceRecord } from '../format.ts';
import { RowError } from '../issues.ts';
import { jsonObject } from './mooncake.ts';
import { SessionPrompts } from './session-prompts.ts';

/**
 * Applied Compute's agentic traces (the TRIE format NVIDIA's reference simulator reads as
 * `applied_compute_agentic`): one session per row, `num_turns` tool calls and a final answer. Turn k answers
 * `assistant_response_length[k]` tokens, then the tool runs `tool_call_latency[k]` seconds and returns
 * `tool_call_output_length[k]` tokens; the next turn's prompt is the previous prompt plus that answer and the
 * tool output. The last turn answers `final_assistant_response_length`. Rows carry no timestamps: replay
 * them with a concurrency (closed loop). Prompts share nothing across sessions. As in the reference, a turn
 * finds in cache the previous prompt's full blocks only: the answer counts in the next prompt's length but
 * not as the blocks that generated it (a delta trace's turn finds those too).
 */

const count = z.number().int('must be an integer').nonnegative('must not be negative');
const MAX_TURNS = 1024;

const RowSchema = z
  .object({
    num_turns: z.number().int('must be an integer').min(0).max(MAX_TURNS, `at most ${MAX_TURNS} turns`),
    input_prompt_length: count.min(1, 'must be at least 1'),
    assistant_response_length: z.array(count),
    tool_call_output_length: z.array(count),
    tool_call_latency: z.array(z.number().nonnegative('must not be negative').max(86_400, 'at most a day')),
    final_assistant_response_length: count,
  })
  .passthrough();

class AppliedComputeParser implements RowParser {
  private readonly prompts: SessionPrompts;
  private rows = 0;

  constructor(opts: RowParserOptions) {
    this.prompts = new SessionPrompts(opts.traceBlockSize);
  }

  parse(line: string): TraceRecord[] {
    const parsed = RowSchema.safeParse(jsonObject(line));
    if (!parsed.success) {
      const first = parsed.error.issues[0];
      throw new RowError(first.path.length > 0 ? String(first.path[0]) : null, first.message);
    }
    const r = parsed.data;
    const n = r.num_turns;
    for (const k of ['assistant_response_length', 'tool_call_output_length', 'tool_call_latency'] as const)
      if (r[k].length !== n) throw new RowError(k, `has ${r[k].length} entries, num_turns is ${n}`);
    const key = `applied-compute-${this.rows++}`;
    const unit = this.prompts.unit;
    const out: TraceRecord[] = [];
    const outputOf = (k: number) =>
      k < n ? r.assistant_response_length[k] : r.final_assistant_response_length;
    const units = this.prompts.start(key, null, r.input_prompt_length, outputOf(0));
    out.push({
      timestampMs: 0,
      sessionId: key,
      inputLength: r.input_prompt_length,
      outputLength: outputOf(0),
      hashIds: units,
      traceBlockSize: unit,
    });
    for (let k = 1; k <= n; k++) {
      const next = this.prompts.extend(key, r.tool_call_output_length[k - 1], outputOf(k));
      out.push({
        sessionId: key,
        delayMs: r.tool_call_latency[k - 1] * 1000,
        inputLength: next.tokens,
        outputLength: outputOf(k),
        hashIds: next.units,
        traceBlockSize: unit,
      });
    }
    return out;
  }
}

export const appliedComputeFormat: TraceFormat = {
  name: 'applied_compute_agentic',
  description: 'Applied Compute agentic sessions (one per row; replay with a concurrency)',
  defaultBlockSize: 512,
  wholeTrace: true,
  detect: (firstLine) => /"num_turns"\s*:/.test(firstLine) && /"input_prompt_length"\s*:/.test(firstLine),
  createParser: (opts) => new AppliedComputeParser(opts),
};
