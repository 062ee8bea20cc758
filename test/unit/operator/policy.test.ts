import { describe, expect, it } from 'vitest';
import type { ServingSettings } from '../../../src/api/index.ts';
import { decideProposal, sameSettings } from '../../../src/operator/policy.ts';
import { recommendationName } from '../../../src/operator/recommendations.ts';
import { Semaphore } from '../../../src/operator/semaphore.ts';

const settings = (
  workers: number,
  mode: ServingSettings['router']['mode'] = 'RoundRobin',
): ServingSettings => ({
  gpuType: 'h100_sxm',
  gpus: workers,
  topology: 'Aggregated',
  aggregated: { workers, tensorParallel: 1, gpusPerWorker: 1 },
  router: { mode },
  planner: { enabled: false },
});

const input = (over: Partial<Parameters<typeof decideProposal>[0]> = {}) => ({
  best: { settings: settings(2, 'KV') },
  baseline: settings(4),
  baselineMeetsSlos: true,
  gainPercent: 50,
  objective: 'ThroughputPerGPU',
  guardrails: { minImprovementPercent: 10, minProposalInterval: '1h' },
  completedTime: '2026-01-01T12:00:00Z',
  ...over,
});

describe('proposal guardrails', () => {
  it('proposes a better configuration', () => {
    expect(decideProposal(input())).toMatchObject({ outcome: 'Proposed' });
  });

  it('holds back when nothing is feasible, nothing changes or the gain is small', () => {
    expect(decideProposal(input({ best: null })).outcome).toBe('NoFeasibleCandidate');
    expect(decideProposal(input({ best: { settings: settings(4) } })).outcome).toBe('NoImprovement');
    const small = decideProposal(input({ gainPercent: 5 }));
    expect(small).toMatchObject({ outcome: 'NoImprovement' });
    expect(small.message).toContain('below the 10% guardrail');
  });

  it('proposes a fix for a baseline that misses its SLOs, whatever the gain', () => {
    const r = decideProposal(input({ gainPercent: -30, baselineMeetsSlos: false }));
    expect(r.outcome).toBe('Proposed');
    expect(r.message).toContain('misses the SLOs');
  });

  it('waits for the minimum interval between proposals', () => {
    expect(decideProposal(input({ lastProposalTime: '2026-01-01T11:30:00Z' })).outcome).toBe('TooSoon');
    expect(decideProposal(input({ lastProposalTime: '2026-01-01T10:59:59Z' })).outcome).toBe('Proposed');
  });

  it('compares deployment shapes, not metrics or knobs', () => {
    expect(sameSettings(settings(2), { ...settings(2), engine: { maxNumSeqs: 8 } })).toBe(true);
    expect(sameSettings(settings(2), settings(3))).toBe(false);
    expect(sameSettings(settings(2), settings(2, 'KV'))).toBe(false);
  });
});

describe('recommendation names', () => {
  it('derive from the tuning and the schedule slot', () => {
    expect(recommendationName('llama', '2026-01-01T00:00:00Z')).toBe('llama-1767225600');
  });
});

describe('Semaphore', () => {
  it('admits up to its limit, queues the rest in order, and lets waiters give up', async () => {
    const s = new Semaphore(1);
    await s.acquire(new AbortController().signal);
    expect(s.queueAhead()).toBe(1);
    const order: string[] = [];
    const giveUp = new AbortController();
    const b = s.acquire(giveUp.signal).then(
      () => order.push('b'),
      () => order.push('b gave up'),
    );
    const c = s.acquire(new AbortController().signal).then(() => order.push('c'));
    expect(s.queueAhead()).toBe(3);
    giveUp.abort();
    await b;
    s.release();
    await c;
    expect(order).toEqual(['b gave up', 'c']);
  });
});
