import { describe, expect, it } from 'vitest';
import { withWarmup } from '../../../src/telemetry/calibration/warmup.ts';
import { mooncake, synthetic } from '../../support/sim.ts';

describe('calibration warm-up', () => {
  it("precedes the window with its first span: shared prefix blocks kept, a request's own renamed", () => {
    // Two requests share block 1 (a system prompt); blocks 2, 3 and 4 are each one request's own.
    const w = mooncake([
      { timestamp: 0, input_length: 1024, output_length: 8, hash_ids: [1, 2] },
      { timestamp: 400, input_length: 1024, output_length: 8, hash_ids: [1, 3] },
      { timestamp: 2000, input_length: 512, output_length: 8, hash_ids: [4] },
    ]);
    const warmed = withWarmup(w, { spanMs: 1000, maxRows: 100 });
    const x = warmed.workload;
    expect(warmed.measureFromMs).toBe(1000);
    expect(warmed.warmupRequests).toBe(2);
    expect(x.size).toBe(5);
    expect(Array.from(x.arrivalMs)).toEqual([0, 400, 1000, 1400, 3000]);
    const ids = (i: number) => Array.from(x.hashIds.subarray(x.hashOffsets[i], x.hashOffsets[i + 1]));
    const [shared, own] = ids(0);
    expect(shared).toBe(ids(2)[0]);
    expect(own).not.toBe(ids(2)[1]);
    expect(ids(2)).toEqual(Array.from(w.hashIds.subarray(w.hashOffsets[0], w.hashOffsets[1])));
    expect(new Set([...ids(0), ...ids(1)]).size).toBe(3);
    expect(Array.from(x.inputLength)).toEqual([1024, 1024, 1024, 1024, 512]);
  });

  it('counts against the row bound, keeps sessions whole and their turns linked', () => {
    const w = synthetic({ sessions: 40, turnsPerSession: 3, interTurnDelayMs: 200 });
    let span = 0;
    for (let i = 0; i < w.size; i++) if (!Number.isNaN(w.arrivalMs[i])) span = Math.max(span, w.arrivalMs[i]);
    const warmed = withWarmup(w, { spanMs: span / 2, maxRows: w.size + 10 });
    const x = warmed.workload;
    expect(x.size).toBeLessThanOrEqual(w.size + 10);
    expect(warmed.warmupRequests % 3).toBe(0);
    expect(warmed.warmupRequests).toBeGreaterThan(0);
    for (let i = 0; i < x.size; i++) {
      const next = x.nextTurn[i];
      if (next < 0) continue;
      // A turn links to a later turn of its own session, on its own side of the window's start.
      expect(next).toBeGreaterThan(i);
      expect(x.session[next]).toBe(x.session[i]);
      expect(next < warmed.warmupRequests).toBe(i < warmed.warmupRequests);
    }
    for (let i = 0; i < warmed.warmupRequests; i++)
      if (!Number.isNaN(x.arrivalMs[i])) expect(x.arrivalMs[i]).toBeLessThan(warmed.measureFromMs);
    // No room: the window as is.
    expect(withWarmup(w, { spanMs: span / 2, maxRows: w.size }).workload).toBe(w);
  });
});
