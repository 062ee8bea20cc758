import { grown, RequestStatus, type RequestTable } from '../engine/request-table.ts';
import type { Collector } from './collector.ts';

/**
 * What each request came to, one row per request, written when it ends (or, for requests still in flight,
 * when the run stops). Rows are indexed by the source's request index (`indexed`: a workload's index, so
 * tests and reports address requests as the workload does) or appended in the order requests end (a streamed
 * replay, whose requests have no index of their own; `source` then holds each row's index).
 *
 * About 90 bytes per request: a streamed replay of a million requests keeps 90 MB of them, what exact
 * percentiles need; a live simulation keeps none.
 */
export class RequestRecords {
  /** Rows written (appended) or the workload size (indexed). */
  size: number;
  readonly indexed: boolean;
  arrivalMs: Float64Array;
  firstAdmitMs: Float64Array;
  firstTokenMs: Float64Array;
  secondTokenMs: Float64Array;
  lastTokenMs: Float64Array;
  terminalMs: Float64Array;
  tokens: Int32Array;
  /** Prefix-cache reuse (tokens) at the best and at the first admission; -1 before any admission. */
  reusedBest: Int32Array;
  reusedFirst: Int32Array;
  admissions: Int32Array;
  preemptions: Int32Array;
  /** Engine the request was last on (-1: none). */
  engine: Int32Array;
  inputLength: Int32Array;
  outputLength: Int32Array;
  /** RequestStatus at the end (Waiting, Running or Transferring: still in flight when the run stopped). */
  status: Uint8Array;
  /** The source's index of each row. */
  source: Int32Array;
  /** Why each rejected row was rejected (by row). */
  readonly rejectReasons = new Map<number, string>();
  /** Disaggregated serving, per row (NaN / -1 if none): prefill end, transfer start and end, decode engine. */
  prefillDoneMs: Float64Array | null = null;
  transferStartMs: Float64Array | null = null;
  transferEndMs: Float64Array | null = null;
  decodeEngine: Int32Array | null = null;

  /** `size`: rows of an indexed table, or the initial room of an appended one. */
  constructor(size: number, indexed: boolean, disaggregated = false) {
    this.indexed = indexed;
    this.size = indexed ? size : 0;
    const n = Math.max(indexed ? size : 64, 1);
    this.arrivalMs = new Float64Array(n).fill(Number.NaN);
    this.firstAdmitMs = new Float64Array(n).fill(Number.NaN);
    this.firstTokenMs = new Float64Array(n).fill(Number.NaN);
    this.secondTokenMs = new Float64Array(n).fill(Number.NaN);
    this.lastTokenMs = new Float64Array(n).fill(Number.NaN);
    this.terminalMs = new Float64Array(n).fill(Number.NaN);
    this.tokens = new Int32Array(n);
    this.reusedBest = new Int32Array(n).fill(-1);
    this.reusedFirst = new Int32Array(n).fill(-1);
    this.admissions = new Int32Array(n);
    this.preemptions = new Int32Array(n);
    this.engine = new Int32Array(n).fill(-1);
    this.inputLength = new Int32Array(n);
    this.outputLength = new Int32Array(n);
    this.status = new Uint8Array(n);
    this.source = new Int32Array(n);
    if (indexed) for (let i = 0; i < size; i++) this.source[i] = i;
    if (disaggregated) {
      this.prefillDoneMs = new Float64Array(n).fill(Number.NaN);
      this.transferStartMs = new Float64Array(n).fill(Number.NaN);
      this.transferEndMs = new Float64Array(n).fill(Number.NaN);
      this.decodeEngine = new Int32Array(n).fill(-1);
    }
  }

  /** The row request r (a table slot) writes to, made room for. */
  rowOf(req: RequestTable, r: number): number {
    if (this.indexed) return req.source[r];
    const row = this.size++;
    if (row === this.arrivalMs.length) this.grow(row * 2);
    return row;
  }

  /** Copies request r's row from the table and the collector (it ended, or the run stopped with it alive). */
  write(row: number, req: RequestTable, c: Collector, r: number): void {
    this.arrivalMs[row] = c.arrivalMs[r];
    this.firstAdmitMs[row] = c.firstAdmitMs[r];
    this.firstTokenMs[row] = c.firstTokenMs[r];
    this.secondTokenMs[row] = c.secondTokenMs[r];
    this.lastTokenMs[row] = c.lastTokenMs[r];
    this.terminalMs[row] = c.terminalMs[r];
    this.tokens[row] = c.tokens[r];
    this.reusedBest[row] = c.reusedBest[r];
    this.reusedFirst[row] = c.reusedFirst[r];
    this.admissions[row] = c.admissions[r];
    this.preemptions[row] = req.preemptions[r];
    this.engine[row] = req.engine[r];
    this.inputLength[row] = req.promptLen[r];
    this.outputLength[row] = req.outputLen[r];
    this.status[row] = req.status[r];
    this.source[row] = req.source[r];
    const reason = c.rejectReasons.get(r);
    if (reason !== undefined) this.rejectReasons.set(row, reason);
  }

  /** Rows still in flight when the run stopped (neither done nor rejected nor cancelled). */
  get incomplete(): number {
    let n = 0;
    for (let i = 0; i < this.size; i++) {
      const s = this.status[i];
      if (s !== RequestStatus.Done && s !== RequestStatus.Rejected && s !== RequestStatus.Cancelled) n++;
    }
    return n;
  }

  private grow(n: number): void {
    const from = this.arrivalMs.length;
    const f = (a: Float64Array) => {
      const b = grown(a, n);
      b.fill(Number.NaN, from);
      return b;
    };
    this.arrivalMs = f(this.arrivalMs);
    this.firstAdmitMs = f(this.firstAdmitMs);
    this.firstTokenMs = f(this.firstTokenMs);
    this.secondTokenMs = f(this.secondTokenMs);
    this.lastTokenMs = f(this.lastTokenMs);
    this.terminalMs = f(this.terminalMs);
    this.tokens = grown(this.tokens, n);
    this.reusedBest = grown(this.reusedBest, n);
    this.reusedFirst = grown(this.reusedFirst, n);
    this.admissions = grown(this.admissions, n);
    this.preemptions = grown(this.preemptions, n);
    this.engine = grown(this.engine, n);
    this.engine.fill(-1, from);
    this.inputLength = grown(this.inputLength, n);
    this.outputLength = grown(this.outputLength, n);
    this.status = grown(this.status, n);
    this.source = grown(this.source, n);
    if (this.prefillDoneMs !== null) {
      this.prefillDoneMs = f(this.prefillDoneMs);
      this.transferStartMs = f(this.transferStartMs as Float64Array);
      this.transferEndMs = f(this.transferEndMs as Float64Array);
      const d = grown(this.decodeEngine as Int32Array, n);
      d.fill(-1, from);
      this.decodeEngine = d;
    }
  }
}
