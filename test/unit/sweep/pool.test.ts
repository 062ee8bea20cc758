import { describe, expect, it } from 'vitest';
import { type EvalTask, EvaluationPool } from '../../../src/sweep/pool.ts';
import { enumerateCandidates, SearchSpaceSchema } from '../../../src/sweep/space.ts';
import { conversationSample } from '../../support/sim.ts';

/** The evaluation pool survives its workers dying: the task fails with the reason, the run goes on. */

const workload = conversationSample(300);
const base = {
  timing: { model: 'polynomial' as const, prefillMs: 10, decodeMs: 5 },
  traceBlockSize: 512,
  arrivalSpeedupRatio: 1,
  seed: 0,
  prices: {},
  slos: [],
};
const { candidates } = enumerateCandidates(
  SearchSpaceSchema.parse({ tensorParallel: [1], workers: [1, 2, 3], router: { modes: ['round-robin'] } }),
  [{ type: 'h100', count: 8 }],
);
const tasks: EvalTask[] = candidates.map((candidate) => ({ candidate, fraction: 1 }));

describe('EvaluationPool', () => {
  it('fails the task of a worker killed mid-run, replaces the worker and finishes the rest', async () => {
    const pool = new EvaluationPool(workload, base, 1);
    try {
      let killed = false;
      const out = await pool.run(tasks, () => {
        if (!killed) {
          killed = true;
          void pool.liveWorkers()[0].terminate();
        }
      });
      expect(out[0].metrics).not.toBeNull();
      expect(out[1].metrics).toBeNull();
      expect(out[1].error).toMatch(/exited/);
      expect(out[2].metrics).not.toBeNull();
      expect(pool.replaced).toBe(1);
      // And the next run works as usual (it used to wait for ever on the dead worker).
      const again = await pool.run(tasks);
      expect(again.every((o) => o.metrics !== null)).toBe(true);
    } finally {
      await pool.close();
    }
  });
});
