import type { PassShape, TimingModel } from './timing-model.ts';

/** Constant prefill and decode times per pass (the reference's `fixed` model): handy for event-order tests. */
export class FixedTiming implements TimingModel {
  readonly name = 'fixed';
  readonly prefill: number;
  readonly decode: number;
  constructor(prefillMs: number, decodeMs: number) {
    this.prefill = prefillMs;
    this.decode = decodeMs;
  }
  prefillMs(s: PassShape): number {
    return s.prefillRequests > 0 ? this.prefill : 0;
  }
  decodeMs(s: PassShape): number {
    return s.decodeRequests > 0 ? this.decode : 0;
  }
}
