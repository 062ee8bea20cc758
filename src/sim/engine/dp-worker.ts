import type { Engine, EngineRole } from './engine.ts';
import type { EngineCore, EngineCoreConfig } from './engine-core.ts';
import { IntDeque } from './int-deque.ts';
import type { ForwardPassSnapshot } from './pass-metrics.ts';
import { grown, type RequestTable } from './request-table.ts';

/**
 * One worker with attention-data-parallel ranks (`--dp-size`): each rank is a whole engine with its own
 * scheduler and KV pool, and the ranks step together, as their collective communication forces: a rank
 * with work starts its pass when the worker does, and every rank's tokens come out when the slowest rank's
 * pass ends. A rank left without work sits the pass out; one that gets work mid-pass waits for the worker.
 *
 * The worker is what the simulation schedules (its busy time, its statistics); routers see the ranks, each
 * its own candidate, as Dynamo's router scores (worker, rank) pairs. Ranks run their plain path only: a
 * coalesced run would have to agree with every other rank's pass lengths.
 */
export class DpWorker implements Engine {
  readonly index: number;
  readonly role: EngineRole;
  readonly gpus: number;
  readonly ranks: readonly EngineCore<EngineCoreConfig>[];
  /** Routers read the ranks' own logs. */
  readonly kvEvents = null;
  readonly firstTokens = new IntDeque();
  readonly finished = new IntDeque();
  busyUntil = Number.NaN;
  progressed = false;
  readonly hasPendingRun = false;
  readonly pendingRunEvicts = false;
  passes = 0;
  busyMs = 0;
  readonly coalescedRuns = 0;
  /** Rank holding each request (by request id), for the router's per-rank bookkeeping. */
  private rankOfRequest = new Uint8Array(0);
  private nextRank = 0;
  private readonly inPass: Uint8Array;

  constructor(
    index: number,
    role: EngineRole,
    gpus: number,
    ranks: EngineCore<EngineCoreConfig>[],
    req: RequestTable,
  ) {
    if (ranks.length < 1 || ranks.length > 255)
      throw new RangeError('a worker has 1 to 255 data-parallel ranks');
    this.index = index;
    this.role = role;
    this.gpus = gpus;
    this.ranks = ranks;
    this.inPass = new Uint8Array(ranks.length);
    req.onGrow((n) => {
      this.rankOfRequest = grown(this.rankOfRequest, n);
    });
  }

  get isIdle(): boolean {
    return Number.isNaN(this.busyUntil);
  }
  get runningCount(): number {
    let n = 0;
    for (const r of this.ranks) n += r.runningCount;
    return n;
  }
  get waitingCount(): number {
    let n = 0;
    for (const r of this.ranks) n += r.waitingCount;
    return n;
  }
  get activeBlocks(): number {
    let n = 0;
    for (const r of this.ranks) n += r.activeBlocks;
    return n;
  }
  get preemptions(): number {
    let n = 0;
    for (const r of this.ranks) n += r.preemptions;
    return n;
  }
  get committedPrefillTokens(): number {
    let n = 0;
    for (const r of this.ranks) n += r.committedPrefillTokens;
    return n;
  }
  get evictions(): number {
    let n = 0;
    for (const r of this.ranks) n += r.evictions;
    return n;
  }
  hasWork(): boolean {
    for (const r of this.ranks) if (r.hasWork()) return true;
    return false;
  }

  /** The rank that holds request r. */
  rankOf(r: number): number {
    return this.rankOfRequest[r];
  }

  /** Queues r on `rank` (the router's choice). */
  enqueueOnRank(rank: number, r: number): void {
    this.rankOfRequest[r] = rank;
    this.ranks[rank].enqueue(r);
  }

  /** Queues r on the ranks in turn (when no router chose a rank). */
  enqueue(r: number): void {
    const rank = this.nextRank;
    this.nextRank = (rank + 1) % this.ranks.length;
    this.enqueueOnRank(rank, r);
  }

  /** Every rank with work forms its pass at `now`; all end with the slowest. */
  startPass(now: number): number {
    this.firstTokens.clear();
    this.finished.clear();
    let end = now;
    let progressed = false;
    const ranks = this.ranks;
    for (let k = 0; k < ranks.length; k++) {
      const rank = ranks[k];
      if (!rank.hasWork()) {
        this.inPass[k] = 0;
        continue;
      }
      this.inPass[k] = 1;
      const own = rank.beginRankPass(now);
      if (own > end) end = own;
    }
    for (let k = 0; k < ranks.length; k++) {
      if (this.inPass[k] === 0) continue;
      const rank = ranks[k];
      rank.finishRankPass(now, end);
      if (rank.progressed) progressed = true;
      for (let i = 0; i < rank.firstTokens.length; i++) this.firstTokens.pushBack(rank.firstTokens.get(i));
      for (let i = 0; i < rank.finished.length; i++) this.finished.pushBack(rank.finished.get(i));
    }
    this.progressed = progressed;
    if (progressed) {
      this.passes++;
      this.busyMs += end - now;
    }
    this.busyUntil = end;
    return end;
  }

  endPass(): void {
    this.busyUntil = Number.NaN;
  }

  materialize(): number {
    return this.busyUntil;
  }

  get totalBlocks(): number {
    let n = 0;
    for (const r of this.ranks) n += r.totalBlocks;
    return n;
  }

  residents(): number[] {
    const out: number[] = [];
    for (const r of this.ranks) out.push(...r.residents());
    return out;
  }

  setKvEvents(on: boolean): void {
    for (const r of this.ranks) r.setKvEvents(on);
  }

  ensureKeyCapacity(n: number): void {
    for (const r of this.ranks as readonly Engine[]) r.ensureKeyCapacity?.(n);
  }

  markKeys(live: Uint8Array): void {
    for (const r of this.ranks as readonly Engine[]) r.markKeys?.(live);
  }

  remapKeys(map: Int32Array): void {
    for (const r of this.ranks as readonly Engine[]) r.remapKeys?.(map);
  }

  /** The first rank's latest pass (a planner is not supported with data-parallel ranks). */
  snapshot(t: number, out: ForwardPassSnapshot): void {
    this.ranks[0].snapshot(t, out);
    out.engine = this.index;
  }
}
