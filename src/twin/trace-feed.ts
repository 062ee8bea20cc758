import type { Logger } from 'pino';
import { TraceError, TraceReader, type TraceRequest } from '../telemetry/trace/index.ts';
import type { RequestListener, TwinRuntime } from './runtime.ts';

/**
 * Feeds a trace into a running twin: rows are read incrementally (one chunk at a time, any format and gzip
 * the trace reader knows) and submitted at their arrival times, a little ahead of the clock (`horizonMs`) so
 * the simulation sees exact arrival times; the trace can loop (each pass shifted in time after the previous
 * one and with its own prefix ids, so a loop does not find the previous pass's prompts in cache) or play once,
 * and can be cut at a simulated time (`untilMs`) so another trace takes over (`--drift-at`).
 *
 * Prompt identity: each trace hash id stands for `traceBlockSize` tokens; the twin's content blocks are finer
 * (`contentBlockSize`, which divides it), so each hash id becomes several content ids derived from it (two
 * prompts still share content exactly as far as their hash ids agree). A row without hash ids shares nothing.
 *
 * Sessions (multi-turn rows): a follow-up turn is submitted when the previous turn of its session ends, after
 * its delay, as the simulator's closed-loop sessions do.
 */

export interface TraceFeedOptions {
  runtime: TwinRuntime;
  path: string;
  format?: string;
  /** Tokens per hash id (default: the format's, 512 for Mooncake). */
  traceBlockSize?: number;
  /** Play the trace again when it ends (default false: play once). */
  loop?: boolean;
  /** Simulated time of the trace's first arrival (default: the simulation's now once the first rows are read). */
  startAtMs?: number;
  /** Prefix of its requests' ids (`<name>-<pass>-<line>`); default 'trace'. */
  name?: string;
  /** Stop submitting arrivals at or after this simulated time. */
  untilMs?: number;
  /** Divide arrival gaps by this (default 1). */
  speedup?: number;
  /** Submit arrivals this far ahead of the clock (simulated ms; default two wall seconds' worth, at least
   * 2000), so a twin that falls behind its clock still takes them at their trace times. */
  horizonMs?: number;
  logger?: Logger;
  /** A row the simulation cannot take, or an unreadable trace, after start: reported, not fatal. */
  onError?: (e: Error) => void;
}

/** Mixes two 32-bit values into a 53-bit content id. */
function mix53(a: number, b: number, c: number): number {
  let h1 = Math.imul(a ^ 0x9e3779b9, 0x85ebca6b) ^ Math.imul(c, 0xc2b2ae35);
  let h2 = Math.imul(b ^ 0x7f4a7c15, 0x27d4eb2f) ^ (h1 >>> 13);
  h1 = Math.imul(h1 ^ (h2 >>> 16), 0x165667b1);
  h2 = Math.imul(h2 ^ (h1 >>> 15), 0x9e3779b1);
  return (h2 >>> 11) * 2 ** 32 + (h1 >>> 0);
}

interface Buffered {
  r: TraceRequest;
  /** Simulated arrival (NaN for a session follow-up). */
  at: number;
  pass: number;
}

interface SessionState {
  busy: boolean;
  lastEndMs: number;
  queue: Buffered[];
}

export class TraceFeeder {
  private readonly opts: TraceFeedOptions;
  private reader: TraceReader | undefined;
  private batches: AsyncGenerator<TraceRequest[], void, undefined> | undefined;
  /** Rows read and not yet submitted, with their simulated arrival and pass (fixed when read). */
  private buffer: Buffered[] = [];
  private bufferHead = 0;
  private reading = false;
  private exhausted = false;
  private stopped = false;
  private pass = 0;
  /** Raw timestamp of the trace's first row, and of its last row seen (loop offset). */
  private t0 = Number.NaN;
  private lastRaw = Number.NaN;
  private passOffsetMs = 0;
  /** Simulated time of the first pass's first arrival. */
  private originMs_ = Number.NaN;
  /** Rows with an arrival time read in the current pass. */
  private passRows = 0;
  private readonly sessions = new Map<number, SessionState>();
  private freshIds = 0;
  /** Sessions whose turn ended during the last advance (follow-ups are submitted after it, not inside it). */
  private turnsEnded: { session: number; tMs: number }[] = [];
  private traceBlockSize = 0;
  /** Rows submitted, and the passes started. */
  submitted = 0;

  /** Simulated time the trace's first arrival maps to (NaN until its first rows are read). */
  get originMs(): number {
    return this.originMs_;
  }
  private hook = () => this.feed();
  private started = false;

  constructor(opts: TraceFeedOptions) {
    this.opts = opts;
  }

  /** Reads the first chunk (so a bad trace fails here, before the twin serves), then feeds on every advance. */
  async start(): Promise<void> {
    this.openPass();
    await this.readMore();
    if (this.traceBlockSize % this.opts.runtime.contentBlockSize !== 0) {
      throw new TraceError({
        source: this.opts.path,
        line: 0,
        field: null,
        message: `its block size ${this.traceBlockSize} is not a multiple of the twin's content block of ${this.opts.runtime.contentBlockSize} tokens`,
      });
    }
    if (this.buffer.length === 0 && this.exhausted)
      throw new TraceError({
        source: this.opts.path,
        line: 0,
        field: null,
        message: 'the trace has no requests',
      });
    this.started = true;
    this.opts.runtime.onAdvance(this.hook);
    this.feed();
  }

  stop(): void {
    this.stopped = true;
  }

  /** Simulated arrival of a row of the pass being read. */
  private arrivalOf(r: TraceRequest): number {
    const speed = this.opts.speedup ?? 1;
    if (Number.isNaN(this.originMs_)) this.originMs_ = this.opts.startAtMs ?? this.opts.runtime.sim.now;
    return this.originMs_ + this.passOffsetMs + (r.arrivalMs - this.t0) / speed;
  }

  private openPass(): void {
    this.reader = new TraceReader(this.opts.path, {
      format: this.opts.format,
      traceBlockSize: this.opts.traceBlockSize,
    });
    this.batches = this.reader.batches();
    this.exhausted = false;
  }

  private readPromise: Promise<void> = Promise.resolve();

  /** Resolves once no read is in flight (reads chain: each may start the next). */
  async settled(): Promise<void> {
    for (;;) {
      const p = this.readPromise;
      await p;
      if (p === this.readPromise && !this.reading) return;
    }
  }

  private readMore(): Promise<void> {
    if (this.reading || this.exhausted || !this.batches) return this.readPromise;
    this.readPromise = this.readOnce();
    return this.readPromise;
  }

  private async readOnce(): Promise<void> {
    this.reading = true;
    try {
      const next = await this.batches!.next();
      if (next.done) {
        this.exhausted = true;
        if (this.opts.loop && !this.stopped && this.passRows > 0) this.nextPass();
      } else {
        this.traceBlockSize ||= this.reader!.summary.traceBlockSize;
        if (this.bufferHead > 0) {
          this.buffer = this.buffer.slice(this.bufferHead);
          this.bufferHead = 0;
        }
        for (const r of next.value) {
          if (r.waitFor)
            throw new TraceError({
              source: this.opts.path,
              line: r.line,
              field: null,
              message:
                'the twin does not replay requests that wait for others (agentic traces): simulate them with servetune simulate',
            });
          if (Number.isNaN(this.t0) && !Number.isNaN(r.arrivalMs)) this.t0 = r.arrivalMs;
          if (!Number.isNaN(r.arrivalMs)) {
            this.lastRaw = r.arrivalMs;
            this.passRows++;
          }
          this.buffer.push({
            r,
            at: Number.isNaN(r.arrivalMs) ? Number.NaN : this.arrivalOf(r),
            pass: this.pass,
          });
        }
      }
    } catch (e) {
      this.stopped = true;
      this.exhausted = true;
      // Before start() returns the caller gets the error; afterwards it is reported and the twin goes on.
      if (!this.started) throw e;
      if (this.opts.onError) this.opts.onError(e as Error);
      else this.opts.logger?.error({ err: (e as Error).message }, 'trace feed stopped');
    } finally {
      this.reading = false;
    }
    if (!this.stopped) this.feed();
  }

  private nextPass(): void {
    // The next pass starts one mean inter-arrival gap after the last arrival of this one.
    const span = this.lastRaw - this.t0;
    const gap = this.passRows > 1 ? span / (this.passRows - 1) : 1000;
    this.passOffsetMs += (span + gap) / (this.opts.speedup ?? 1);
    this.pass++;
    this.passRows = 0;
    this.openPass();
  }

  private horizonMs(): number {
    return this.opts.horizonMs ?? Math.max(2000, 2000 * this.opts.runtime.clock.scale);
  }

  /** Submits every buffered arrival within the horizon, and reads on when the buffer runs low. */
  private feed(): void {
    if (this.stopped) return;
    const rt = this.opts.runtime;
    for (const { session, tMs } of this.turnsEnded.splice(0)) {
      const s = this.sessions.get(session);
      if (!s) continue;
      s.lastEndMs = tMs;
      const next = s.queue.shift();
      if (next) this.submit(next.r, Math.max(tMs + next.r.delayMs, rt.sim.now), next.pass);
      else s.busy = false;
    }
    const horizon = rt.sim.now + this.horizonMs();
    while (this.bufferHead < this.buffer.length) {
      const { r, at, pass } = this.buffer[this.bufferHead];
      if (Number.isNaN(at)) {
        this.bufferHead++;
        this.followUp(r, pass);
        continue;
      }
      if (this.opts.untilMs !== undefined && at >= this.opts.untilMs) {
        this.stopped = true;
        return;
      }
      if (at > horizon) break;
      this.bufferHead++;
      if (r.session >= 0) {
        const s: SessionState = { busy: true, lastEndMs: Number.NaN, queue: [] };
        this.sessions.set(r.session, s);
      }
      this.submit(r, Math.max(at, rt.sim.now), pass);
    }
    // Read ahead while the buffered rows end within two horizons, so arrivals are known before the clock
    // reaches them and no more than that is held.
    const last = this.buffer.length > this.bufferHead ? this.buffer[this.buffer.length - 1].at : Number.NaN;
    if (!(last > rt.sim.now + 2 * this.horizonMs())) void this.readMore();
  }

  private followUp(r: TraceRequest, pass: number): void {
    const s = this.sessions.get(r.session);
    if (!s) return; // its session started before this feeder's window
    if (s.busy) s.queue.push({ r, at: Number.NaN, pass });
    else {
      s.busy = true;
      this.submit(r, Math.max(s.lastEndMs + r.delayMs, this.opts.runtime.sim.now), pass);
    }
  }

  private submit(r: TraceRequest, atMs: number, pass: number): void {
    const rt = this.opts.runtime;
    const content = rt.contentBlockSize;
    const per = this.traceBlockSize / content;
    const blocks = Math.ceil(r.inputLength / content);
    const ids = new Array<number>(blocks);
    for (let i = 0; i < blocks; i++) {
      const hashIndex = Math.floor(i / per);
      const h = r.hashIds && hashIndex < r.hashIds.length ? r.hashIds[hashIndex] : -1;
      ids[i] =
        h >= 0
          ? mix53(h % 2 ** 32, Math.floor(h / 2 ** 32) + pass * 65_537, i % per)
          : mix53(this.freshIds++, 0x5f3759df, pass);
    }
    const listener: RequestListener | undefined =
      r.session >= 0
        ? {
            end: (_reason, _tokens, tMs) => {
              this.turnsEnded.push({ session: r.session, tMs });
            },
          }
        : undefined;
    rt.submit({
      requestId: `${this.opts.name ?? 'trace'}-${pass}-${r.line}`,
      endpoint: 'chat_completions',
      stream: true,
      inputTokens: r.inputLength,
      outputTokens: r.outputLength,
      blockIds: ids,
      atMs,
      listener,
    });
    this.submitted++;
  }
}
