import type {
  LiveEndReason,
  LiveObserver,
  LiveRequest,
  LiveRequestInfo,
  LiveRole,
  LiveSimulation,
  LiveWorker,
} from '../../src/sim/live.ts';

/**
 * A tiny stand-in for the live simulation, for fast unit tests of the twin's HTTP, metrics, feeding and fleet
 * layers (integration tests use the real simulation): every request served at once in parallel (by worker 0's
 * accounting), first token `ttftMs + inputLength * prefillMsPerToken` after arrival (less its cached prefix:
 * leading content ids seen before), then one token every `itlMs`. Prompts longer than `maxPrompt` are rejected
 * at arrival. The fleet is bookkeeping only: workers per role with their lifecycle (starting for startupMs,
 * ready, draining then gone), rolling replacement one worker at a time, and the calls made (router, planner,
 * pass-time factors) recorded for inspection.
 */
export class FakeLive implements LiveSimulation {
  now = 0;
  private observer: LiveObserver | null = null;
  private events: { t: number; seq: number; run: () => void }[] = [];
  private seq = 0;
  private nextId = 0;
  private readonly live = new Map<number, { info: LiveRequestInfo; cancelled: boolean; blocks: number }>();
  private readonly seen = new Set<number>();
  readonly submitted: LiveRequest[] = [];
  readonly cancelledIds: number[] = [];
  activeBlocks = 0;
  /** The fleet: id -> worker (gone workers dropped). */
  readonly fleet = new Map<
    number,
    { id: number; role: LiveRole; state: LiveWorker['state']; spec: number }
  >();
  private nextWorker = 0;
  /** Calls recorded for tests. */
  readonly calls: { op: string; args: unknown[] }[] = [];
  readonly factors = new Map<number, number>();
  readonly opts: {
    ttftMs?: number;
    prefillMsPerToken?: number;
    itlMs?: number;
    maxPrompt?: number;
    blockSize?: number;
  };
  constructor(opts: FakeLive['opts'] = {}, fleet: Partial<Record<LiveRole, number>> = { aggregated: 1 }) {
    this.opts = opts;
    for (const [role, n] of Object.entries(fleet) as [LiveRole, number][])
      for (let i = 0; i < n; i++) this.addWorker(role, 'ready', 0);
  }

  private addWorker(role: LiveRole, state: LiveWorker['state'], spec: number) {
    const w = { id: this.nextWorker++, role, state, spec };
    this.fleet.set(w.id, w);
    return w;
  }

  private specOf = new Map<LiveRole, number>();

  private at(t: number, run: () => void): void {
    this.events.push({ t, seq: this.seq++, run });
    this.events.sort((a, b) => a.t - b.t || a.seq - b.seq);
  }

  setObserver(o: LiveObserver | null): void {
    this.observer = o;
  }

  advanceTo(t: number): void {
    if (t < this.now) throw new Error('time goes back');
    while (this.events.length > 0 && this.events[0].t <= t) {
      const e = this.events.shift()!;
      this.now = e.t;
      e.run();
    }
    this.now = t;
  }

  nextEventTime(): number {
    return this.events.length > 0 ? this.events[0].t : Number.POSITIVE_INFINITY;
  }

  submit(req: LiveRequest): number {
    const id = this.nextId++;
    this.submitted.push(req);
    const arrival = req.atMs ?? this.now;
    const info: LiveRequestInfo = {
      arrivalMs: arrival,
      firstAdmitMs: Number.NaN,
      prefillDoneMs: Number.NaN,
      tokens: 0,
      prefillWorker: 0,
      decodeWorker: -1,
      cachedTokens: 0,
    };
    const state = { info, cancelled: false, blocks: 0 };
    this.live.set(id, state);
    const bs = this.opts.blockSize ?? 16;
    this.at(arrival, () => {
      if (state.cancelled) return;
      if (req.inputLength > (this.opts.maxPrompt ?? 1e9)) {
        this.end(id, arrival, 'prompt larger than the KV cache');
        return;
      }
      this.observer?.onRouted?.(id, 0, arrival);
      let cachedBlocks = 0;
      while (cachedBlocks < req.hashIds.length && this.seen.has(req.hashIds[cachedBlocks])) cachedBlocks++;
      for (let i = 0; i < req.hashIds.length; i++) this.seen.add(req.hashIds[i]);
      const cached = Math.min(req.inputLength, cachedBlocks * bs);
      info.cachedTokens = cached;
      info.firstAdmitMs = arrival;
      state.blocks = Math.ceil(req.inputLength / bs);
      this.activeBlocks += state.blocks;
      const first =
        arrival + (this.opts.ttftMs ?? 10) + (req.inputLength - cached) * (this.opts.prefillMsPerToken ?? 0);
      const itl = this.opts.itlMs ?? 5;
      if (req.outputLength === 0) this.at(first, () => state.cancelled || this.end(id, this.now, 'finished'));
      for (let k = 1; k <= req.outputLength; k++) {
        this.at(first + (k - 1) * itl, () => {
          if (state.cancelled) return;
          info.tokens = k;
          if (k === 1) {
            info.prefillDoneMs = this.now;
            this.observer?.onFirstToken?.(id, this.now, cached);
          }
          this.observer?.onToken?.(id, k, this.now);
          if (k === req.outputLength) this.end(id, this.now, 'finished');
        });
      }
    });
    return id;
  }

  private end(id: number, t: number, reason: LiveEndReason): void {
    this.activeBlocks -= this.live.get(id)?.blocks ?? 0;
    this.live.delete(id);
    this.observer?.onEnded?.(id, t, reason);
  }

  cancel(id: number): void {
    const s = this.live.get(id);
    if (!s || s.cancelled) return;
    s.cancelled = true;
    this.cancelledIds.push(id);
    this.at(this.now, () => this.end(id, this.now, 'cancelled'));
  }

  requestInfo(id: number): LiveRequestInfo | null {
    return this.live.get(id)?.info ?? null;
  }

  workers(): LiveWorker[] {
    return [...this.fleet.values()].map((w) => ({
      id: w.id,
      role: w.role,
      state: w.state,
      activeBlocks: w.id === 0 ? this.activeBlocks : 0,
      totalBlocks: 1000,
      usage: w.id === 0 ? this.activeBlocks / 1000 : 0,
      prefixHitRate: 0,
      waiting: 0,
      running: w.id === 0 ? this.live.size : 0,
    }));
  }

  queued(): number {
    return 0;
  }

  private active(role: LiveRole) {
    return [...this.fleet.values()].filter((w) => w.role === role && w.state !== 'draining');
  }

  private retire(w: { id: number; state: LiveWorker['state'] }) {
    w.state = 'draining';
    this.at(this.now, () => this.fleet.delete(w.id));
  }

  setReplicas(role: LiveRole, replicas: number, opts: { startupMs?: number } = {}): void {
    this.calls.push({ op: 'setReplicas', args: [role, replicas] });
    const cur = this.active(role);
    for (let i = cur.length; i < replicas; i++) {
      const w = this.addWorker(role, 'starting', this.specOf.get(role) ?? 0);
      this.at(this.now + (opts.startupMs ?? 0), () => {
        if (w.state === 'starting') w.state = 'ready';
      });
    }
    // Newest first, starting before ready (as the contract says).
    const extra = cur.sort(
      (a, b) => (a.state === 'starting' ? -1 : 0) - (b.state === 'starting' ? -1 : 0) || b.id - a.id,
    );
    for (const w of extra.slice(0, Math.max(0, cur.length - replicas))) this.retire(w);
  }

  replacePool(role: LiveRole, _spec: unknown, opts: { startupMs?: number } = {}): void {
    this.calls.push({ op: 'replacePool', args: [role] });
    const spec = (this.specOf.get(role) ?? 0) + 1;
    this.specOf.set(role, spec);
    const old = this.active(role).filter((w) => w.spec !== spec);
    // One surge worker at a time: each new one ready retires one old one.
    const step = (left: typeof old) => {
      if (left.length === 0) return;
      const w = this.addWorker(role, 'starting', spec);
      this.at(this.now + (opts.startupMs ?? 0), () => {
        w.state = 'ready';
        this.retire(left[0]);
        step(left.slice(1));
      });
    };
    step(old);
  }

  setRouter(spec: unknown): void {
    this.calls.push({ op: 'setRouter', args: [spec] });
  }

  setPlanner(spec: unknown): void {
    this.calls.push({ op: 'setPlanner', args: [spec] });
  }

  setPassTimeFactor(target: number[] | LiveRole | 'all', factor: number): void {
    this.calls.push({ op: 'setPassTimeFactor', args: [target, factor] });
    const ids = Array.isArray(target)
      ? target
      : [...this.fleet.values()].filter((w) => target === 'all' || w.role === target).map((w) => w.id);
    for (const id of ids) this.factors.set(id, factor);
  }

  stall(target: unknown, untilMs: number): void {
    this.calls.push({ op: 'stall', args: [target, untilMs] });
  }

  killWorker(id: number): void {
    this.calls.push({ op: 'killWorker', args: [id] });
    this.fleet.delete(id);
  }
}
