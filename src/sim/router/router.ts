import type { Engine } from '../engine/engine.ts';

/**
 * Picks an engine for each arriving request and tracks the load it placed. Engines are addressed by their
 * slot in the pool (`engines[slot]`). A pool whose workers change at run time (the planner) passes
 * `eligible`, 1 for slots that may take new requests: starting and draining workers are skipped. A slot is
 * reused for a new worker only after the old one left; `resetSlot` then drops what the router knew of it.
 */
export interface Router {
  readonly name: string;
  /**
   * What routing reads, which decides how far engines must be brought up to date before each decision:
   * 'none' (state-blind), 'kv-events' (prefix caches, through KV event logs: only engines whose pending work
   * evicts blocks), 'engines' (queue lengths and the like: every engine).
   */
  readonly reads: 'none' | 'kv-events' | 'engines';
  route(r: number, engines: readonly Engine[], now: number, eligible?: Uint8Array | null): number;
  onRouted?(r: number, engine: number): void;
  onFirstToken?(r: number, engine: number): void;
  onFinished?(r: number, engine: number): void;
  /** Prefix-cache keys the router keeps (see KeySpace compaction). */
  markKeys?(live: Uint8Array): void;
  remapKeys?(map: Int32Array): void;
  /** The pool grew by one slot (the new slot is `engines.length - 1` at the next route). */
  addSlot?(): void;
  /** A new worker takes over `slot`: forget the previous occupant's cache view. */
  resetSlot?(slot: number): void;
}

/** Index of the k-th (0-based) eligible slot. */
export function nthEligible(eligible: Uint8Array, count: number, k: number): number {
  for (let e = 0; e < count; e++) {
    if (eligible[e] === 0) continue;
    if (k-- === 0) return e;
  }
  return -1;
}

export function countEligible(eligible: Uint8Array, count: number): number {
  let n = 0;
  for (let e = 0; e < count; e++) n += eligible[e];
  return n;
}
