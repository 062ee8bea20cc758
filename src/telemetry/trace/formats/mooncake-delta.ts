import type { RowParser, RowParserOptions, TraceFormat, TraceRecord } from '../format.ts';
import { RowError } from '../issues.ts';
import { jsonObject, mooncakeRecord } from './mooncake.ts';
import { SessionPrompts } from './session-prompts.ts';

/**
 * Mooncake JSONL whose follow-up turns give only their new prompt segment (NVIDIA's reference simulator's
 * `mooncake-delta`): a turn's prompt is the previous turn's prompt and output followed by the row's
 * `input_length` tokens. Same fields as Mooncake; rows cannot be told apart from it, so the format is only
 * used when named (`--trace-format mooncake-delta`).
 */
class DeltaRowParser implements RowParser {
  private readonly prompts: SessionPrompts;
  private readonly fileBlockSize: number;

  constructor(opts: RowParserOptions) {
    this.prompts = new SessionPrompts(opts.traceBlockSize);
    this.fileBlockSize = opts.traceBlockSize;
  }

  parse(line: string): TraceRecord {
    const rec = mooncakeRecord(jsonObject(line));
    const key = rec.sessionId;
    const unit = this.prompts.unit;
    const added = rec.inputLength ?? (rec.hashIds ? rec.hashIds.length * this.fileBlockSize : 0);
    if (added < 1) throw new RowError('input_length', 'is required (or hash_ids)');
    if (key !== undefined && this.prompts.has(key)) {
      const next = this.prompts.extend(key, added, rec.outputLength);
      return {
        ...rec,
        inputLength: next.tokens,
        hashIds: next.units,
        traceBlockSize: unit,
        extendsPrevious: true,
      };
    }
    const units = this.prompts.start(key, rec.hashIds ?? null, added, rec.outputLength);
    return { ...rec, inputLength: added, hashIds: units, traceBlockSize: unit };
  }
}

export const mooncakeDeltaFormat: TraceFormat = {
  name: 'mooncake-delta',
  description: 'Mooncake JSONL whose follow-up turns hold only their new prompt segment (named only)',
  defaultBlockSize: 512,
  wholeTrace: true,
  detect: () => false,
  createParser: (opts) => new DeltaRowParser(opts),
};
