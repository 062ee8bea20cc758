import { RowError } from '../issues.ts';

/**
 * Session prompts for formats whose turns give only what is new (mooncake-delta, applied_compute_agentic): a
 * turn's prompt is the previous turn's prompt and output followed by new tokens, at any token count. Prompts
 * are written in hash ids of a fine unit (16 tokens, or the file block size's largest divisor up to 16) so a
 * turn shares with its predecessor exactly the units it repeats: a first turn's units come from its file
 * hash ids (shared across sessions as far as those agree), everything appended later is new content.
 */
export class SessionPrompts {
  /** Tokens per unit hash id. */
  readonly unit: number;
  private readonly ratio: number;
  private nextFresh = FRESH_BASE;
  /** Per session: its latest prompt's units, that prompt's tokens and the turn's output tokens. */
  private readonly sessions = new Map<string, { units: number[]; tokens: number; output: number }>();

  constructor(fileBlockSize: number) {
    let g = fileBlockSize;
    let b = UNIT;
    while (b !== 0) [g, b] = [b, g % b];
    this.unit = g;
    this.ratio = fileBlockSize / g;
  }

  private fresh(): number {
    return this.nextFresh++;
  }

  /** Units of a prompt of `tokens` tokens given by file hash ids (null: content shared with nothing). */
  private expand(hashIds: readonly number[] | null, tokens: number): number[] {
    const count = Math.ceil(tokens / this.unit);
    const out: number[] = new Array(count);
    if (hashIds === null) {
      for (let k = 0; k < count; k++) out[k] = this.fresh();
      return out;
    }
    if (Math.ceil(count / this.ratio) > hashIds.length)
      throw new RowError('hash_ids', `${hashIds.length} ids do not cover ${tokens} tokens`);
    for (let k = 0; k < count; k++) {
      const h = hashIds[Math.floor(k / this.ratio)];
      if (h >= MAX_FILE_ID) throw new RowError('hash_ids', `holds an id above ${MAX_FILE_ID}`);
      out[k] = h * this.ratio + (k % this.ratio);
    }
    return out;
  }

  /** A prompt that starts a session (or stands alone when `key` is undefined). */
  start(
    key: string | undefined,
    hashIds: readonly number[] | null,
    tokens: number,
    output: number,
  ): number[] {
    const units = this.expand(hashIds, tokens);
    if (key !== undefined) this.sessions.set(key, { units, tokens, output });
    return units.slice();
  }

  /** Whether the session has a turn already. */
  has(key: string): boolean {
    return this.sessions.has(key);
  }

  /**
   * The next turn of session `key`: the previous prompt and its output followed by `added` new tokens.
   * Returns its units and token count.
   */
  extend(key: string, added: number, output: number): { units: number[]; tokens: number } {
    const s = this.sessions.get(key) as { units: number[]; tokens: number; output: number };
    const tokens = s.tokens + s.output + added;
    // Whole units of the previous prompt repeat; the rest (its partial tail, its output, the new tokens) is new.
    const keep = Math.floor(s.tokens / this.unit);
    const count = Math.ceil(tokens / this.unit);
    s.units.length = keep;
    for (let k = keep; k < count; k++) s.units.push(this.fresh());
    s.tokens = tokens;
    s.output = output;
    return { units: s.units.slice(), tokens };
  }
}

const UNIT = 16;
/** Unit ids of new content start here, above every expanded file id (both stay safe integers). */
const FRESH_BASE = 2 ** 52;
const MAX_FILE_ID = 2 ** 47;
