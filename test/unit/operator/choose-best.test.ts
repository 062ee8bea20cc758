import { describe, expect, it } from 'vitest';
import { settingsDigest } from '../../../src/operator/rollout/decide.ts';
import { chooseBest } from '../../../src/operator/sweep/job.ts';
import { settingsOf } from '../../../src/operator/sweep/mapping.ts';
import type { Candidate } from '../../../src/sweep/space.ts';

/** Which candidate is proposed when the sweep's best already failed verification on the target. */

const candidate = (id: number, workers: number): Candidate => ({
  id,
  gpuType: 'h100_sxm',
  topology: 'aggregated',
  tensorParallel: 1,
  workers,
  router: { mode: 'kv', overlapWeight: 1, overlapCredit: 0, temperature: 0 },
  engine: { engine: 'vllm', maxNumBatchedTokens: 8192, maxNumSeqs: 256, blockSize: 64 },
});
const row = (id: number, workers: number, rank: number | null, feasible = true) => ({
  id,
  label: `${workers}x TP1`,
  candidate: candidate(id, workers),
  rank,
  feasible,
});
const digest = (workers: number) => settingsDigest(settingsOf(candidate(0, workers), 'Qwen/Qwen3-8B'));

describe('chooseBest', () => {
  const rows = [row(1, 3, 1), row(2, 4, 2), row(3, 2, null, false), row(4, 5, 3)];

  it('keeps the recommendation when nothing failed, or when it did not', () => {
    expect(chooseBest(rows, rows[0], [], 'Qwen/Qwen3-8B').best).toBe(rows[0]);
    expect(chooseBest(rows, rows[0], [digest(4)], 'Qwen/Qwen3-8B')).toEqual({ best: rows[0] });
  });

  it('proposes the best-ranked candidate meeting the SLOs that has not failed, and says why', () => {
    const r = chooseBest(rows, rows[0], [digest(3)], 'Qwen/Qwen3-8B');
    expect(r.best).toBe(rows[1]);
    expect(r.note).toMatch(/3x TP1 failed verification on this target before.*best of the rest is 4x TP1/);
    // Infeasible and unranked candidates are never chosen.
    expect(chooseBest(rows, rows[0], [digest(3), digest(4)], 'Qwen/Qwen3-8B').best).toBe(rows[3]);
  });

  it('proposes nothing when every candidate meeting the SLOs has failed', () => {
    const r = chooseBest(rows, rows[0], [digest(3), digest(4), digest(5)], 'Qwen/Qwen3-8B');
    expect(r.best).toBeNull();
    expect(r.note).toMatch(/no other candidate meets the SLOs/);
  });
});
