import type { PassShape, TimingModel } from './timing-model.ts';

/**
 * Another timing model with its prefill and decode parts scaled: the per-deployment correction live
 * calibration fits (the deployment's passes run this much slower or faster than the model prices them).
 * Allocation-free like the models it wraps.
 */
export class ScaledTiming implements TimingModel {
  readonly name: string;
  private readonly base: TimingModel;
  readonly prefillFactor: number;
  readonly decodeFactor: number;
  constructor(base: TimingModel, prefillFactor: number, decodeFactor: number) {
    if (!(prefillFactor > 0 && decodeFactor > 0))
      throw new RangeError('timing scale factors must be positive');
    this.base = base;
    this.prefillFactor = prefillFactor;
    this.decodeFactor = decodeFactor;
    this.name = `${base.name} x(${prefillFactor}, ${decodeFactor})`;
  }
  prefillMs(s: PassShape): number {
    return this.base.prefillMs(s) * this.prefillFactor;
  }
  decodeMs(s: PassShape): number {
    return this.base.decodeMs(s) * this.decodeFactor;
  }
}
