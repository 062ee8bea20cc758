import type {
  LiveEndReason,
  LiveObserver,
  LiveRequest,
  LiveRequestInfo,
  LiveSimulation,
  LiveWorker,
} from '../../src/sim/live.ts';

/**
 * A tiny stand-in for the live simulation, for fast unit tests of the twin's HTTP, metrics and feeding layers
 * (integration tests use the real simulation): one worker, every request served at once in parallel, first
 * token `ttftMs + inputLength * prefillMsPerToken` after arrival (less its cached prefix: leading content ids
 * seen before), then one token every `itlMs`. Prompts longer than `maxPrompt` are rejected at arrival.
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
  readonly opts: {
    ttftMs?: number;
    prefillMsPerToken?: number;
    itlMs?: number;
    maxPrompt?: number;
    blockSize?: number;
  };
  constructor(opts: FakeLive['opts'] = {}) {
    this.opts = opts;
  }

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
    return [
      {
        id: 0,
        role: 'aggregated',
        state: 'ready',
        activeBlocks: this.activeBlocks,
        totalBlocks: 1000,
        usage: this.activeBlocks / 1000,
        prefixHitRate: 0,
        waiting: 0,
        running: this.live.size,
      },
    ];
  }

  queued(): number {
    return 0;
  }

  setReplicas(): void {
    throw new Error('not in the fake');
  }
  replacePool(): void {
    throw new Error('not in the fake');
  }
  setRouter(): void {
    throw new Error('not in the fake');
  }
  setPlanner(): void {
    throw new Error('not in the fake');
  }
  setPassTimeFactor(): void {
    throw new Error('not in the fake');
  }
  stall(): void {
    throw new Error('not in the fake');
  }
  killWorker(): void {
    throw new Error('not in the fake');
  }
}
