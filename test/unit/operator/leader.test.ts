import { afterEach, describe, expect, it } from 'vitest';
import { ApiError, type KubeClient } from '../../../src/operator/kube/client.ts';
import {
  LeaderElector,
  type LeaseRecord,
  validateLeaderElection,
} from '../../../src/operator/kube/leader.ts';

/**
 * Leader election against an in-memory Lease store (the integration suite runs real replicas against a real
 * kube-apiserver; this pins down timing rules deterministically enough to fail when they break).
 */

interface StoredLease {
  metadata: { name: string; namespace: string; resourceVersion: string };
  spec: LeaseRecord;
}

class FakeLeases {
  lease: StoredLease | undefined;
  rv = 0;
  gets = 0;
  writes = 0;
  /** When set, requests fail (an outage) or hang until aborted (a stall). */
  mode: 'ok' | 'down' | 'hang' = 'ok';

  private async gate(signal?: AbortSignal): Promise<void> {
    if (this.mode === 'down') throw new Error('connect ECONNREFUSED');
    if (this.mode === 'hang') {
      await new Promise((_, reject) => signal?.addEventListener('abort', () => reject(new Error('aborted'))));
    }
  }

  client(): KubeClient {
    const self = this;
    return {
      async get(_path: string, _q?: unknown, o?: { signal?: AbortSignal }) {
        self.gets++;
        await self.gate(o?.signal);
        if (!self.lease) throw new ApiError(404, 'not found', 'NotFound');
        return structuredClone(self.lease);
      },
      async create(_path: string, body: StoredLease, o?: { signal?: AbortSignal }) {
        await self.gate(o?.signal);
        if (self.lease) throw new ApiError(409, 'exists', 'AlreadyExists');
        self.writes++;
        self.lease = {
          ...structuredClone(body),
          metadata: { ...body.metadata, resourceVersion: String(++self.rv) },
        };
        return structuredClone(self.lease);
      },
      async replace(_path: string, body: StoredLease, o?: { signal?: AbortSignal }) {
        await self.gate(o?.signal);
        if (!self.lease || body.metadata.resourceVersion !== self.lease.metadata.resourceVersion)
          throw new ApiError(409, 'conflict', 'Conflict');
        self.writes++;
        self.lease = {
          ...structuredClone(body),
          metadata: { ...body.metadata, resourceVersion: String(++self.rv) },
        };
        return structuredClone(self.lease);
      },
    } as unknown as KubeClient;
  }

  /** Another replica's write (it renews or takes the lease). */
  put(spec: LeaseRecord): void {
    this.lease = {
      metadata: { name: 'l', namespace: 'ns', resourceVersion: String(++this.rv) },
      spec: { ...this.lease?.spec, ...spec },
    };
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const electors: LeaderElector[] = [];
afterEach(async () => {
  for (const e of electors.splice(0)) await e.stop(false);
});

function elector(store: FakeLeases, o: Partial<ConstructorParameters<typeof LeaderElector>[1]> = {}) {
  const events: string[] = [];
  const e = new LeaderElector(store.client(), {
    namespace: 'ns',
    name: 'l',
    identity: 'me',
    leaseDurationMs: 1_500,
    renewDeadlineMs: 1_000,
    retryPeriodMs: 100,
    onStartedLeading: () => events.push('start'),
    onStoppedLeading: () => events.push('stop'),
    ...o,
  });
  electors.push(e);
  return { e, events };
}

describe('leader election', () => {
  it('keeps its defaults when options are passed as undefined, and renews at a calm rate', async () => {
    const store = new FakeLeases();
    const { e } = elector(store, {
      leaseDurationMs: undefined,
      renewDeadlineMs: undefined,
      retryPeriodMs: undefined,
    });
    e.start();
    await sleep(500);
    expect(e.holds()).toBe(true);
    // The default lease is 15 s, written into the record so that other replicas can expire it.
    expect(store.lease?.spec.leaseDurationSeconds).toBe(15);
    // The default retry period is 2 s: one create, no spin.
    expect(store.writes).toBe(1);
    expect(store.gets).toBeLessThanOrEqual(1);
  });

  it('judges expiry by when it observed the record change, not by the timestamps in it', async () => {
    const store = new FakeLeases();
    // The holder's clock runs a day ahead: a skew-sensitive candidate would wait a day.
    store.put({
      holderIdentity: 'other',
      leaseDurationSeconds: 1,
      renewTime: new Date(Date.now() + 86_400_000).toISOString(),
    });
    const { e } = elector(store);
    e.start();
    await sleep(600);
    expect(e.holds()).toBe(false); // observed less than one lease duration ago
    await sleep(1_200);
    expect(e.holds()).toBe(true);
    expect(store.lease?.spec).toMatchObject({ holderIdentity: 'me', leaseTransitions: 1 });
  });

  it('never takes over a lease whose holder keeps renewing, even with timestamps far in the past', async () => {
    const store = new FakeLeases();
    const old = (ms: number) => new Date(Date.now() - 86_400_000 + ms).toISOString();
    store.put({ holderIdentity: 'other', leaseDurationSeconds: 1, renewTime: old(0) });
    const { e } = elector(store);
    e.start();
    for (let i = 1; i <= 8; i++) {
      await sleep(250);
      store.put({ renewTime: old(i) });
    }
    expect(e.holds()).toBe(false);
    expect(store.lease?.spec.holderIdentity).toBe('other');
  });

  it('pauses between attempts during an outage instead of spinning', async () => {
    const store = new FakeLeases();
    store.mode = 'down';
    const { e } = elector(store, { retryPeriodMs: 200, renewDeadlineMs: 1_000, leaseDurationMs: 1_500 });
    e.start();
    await sleep(1_000);
    // Jittered retry period: 200-440 ms apart, so at most ~5 attempts in a second.
    expect(e.attempts).toBeGreaterThanOrEqual(2);
    expect(e.attempts).toBeLessThanOrEqual(6);
  });

  it('steps down within the renew deadline when a renew request stalls', async () => {
    const store = new FakeLeases();
    const { e, events } = elector(store);
    e.start();
    await sleep(300);
    expect(e.holds()).toBe(true);
    store.mode = 'hang';
    const stalledAt = Date.now();
    // Renewed at most one retry period ago; the deadline is 1 s after that renew.
    await sleep(1_150);
    expect(e.holds()).toBe(false);
    await sleep(200);
    expect(events).toEqual(['start', 'stop']);
    expect(Date.now() - stalledAt).toBeLessThan(1_500 + 200);
  });

  it('refuses to act at once when its clock shows the deadline passed (a frozen process waking up)', async () => {
    const store = new FakeLeases();
    let offset = 0;
    const { e } = elector(store, { clock: () => performance.now() + offset });
    e.start();
    await sleep(200);
    expect(e.holds()).toBe(true);
    offset += 5_000; // what a SIGSTOP of 5 s looks like to the monotonic clock
    expect(e.holds()).toBe(false);
  });

  it('steps down when it observes another holder', async () => {
    const store = new FakeLeases();
    const { e, events } = elector(store);
    e.start();
    await sleep(200);
    store.put({ holderIdentity: 'usurper', leaseDurationSeconds: 15 });
    await sleep(300);
    expect(e.holds()).toBe(false);
    expect(events).toEqual(['start', 'stop']);
  });

  it('releases the lease on stop so a successor need not wait', async () => {
    const store = new FakeLeases();
    const { e } = elector(store);
    e.start();
    await sleep(200);
    await e.stop(true);
    expect(store.lease?.spec).toMatchObject({ holderIdentity: null, leaseDurationSeconds: 1 });
  });

  it('rejects durations that cannot work, as client-go does', () => {
    expect(() =>
      validateLeaderElection({ leaseDurationMs: 10_000, renewDeadlineMs: 10_000, retryPeriodMs: 2_000 }),
    ).toThrow(/longer than the renew deadline/);
    expect(() =>
      validateLeaderElection({ leaseDurationMs: 15_000, renewDeadlineMs: 2_000, retryPeriodMs: 2_000 }),
    ).toThrow(/1.2 x the retry period/);
    expect(() =>
      validateLeaderElection({ leaseDurationMs: Number.NaN, renewDeadlineMs: 1, retryPeriodMs: 1 }),
    ).toThrow(/leaseDurationMs must be positive/);
  });
});
