import type { VllmEngine } from '../engine/vllm-engine.ts';

/** Picks an engine for each arriving request and tracks the load it placed. */
export interface Router {
  readonly name: string;
  /**
   * True when choosing reads engine state (loads, caches). Engines are then brought up to date with every
   * arrival before routing; otherwise only the chosen engine is.
   */
  readonly readsState: boolean;
  /** For state-blind routers: the engines the next `count` arrivals will go to, without committing. */
  peekTargets?(count: number, out: number[]): void;
  route(r: number, engines: readonly VllmEngine[], now: number): number;
  onRouted?(r: number, engine: number): void;
  onFirstToken?(r: number, engine: number): void;
  onFinished?(r: number, engine: number): void;
}
