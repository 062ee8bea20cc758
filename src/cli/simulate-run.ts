import { readFileSync, statSync } from 'node:fs';
import { totalmem } from 'node:os';
import { type PoolTimings, toSimulationOptions } from '../config/run.ts';
import { DEFAULT_NUM_GPU_BLOCKS, type SimulationConfig } from '../config/schema.ts';
import { estimateRun, type PoolShape, REFERENCE_REQUESTS_PER_S } from '../sim/cost.ts';
import { RequestStatus } from '../sim/engine/request-table.ts';
import { RequestRecords } from '../sim/metrics/records.ts';
import { buildReport, type SimulationReport } from '../sim/metrics/report.ts';
import { Simulation, type SimulationResult } from '../sim/simulation.ts';
import { WorkloadSource } from '../sim/source.ts';
import type { StreamNotes } from '../sim/stream-source.ts';
import type { TimingModel } from '../sim/timing/timing-model.ts';
import type { Workload } from '../sim/workload/workload.ts';
import { replayTrace, TraceError, TraceReader, type TraceSummary } from '../telemetry/trace/index.ts';
import { UsageError } from './errors.ts';
import { formatDuration, RunProgress } from './progress.ts';

/**
 * Running one simulation for `servetune simulate`, with progress on stderr: a trace is replayed while it is
 * read (memory bounded by the requests in flight, not the trace), a synthetic workload held in memory is
 * stepped through simulated time in slices so progress can be shown between them.
 */

export interface RunOutcome {
  result: SimulationResult;
  report: SimulationReport;
  /** What the trace reader noticed (traces only). */
  trace?: TraceSummary;
  /** How the stream ordered its arrivals (traces only). */
  stream?: StreamNotes;
}

/** Replays the configured trace while reading it. */
export async function runTrace(
  config: SimulationConfig,
  timings: TimingModel | PoolTimings | undefined,
  err: NodeJS.WritableStream,
  quiet: boolean,
): Promise<RunOutcome> {
  const path = config.workload.trace as string;
  const progress = new RunProgress(err, quiet);
  try {
    const r = await replayTrace(
      path,
      { traceBlockSize: config.workload.traceBlockSize, format: config.workload.traceFormat },
      toSimulationOptions(config, timings),
      { onProgress: (p) => progress.update(p) },
    );
    return {
      result: r.result,
      report: buildReport(r.result, r.wallMs, config.slo),
      trace: r.trace,
      stream: r.stream,
    };
  } catch (e) {
    if (e instanceof TraceError) throw new UsageError(e.message);
    throw e;
  } finally {
    progress.done();
  }
}

/** Simulates a workload held in memory, in slices of simulated time (about a second of wall time each). */
export function runWorkload(
  config: SimulationConfig,
  workload: Workload,
  timings: TimingModel | PoolTimings | undefined,
  err: NodeJS.WritableStream,
  quiet: boolean,
): RunOutcome {
  const options = toSimulationOptions(config, timings);
  const records = new RequestRecords(workload.size, true, options.disaggregation !== undefined);
  const sim = new Simulation(
    new WorkloadSource(workload, options.arrivals),
    workload.traceBlockSize,
    options,
    records,
    workload,
  );
  const stopAt = options.maxSimTimeMs ?? Number.POSITIVE_INFINITY;
  const progress = new RunProgress(err, quiet);
  const t0 = performance.now();
  sim.start();
  let slice = 10_000;
  for (;;) {
    const next = sim.nextRequestEventTime();
    if (next === Number.POSITIVE_INFINITY || next > stopAt) break;
    const w0 = performance.now();
    sim.advance(Math.min(stopAt, next + slice));
    // Aim at about a second of wall time per slice.
    const wall = performance.now() - w0;
    slice = Math.min(slice * 4, Math.max(slice / 4, (slice * 1000) / Math.max(wall, 1)));
    progress.update({ simulatedMs: sim.now, done: sim.endedRequests, inFlight: sim.liveRequests });
  }
  progress.done();
  const result = sim.finish();
  return { result, report: buildReport(result, performance.now() - t0, config.slo) };
}

/** The tokens (prompt plus output) of the longest request of the configured trace, read once ahead. */
export async function longestInTrace(config: SimulationConfig): Promise<number> {
  let longest = 1;
  const reader = new TraceReader(
    config.workload.trace as string,
    { traceBlockSize: config.workload.traceBlockSize, format: config.workload.traceFormat },
    (r) => {
      const n = r.inputLength + r.outputLength;
      if (n > longest) longest = n;
    },
  );
  try {
    for await (const _ of reader.batches());
  } catch (e) {
    if (e instanceof TraceError) throw new UsageError(e.message);
    throw e;
  }
  return longest;
}

const FIRST_FEW = 5;

/**
 * What did not complete, said under the summary: rejected requests by reason and incomplete ones, each with
 * the first few trace lines (or request numbers); requests with no output and what they are left out of;
 * rows the stream replayed out of their place.
 */
export function describeOutcomes(outcome: RunOutcome, stoppedAtLimit: boolean): string[] {
  const rec = outcome.result.records;
  const name = (row: number) =>
    outcome.trace ? `line ${rec.source[row]}` : `request ${rec.source[row] + 1}`;
  const lines: string[] = [];
  const byReason = new Map<string, number[]>();
  const incomplete: number[] = [];
  let incompleteCount = 0;
  for (let row = 0; row < rec.size; row++) {
    const s = rec.status[row];
    if (s === RequestStatus.Rejected) {
      const reason = rec.rejectReasons.get(row) ?? 'rejected';
      let list = byReason.get(reason);
      if (list === undefined) {
        list = [];
        byReason.set(reason, list);
      }
      list.push(row);
    } else if (s !== RequestStatus.Done && s !== RequestStatus.Cancelled) {
      incompleteCount++;
      if (incomplete.length < FIRST_FEW) incomplete.push(row);
    }
  }
  for (const [reason, rows] of byReason) {
    const first = rows.slice(0, FIRST_FEW).map(name).join(', ');
    lines.push(
      `rejected: ${rows.length} requests, ${reason} (first: ${first}${rows.length > FIRST_FEW ? ', ...' : ''})`,
    );
  }
  if (incompleteCount > 0) {
    const first = incomplete.map(name).join(', ');
    const why = stoppedAtLimit
      ? 'still in flight when the run reached its time limit (--max-sim-time)'
      : 'never finished (no worker could make progress with them)';
    lines.push(
      `incomplete: ${incompleteCount} requests ${why} (first: ${first}${incompleteCount > FIRST_FEW ? ', ...' : ''})`,
    );
  }
  const zero = outcome.report.zero_output_requests;
  if (zero > 0)
    lines.push(
      `no output: ${zero} completed requests asked for no tokens (output_length 0): counted in end-to-end and queue times, left out of TTFT, TPOT and ITL`,
    );
  const s = outcome.stream;
  if (s && s.lateRows.count > 0)
    lines.push(
      `trace: ${s.lateRows.count} requests more than 65,536 rows out of timestamp order (first: line ${s.lateRows.firstLine}): replayed at the latest time already reached`,
    );
  if (s && s.lateTurns.count > 0)
    lines.push(
      `trace: ${s.lateTurns.count} follow-up turns listed after the time they were due (first: line ${s.lateTurns.firstLine}): they arrived when read`,
    );
  return lines;
}

/** Memory this process may use: the machine's, or its cgroup's limit when lower. */
export function availableMemory(): number {
  let limit = totalmem();
  try {
    const raw = readFileSync('/sys/fs/cgroup/memory.max', 'utf8').trim();
    const n = Number(raw);
    if (Number.isFinite(n) && n > 0 && n < limit) limit = n;
  } catch {
    // No cgroup v2 limit to read: the machine's memory it is.
  }
  return limit;
}

const GIB = 2 ** 30;
const bytesText = (b: number) =>
  b >= GIB ? `${(b / GIB).toFixed(1)} GB` : `${Math.max(1, Math.round(b / 2 ** 20))} MB`;

/** Requests the run replays: a synthetic workload's, or a trace's guessed from its size (about 250 bytes a row). */
function requestsOf(config: SimulationConfig): { count: number; guessed: boolean } {
  const s = config.workload.synthetic;
  if (s) return { count: s.requests * s.turnsPerSession, guessed: false };
  try {
    const size = statSync(config.workload.trace as string).size;
    return { count: Math.round(size / 250), guessed: true };
  } catch {
    return { count: 0, guessed: true };
  }
}

/**
 * Before a run: refuses what cannot fit in memory (exit 2, saying what takes the room and what to lower), and
 * says what a large run will cost (memory, and time at the simulator's usual speed) on stderr.
 */
export function checkRunCost(config: SimulationConfig, err: NodeJS.WritableStream, quiet: boolean): void {
  const { count, guessed } = requestsOf(config);
  const e = config.engine;
  const pool = (workers: number, over?: Partial<SimulationConfig['engine']>): PoolShape => {
    const eng = { ...e, ...over };
    return {
      workers,
      blocks: (eng.numGpuBlocks ?? DEFAULT_NUM_GPU_BLOCKS) * (config.dataParallelSize ?? 1),
      engine: eng.engine,
      lowerTierBlocks: (eng.g2Blocks ?? 0) + (eng.g3Blocks ?? 0),
    };
  };
  const d = config.disaggregation;
  const pools = d
    ? [pool(d.prefill.workers, d.prefill.engine), pool(d.decode.workers, d.decode.engine)]
    : [pool(config.workers)];
  const s = config.workload.synthetic;
  const estimate = estimateRun({
    pools,
    requests: count,
    meanInput: s ? s.inputTokens.mean : 12_000,
    meanOutput: s ? s.outputTokens.mean : 350,
    blockSize: e.blockSize,
    traceBlockSize: config.workload.traceBlockSize,
    inMemory: s !== undefined,
    concurrency: config.workload.concurrency ?? 0,
  });
  const available = availableMemory();
  const p = estimate.parts;
  const parts =
    `workers ${bytesText(p.workers)}` +
    (p.requests > 0 ? `, the requests held in memory ${bytesText(p.requests)}` : '') +
    `, per-request results ${bytesText(p.records)}, prefix keys ${bytesText(p.keys)}`;
  if (estimate.bytes > 0.8 * available) {
    const lower = [
      p.workers > estimate.bytes / 3 ? '--workers or --num-gpu-blocks' : '',
      s && p.requests + p.records > estimate.bytes / 3
        ? '--request-count (or replay a trace, which is read as it runs)'
        : '',
    ].filter((x) => x !== '');
    throw new UsageError(
      `this run needs about ${bytesText(estimate.bytes)} of memory (${parts}), more than the ${bytesText(0.8 * available)} ` +
        `it may use here (80% of ${bytesText(available)}); lower ${lower.length > 0 ? lower.join(', or ') : 'the workers or requests'}`,
    );
  }
  const seconds = count / REFERENCE_REQUESTS_PER_S;
  if (!quiet && (estimate.bytes > GIB || seconds > 30))
    err.write(
      `servetune simulate: ${guessed ? 'about ' : ''}${count.toLocaleString('en-US')} requests: about ${bytesText(estimate.bytes)} of memory (${parts}); ` +
        `at roughly ${REFERENCE_REQUESTS_PER_S.toLocaleString('en-US')} requests per second, about ${formatDuration(seconds)}\n`,
    );
}
