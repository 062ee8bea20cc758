import { type PreparedCluster, type PreparedHardware, prepareCluster } from '../config/hardware.ts';
import { syntheticWorkload } from '../config/run.ts';
import { DEFAULT_NUM_GPU_BLOCKS, type SimulationConfig } from '../config/schema.ts';
import { CatalogError } from '../hardware/catalog.ts';
import { HardwareRejection } from '../hardware/setup.ts';
import type { Distribution } from '../sim/metrics/distribution.ts';
import type { SimulationReport } from '../sim/metrics/report.ts';
import type { Workload } from '../sim/workload/workload.ts';
import { candidateMetrics, type Slo, sloKey, sloValue } from '../sweep/objective.ts';
import { describeTraceNotes, readTrace, TraceError, type TraceSummary } from '../telemetry/trace/index.ts';
import { UsageError } from './errors.ts';
import { checkOutputPath, writeJson } from './files.ts';
import { renderHelp } from './flags.ts';
import { loadCatalog } from './hardware.ts';
import { resolveSimulateConfig } from './simulate-config.ts';
import { SIMULATE_FLAGS } from './simulate-flags.ts';
import {
  checkRunCost,
  describeOutcomes,
  longestInTrace,
  type RunOutcome,
  runTrace,
  runWorkload,
} from './simulate-run.ts';
import { formatNumber, renderTable } from './table.ts';

const USAGE = `Usage: servetune simulate (--trace FILE | --request-count N --input-tokens N --output-tokens N ...) [options]

Replays a trace (or synthetic traffic) through simulated serving workers and reports latency, throughput,
prefix-cache reuse and GPU-hours. With --planner, Dynamo's Planner adds and removes workers during the run.`;

export async function loadWorkload(config: Pick<SimulationConfig, 'workload' | 'engine'>): Promise<Workload> {
  return (await loadWorkloadWithSummary(config)).workload;
}

/** The workload and, for a trace, what the reader noticed (reported under the summary). */
async function loadWorkloadWithSummary(
  config: Pick<SimulationConfig, 'workload' | 'engine'>,
): Promise<{ workload: Workload; trace?: TraceSummary }> {
  if (config.workload.trace !== undefined) {
    try {
      const { workload, summary } = await readTrace(config.workload.trace, {
        traceBlockSize: config.workload.traceBlockSize,
        format: config.workload.traceFormat,
      });
      const closedLoop = config.workload.concurrency !== undefined;
      if (summary.format === 'applied_compute_agentic' && !closedLoop)
        throw new UsageError(
          'applied_compute_agentic rows carry no timestamps: replay them with --concurrency N (sessions in flight)',
        );
      if (workload.dependents && closedLoop)
        throw new UsageError(
          `${summary.format} rows that wait for others replay on the trace's own schedule: drop --concurrency`,
        );
      return { workload, trace: summary };
    } catch (e) {
      if (e instanceof TraceError) throw new UsageError(e.message);
      throw e;
    }
  }
  return { workload: syntheticWorkload(config) };
}

export async function simulateCommand(
  argv: string[],
  out: NodeJS.WritableStream,
  err: NodeJS.WritableStream = process.stderr,
): Promise<number> {
  const { config, slos, json, quiet, help, inputs } = await resolveSimulateConfig(argv);
  if (help) {
    out.write(renderHelp(USAGE, SIMULATE_FLAGS));
    return 0;
  }
  // Before the run: a bad output path must not lose a long run's report.
  if (json) await checkOutputPath('--json', json, inputs);
  checkRunCost(config, err, quiet);
  const hardwareTiming = config.timing.model === 'hardware';
  let cluster: PreparedCluster | undefined;
  let run: SimulationConfig;
  let outcome: RunOutcome;
  if (config.workload.trace !== undefined) {
    // A trace is replayed while it is read; the hardware's memory plan needs its longest request first.
    const longest = hardwareTiming ? (config.hardware?.maxModelLen ?? (await longestInTrace(config))) : 0;
    cluster = hardwareTiming ? await resolveHardware(config, longest) : undefined;
    run = cluster?.config ?? config;
    outcome = await runTrace(run, cluster?.timings, err, quiet);
  } else {
    const workload = syntheticWorkload(config);
    cluster = hardwareTiming ? await resolveHardware(config, workload) : undefined;
    run = cluster?.config ?? config;
    outcome = runWorkload(run, workload, cluster?.timings, err, quiet);
  }
  const { report, trace } = outcome;
  const hardware = cluster?.primary;
  const sloResults = evaluateSlos(report, slos);
  if (json) {
    // `hardware` describes the primary pool; disaggregated runs add each role's sizing.
    const hw = cluster
      ? {
          hardware: hardwareJson(cluster.primary),
          ...(cluster.pools.length > 1
            ? {
                hardwareByRole: Object.fromEntries(
                  cluster.pools.map((p) => [p.role, hardwareJson(p.prepared)]),
                ),
              }
            : {}),
        }
      : {};
    await writeJson(json, { config: run, ...hw, ...(slos.length > 0 ? { slos: sloResults } : {}), report });
  }
  if (!quiet) {
    const notes = describeOutcomes(outcome, run.maxSimTimeS !== undefined);
    out.write(`${renderSummary(run, report, hardware, cluster, sloResults, trace, notes)}\n`);
  }
  return 0;
}

/** Each SLO against the run: the percentile it bounds, and whether it is met. */
export function evaluateSlos(report: SimulationReport, slos: readonly Slo[]) {
  const m = candidateMetrics(report, 1);
  return slos.map((s) => {
    const value = sloValue(m, s);
    return {
      slo: sloKey(s),
      metric: s.metric,
      percentile: s.percentile,
      maxMs: s.maxMs,
      value,
      met: value <= s.maxMs,
    };
  });
}

function plannerRows(r: SimulationReport): (string | number)[][] {
  const p = r.planner as NonNullable<SimulationReport['planner']>;
  const ev = r.scaling_events as NonNullable<SimulationReport['scaling_events']>;
  const loops = [
    p.load_scaling ? `load every ${formatNumber(p.load_adjustment_interval_s)} s` : '',
    p.throughput_scaling ? `throughput every ${formatNumber(p.throughput_adjustment_interval_s)} s` : '',
  ].filter((x) => x !== '');
  const rows: (string | number)[][] = [
    [
      'planner',
      `${p.optimization_target}: ${loops.join(' + ')}; startup ${formatNumber(p.startup_time_s)} s`,
    ],
    ['scaling events (up / down)', `${ev.up} / ${ev.down}`],
  ];
  for (const [role, n] of Object.entries(ev.by_role)) {
    if (Object.keys(ev.by_role).length > 1) rows.push([`  ${role} (up / down)`, `${n.up} / ${n.down}`]);
    const tl = r.replicas_over_time?.roles[role];
    const active = tl?.active ?? [];
    rows.push([
      `${role} workers ready (min / mean / max)`,
      `${Math.min(...active)} / ${formatNumber(p.mean_active_replicas[role])} / ${Math.max(...active)}`,
    ]);
  }
  const h = p.gpu_hours_by_state;
  rows.push([
    'GPU-hours held (starting / active / draining)',
    `${formatNumber(h.starting)} / ${formatNumber(h.active)} / ${formatNumber(h.draining)}`,
  ]);
  rows.push(['GPUs held (mean / peak)', `${formatNumber(p.mean_gpus_held)} / ${p.peak_gpus_held}`]);
  const s = p.slo_attainment;
  rows.push([
    `within planner SLO (TTFT ${formatNumber(s.ttft_ms)} ms, ITL ${formatNumber(s.itl_ms)} ms)`,
    s.fraction,
  ]);
  return rows;
}

/** Looks up the GPU and model and sizes the KV cache; unknown names and misfits are usage errors. */
async function resolveHardware(
  config: SimulationConfig,
  workload: Workload | number,
): Promise<PreparedCluster> {
  const catalog = await loadCatalog({
    gpusFile: config.hardware?.gpusFile,
    modelsFile: config.hardware?.modelsFile,
  });
  try {
    return prepareCluster(config, catalog, workload);
  } catch (e) {
    if (e instanceof CatalogError || e instanceof HardwareRejection) throw new UsageError(e.message);
    throw e;
  }
}

function hardwareJson(h: PreparedHardware): object {
  const c = h.choice;
  const m = h.memory;
  return {
    gpu: c.gpu.id,
    model: c.model.id,
    tensorParallelSize: c.tp,
    dtype: c.weightDtype,
    kvDtype: c.kvDtype,
    expertParallel: c.expertParallel ?? false,
    tier: h.profile.tier,
    parts: h.profile.parts,
    overhead: h.profile.overhead,
    memory: {
      derivedBlocks: h.derivedBlocks,
      hbmBytes: m.hbmBytes,
      budgetBytes: m.budgetBytes,
      weightBytesPerGpu: m.weightBytes,
      reserveBytesPerGpu: m.reserveBytes,
      kvBytesPerGpu: m.kvBytes,
      kvBytesPerTokenPerGpu: m.kvBytesPerTokenPerGpu,
      numGpuBlocks: m.numGpuBlocks,
      fits: m.fits,
      reason: m.reason,
    },
  };
}

function hardwareLine(h: PreparedHardware, blockSize: number): string {
  const c = h.choice;
  const p = h.profile.parts;
  const gib = (b: number) => `${(b / 2 ** 30).toFixed(1)} GiB`;
  const parts = Object.entries(p)
    .filter(([, v]) => v !== 'none')
    .map(([k, v]) => `${k} ${v}`)
    .join(', ');
  const kv = h.derivedBlocks
    ? `KV ${formatNumber(h.memory.numGpuBlocks)} blocks x ${blockSize} tokens from HBM (weights ${gib(h.memory.weightBytes)}, ` +
      `reserve ${gib(h.memory.reserveBytes)}, KV ${gib(h.memory.kvBytes)} per GPU)`
    : 'KV blocks as configured';
  return (
    `hardware: ${c.gpu.spec.name} x ${c.tp} (TP${c.tp}${c.expertParallel ? ', EP' : ''}), ${c.model.name}, ` +
    `weights ${c.weightDtype}, KV ${c.kvDtype}; tier ${h.profile.tier} (${parts}); ${kv}`
  );
}

/** KV blocks per worker: one figure, or one per role when the pools are sized apart. */
function kvBlocksText(config: SimulationConfig): string {
  const blocks = (over?: { numGpuBlocks?: number }) =>
    over?.numGpuBlocks ?? config.engine.numGpuBlocks ?? DEFAULT_NUM_GPU_BLOCKS;
  const d = config.disaggregation;
  if (!d) return `${formatNumber(blocks())} KV blocks`;
  const [p, q] = [blocks(d.prefill.engine), blocks(d.decode.engine)];
  return p === q
    ? `${formatNumber(p)} KV blocks`
    : `${formatNumber(p)} KV blocks per prefill worker, ${formatNumber(q)} per decode worker`;
}

export function renderSummary(
  config: SimulationConfig,
  r: SimulationReport,
  hardware?: PreparedHardware,
  cluster?: PreparedCluster,
  slos: ReturnType<typeof evaluateSlos> = [],
  trace?: TraceSummary,
  outcomes: string[] = [],
): string {
  const source = config.workload.trace ?? 'synthetic';
  const lines: string[] = [];
  const d = config.disaggregation;
  const kind = ({ vllm: 'vLLM', sglang: 'SGLang', trtllm: 'TRT-LLM' } as const)[config.engine.engine];
  const topology = d
    ? `disaggregated: ${d.prefill.workers} prefill (TP${d.prefill.tensorParallelSize}) + ${d.decode.workers} decode (TP${d.decode.tensorParallelSize}) ${kind} worker(s)`
    : `${config.workers} x ${kind} worker(s)${config.tensorParallelSize > 1 ? ` (TP${config.tensorParallelSize})` : ''}`;
  const scaled = config.planner ? ' at start, scaled by the planner' : '';
  lines.push(
    `servetune simulate: ${formatNumber(r.num_requests)} requests from ${source}; ${topology}${scaled}, ` +
      `router ${config.router.mode}, timing ${config.timing.model}, ${kind === 'SGLang' ? 'page' : 'block'} ${config.engine.blockSize}, ` +
      kvBlocksText(config),
  );
  if (cluster && cluster.pools.length > 1) {
    for (const p of cluster.pools)
      lines.push(`${p.role} ${hardwareLine(p.prepared, config.engine.blockSize)}`);
  } else if (hardware) lines.push(hardwareLine(hardware, config.engine.blockSize));
  const split = config.disaggregation;
  const tps = split
    ? [split.prefill.tensorParallelSize, split.decode.tensorParallelSize]
    : [config.tensorParallelSize];
  if (config.timing.model !== 'hardware' && tps.some((tp) => tp > 1)) {
    lines.push(
      `note: timing ${config.timing.model} does not depend on tensor parallelism: TP only multiplies the GPUs ` +
        'counted (give --gpu and --model to price it)',
    );
  }
  lines.push('');
  const dist = (name: string, d: Distribution): (string | number)[] => [
    name,
    d.mean,
    d.p50,
    d.p90,
    d.p99,
    d.max,
  ];
  lines.push(
    renderTable(
      ['latency (ms)', 'mean', 'p50', 'p90', 'p99', 'max'],
      [
        dist('TTFT', r.ttft_ms),
        dist('TPOT', r.tpot_ms),
        dist('ITL', r.itl_ms),
        dist('end-to-end', r.e2e_ms),
        dist('queue', r.queue_ms),
      ],
    ),
  );
  lines.push('');
  const rows: (string | number)[][] = [
    ['completed requests', r.completed_requests],
    ['simulated duration (s)', r.simulated_duration_s],
    ['request throughput (req/s)', r.request_throughput_rps],
    ['output throughput (tok/s)', r.output_throughput_tok_s],
    ['output throughput per GPU (tok/s)', r.output_throughput_tok_s_per_gpu],
    ['total throughput (tok/s)', r.total_throughput_tok_s],
    ['prefix cache reused ratio', r.prefix_cache_reused_ratio],
    ['preemptions', r.preemptions],
    ['GPU-hours', r.gpu_hours],
  ];
  for (const [role, v] of Object.entries(r.roles)) {
    rows.push([
      r.planner
        ? `${role} utilisation (${v.workers} workers over the run)`
        : `${role} utilisation (${v.workers} workers, ${v.gpus} GPUs)`,
      v.utilization,
    ]);
  }
  if (r.kv_transfer) {
    const k = r.kv_transfer;
    rows.push(['KV transfers', k.count]);
    const ms = (d: typeof k.transfer_ms) =>
      `${formatNumber(d.p50)} / ${formatNumber(d.p90)} / ${formatNumber(d.p99)}`;
    rows.push(['KV transfer ms (p50 / p90 / p99)', ms(k.transfer_ms)]);
    rows.push(['wait for decode KV ms (p50 / p90 / p99)', ms(k.destination_wait_ms)]);
    if (k.local_prefills > 0) rows.push(['prefills kept on the decode worker', k.local_prefills]);
  }
  if (r.kv_tiers) {
    const t = r.kv_tiers;
    rows.push([
      'prefix hits by tier (GPU / host / disk)',
      `${formatNumber(t.g1_hit_ratio)} / ${formatNumber(t.g2_hit_ratio)} / ${formatNumber(t.g3_hit_ratio)}`,
    ]);
    rows.push([
      'blocks offloaded / onboarded',
      `${formatNumber(t.offloaded_blocks)} / ${formatNumber(t.onboarded_blocks)}`,
    ]);
    rows.push([
      'onboard ms (p50 / p90 / p99)',
      `${formatNumber(t.onboard_ms.p50)} / ${formatNumber(t.onboard_ms.p90)} / ${formatNumber(t.onboard_ms.p99)}`,
    ]);
  }
  if (r.rejected_requests > 0) rows.splice(1, 0, ['rejected requests', r.rejected_requests]);
  if (r.incomplete_requests > 0) rows.splice(1, 0, ['incomplete requests', r.incomplete_requests]);
  for (const s of slos) {
    const verdict = s.met ? 'met' : `missed by ${formatNumber((s.value / s.maxMs - 1) * 100)} %`;
    rows.push([`SLO ${s.slo} <= ${formatNumber(s.maxMs)} ms`, `${formatNumber(s.value)} ms (${verdict})`]);
  }
  if (r.goodput) {
    rows.push(['goodput (req/s)', r.goodput.request_throughput_rps]);
    rows.push(['requests meeting SLO', r.goodput.fraction]);
  }
  if (r.planner && r.scaling_events) rows.push(...plannerRows(r));
  lines.push(renderTable(['summary', 'value'], rows));
  lines.push('');
  const notes = [...outcomes, ...(trace ? describeTraceNotes(trace).map((n) => `trace: ${n}`) : [])];
  for (const n of notes) lines.push(n);
  if (notes.length > 0) lines.push('');
  const speed = r.wall_s > 0 ? r.simulated_duration_s / r.wall_s : Number.POSITIVE_INFINITY;
  lines.push(
    `simulated ${formatNumber(r.simulated_duration_s)} s in ${formatNumber(r.wall_s)} s wall (${formatNumber(speed)}x real time)`,
  );
  return lines.join('\n');
}
