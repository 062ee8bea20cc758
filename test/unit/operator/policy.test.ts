import { describe, expect, it } from 'vitest';
import type { ServingSettings } from '../../../src/api/index.ts';
import { boundedName, labelValue } from '../../../src/operator/kube/names.ts';
import { FairScheduler } from '../../../src/operator/tuning/fair-scheduler.ts';
import { decideProposal, sameSettings } from '../../../src/operator/tuning/policy.ts';
import { recommendationName } from '../../../src/operator/tuning/recommendations.ts';

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

  it('compares shapes and the engine and router knobs, treating unset knobs as their defaults', () => {
    expect(sameSettings(settings(2), settings(3))).toBe(false);
    expect(sameSettings(settings(2), settings(2, 'KV'))).toBe(false);
    // A switch of engine with the same shape is a change (it used to read as "already the best").
    expect(sameSettings(settings(2), { ...settings(2), engine: { backend: 'SGLang' } })).toBe(false);
    expect(sameSettings(settings(2), { ...settings(2), engine: { maxNumSeqs: 8 } })).toBe(false);
    expect(sameSettings(settings(2), { ...settings(2), engine: { backend: 'vLLM', maxNumSeqs: 256 } })).toBe(
      true,
    );
    const kv = (w?: number) => ({ ...settings(2, 'KV'), router: { mode: 'KV' as const, overlapWeight: w } });
    expect(sameSettings(kv(), kv(1))).toBe(true);
    expect(sameSettings(kv(1), kv(2))).toBe(false);
    expect(
      decideProposal(input({ best: { settings: { ...settings(4), engine: { backend: 'SGLang' } } } }))
        .outcome,
    ).toBe('Proposed');
  });
});

describe('recommendation names', () => {
  it('derive from the tuning and the schedule slot', () => {
    expect(recommendationName('llama', '2026-01-01T00:00:00Z')).toBe('llama-1767225600');
  });

  it('stay within Kubernetes limits for the longest names, and distinct', () => {
    const a = `${'a'.repeat(250)}x`;
    const b = `${'a'.repeat(250)}y`;
    const ra = recommendationName(a, '2026-01-01T00:00:00Z');
    expect(ra.length).toBeLessThanOrEqual(253);
    expect(ra).toMatch(/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/);
    expect(ra).not.toBe(recommendationName(b, '2026-01-01T00:00:00Z'));
    expect(labelValue('llama')).toBe('llama');
    const la = labelValue(`${'x'.repeat(70)}.-y`);
    expect(la.length).toBeLessThanOrEqual(63);
    expect(la).toMatch(/^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/);
    expect(labelValue(a)).not.toBe(labelValue(b));
    expect(boundedName('e'.repeat(253), '.18a2b3c4d5e6f7a8').length).toBe(253);
  });
});

describe('FairScheduler', () => {
  const t = (namespace: string, key: string, dueMs: number) => ({ namespace, key, dueMs });
  const never = () => new AbortController().signal;

  it('serves waiting namespaces round robin, oldest due first within one', async () => {
    const s = new FairScheduler(1);
    await s.acquire(t('a', 'a/1', 0), never());
    const order: string[] = [];
    const wait = (tk: ReturnType<typeof t>) => s.acquire(tk, never()).then(() => order.push(tk.key));
    const all = [
      wait(t('a', 'a/3', 30)),
      wait(t('a', 'a/2', 20)),
      wait(t('b', 'b/1', 50)),
      wait(t('c', 'c/1', 40)),
    ];
    for (let i = 0; i < 4; i++) {
      s.release();
      await new Promise((r) => setTimeout(r, 0));
    }
    await Promise.all(all);
    // a was just served: b and c go first (c fell due first), then a's sweeps, oldest first.
    expect(order).toEqual(['c/1', 'b/1', 'a/2', 'a/3']);
  });

  it('lets a waiter give up, and counts who is ahead', async () => {
    const s = new FairScheduler(1);
    await s.acquire(t('a', 'a/1', 0), never());
    expect(s.ahead(t('b', 'b/1', 0))).toBe(1);
    const giveUp = new AbortController();
    const gaveUp = s.acquire(t('b', 'b/1', 0), giveUp.signal).catch(() => 'gave up');
    const c = s.acquire(t('c', 'c/1', 0), never()).then(() => 'c');
    expect(s.waitingCount()).toBe(2);
    giveUp.abort();
    expect(await gaveUp).toBe('gave up');
    s.release();
    expect(await c).toBe('c');
  });
});
