import { RequestRecords } from '../../sim/metrics/records.ts';
import { Simulation, type SimulationOptions, type SimulationResult } from '../../sim/simulation.ts';
import { WorkloadSource } from '../../sim/source.ts';
import { type StreamNotes, StreamSource } from '../../sim/stream-source.ts';
import { WorkloadBuilder } from '../../sim/workload/workload.ts';
import { TraceError } from './issues.ts';
import type { TraceRequest, TraceSummary } from './parser.ts';
import { addToWorkload, type TraceInput, TraceReader, type TraceReadOptions } from './read.ts';
import { traceFormat } from './registry.ts';

/**
 * Replays a trace through the simulator while reading it: rows are parsed a chunk at a time and fed to the
 * simulation, which advances as far as the rows read allow, so memory holds the requests in flight and the
 * read-ahead, not the trace (see StreamSource for how arrivals are ordered). Same results as reading the whole
 * trace first (`readTrace` + `simulate`) whenever the trace is in timestamp order to within the reorder window.
 * Formats whose rows refer to one another (`wholeTrace`: dependency DAGs, turns continuing earlier ones) are
 * read whole first, within the reader's bounds, and replayed from memory.
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
  // Iterated by hand: a whole-trace format reads on from the same place.
  const batches = reader.batches();
  try {
    for (;;) {
      const next = await batches.next();
      if (next.done) break;
      const batch = next.value;
      if (batch.length === 0) continue;
      // The format (and so the trace block size) is known once a row was read.
      if (sim === null) {
        if (traceFormat(reader.summary.format)?.wholeTrace)
          return await replayWhole(reader, batches, batch, options, t0);
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
  } finally {
    await batches.return(); // closes the input (a no-op once it ended)
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

/** Requests a whole-trace format may hold in memory (a few GB of columns at most). */
const WHOLE_TRACE_REQUESTS = 10_000_000;

/** Its requests labelled by trace line in reports, as a streamed replay labels them. */
class TraceWorkloadSource extends WorkloadSource {
  labelOf(id: number): number {
    return (this.workload.sourceLine as Int32Array)[id];
  }
}

/** Reads the rest of the trace into a workload, then replays it from memory. */
async function replayWhole(
  reader: TraceReader,
  rest: AsyncGenerator<TraceRequest[], void, undefined>,
  first: readonly TraceRequest[],
  options: SimulationOptions,
  t0: number,
): Promise<ReplayResult> {
  const summary = reader.summary;
  const builder = new WorkloadBuilder(summary.traceBlockSize);
  let held = 0;
  const add = (r: TraceRequest) => {
    if (++held > WHOLE_TRACE_REQUESTS)
      throw new TraceError({
        source: reader.source,
        line: r.line,
        field: null,
        message: `more than ${WHOLE_TRACE_REQUESTS.toLocaleString('en-US')} requests in a ${summary.format} trace, which is held in memory whole (its rows refer to one another): replay it in parts`,
      });
    addToWorkload(builder, r, summary.denseHashIds);
  };
  for (const r of first) add(r);
  for await (const batch of rest) for (const r of batch) add(r);
  const workload = builder.build();
  const closedLoop = options.arrivals.kind === 'closed-loop';
  const refuse = (message: string): never => {
    throw new TraceError({ source: reader.source, line: 0, field: null, message });
  };
  if (summary.format === 'applied_compute_agentic' && !closedLoop)
    refuse(
      'applied_compute_agentic rows carry no timestamps: replay them with --concurrency N (sessions in flight)',
    );
  if (workload.dependents && closedLoop)
    refuse(
      `${summary.format} rows that wait for others replay on the trace's own schedule: drop --concurrency`,
    );
  const records = new RequestRecords(0, false, options.disaggregation !== undefined);
  const sim = new Simulation(
    new TraceWorkloadSource(workload, options.arrivals),
    workload.traceBlockSize,
    options,
    records,
    workload,
  );
  sim.start();
  sim.advance(options.maxSimTimeMs ?? Number.POSITIVE_INFINITY);
  return {
    result: sim.finish(),
    trace: summary,
    stream: { lateRows: { count: 0, firstLine: 0 }, lateTurns: { count: 0, firstLine: 0 } },
    wallMs: performance.now() - t0,
  };
}
