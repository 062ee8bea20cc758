/**
 * A deterministic stand-in for a model's tokenizer. The twin needs two things from a prompt: how many tokens
 * it has and which of its leading blocks are identical to another prompt's (so repeated prefixes hit the
 * simulated prefix cache). Any stable split with real tokenizers' granularity serves; this one cuts words into
 * pieces of up to 4 characters (BPE averages about 4 characters per English token), gives every punctuation or
 * symbol its own token, attaches a run of whitespace to the token that follows it, and ids each piece by its
 * FNV-1a hash. Hand-written rather than a real BPE vocabulary: no model files, no allocation per character,
 * the same ids on every machine.
 */

const FNV_OFFSET = 0x811c9dc5;
const FNV_PRIME = 0x01000193;

/** Characters per word piece. */
const PIECE = 4;

function isWordChar(c: number): boolean {
  return (
    (c >= 48 && c <= 57) || // 0-9
    (c >= 65 && c <= 90) || // A-Z
    (c >= 97 && c <= 122) || // a-z
    c === 95 || // _
    c >= 0xc0 // letters of other scripts (and other non-ASCII, which is good enough here)
  );
}

function isSpace(c: number): boolean {
  return c === 32 || (c >= 9 && c <= 13) || c === 0xa0;
}

/**
 * Calls `emit(tokenId)` for each token of `text` in order and returns the count; stops (returning `limit`)
 * once `limit` tokens were emitted, so a hostile prompt costs at most what the model may accept.
 */
export function forEachToken(
  text: string,
  emit: (id: number) => void,
  limit = Number.POSITIVE_INFINITY,
): number {
  let count = 0;
  let h = FNV_OFFSET;
  let inPiece = false;
  let pieceLen = 0;
  const flush = () => {
    emit(h >>> 0);
    count++;
    h = FNV_OFFSET;
    inPiece = false;
    pieceLen = 0;
  };
  for (let i = 0; i < text.length && count < limit; i++) {
    const c = text.charCodeAt(i);
    if (isSpace(c)) {
      if (inPiece && pieceLen > 0) flush();
      // Whitespace prefixes the next token (as GPT-style tokenizers do): it enters the hash without a piece.
      h = Math.imul(h ^ c, FNV_PRIME);
      inPiece = true;
      continue;
    }
    if (isWordChar(c)) {
      if (pieceLen === PIECE) flush();
      h = Math.imul(h ^ c, FNV_PRIME);
      inPiece = true;
      pieceLen++;
      continue;
    }
    // Punctuation or symbol: ends a word piece and is a token of its own (with any whitespace before it).
    if (inPiece && pieceLen > 0) flush();
    h = Math.imul(h ^ c, FNV_PRIME);
    pieceLen = 1;
    inPiece = true;
    flush();
  }
  // Trailing whitespace alone is one token too, as in real tokenizers.
  if (inPiece && count < limit) flush();
  return count;
}

/** Number of tokens of `text` (capped at `limit`). */
export function countTokens(text: string, limit = Number.POSITIVE_INFINITY): number {
  return forEachToken(text, () => {}, limit);
}

/**
 * Prefix identity of a prompt: one content id per `blockSize` tokens (the last, partial block included), each
 * a 53-bit hash of that block's token ids, for the simulator (which chains them into prefix keys itself), plus
 * the prompt length. Two prompts get equal leading ids exactly as far as their leading blocks are equal.
 */
export interface PromptIdentity {
  tokens: number;
  /** Content id per block: `ceil(tokens / blockSize)` entries. */
  blockIds: number[];
}

/** Accumulates token ids into per-block content ids. */
class BlockHasher {
  readonly blockIds: number[] = [];
  private inBlock = 0;
  private a = FNV_OFFSET;
  private b = 0x9e3779b9;
  private readonly blockSize: number;
  constructor(blockSize: number) {
    this.blockSize = blockSize;
  }
  push(id: number): void {
    this.a = Math.imul(this.a ^ id, FNV_PRIME);
    this.b = Math.imul(this.b ^ id, 0x85ebca6b) ^ (this.b >>> 13);
    if (++this.inBlock === this.blockSize) {
      this.blockIds.push(to53(this.a, this.b));
      this.inBlock = 0;
      this.a = FNV_OFFSET;
      this.b = 0x9e3779b9;
    }
  }
  finish(): number[] {
    if (this.inBlock > 0) this.blockIds.push(to53(this.a, this.b));
    this.inBlock = 0;
    return this.blockIds;
  }
}

export function promptIdentity(
  text: string,
  blockSize: number,
  limit = Number.POSITIVE_INFINITY,
): PromptIdentity {
  const h = new BlockHasher(blockSize);
  const tokens = forEachToken(text, (id) => h.push(id), limit);
  return { tokens, blockIds: h.finish() };
}

/** The identity of a prompt given as token ids (the completions API accepts those). */
export function identityOfTokenIds(ids: readonly number[], blockSize: number): PromptIdentity {
  const h = new BlockHasher(blockSize);
  for (const id of ids) h.push(id >>> 0);
  return { tokens: ids.length, blockIds: h.finish() };
}

/**
 * Extends a prompt identity to `tokens` tokens (a `prompt_tokens` hint longer than the text): the extra
 * blocks get ids derived from the whole prompt's identity, so two requests share them only when their text and
 * hint agree. A hint shorter than the text truncates it.
 */
export function withLength(p: PromptIdentity, tokens: number, blockSize: number): PromptIdentity {
  const blocks = Math.ceil(tokens / blockSize);
  if (blocks <= p.blockIds.length) return { tokens, blockIds: p.blockIds.slice(0, blocks) };
  let seed = 0x2545f491;
  for (const id of p.blockIds)
    seed = Math.imul(seed ^ (id % 0x100000000), FNV_PRIME) ^ Math.floor(id / 2 ** 32);
  seed = Math.imul(seed ^ p.tokens, FNV_PRIME);
  const ids = p.blockIds.slice();
  // The partial last block of the text is no longer the prompt's last block: its content changed.
  if (p.tokens % blockSize !== 0 && ids.length > 0)
    ids[ids.length - 1] = to53(ids[ids.length - 1] >>> 0, seed);
  for (let i = ids.length; i < blocks; i++) ids.push(to53(Math.imul(seed ^ i, FNV_PRIME), seed + i));
  return { tokens, blockIds: ids };
}

/** 53 bits from two 32-bit hashes (a non-negative safe integer, exact in JSON). */
function to53(a: number, b: number): number {
  const hi = Math.imul(b ^ (a >>> 15), 0x2c1b3c6d) >>> 11; // 21 bits
  return hi * 2 ** 32 + (Math.imul(a ^ (b >>> 16), 0x297a2d39) >>> 0);
}

/** Text for the `i`-th generated token of a response: deterministic filler words. */
const WORDS = [
  ' the',
  ' twin',
  ' of',
  ' a',
  ' model',
  ' serving',
  ' tokens',
  ' at',
  ' simulated',
  ' speed',
  '.',
];
export function generatedText(i: number): string {
  return WORDS[i % WORDS.length];
}
