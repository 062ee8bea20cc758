import { describe, expect, it } from 'vitest';
import { candidateGpus, enumerateCandidates, SearchSpaceSchema } from '../../../src/sweep/space.ts';

describe('search space', () => {
  it('enumerates candidates within each GPU budget and reports what it leaves out', () => {
    const space = SearchSpaceSchema.parse({
      tensorParallel: [1, 4, 16],
      router: { modes: ['round-robin', 'kv'], overlapWeights: [1, 2] },
    });
    const { candidates, pruned } = enumerateCandidates(space, [
      { type: 'h100', count: 8 },
      { type: 'a100', count: 3 },
    ]);
    for (const c of candidates) {
      const budget = c.gpuType === 'h100' ? 8 : 3;
      expect(candidateGpus(c)).toBeLessThanOrEqual(budget);
    }
    // h100: TP1 x 1..8 workers, TP4 x 1..2; one router variant at 1 worker, three otherwise.
    expect(candidates.filter((c) => c.gpuType === 'h100').length).toBe(1 + 7 * 3 + 1 + 1 * 3);
    expect(pruned.map((p) => p.label)).toEqual(['h100 TP16', 'a100 TP4', 'a100 TP16']);
    expect(pruned[0].reason).toBe('needs 16 GPUs, budget has 8');
    expect(new Set(candidates.map((c) => c.id)).size).toBe(candidates.length);
  });

  it('applies a veto (e.g. memory) per shape, with its reason', () => {
    const space = SearchSpaceSchema.parse({ tensorParallel: [1, 2], workers: [1, 2] });
    const { candidates, pruned } = enumerateCandidates(space, [{ type: 'l40s', count: 4 }], (_gpu, tp) =>
      tp < 2 ? 'model weights need 140 GB, 1 GPU has 48 GB' : null,
    );
    expect(candidates.every((c) => c.tensorParallel === 2)).toBe(true);
    expect(pruned).toContainEqual({
      label: 'l40s TP1',
      reason: 'model weights need 140 GB, 1 GPU has 48 GB',
    });
  });

  it('validates space files field by field', () => {
    const r = SearchSpaceSchema.safeParse({ tensorParallel: [0], router: { modes: ['fastest'] } });
    expect(r.success).toBe(false);
    const paths = r.success ? [] : r.error.issues.map((i) => i.path.join('.'));
    expect(paths).toContain('tensorParallel.0');
    expect(paths).toContain('router.modes.0');
    expect(SearchSpaceSchema.safeParse({ workers: { min: 5, max: 2 } }).success).toBe(false);
    expect(SearchSpaceSchema.safeParse({ extra: 1 }).success).toBe(false);
  });
});
