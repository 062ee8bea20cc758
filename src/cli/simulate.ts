import { type PreparedCluster, type PreparedHardware, prepareCluster } from '../config/hardware.ts';
import { runSimulation, syntheticWorkload } from '../config/run.ts';
import { DEFAULT_NUM_GPU_BLOCKS, type SimulationConfig, SimulationConfigSchema } from '../config/schema.ts';
import { CatalogError } from '../hardware/catalog.ts';
import { DTYPE_ALIASES, KV_DTYPE_ALIASES } from '../hardware/dtypes.ts';
import { HardwareRejection } from '../hardware/setup.ts';
import type { Distribution } from '../sim/metrics/distribution.ts';
import type { SimulationReport } from '../sim/metrics/report.ts';
import { checkPlannerAgainstCluster, PlannerConfigSchema } from '../sim/planner/config.ts';
import { summarizeWorkload, type Workload } from '../sim/workload/workload.ts';
import {
  describeTraceNotes,
  readTrace,
  TraceError,
  type TraceSummary,
  traceFormatNames,
} from '../telemetry/trace/index.ts';
import { UsageError, zodMessage } from './errors.ts';
import { readStructuredFile, writeJson } from './files.ts';
import { applyFlags, type FlagSpec, flagNames, parseFlags, renderHelp } from './flags.ts';
import { loadCatalog } from './hardware.ts';
import { formatNumber, renderTable } from './table.ts';

const ROUTERS = {
  'round-robin': 'round-robin',
  round_robin: 'round-robin',
  rr: 'round-robin',
  random: 'random',
  'least-loaded': 'least-loaded',
  least_loaded: 'least-loaded',
  kv: 'kv',
  kv_router: 'kv',
  'kv-router': 'kv',
};

export const SIMULATE_FLAGS: FlagSpec[] = [
  {
    name: 'config',
    path: null,
    kind: 'string',
    metavar: 'FILE',
    help: 'YAML/JSON configuration (flags override it)',
  },
  {
    name: 'trace',
    path: 'workload.trace',
    kind: 'string',
    metavar: 'FILE',
    help: 'trace to replay (Mooncake JSONL; gzip-compressed or not)',
  },
  {
    name: 'trace-format',
    path: 'workload.traceFormat',
    kind: 'string',
    metavar: 'NAME',
    help: `trace format instead of detecting it (${traceFormatNames().join(', ')})`,
  },
  {
    name: 'trace-block-size',
    path: 'workload.traceBlockSize',
    kind: 'int',
    help: 'tokens per trace hash id (512)',
  },
  {
    name: 'arrival-speedup-ratio',
    path: 'workload.arrivalSpeedupRatio',
    kind: 'number',
    metavar: 'X',
    help: 'divide arrival gaps and think times by X',
  },
  {
    name: 'concurrency',
    aliases: ['replay-concurrency'],
    path: 'workload.concurrency',
    kind: 'int',
    help: 'closed loop: keep N requests (sessions) in flight',
  },
  {
    name: 'request-count',
    aliases: ['requests'],
    path: 'workload.synthetic.requests',
    kind: 'int',
    help: 'synthetic: requests (sessions)',
  },
  {
    name: 'input-tokens',
    path: 'workload.synthetic.inputTokens.mean',
    kind: 'number',
    help: 'synthetic: mean prompt length',
  },
  {
    name: 'input-tokens-stddev',
    path: 'workload.synthetic.inputTokens.stddev',
    kind: 'number',
    help: 'synthetic: prompt length spread',
  },
  {
    name: 'output-tokens',
    path: 'workload.synthetic.outputTokens.mean',
    kind: 'number',
    help: 'synthetic: mean output length',
  },
  {
    name: 'output-tokens-stddev',
    path: 'workload.synthetic.outputTokens.stddev',
    kind: 'number',
    help: 'synthetic: output length spread',
  },
  {
    name: 'request-rate',
    path: 'workload.synthetic.requestRate',
    kind: 'number',
    metavar: 'RPS',
    help: 'synthetic: arrival rate',
  },
  {
    name: 'arrival',
    path: 'workload.synthetic.arrival',
    kind: 'string',
    values: { poisson: 'poisson', constant: 'constant', gamma: 'gamma', bursty: 'gamma', burst: 'burst' },
    help: 'synthetic arrivals: poisson, constant, gamma, burst',
  },
  {
    name: 'burstiness',
    path: 'workload.synthetic.burstiness',
    kind: 'number',
    help: 'gamma shape (< 1 is burstier)',
  },
  {
    name: 'shared-prefix-ratio',
    path: 'workload.synthetic.sharedPrefixRatio',
    kind: 'number',
    help: 'synthetic: shared prefix share',
  },
  {
    name: 'num-prefix-groups',
    path: 'workload.synthetic.numPrefixGroups',
    kind: 'int',
    help: 'synthetic: shared prefixes',
  },
  {
    name: 'turns-per-session',
    path: 'workload.synthetic.turnsPerSession',
    kind: 'int',
    help: 'synthetic: turns per session',
  },
  {
    name: 'inter-turn-delay-ms',
    path: 'workload.synthetic.interTurnDelayMs',
    kind: 'number',
    help: 'synthetic: think time',
  },
  {
    name: 'arrival-seed',
    path: 'workload.synthetic.seed',
    kind: 'int',
    help: 'synthetic generator seed (42)',
  },
  {
    name: 'engine',
    path: 'engine.engine',
    kind: 'string',
    values: { vllm: 'vllm', sglang: 'sglang' },
    help: 'engine scheduler: vllm|sglang',
  },
  {
    name: 'schedule-policy',
    path: 'engine.schedulePolicy',
    kind: 'string',
    values: { fifo: 'fifo', fcfs: 'fifo', lpm: 'lpm' },
    help: 'sglang: waiting order fifo|lpm (fifo)',
  },
  {
    name: 'max-prefill-tokens',
    path: 'engine.maxPrefillTokens',
    kind: 'int',
    help: 'sglang: tokens per prefill batch (16384)',
  },
  {
    name: 'chunked-prefill-size',
    path: 'engine.chunkedPrefillSize',
    kind: 'int',
    help: 'sglang: tokens per prompt chunk (8192)',
  },
  {
    name: 'clip-max-new-tokens',
    path: 'engine.clipMaxNewTokens',
    kind: 'int',
    help: 'sglang: output tokens reserved per request (4096)',
  },
  {
    name: 'schedule-conservativeness',
    path: 'engine.scheduleConservativeness',
    kind: 'number',
    help: 'sglang: scales the admission reserve (1)',
  },
  {
    name: 'block-size',
    aliases: ['page-size'],
    path: 'engine.blockSize',
    kind: 'int',
    help: 'KV block (sglang: page) size in tokens (64)',
  },
  {
    name: 'num-gpu-blocks',
    path: 'engine.numGpuBlocks',
    kind: 'int',
    help: 'KV blocks per worker (hardware timing: from HBM; else 16384)',
  },
  { name: 'max-num-seqs', path: 'engine.maxNumSeqs', kind: 'int', help: 'running requests per worker (256)' },
  {
    name: 'max-num-batched-tokens',
    path: 'engine.maxNumBatchedTokens',
    kind: 'int',
    help: 'tokens per pass (8192)',
  },
  {
    name: 'no-chunked-prefill',
    path: 'engine.enableChunkedPrefill',
    kind: 'negate',
    help: 'disable chunked prefill',
  },
  {
    name: 'no-prefix-caching',
    path: 'engine.enablePrefixCaching',
    kind: 'negate',
    help: 'disable prefix caching',
  },
  {
    name: 'speedup-ratio',
    path: 'engine.speedupRatio',
    kind: 'number',
    help: 'divide modelled durations by X',
  },
  {
    name: 'timing',
    path: 'timing.model',
    kind: 'string',
    values: { polynomial: 'polynomial', hardware: 'hardware' },
    help: 'timing model: polynomial, hardware (default hardware when --gpu is given)',
  },
  {
    name: 'gpu',
    path: 'hardware.gpu',
    kind: 'string',
    metavar: 'GPU',
    help: 'hardware timing: GPU id, alias or gpu.product label (see servetune catalog)',
  },
  {
    name: 'model',
    path: 'hardware.model',
    kind: 'string',
    metavar: 'MODEL',
    help: 'hardware timing: model id or Hugging Face id',
  },
  {
    name: 'dtype',
    path: 'hardware.dtype',
    kind: 'string',
    values: DTYPE_ALIASES,
    help: "hardware timing: weight precision bf16, fp8, fp4 (the model's checkpoint)",
  },
  {
    name: 'kv-dtype',
    aliases: ['kv-cache-dtype'],
    path: 'hardware.kvDtype',
    kind: 'string',
    values: KV_DTYPE_ALIASES,
    help: 'hardware timing: KV-cache precision bf16, fp8',
  },
  {
    name: 'gpu-memory-utilization',
    path: 'hardware.gpuMemoryUtilization',
    kind: 'number',
    metavar: 'X',
    help: 'hardware timing: HBM share for weights + KV (0.9)',
  },
  {
    name: 'max-model-len',
    path: 'hardware.maxModelLen',
    kind: 'int',
    help: 'hardware timing: tokens one request may need (longest request)',
  },
  {
    name: 'expert-parallel',
    aliases: ['enable-expert-parallel'],
    path: 'hardware.expertParallel',
    kind: 'boolean',
    help: 'hardware timing: split MoE experts across the TP group',
  },
  {
    name: 'tier',
    path: 'hardware.tier',
    kind: 'string',
    values: { auto: 'auto', roofline: 'roofline' },
    help: 'hardware timing: auto (measured tables where present) or roofline',
  },
  {
    name: 'gpus-file',
    path: 'hardware.gpusFile',
    kind: 'string',
    metavar: 'FILE',
    help: 'YAML/JSON file of extra GPUs',
  },
  {
    name: 'models-file',
    path: 'hardware.modelsFile',
    kind: 'string',
    metavar: 'FILE',
    help: 'YAML/JSON file of extra models',
  },
  { name: 'workers', aliases: ['num-workers'], path: 'workers', kind: 'int', help: 'aggregated workers (1)' },
  {
    name: 'tp',
    aliases: ['tensor-parallel-size'],
    path: 'tensorParallelSize',
    kind: 'int',
    help: 'GPUs per worker (1)',
  },
  {
    name: 'router',
    aliases: ['router-mode'],
    path: 'router.mode',
    kind: 'string',
    values: ROUTERS,
    help: 'round-robin, random, least-loaded, kv',
  },
  {
    name: 'overlap-weight',
    aliases: ['kv-overlap-score-weight'],
    path: 'router.overlapWeight',
    kind: 'number',
    help: 'KV router prefill weight (1.0)',
  },
  {
    name: 'router-temperature',
    path: 'router.temperature',
    kind: 'number',
    help: 'KV router softmax temperature (0)',
  },
  { name: 'disagg', path: null, kind: 'boolean', help: 'disaggregated serving (prefill and decode workers)' },
  {
    name: 'prefill-workers',
    path: 'disaggregation.prefill.workers',
    kind: 'int',
    help: 'disagg: prefill workers (1)',
  },
  {
    name: 'decode-workers',
    path: 'disaggregation.decode.workers',
    kind: 'int',
    help: 'disagg: decode workers (1)',
  },
  {
    name: 'prefill-tp',
    path: 'disaggregation.prefill.tensorParallelSize',
    kind: 'int',
    help: 'disagg: GPUs per prefill worker',
  },
  {
    name: 'decode-tp',
    path: 'disaggregation.decode.tensorParallelSize',
    kind: 'int',
    help: 'disagg: GPUs per decode worker',
  },
  {
    name: 'kv-transfer-gbps',
    path: 'disaggregation.kvTransferGbps',
    kind: 'number',
    help: 'disagg: link GB/s per prefill worker (64)',
  },
  {
    name: 'kv-link',
    path: 'disaggregation.kvLink',
    kind: 'string',
    values: { shared: 'shared', 'per-transfer': 'per-transfer', per_transfer: 'per-transfer' },
    help: 'disagg: transfers share a prefill link (shared) or each get its bandwidth (per-transfer)',
  },
  {
    name: 'kv-bytes-per-token',
    path: 'engine.kvBytesPerToken',
    kind: 'int',
    help: 'KV bytes per token, all layers (131072)',
  },
  {
    name: 'g2-blocks',
    path: 'engine.g2Blocks',
    kind: 'int',
    help: 'host-memory KV tier, blocks per worker (0 = off)',
  },
  { name: 'g2-gbps', path: 'engine.g2Gbps', kind: 'number', help: 'GPU <-> host GB/s per direction (14)' },
  {
    name: 'g3-blocks',
    path: 'engine.g3Blocks',
    kind: 'int',
    help: 'disk KV tier, blocks per worker (0 = off)',
  },
  { name: 'g3-gbps', path: 'engine.g3Gbps', kind: 'number', help: 'host <-> disk GB/s (7)' },
  {
    name: 'offload-policy',
    path: 'engine.offloadPolicy',
    kind: 'string',
    help: 'write-through (prompt blocks when computed) | on-evict (GPU evictions)',
  },
  {
    name: 'transfer-mode',
    path: 'disaggregation.transferMode',
    kind: 'string',
    values: {
      'full-prompt': 'full-prompt',
      full_prompt: 'full-prompt',
      'destination-missing': 'destination-missing',
      destination_missing: 'destination-missing',
    },
    help: 'disagg: full-prompt or destination-missing',
  },
  {
    name: 'conditional-disagg',
    path: 'disaggregation.conditional',
    kind: 'boolean',
    help: 'disagg, KV router: prefill short uncached prompts on the decode worker',
  },
  { name: 'seed', path: 'seed', kind: 'int', help: 'seed for every random choice (0)' },
  {
    name: 'max-sim-time',
    path: 'maxSimTimeS',
    kind: 'number',
    metavar: 'SECONDS',
    help: 'stop at this simulated time',
  },
  {
    name: 'slo',
    path: null,
    kind: 'string',
    metavar: 'LIST',
    help: 'goodput thresholds, e.g. ttft=2000ms,itl=50ms,e2e=30s',
  },
  { name: 'sla-ttft-ms', path: 'slo.ttftMs', kind: 'number', help: 'goodput TTFT threshold (ms)' },
  { name: 'sla-itl-ms', path: 'slo.itlMs', kind: 'number', help: 'goodput ITL threshold (ms)' },
  { name: 'sla-e2e-ms', path: 'slo.e2eMs', kind: 'number', help: 'goodput end-to-end threshold (ms)' },
  {
    name: 'planner',
    path: null,
    kind: 'string',
    metavar: 'FILE',
    help: "Dynamo Planner config (YAML/JSON, the reference's field names) scaling the workers",
  },
  {
    name: 'startup-time',
    path: 'startupTimeS',
    kind: 'number',
    metavar: 'SECONDS',
    help: 'planner: cold start of a new worker before it serves (0)',
  },
  {
    name: 'no-coalesce',
    path: 'coalesceDecode',
    kind: 'negate',
    help: 'step every pass (slower; same results)',
  },
  { name: 'json', path: null, kind: 'string', metavar: 'FILE', help: 'write the full report as JSON' },
  { name: 'quiet', path: null, kind: 'boolean', help: 'print nothing but errors' },
  { name: 'help', aliases: ['h'], path: null, kind: 'boolean', help: 'show this help' },
];

const USAGE = `Usage: servetune simulate (--trace FILE | --request-count N --input-tokens N --output-tokens N ...) [options]

Replays a trace (or synthetic traffic) through simulated serving workers and reports latency, throughput,
prefix-cache reuse and GPU-hours. With --planner, Dynamo's Planner adds and removes workers during the run.`;

/** Parses `--slo ttft=2000ms,itl=50ms,e2e=30s` into thresholds in ms. */
export function parseSloList(
  text: string,
  flag = '--slo',
): { ttftMs?: number; itlMs?: number; e2eMs?: number } {
  const out: Record<string, number> = {};
  const keys: Record<string, string> = {
    ttft: 'ttftMs',
    itl: 'itlMs',
    tpot: 'itlMs',
    e2e: 'e2eMs',
    latency: 'e2eMs',
  };
  for (const part of text.split(',')) {
    const m = /^\s*([a-z0-9_]+)\s*=\s*([0-9.]+)\s*(ms|s)?\s*$/i.exec(part);
    if (!m) throw new UsageError(`${flag}: cannot read '${part}' (expected e.g. ttft=2000ms)`);
    const key = keys[m[1].toLowerCase()];
    if (!key) throw new UsageError(`${flag}: unknown metric '${m[1]}' (expected ttft, itl, e2e)`);
    const v = Number(m[2]) * (m[3]?.toLowerCase() === 's' ? 1000 : 1);
    if (!Number.isFinite(v) || v <= 0) throw new UsageError(`${flag}: '${part}' must be a positive duration`);
    out[key] = v;
  }
  return out;
}

/** Builds the validated configuration from a config file and flags. */
export async function resolveSimulateConfig(argv: string[]): Promise<{
  config: SimulationConfig;
  json?: string;
  quiet: boolean;
  help: boolean;
}> {
  const flags = parseFlags(argv, SIMULATE_FLAGS);
  if (flags.values.get('help')) return { config: undefined as never, quiet: false, help: true };
  if (flags.positionals.length > 0) throw new UsageError(`unexpected argument '${flags.positionals[0]}'`);
  const configPath = flags.values.get('config') as string | undefined;
  let raw: Record<string, unknown> = {};
  if (configPath) {
    const loaded = await readStructuredFile(configPath);
    if (typeof loaded !== 'object' || loaded === null || Array.isArray(loaded)) {
      throw new UsageError(`${configPath}: expected a mapping of configuration keys`);
    }
    raw = loaded as Record<string, unknown>;
  }
  const fromFlags: Record<string, unknown> = {};
  applyFlags(fromFlags, flags, SIMULATE_FLAGS);
  const plannerPath = flags.values.get('planner') as string | undefined;
  if (plannerPath) {
    const loaded = await readStructuredFile(plannerPath);
    const planner = PlannerConfigSchema.safeParse(loaded ?? {});
    if (!planner.success) throw new UsageError(zodMessage(plannerPath, planner.error));
    fromFlags.planner = loaded ?? {};
  }
  const slo = flags.values.get('slo') as string | undefined;
  if (slo) fromFlags.slo = { ...(fromFlags.slo as object), ...parseSloList(slo) };
  // --disagg (or any disaggregation flag) turns disaggregation on, one worker per role unless given.
  const dis = fromFlags.disaggregation as Record<string, Record<string, unknown>> | undefined;
  if (flags.values.get('disagg') || dis) {
    const d = (fromFlags.disaggregation ?? {}) as Record<string, Record<string, unknown>>;
    const fileD = (raw.disaggregation ?? {}) as Record<string, Record<string, unknown>>;
    d.prefill = { workers: fileD.prefill?.workers ?? 1, ...(d.prefill ?? {}) };
    d.decode = { workers: fileD.decode?.workers ?? 1, ...(d.decode ?? {}) };
    fromFlags.disaggregation = d;
  }
  // Flags that pick a workload replace the file's workload source.
  const merged = deepMerge(raw, fromFlags);
  const wl = merged.workload as Record<string, unknown> | undefined;
  const flagWl = fromFlags.workload as Record<string, unknown> | undefined;
  if (wl && flagWl?.trace !== undefined) delete wl.synthetic;
  if (wl && flagWl?.synthetic !== undefined && flagWl.trace === undefined) delete wl.trace;
  // Naming a GPU or model selects the hardware timing model unless another one was asked for.
  const hw = merged.hardware as Record<string, unknown> | undefined;
  const timingSection = merged.timing as Record<string, unknown> | undefined;
  if ((hw?.gpu !== undefined || hw?.model !== undefined) && timingSection?.model === undefined) {
    merged.timing = { ...timingSection, model: 'hardware' };
  }
  if (merged.workload === undefined) {
    throw new UsageError(
      'no workload: give --trace FILE, or synthetic flags (--request-count, --input-tokens, ...)',
    );
  }
  const parsed = SimulationConfigSchema.safeParse(merged);
  if (!parsed.success) {
    const names = configPath ? undefined : flagNames(SIMULATE_FLAGS);
    throw new UsageError(zodMessage(configPath ?? 'configuration', parsed.error, names));
  }
  const c = parsed.data;
  if (c.planner) {
    const d = c.disaggregation;
    const problem = checkPlannerAgainstCluster(
      c.planner,
      d
        ? [
            { role: 'prefill', workers: d.prefill.workers, gpusPerWorker: d.prefill.tensorParallelSize },
            { role: 'decode', workers: d.decode.workers, gpusPerWorker: d.decode.tensorParallelSize },
          ]
        : [{ role: 'aggregated', workers: c.workers, gpusPerWorker: c.tensorParallelSize }],
    );
    if (problem) {
      const where = plannerPath ?? configPath ?? 'configuration';
      const field = plannerPath ? problem.field : `planner.${problem.field}`;
      throw new UsageError(`${where}: field '${field}': ${problem.message}`);
    }
  }
  return {
    config: parsed.data,
    json: flags.values.get('json') as string | undefined,
    quiet: Boolean(flags.values.get('quiet')),
    help: false,
  };
}

function deepMerge(a: Record<string, unknown>, b: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...a };
  for (const [k, v] of Object.entries(b)) {
    const cur = out[k];
    out[k] =
      typeof v === 'object' &&
      v !== null &&
      !Array.isArray(v) &&
      typeof cur === 'object' &&
      cur !== null &&
      !Array.isArray(cur)
        ? deepMerge(cur as Record<string, unknown>, v as Record<string, unknown>)
        : v;
  }
  return out;
}

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
      return { workload, trace: summary };
    } catch (e) {
      if (e instanceof TraceError) throw new UsageError(e.message);
      throw e;
    }
  }
  return { workload: syntheticWorkload(config) };
}

export async function simulateCommand(argv: string[], out: NodeJS.WritableStream): Promise<number> {
  const { config, json, quiet, help } = await resolveSimulateConfig(argv);
  if (help) {
    out.write(renderHelp(USAGE, SIMULATE_FLAGS));
    return 0;
  }
  const { workload, trace } = await loadWorkloadWithSummary(config);
  const cluster = config.timing.model === 'hardware' ? await resolveHardware(config, workload) : undefined;
  const run = cluster?.config ?? config;
  const { report } = runSimulation(run, workload, cluster?.timings);
  const hardware = cluster?.primary;
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
    await writeJson(json, { config: run, ...hw, report });
  }
  if (!quiet) out.write(`${renderSummary(run, workload, report, hardware, cluster, trace)}\n`);
  return 0;
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
async function resolveHardware(config: SimulationConfig, workload: Workload): Promise<PreparedCluster> {
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

export function renderSummary(
  config: SimulationConfig,
  workload: Workload,
  r: SimulationReport,
  hardware?: PreparedHardware,
  cluster?: PreparedCluster,
  trace?: TraceSummary,
): string {
  const w = summarizeWorkload(workload);
  const source = config.workload.trace ?? 'synthetic';
  const lines: string[] = [];
  const d = config.disaggregation;
  const kind = config.engine.engine === 'sglang' ? 'SGLang' : 'vLLM';
  const topology = d
    ? `disaggregated: ${d.prefill.workers} prefill (TP${d.prefill.tensorParallelSize}) + ${d.decode.workers} decode (TP${d.decode.tensorParallelSize}) ${kind} worker(s)`
    : `${config.workers} x ${kind} worker(s)${config.tensorParallelSize > 1 ? ` (TP${config.tensorParallelSize})` : ''}`;
  const scaled = config.planner ? ' at start, scaled by the planner' : '';
  lines.push(
    `servetune simulate: ${formatNumber(w.requests)} requests from ${source}; ${topology}${scaled}, ` +
      `router ${config.router.mode}, timing ${config.timing.model}, ${kind === 'SGLang' ? 'page' : 'block'} ${config.engine.blockSize}, ` +
      `${formatNumber(config.engine.numGpuBlocks ?? DEFAULT_NUM_GPU_BLOCKS)} KV blocks`,
  );
  if (cluster && cluster.pools.length > 1) {
    for (const p of cluster.pools)
      lines.push(`${p.role} ${hardwareLine(p.prepared, config.engine.blockSize)}`);
  } else if (hardware) lines.push(hardwareLine(hardware, config.engine.blockSize));
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
  if (r.goodput) {
    rows.push(['goodput (req/s)', r.goodput.request_throughput_rps]);
    rows.push(['requests meeting SLO', r.goodput.fraction]);
  }
  if (r.planner && r.scaling_events) rows.push(...plannerRows(r));
  lines.push(renderTable(['summary', 'value'], rows));
  lines.push('');
  const notes = trace ? describeTraceNotes(trace) : [];
  for (const n of notes) lines.push(`trace: ${n}`);
  if (notes.length > 0) lines.push('');
  const speed = r.wall_s > 0 ? r.simulated_duration_s / r.wall_s : Number.POSITIVE_INFINITY;
  lines.push(
    `simulated ${formatNumber(r.simulated_duration_s)} s in ${formatNumber(r.wall_s)} s wall (${formatNumber(speed)}x real time)`,
  );
  return lines.join('\n');
}
