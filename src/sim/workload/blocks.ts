import { PairInterner } from './pair-interner.ts';
import type { Workload } from './workload.ts';

/**
 * Engine-level KV block keys for every request of a workload at one engine block size.
 *
 * A block key stands for a chained (sequence) hash: equal keys <=> equal token content from the start of the
 * prompt through the end of that block. Prompt tokens come from hash ids (each `traceBlockSize` copies of one
 * token), so prompts share keys exactly as far as their hash-id prefixes agree. Keys are dense integers, which
 * lets the KV cache index them in typed arrays instead of hashing byte strings.
 *
 * Only full blocks get keys. Blocks that hold generated tokens (or the prompt's partial tail plus generated
 * tokens) can never be shared with another request, so each request owns a private range of keys for them:
 * block j >= promptBlocks[i] of request i has key `uniqueBase[i] + (j - promptBlocks[i])`.
 */
export interface BlockLayout {
  readonly blockSize: number;
  /** Prompt full-block keys of request i: `keys[offsets[i] .. offsets[i] + promptBlocks[i])`. */
  readonly offsets: Int32Array;
  readonly promptBlocks: Int32Array;
  readonly keys: Int32Array;
  /** Keys below this are prompt blocks (shareable); the rest are private generated-token blocks. */
  readonly promptKeySpace: number;
  /** First key of request i's private range (blocks holding generated tokens). */
  readonly uniqueBase: Int32Array;
  /** One past the largest key in use. */
  readonly keySpace: number;
}

export function layoutBlocks(w: Workload, blockSize: number): BlockLayout {
  if (!Number.isInteger(blockSize) || blockSize < 1)
    throw new RangeError(`block size must be a positive integer`);
  const n = w.size;
  const tb = w.traceBlockSize;
  const offsets = new Int32Array(n + 1);
  const promptBlocks = new Int32Array(n);
  let total = 0;
  for (let i = 0; i < n; i++) {
    offsets[i] = total;
    const f = Math.floor(w.inputLength[i] / blockSize);
    promptBlocks[i] = f;
    total += f;
  }
  offsets[n] = total;
  const keys = new Int32Array(total);
  // Interned prefix nodes: (parent node, content) -> node id. Content is a dense hash id.
  let contentSpace = 0;
  for (let k = 0; k < w.hashIds.length; k++)
    if (w.hashIds[k] >= contentSpace) contentSpace = w.hashIds[k] + 1;
  // The per-content fast path of the interner costs 4 bytes per hash id: skip it if the ids are sparse.
  if (contentSpace > 4 * w.hashIds.length + 1024) contentSpace = 0;
  const nodes = new PairInterner(w.hashIds.length, contentSpace);

  let keySpace = 0;
  if (tb % blockSize === 0) {
    // Each hash id splits into `ratio` engine blocks: key = node(prefix through hash id) * ratio + sub-block.
    const ratio = tb / blockSize;
    for (let i = 0; i < n; i++) {
      const f = promptBlocks[i];
      const h0 = w.hashOffsets[i];
      const off = offsets[i];
      let node = -1;
      for (let hi = 0, j = 0; j < f; hi++) {
        node = nodes.intern(node, w.hashIds[h0 + hi]);
        const base = node * ratio;
        for (let s = 0; s < ratio && j < f; s++, j++) keys[off + j] = base + s;
      }
    }
    keySpace = nodes.size * ratio;
  } else {
    // General case: a block may straddle hash ids; chain through every hash id it covers, tagging the
    // chained node as a block boundary so partial and whole coverings never collide.
    for (let i = 0; i < n; i++) {
      const f = promptBlocks[i];
      const h0 = w.hashOffsets[i];
      let node = -1;
      for (let j = 0; j < f; j++) {
        const first = Math.floor((j * blockSize) / tb);
        const last = Math.floor(((j + 1) * blockSize - 1) / tb);
        for (let hi = first; hi <= last; hi++) node = nodes.intern(node, w.hashIds[h0 + hi]);
        node = nodes.intern(node, -2); // block-boundary marker (hash ids are >= 0)
        keys[offsets[i] + j] = node;
      }
    }
    keySpace = nodes.size;
  }

  const uniqueBase = new Int32Array(n);
  let next = keySpace;
  for (let i = 0; i < n; i++) {
    uniqueBase[i] = next;
    const all = Math.ceil((w.inputLength[i] + w.outputLength[i]) / blockSize);
    next += all - promptBlocks[i] + 1;
    if (next > 0x7fffffff)
      throw new RangeError('workload too large for 32-bit block keys at this block size');
  }
  return { blockSize, offsets, promptBlocks, keys, promptKeySpace: keySpace, uniqueBase, keySpace: next };
}

/** Key of block j of request i (prompt block or private generated block). */
export function blockKey(layout: BlockLayout, i: number, j: number): number {
  const f = layout.promptBlocks[i];
  return j < f ? layout.keys[layout.offsets[i] + j] : layout.uniqueBase[i] + (j - f);
}
