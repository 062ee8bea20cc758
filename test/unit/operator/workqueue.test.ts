import { describe, expect, it } from 'vitest';
import { backoff } from '../../../src/operator/kube/informer.ts';
import { WorkQueue } from '../../../src/operator/kube/workqueue.ts';

describe('WorkQueue', () => {
  it('collapses repeated adds of a waiting key', async () => {
    const q = new WorkQueue();
    q.add('a');
    q.add('b');
    q.add('a');
    expect(q.depth).toBe(2);
    expect(await q.get()).toBe('a');
    expect(await q.get()).toBe('b');
  });

  it('never hands a key being processed to a second worker, and requeues it when re-added meanwhile', async () => {
    const q = new WorkQueue();
    q.add('a');
    const k = await q.get();
    q.add('a');
    expect(q.depth).toBe(0);
    let second: string | undefined;
    void q.get().then((x) => {
      second = x;
    });
    await Promise.resolve();
    expect(second).toBeUndefined();
    q.done(k!);
    await Promise.resolve();
    expect(second).toBe('a');
  });

  it('backs off failed keys exponentially per key and resets on forget', () => {
    const q = new WorkQueue({ baseDelayMs: 10, maxDelayMs: 50, burst: 1000 });
    expect(q.addRateLimited('a')).toBe(10);
    expect(q.addRateLimited('a')).toBe(20);
    expect(q.addRateLimited('a')).toBe(40);
    expect(q.addRateLimited('a')).toBe(50);
    expect(q.addRateLimited('b')).toBe(10);
    q.forget('a');
    expect(q.addRateLimited('a')).toBe(10);
    q.shutdown();
  });

  it('limits the overall retry rate with a token bucket', () => {
    const q = new WorkQueue({ baseDelayMs: 0, qps: 10, burst: 2 });
    expect(q.addRateLimited('a')).toBe(0);
    expect(q.addRateLimited('b')).toBe(0);
    expect(q.addRateLimited('c')).toBeGreaterThan(50);
    q.shutdown();
  });

  it('keeps the earliest of two delayed adds', async () => {
    const q = new WorkQueue();
    q.addAfter('a', 10_000);
    q.addAfter('a', 5);
    const t0 = Date.now();
    expect(await q.get()).toBe('a');
    expect(Date.now() - t0).toBeLessThan(1000);
    q.shutdown();
  });

  it('releases waiting workers on shutdown', async () => {
    const q = new WorkQueue();
    const p = q.get();
    q.shutdown();
    expect(await p).toBeUndefined();
  });
});

describe('backoff', () => {
  it('grows exponentially with jitter and a cap', () => {
    const o = { backoffInitialMs: 100, backoffMaxMs: 1000 };
    for (let i = 0; i < 50; i++) {
      const d1 = backoff(1, o);
      expect(d1).toBeGreaterThanOrEqual(50);
      expect(d1).toBeLessThanOrEqual(100);
      const d10 = backoff(10, o);
      expect(d10).toBeGreaterThanOrEqual(500);
      expect(d10).toBeLessThanOrEqual(1000);
    }
  });
});
