import { RequestRecords } from '../../sim/metrics/records.ts';
import { Simulation, type SimulationOptions, type SimulationResult } from '../../sim/simulation.ts';
import { type StreamNotes, StreamSource } from '../../sim/stream-source.ts';
import type { TraceSummary } from './parser.ts';
import { type TraceInput, TraceReader, type TraceReadOptions } from './read.ts';

/**
 * Replays a trace through the simulator while reading it: rows are parsed a chunk at a time and fed to the
 * simulation, which advances as far as the rows read allow, so memory holds the requests in flight and the
 * read-ahead, not the trace (see StreamSource for how arrivals are ordered). Same results as reading the whole
 * trace first (`readTrace` + `simulate`) whenever the trace is in timestamp order to within the reorder window.
 */

export interface ReplayProgress {
  simulatedMs: number;
  /** Requests ended (completed or rejected) and in flight. */
  done: number;
  inFlight: number;
  /** Rows read from the trace so far. */
  rowsRead: number;
  wallMs: number;
}

export interface ReplayOptions {
  /** First turns held back to reorder slightly unsorted timestamps (default 65,536). */
  reorderRows?: number;
  /** Rows read past a session's latest row before it is taken as finished (default: reorderRows). */
  sessionLookaheadRows?: number;
  /** Called after each chunk of input (a few thousand rows). */
  onProgress?: (p: ReplayProgress) => void;
}

export interface ReplayResult {
  result: SimulationResult;
  trace: TraceSummary;
  stream: StreamNotes;
  /** Host time of the whole replay, reading included (ms). */
  wallMs: number;
}

export async function replayTrace(
  input: TraceInput,
  read: TraceReadOptions,
  options: SimulationOptions,
  opts: ReplayOptions = {},
): Promise<ReplayResult> {
  const t0 = performance.now();
  const reader = new TraceReader(input, read);
  const source = new StreamSource(options.arrivals, {
    reorderRows: opts.reorderRows,
    sessionLookaheadRows: opts.sessionLookaheadRows,
  });
  const records = new RequestRecords(0, false, options.disaggregation !== undefined);
  const stopAt = options.maxSimTimeMs ?? Number.POSITIVE_INFINITY;
  let sim: Simulation | null = null;
  const progress = () =>
    opts.onProgress?.({
      simulatedMs: sim?.now ?? 0,
      done: sim?.endedRequests ?? 0,
      inFlight: sim?.liveRequests ?? 0,
      rowsRead: source.rowsRead,
      wallMs: performance.now() - t0,
    });
  let reachedStop = false;
  for await (const batch of reader.batches()) {
    if (batch.length === 0) continue;
    // The format (and so the trace block size) is known once a row was read.
    if (sim === null) {
      sim = new Simulation(source, reader.summary.traceBlockSize, options, records);
      sim.start();
    }
    source.feed(batch, sim.now);
    // Before the input ends, the simulation stops for more rows; finishing means it reached `stopAt`.
    if (sim.advance(stopAt)) {
      reachedStop = true;
      break;
    }
    progress();
  }
  if (sim === null) throw new Error('replayTrace: the reader returned no requests'); // it throws first
  if (!reachedStop) {
    source.end(sim.now);
    sim.advance(stopAt);
  }
  progress();
  return {
    result: sim.finish(),
    trace: reader.summary,
    stream: source.notes,
    wallMs: performance.now() - t0,
  };
}
