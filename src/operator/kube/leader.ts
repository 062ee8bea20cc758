import type { Logger } from 'pino';
import { isAlreadyExists, isConflict, isNotFound, type KubeClient } from './client.ts';
import { withDefaults } from './defaults.ts';
import { LEASES, pathOf } from './resources.ts';

/**
 * Leader election over a coordination.k8s.io Lease, with client-go's `leaderelection` semantics:
 *
 * - A candidate judges a lease expired by its *own* clock: the monotonic time at which it last observed the
 *   record change, plus the record's duration. Lease timestamps written by other nodes are never compared
 *   with the local clock, so clock skew between nodes does not matter.
 * - Every acquire or renew attempt is bounded by the renew deadline (a stalled request cannot keep a deposed
 *   leader believing it leads), and attempts are `retryPeriod` apart (with jitter while acquiring).
 * - The leader renews in rounds: a round retries every `retryPeriod` until it succeeds or `renewDeadline`
 *   has passed since the last successful renew; then leadership is lost.
 *
 * On top of client-go, {@link holds} answers from the monotonic clock, not from a flag set by the loop: it is
 * true only while less than `renewDeadline` has passed since the start of the last successful renew request.
 * Because `renewDeadline < leaseDuration`, this replica stops holding strictly before any other replica can
 * take the lease over, even if its event loop was frozen (SIGSTOP, a long pause) and has not yet noticed.
 * The operator checks it immediately before every write.
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
  /** Monotonic milliseconds (tests inject a clock). */
  clock?: () => number;
}

export const LEADER_ELECTION_DEFAULTS = {
  leaseDurationMs: 15_000,
  renewDeadlineMs: 10_000,
  retryPeriodMs: 2_000,
};

/** client-go's JitterFactor: candidates wait retryPeriod x [1, 2.2) between attempts. */
const JITTER = 1.2;

export interface LeaseRecord {
  holderIdentity?: string | null;
  leaseDurationSeconds?: number;
  acquireTime?: string | null;
  renewTime?: string | null;
  leaseTransitions?: number;
}

interface Lease {
  metadata: { name: string; namespace?: string; resourceVersion?: string };
  spec: LeaseRecord;
}

/** MicroTime: RFC 3339 with microseconds, as the Lease API requires. */
export function microTime(d = new Date()): string {
  return d.toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');
}

/** Checks durations as client-go's NewLeaderElector does; throws a message naming the offending value. */
export function validateLeaderElection(o: {
  leaseDurationMs: number;
  renewDeadlineMs: number;
  retryPeriodMs: number;
}): void {
  for (const k of ['leaseDurationMs', 'renewDeadlineMs', 'retryPeriodMs'] as const) {
    const v = o[k];
    if (!Number.isFinite(v) || v <= 0) throw new RangeError(`leader election: ${k} must be positive`);
  }
  if (o.leaseDurationMs <= o.renewDeadlineMs)
    throw new RangeError('leader election: the lease duration must be longer than the renew deadline');
  if (o.renewDeadlineMs <= JITTER * o.retryPeriodMs)
    throw new RangeError('leader election: the renew deadline must exceed 1.2 x the retry period');
}

export class LeaderElector {
  private readonly client: KubeClient;
  private readonly o: Required<Omit<LeaderElectionOptions, 'logger'>> & { logger?: Logger };
  private readonly clock: () => number;
  /** The record last read or written, as JSON, and the local time it was first seen. */
  private observedRaw = '';
  private observed: LeaseRecord = {};
  private observedAt = 0;
  /** Local time at which the last successful acquire/renew request was sent (NaN: never). */
  private renewedAt = Number.NaN;
  private leading = false;
  private stopped = false;
  private sleeping: { timer: NodeJS.Timeout; wake: () => void } | undefined;
  private lossTimer: NodeJS.Timeout | undefined;
  private loop: Promise<void> | undefined;
  /** Aborts the attempt in flight on stop. */
  private readonly abort = new AbortController();
  /** Attempts made (for tests and metrics). */
  attempts = 0;

  constructor(client: KubeClient, opts: LeaderElectionOptions) {
    this.client = client;
    this.o = withDefaults({ ...LEADER_ELECTION_DEFAULTS, clock: () => performance.now() }, opts) as never;
    validateLeaderElection(this.o);
    this.clock = this.o.clock;
  }

  /** Whether this replica may act as leader right now (see the file comment). */
  holds(): boolean {
    return this.leading && this.clock() - this.renewedAt < this.o.renewDeadlineMs;
  }

  isLeader(): boolean {
    return this.holds();
  }

  /** The holder this replica last observed (for logs and status). */
  observedHolder(): string | undefined {
    return this.observed.holderIdentity ?? undefined;
  }

  start(): void {
    this.loop = this.run();
  }

  /** Stops campaigning; a leader releases the lease so a successor need not wait for it to expire. */
  async stop(release = true): Promise<void> {
    this.stopped = true;
    this.abort.abort();
    this.sleeping?.wake();
    await this.loop;
    if (release && this.holds()) await this.release();
    this.setLeading(false, false);
  }

  private path(): string {
    return pathOf(LEASES, this.o.namespace, this.o.name);
  }

  private async run(): Promise<void> {
    // Acquire: every retryPeriod (jittered) until we hold the lease.
    while (!this.stopped && !this.leading) {
      if (await this.attempt()) {
        this.setLeading(true);
        break;
      }
      await this.sleep(this.o.retryPeriodMs * (1 + Math.random() * JITTER));
    }
    // Renew: rounds of attempts retryPeriod apart, each round bounded by the renew deadline.
    while (!this.stopped && this.leading) {
      await this.sleep(this.o.retryPeriodMs);
      for (;;) {
        if (this.stopped) return;
        if (!this.holds()) {
          this.lose('the lease could not be renewed within the renew deadline');
          return;
        }
        if (await this.attempt()) break;
        if (!this.leading) return; // another holder was observed
        await this.sleep(Math.min(this.o.retryPeriodMs, this.remaining()));
      }
    }
  }

  /** Time left before the renew deadline runs out (ms). */
  private remaining(): number {
    return Math.max(0, this.o.renewDeadlineMs - (this.clock() - this.renewedAt));
  }

  /** One acquire/renew attempt, bounded by the renew deadline (or what is left of it while leading). */
  private async attempt(): Promise<boolean> {
    this.attempts++;
    const budget = this.leading ? this.remaining() : this.o.renewDeadlineMs;
    if (budget <= 0) return false;
    const sentAt = this.clock();
    try {
      const ok = await this.tryAcquireOrRenew(
        AbortSignal.any([this.abort.signal, AbortSignal.timeout(Math.ceil(budget))]),
      );
      if (ok) {
        this.renewedAt = sentAt;
        this.armLossTimer();
      }
      return ok;
    } catch (err) {
      if (this.stopped) return false;
      this.o.logger?.[this.leading ? 'warn' : 'debug'](
        { err: (err as Error).message },
        'Lease update failed',
      );
      return false;
    }
  }

  /**
   * Declares the loss when the deadline passes even if the loop is stuck (a request that ignores its abort,
   * a blocked event loop catching up): {@link holds} already refuses writes; this runs the callbacks.
   */
  private armLossTimer(): void {
    if (this.lossTimer) clearTimeout(this.lossTimer);
    this.lossTimer = setTimeout(() => {
      if (this.leading && !this.holds() && !this.stopped)
        this.lose('the lease could not be renewed within the renew deadline');
    }, this.o.renewDeadlineMs + 1);
    this.lossTimer.unref();
  }

  private setLeading(leading: boolean, notify = true): void {
    if (this.leading === leading) return;
    this.leading = leading;
    if (!leading && this.lossTimer) clearTimeout(this.lossTimer);
    if (!notify) return;
    if (leading) {
      this.o.logger?.info({ identity: this.o.identity, lease: this.o.name }, 'Became leader');
      this.o.onStartedLeading();
    } else {
      this.o.onStoppedLeading();
    }
  }

  private lose(why: string): void {
    if (!this.leading) return;
    this.o.logger?.error({ identity: this.o.identity, why, holder: this.observedHolder() }, 'Lost the lease');
    this.setLeading(false);
  }

  private sleep(ms: number): Promise<void> {
    if (this.stopped) return Promise.resolve();
    return new Promise((resolve) => {
      const wake = () => {
        clearTimeout(timer);
        this.sleeping = undefined;
        resolve();
      };
      const timer = setTimeout(wake, ms);
      this.sleeping = { timer, wake };
    });
  }

  private observe(record: LeaseRecord): void {
    const raw = JSON.stringify([
      record.holderIdentity ?? '',
      record.leaseDurationSeconds ?? 0,
      record.acquireTime ?? '',
      record.renewTime ?? '',
      record.leaseTransitions ?? 0,
    ]);
    if (raw !== this.observedRaw) {
      this.observedRaw = raw;
      this.observed = { ...record };
      this.observedAt = this.clock();
    }
  }

  private async tryAcquireOrRenew(signal: AbortSignal): Promise<boolean> {
    const durationS = Math.max(1, Math.round(this.o.leaseDurationMs / 1000));
    const nowIso = microTime(new Date());
    const mine: LeaseRecord = {
      holderIdentity: this.o.identity,
      leaseDurationSeconds: durationS,
      acquireTime: nowIso,
      renewTime: nowIso,
      leaseTransitions: 0,
    };
    const req = { signal, unfenced: true } as const;
    let lease: Lease;
    try {
      lease = await this.client.get<Lease>(this.path(), undefined, req);
    } catch (e) {
      if (!isNotFound(e)) throw e;
      try {
        await this.client.create(
          pathOf(LEASES, this.o.namespace),
          {
            apiVersion: 'coordination.k8s.io/v1',
            kind: 'Lease',
            metadata: { name: this.o.name, namespace: this.o.namespace },
            spec: mine,
          },
          req,
        );
        this.observe(mine);
        return true;
      } catch (err) {
        if (isAlreadyExists(err)) return false;
        throw err;
      }
    }
    const s = lease.spec ?? {};
    this.observe(s);
    const held = !!s.holderIdentity;
    const ours = s.holderIdentity === this.o.identity;
    // A record without a (valid) duration is judged by ours, so it still expires.
    const theirDurationMs =
      (Number.isFinite(s.leaseDurationSeconds) && (s.leaseDurationSeconds ?? 0) > 0
        ? (s.leaseDurationSeconds as number)
        : durationS) * 1000;
    if (held && !ours && this.observedAt + theirDurationMs > this.clock()) {
      if (this.leading) this.lose(`${s.holderIdentity} holds the lease`);
      return false;
    }
    const next: LeaseRecord = ours
      ? { ...mine, acquireTime: s.acquireTime ?? nowIso, leaseTransitions: s.leaseTransitions ?? 0 }
      : { ...mine, leaseTransitions: (s.leaseTransitions ?? 0) + 1 };
    try {
      await this.client.replace(this.path(), { ...lease, spec: { ...s, ...next } }, req);
    } catch (err) {
      if (isConflict(err)) return false;
      throw err;
    }
    this.observe(next);
    return true;
  }

  /** Gives the lease up (client-go's ReleaseOnCancel): no holder, a one-second duration. */
  private async release(): Promise<void> {
    try {
      const lease = await this.client.get<Lease>(this.path(), undefined, {
        unfenced: true,
        timeoutMs: 5_000,
      });
      if (lease.spec.holderIdentity !== this.o.identity) return;
      const now = microTime(new Date());
      lease.spec = {
        ...lease.spec,
        holderIdentity: null,
        leaseDurationSeconds: 1,
        acquireTime: now,
        renewTime: now,
      };
      await this.client.replace(this.path(), lease, { unfenced: true, timeoutMs: 5_000 });
    } catch (err) {
      this.o.logger?.warn({ err: (err as Error).message }, 'Releasing the lease failed');
    }
  }
}
