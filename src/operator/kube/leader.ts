import type { Logger } from 'pino';
import { isAlreadyExists, isConflict, isNotFound, type KubeClient } from './client.ts';
import { LEASES, pathOf } from './resources.ts';

/**
 * Leader election over a coordination.k8s.io Lease, as client-go does it: whoever holds an unexpired lease
 * leads; a candidate takes over an expired one with a resourceVersion-conditional update (only one wins);
 * the leader renews every retry period and gives up when it could not renew within the renew deadline.
 */

export interface LeaderElectionOptions {
  namespace: string;
  name: string;
  identity: string;
  leaseDurationMs?: number;
  renewDeadlineMs?: number;
  retryPeriodMs?: number;
  logger?: Logger;
  onStartedLeading: () => void;
  onStoppedLeading: () => void;
}

interface Lease {
  metadata: { name: string; namespace?: string; resourceVersion?: string };
  spec: {
    holderIdentity?: string | null;
    leaseDurationSeconds?: number;
    acquireTime?: string | null;
    renewTime?: string | null;
    leaseTransitions?: number;
  };
}

/** MicroTime: RFC 3339 with microseconds, as the Lease API requires. */
export function microTime(d = new Date()): string {
  return d.toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');
}

export class LeaderElector {
  private readonly client: KubeClient;
  private readonly o: Required<Omit<LeaderElectionOptions, 'logger'>> & { logger?: Logger };
  private leading = false;
  private lastRenew = 0;
  private stopped = false;
  private timer: NodeJS.Timeout | undefined;
  private wake: (() => void) | undefined;
  private loop: Promise<void> | undefined;

  constructor(client: KubeClient, opts: LeaderElectionOptions) {
    this.client = client;
    this.o = { leaseDurationMs: 15_000, renewDeadlineMs: 10_000, retryPeriodMs: 2_000, ...opts };
  }

  isLeader(): boolean {
    return this.leading;
  }

  start(): void {
    this.loop = this.run();
  }

  /** Stops campaigning; a leader releases the lease so a successor need not wait for it to expire. */
  async stop(release = true): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.wake?.();
    await this.loop;
    if (release && this.leading) {
      this.leading = false;
      try {
        const lease = await this.client.get<Lease>(this.path());
        if (lease.spec.holderIdentity === this.o.identity) {
          lease.spec.holderIdentity = null;
          lease.spec.renewTime = microTime(new Date(0));
          lease.spec.acquireTime = null;
          await this.client.replace(this.path(), lease);
        }
      } catch (err) {
        this.o.logger?.warn({ err: (err as Error).message }, 'Releasing the lease failed');
      }
    }
  }

  private path(): string {
    return pathOf(LEASES, this.o.namespace, this.o.name);
  }

  private async run(): Promise<void> {
    let errors = 0;
    while (!this.stopped) {
      let ok = false;
      try {
        ok = await this.tryAcquireOrRenew();
        errors = 0;
      } catch (err) {
        // Blips are normal; a lease that stays unreachable deserves a warning now and then.
        errors++;
        this.o.logger?.[errors % 10 === 3 ? 'warn' : 'debug'](
          { err: (err as Error).message, errors },
          'Lease update failed',
        );
      }
      if (this.stopped) break;
      const now = Date.now();
      if (ok) {
        this.lastRenew = now;
        if (!this.leading) {
          this.leading = true;
          this.o.logger?.info({ identity: this.o.identity, lease: this.o.name }, 'Became leader');
          this.o.onStartedLeading();
        }
      } else if (this.leading && now - this.lastRenew > this.o.renewDeadlineMs) {
        this.leading = false;
        this.o.logger?.error({ identity: this.o.identity }, 'Lost the lease');
        this.o.onStoppedLeading();
        return;
      }
      await new Promise<void>((resolve) => {
        this.wake = resolve;
        this.timer = setTimeout(resolve, this.o.retryPeriodMs);
      });
    }
  }

  private async tryAcquireOrRenew(): Promise<boolean> {
    const now = new Date();
    const durationS = Math.max(1, Math.round(this.o.leaseDurationMs / 1000));
    let lease: Lease;
    try {
      lease = await this.client.get<Lease>(this.path());
    } catch (e) {
      if (!isNotFound(e)) throw e;
      try {
        await this.client.create(pathOf(LEASES, this.o.namespace), {
          apiVersion: 'coordination.k8s.io/v1',
          kind: 'Lease',
          metadata: { name: this.o.name, namespace: this.o.namespace },
          spec: {
            holderIdentity: this.o.identity,
            leaseDurationSeconds: durationS,
            acquireTime: microTime(now),
            renewTime: microTime(now),
            leaseTransitions: 0,
          },
        });
        return true;
      } catch (err) {
        if (isAlreadyExists(err)) return false;
        throw err;
      }
    }
    const s = lease.spec;
    const mine = s.holderIdentity === this.o.identity;
    const renewed = s.renewTime ? Date.parse(s.renewTime) : 0;
    const expired =
      !s.holderIdentity || renewed + (s.leaseDurationSeconds ?? durationS) * 1000 < now.getTime();
    if (!mine && !expired) return false;
    if (!mine) {
      s.leaseTransitions = (s.leaseTransitions ?? 0) + 1;
      s.acquireTime = microTime(now);
    }
    s.holderIdentity = this.o.identity;
    s.leaseDurationSeconds = durationS;
    s.renewTime = microTime(now);
    try {
      await this.client.replace(this.path(), lease);
      return true;
    } catch (err) {
      if (isConflict(err)) return false;
      throw err;
    }
  }
}
