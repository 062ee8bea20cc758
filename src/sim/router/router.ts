import type { Engine } from '../engine/engine.ts';

/** Picks an engine for each arriving request and tracks the load it placed. */
export interface Router {
  readonly name: string;
  /**
   * What routing reads, which decides how far engines must be brought up to date before each decision:
   * 'none' (state-blind), 'kv-events' (prefix caches, through KV event logs: only engines whose pending work
   * evicts blocks), 'engines' (queue lengths and the like: every engine).
   */
  readonly reads: 'none' | 'kv-events' | 'engines';
  route(r: number, engines: readonly Engine[], now: number): number;
  onRouted?(r: number, engine: number): void;
  onFirstToken?(r: number, engine: number): void;
  onFinished?(r: number, engine: number): void;
}
