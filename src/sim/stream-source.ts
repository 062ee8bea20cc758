import type { ArrivalQueue } from './arrival-queue.ts';
import type { RequestTable } from './engine/request-table.ts';
import type { ArrivalSpec, RequestSource } from './source.ts';

/** One request as a streamed trace gives it (the trace reader's validated rows have this shape). */
export interface StreamedRequest {
  /** 1-based line in the trace (in its file, for a trace of several files): how reports name it. */
  line: number;
  /** Raw timestamp (ms) of an independent request or a session's first turn; NaN for a follow-up turn. */
  arrivalMs: number;
  inputLength: number;
  outputLength: number;
  /** Content ids (`traceBlockSize` tokens each), or null: the prompt shares nothing with any other. */
  hashIds: readonly number[] | null;
  /** Dense session index, or -1. */
  session: number;
  /** Follow-up turn: think time after the previous turn completes (ms); NaN otherwise. */
  delayMs: number;
}

/** What the stream noticed about ordering, for the run's summary. */
export interface StreamNotes {
  /** First turns further out of timestamp order than the reorder window: replayed at the latest time already
   * scheduled instead of their own (count, first line). */
  lateRows: { count: number; firstLine: number };
  /** Follow-up turns read after the time they were due (their row came too late in the file): they arrive
   * when read (count, first line). */
  lateTurns: { count: number; firstLine: number };
}

/** How many first turns are held back to put slightly unsorted timestamps in order. */
export const DEFAULT_REORDER_ROWS = 65_536;

interface Session {
  /** Follow-up turns read and not yet scheduled, in file order (with their ids). */
  turns: { row: StreamedRequest; id: number }[];
  /** Its previous turn ended at this time with no next turn known yet (NaN: not waiting). */
  waitingSince: number;
  /** The arrival order the next turn would have had when its predecessor ended. */
  seq: number;
  /** Rows read when its latest row was read. */
  lastRow: number;
}

/**
 * A trace read as the simulation goes: its driver feeds rows (`feed`) as it reads them and says when the
 * input ends (`end`); the simulation asks `ready(t)` before each time step, and stops until fed when not.
 * Memory holds the rows read ahead of the simulated time, the reorder window and one entry per session, never
 * the whole trace.
 *
 * Arrivals are those of a workload read whole (`WorkloadSource`), provided the file is in timestamp order to
 * within the reorder window: first turns are released from a heap of `reorderRows` rows in (timestamp, line)
 * order, shifted so the first arrives at 0; a row further out of order arrives at the latest time already
 * scheduled (counted). A session's next turn arrives its think time after the previous one ends; its row is
 * normally read long before (recorded traces list turns in time order), else it arrives when read (counted).
 * Closed loops dispatch first turns in file order; before a step, enough of them (and the next row of every
 * session in flight) must have been read.
 */
export class StreamSource implements RequestSource {
  readonly notes: StreamNotes = {
    lateRows: { count: 0, firstLine: 0 },
    lateTurns: { count: 0, firstLine: 0 },
  };
  /** Requests read so far (first turns and follow-ups). */
  rowsRead = 0;
  private readonly arrivals: ArrivalSpec;
  private readonly speedup: number;
  private readonly reorderRows: number;
  private queue: ArrivalQueue | null = null;
  private eof = false;
  /** Rows read and not yet admitted, by id (the row's number in the order read). */
  private readonly pending = new Map<number, StreamedRequest>();
  /** Trace line of each request read and not ended, by id. */
  private readonly lineOf = new Map<number, number>();
  private readonly sessions: Session[] = [];
  /** Session of each admitted request that has one, by id (until it ends). */
  private readonly sessionOfLine = new Map<number, number>();
  /** Sessions with a turn in flight and no next row read yet (their next row may still come). */
  private readonly awaiting = new Set<number>();
  private readonly sessionLookahead: number;
  // Reorder heap of first turns: (timestamp, line), min first.
  private heapTs = new Float64Array(256);
  private heapLine = new Int32Array(256);
  private heapLen = 0;
  private t0 = Number.NaN;
  private lastReleased = Number.NEGATIVE_INFINITY;
  // Closed loop: first turns in file order, not yet dispatched.
  private units: number[] = [];
  private unitHead = 0;
  private inFlight = 0;
  private freshContent = -3;
  private now = 0;

  /**
   * `reorderRows`: first turns held back to sort slightly unsorted timestamps. `sessionLookaheadRows`: how far
   * past a session's latest row its next turn is looked for before the session is taken as finished (default:
   * the reorder window).
   */
  constructor(arrivals: ArrivalSpec, opts: { reorderRows?: number; sessionLookaheadRows?: number } = {}) {
    this.arrivals = arrivals;
    this.speedup = arrivals.kind === 'trace' ? arrivals.speedup : 1;
    this.reorderRows = Math.max(1, opts.reorderRows ?? DEFAULT_REORDER_ROWS);
    this.sessionLookahead = Math.max(1, opts.sessionLookaheadRows ?? this.reorderRows);
  }

  /** Rows read but not yet arrived (the read-ahead, for memory accounting). */
  get buffered(): number {
    return this.pending.size;
  }

  start(q: ArrivalQueue): void {
    this.queue = q;
    this.dispatchUnits(0);
  }

  /** More rows, in file order; `now` is the simulation's current time. */
  feed(rows: readonly StreamedRequest[], now: number): void {
    this.now = now;
    for (const row of rows) {
      const id = this.rowsRead++;
      this.pending.set(id, row);
      this.lineOf.set(id, row.line);
      if (row.session >= 0) {
        this.session(row.session).lastRow = this.rowsRead;
        this.awaiting.delete(row.session);
      }
      if (Number.isNaN(row.arrivalMs)) {
        this.addTurn(row, id);
        continue;
      }
      if (this.arrivals.kind === 'closed-loop') this.units.push(id);
      else {
        this.heapPush(row.arrivalMs, id);
        if (this.heapLen > this.reorderRows) this.release();
      }
    }
    if (this.arrivals.kind === 'closed-loop') this.dispatchUnits(now);
  }

  /** The input ended: everything held back is released. */
  end(now: number): void {
    this.now = now;
    this.eof = true;
    this.awaiting.clear();
    while (this.heapLen > 0) this.release();
    this.dispatchUnits(now);
  }

  /** The input has ended. */
  get exhausted(): boolean {
    return this.eof;
  }

  ready(t: number): boolean {
    if (this.eof) return true;
    // A session in flight must have its next row read (or be far enough behind the reading to be over).
    if (this.awaiting.size > 0) {
      for (const s of this.awaiting) {
        if (this.rowsRead - this.sessions[s].lastRow < this.sessionLookahead) return false;
        this.awaiting.delete(s);
      }
    }
    if (this.arrivals.kind === 'closed-loop')
      return this.units.length - this.unitHead >= this.arrivals.concurrency;
    // Every row still unread is assumed no earlier than the oldest one held back.
    return this.heapLen >= this.reorderRows && t < this.toSimTime(this.heapTs[0]);
  }

  nextUnscheduled(): number {
    if (this.heapLen === 0) return Number.POSITIVE_INFINITY;
    if (Number.isNaN(this.t0)) return 0; // nothing released yet: the first arrival is at 0
    return this.toSimTime(Math.max(this.heapTs[0], this.lastReleased));
  }

  labelOf(id: number): number {
    return this.lineOf.get(id) ?? -1;
  }

  admit(id: number, req: RequestTable): number {
    const row = this.pending.get(id) as StreamedRequest;
    this.pending.delete(id);
    if (row.session >= 0) {
      this.sessionOfLine.set(id, row.session);
      if (!this.eof && this.sessions[row.session].turns.length === 0) this.awaiting.add(row.session);
    }
    let ids: ArrayLike<number> = row.hashIds ?? [];
    if (row.hashIds === null) {
      // No prefix information: content ids no other prompt has (trace ids are >= 0, -2 is reserved).
      const n = Math.ceil(row.inputLength / req.keys.traceBlockSize);
      const fresh = new Array<number>(n);
      for (let k = 0; k < n; k++) fresh[k] = this.freshContent--;
      ids = fresh;
    }
    return req.admit({
      inputLength: row.inputLength,
      outputLength: row.outputLength,
      hashIds: ids,
      hashFrom: 0,
      source: id,
    });
  }

  ended(id: number, t: number, q: ArrivalQueue): void {
    this.lineOf.delete(id);
    const s = this.sessionOfLine.get(id);
    if (s !== undefined) {
      this.sessionOfLine.delete(id);
      const session = this.sessions[s];
      const next = session.turns.shift();
      if (next !== undefined) {
        q.push(t + next.row.delayMs / this.speedup, next.id);
        return;
      }
      if (!this.eof) {
        // Taken as finished (its next row was not within the lookahead); should a turn still come, it
        // arrives when read (counted as late), as late as the closed loop's next dispatch.
        session.waitingSince = t;
        session.seq = q.reserveSeq();
      }
    }
    if (this.arrivals.kind === 'closed-loop') {
      this.inFlight--;
      this.dispatchUnits(t);
    }
  }

  private session(s: number): Session {
    let session = this.sessions[s];
    if (session === undefined) {
      for (let i = this.sessions.length; i <= s; i++)
        this.sessions.push({ turns: [], waitingSince: Number.NaN, seq: 0, lastRow: 0 });
      session = this.sessions[s];
    }
    return session;
  }

  private addTurn(row: StreamedRequest, id: number): void {
    const session = this.session(row.session);
    if (Number.isNaN(session.waitingSince)) {
      session.turns.push({ row, id });
      return;
    }
    // Its predecessor ended before this row was read.
    let at = session.waitingSince + row.delayMs / this.speedup;
    if (at < this.now || this.arrivals.kind === 'closed-loop') {
      if (this.notes.lateTurns.count++ === 0) this.notes.lateTurns.firstLine = row.line;
      at = Math.max(at, this.now);
    }
    session.waitingSince = Number.NaN;
    if (this.arrivals.kind === 'closed-loop') this.inFlight++;
    (this.queue as ArrivalQueue).push(at, id, session.seq);
  }

  /** Closed loop: first turns dispatched at `t` while fewer than `concurrency` are in flight. */
  private dispatchUnits(t: number): void {
    if (this.arrivals.kind !== 'closed-loop' || this.queue === null) return;
    const c = Math.max(1, this.arrivals.concurrency);
    while (this.inFlight < c && this.unitHead < this.units.length) {
      this.queue.push(t, this.units[this.unitHead++]);
      this.inFlight++;
    }
    if (this.unitHead > 4096 && this.unitHead * 2 > this.units.length) {
      this.units = this.units.slice(this.unitHead);
      this.unitHead = 0;
    }
  }

  private toSimTime(ts: number): number {
    return (ts - this.t0) / this.speedup;
  }

  /** Schedules the earliest first turn held back. */
  private release(): void {
    const ts = this.heapTs[0];
    const id = this.heapLine[0];
    this.heapPop();
    if (Number.isNaN(this.t0)) this.t0 = ts;
    let at = ts;
    if (ts < this.lastReleased) {
      if (this.notes.lateRows.count++ === 0) this.notes.lateRows.firstLine = this.labelOf(id);
      at = this.lastReleased;
    }
    this.lastReleased = at;
    (this.queue as ArrivalQueue).appendStatic(this.toSimTime(at), id);
  }

  private heapPush(ts: number, line: number): void {
    if (this.heapLen === this.heapTs.length) {
      const t = new Float64Array(this.heapLen * 2);
      t.set(this.heapTs);
      this.heapTs = t;
      const l = new Int32Array(this.heapLen * 2);
      l.set(this.heapLine);
      this.heapLine = l;
    }
    let i = this.heapLen++;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!before(ts, line, this.heapTs[p], this.heapLine[p])) break;
      this.heapTs[i] = this.heapTs[p];
      this.heapLine[i] = this.heapLine[p];
      i = p;
    }
    this.heapTs[i] = ts;
    this.heapLine[i] = line;
  }

  private heapPop(): void {
    const n = --this.heapLen;
    const ts = this.heapTs[n];
    const line = this.heapLine[n];
    let i = 0;
    for (;;) {
      let c = 2 * i + 1;
      if (c >= n) break;
      if (c + 1 < n && before(this.heapTs[c + 1], this.heapLine[c + 1], this.heapTs[c], this.heapLine[c]))
        c++;
      if (!before(this.heapTs[c], this.heapLine[c], ts, line)) break;
      this.heapTs[i] = this.heapTs[c];
      this.heapLine[i] = this.heapLine[c];
      i = c;
    }
    this.heapTs[i] = ts;
    this.heapLine[i] = line;
  }
}

function before(t1: number, l1: number, t2: number, l2: number): boolean {
  return t1 < t2 || (t1 === t2 && l1 < l2);
}
