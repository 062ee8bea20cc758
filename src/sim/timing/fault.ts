import type { PassShape, TimingModel } from './timing-model.ts';

/**
 * A timing model whose passes take `factor` times as long as another's, changed at run time: a worker made
 * slower than the model predicts (fault injection in a driven simulation: a degraded GPU, a noisy
 * neighbour). Factor 1 prices exactly as the model it wraps.
 */
export class FaultTiming implements TimingModel {
  readonly name: string;
  private readonly base: TimingModel;
  factor = 1;

  constructor(base: TimingModel) {
    this.base = base;
    this.name = base.name;
  }

  prefillMs(shape: PassShape): number {
    return this.base.prefillMs(shape) * this.factor;
  }

  decodeMs(shape: PassShape): number {
    return this.base.decodeMs(shape) * this.factor;
  }
}
