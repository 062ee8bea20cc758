/**
 * The shape of one forward pass on one engine, as aggregates the scheduler accumulates while it builds the
 * batch. Timing models price a pass from these numbers only, so scheduling stays allocation-free and the
 * coalesced decode path can price many passes without touching requests.
 */
export interface PassShape {
  /** Requests that run prompt (prefill) tokens in this pass. */
  prefillRequests: number;
  /** New prompt tokens computed in this pass, summed over prefill requests. */
  prefillNewTokens: number;
  /** Context already present before each request's chunk (prefix-cache hit + earlier chunks), summed. */
  prefillCachedTokens: number;
  /** Attention work of the prefill chunks: sum over requests of c*p + c*(c+1)/2 (c new, p cached tokens). */
  prefillAttentionPairs: number;
  /** Requests that sample a token in this pass (decode batch, including prefills that just finished). */
  decodeRequests: number;
  /** Context length (tokens in KV) of the decode requests, summed. */
  decodeContextTokens: number;
  /** KV tokens held by the engine's pool (active blocks x block size) when the pass runs. */
  activeKvTokens: number;
  /** KV capacity of the engine in tokens. */
  kvCapacityTokens: number;
}

export function emptyPassShape(): PassShape {
  return {
    prefillRequests: 0,
    prefillNewTokens: 0,
    prefillCachedTokens: 0,
    prefillAttentionPairs: 0,
    decodeRequests: 0,
    decodeContextTokens: 0,
    activeKvTokens: 0,
    kvCapacityTokens: 0,
  };
}

export function resetPassShape(s: PassShape): void {
  s.prefillRequests = 0;
  s.prefillNewTokens = 0;
  s.prefillCachedTokens = 0;
  s.prefillAttentionPairs = 0;
  s.decodeRequests = 0;
  s.decodeContextTokens = 0;
  s.activeKvTokens = 0;
}

/**
 * Prices a forward pass. `prefillMs` covers the prompt part and `decodeMs` the sampling part; a pass takes
 * their sum and its tokens are stamped at its end. Implementations must be pure and allocation-free: the
 * simulator calls them millions of times.
 */
export interface TimingModel {
  readonly name: string;
  prefillMs(shape: PassShape): number;
  decodeMs(shape: PassShape): number;
}
