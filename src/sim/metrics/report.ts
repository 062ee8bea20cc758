import { RequestStatus } from '../engine/request-table.ts';
import { integrateGpus, type ScalingEvent, type WorkerTimes } from '../planner/fleet.ts';
import type { ThroughputRecord } from '../planner/planner.ts';
import type { SimulationResult } from '../simulation.ts';
import { type Distribution, summarize, summarizeHistogram } from './distribution.ts';

/** Service-level thresholds for goodput: a completed request is good when it meets every threshold set. */
export interface SloThresholds {
  ttftMs?: number;
  itlMs?: number;
  e2eMs?: number;
}

export interface WorkerReport {
  worker: number;
  utilization: number;
  passes: number;
  preemptions: number;
  role: string;
  gpus: number;
  kv_blocks_evicted: number;
}

/** The report of one simulation run; key names follow the reference simulator where it has one. */
export interface SimulationReport {
  num_requests: number;
  completed_requests: number;
  rejected_requests: number;
  incomplete_requests: number;
  /**
   * Completed requests that asked for no output (output_length 0): they count in end-to-end and queue times,
   * and are left out of TTFT, TTST, TPOT and ITL (they have no token).
   */
  zero_output_requests: number;
  total_input_tokens: number;
  total_output_tokens: number;
  simulated_duration_s: number;
  wall_s: number;
  ttft_ms: Distribution;
  ttst_ms: Distribution;
  tpot_ms: Distribution;
  itl_ms: Distribution;
  e2e_ms: Distribution;
  queue_ms: Distribution;
  output_token_throughput_per_user: { mean: number };
  request_throughput_rps: number;
  input_throughput_tok_s: number;
  output_throughput_tok_s: number;
  total_throughput_tok_s: number;
  output_throughput_tok_s_per_gpu: number;
  total_throughput_tok_s_per_gpu: number;
  goodput?: {
    slo: SloThresholds;
    completed_requests: number;
    fraction: number;
    request_throughput_rps: number;
    output_throughput_tok_s: number;
  };
  prefix_cache_reused_ratio: number;
  first_admission_prefix_cache_reused_ratio: number;
  committed_prefill_tokens: number;
  gpus: number;
  gpu_hours: number;
  preemptions: number;
  workers: WorkerReport[];
  /** Per role: workers, GPUs and mean utilisation. */
  roles: Record<string, { workers: number; gpus: number; utilization: number }>;
  /** Lower KV tiers: prefix hits by tier (as shares of input tokens of completed requests), traffic, delays. */
  kv_tiers?: {
    g1_hit_ratio: number;
    g2_hit_ratio: number;
    g3_hit_ratio: number;
    offloaded_blocks: number;
    onboarded_blocks: number;
    onboard_ms: Distribution;
  };
  /** Disaggregated serving: KV handoffs from prefill to decode workers. */
  kv_transfer?: {
    count: number;
    bytes: number;
    transfer_ms: Distribution;
    destination_wait_ms: Distribution;
    local_prefills: number;
  };
  queue_depth: { t_s: number[]; waiting: number[]; running: number[] };
  simulator: { passes: number; coalesced_runs: number; loop_steps: number; events_per_s: number };
  /** With a planner: scaling decisions (one per role and decision), counted. */
  scaling_events?: ScalingCounts;
  /** With a planner: workers per role and GPUs held after each change (a step function of time). */
  replicas_over_time?: {
    t_s: number[];
    roles: Record<string, { starting: number[]; active: number[]; draining: number[] }>;
    gpus_held: number[];
  };
  planner?: PlannerReport;
}

export interface ScalingCounts {
  up: number;
  down: number;
  total: number;
  by_role: Record<string, { up: number; down: number }>;
}

/** What the planner did and what it cost. */
export interface PlannerReport {
  optimization_target: string;
  load_scaling: boolean;
  throughput_scaling: boolean;
  load_adjustment_interval_s: number;
  throughput_adjustment_interval_s: number;
  startup_time_s: number;
  ticks: number;
  events: ScalingEvent[];
  /** GPU-hours held in [0, simulated duration], split by worker state (starting and draining cost too). */
  gpu_hours_held: number;
  gpu_hours_by_state: { starting: number; active: number; draining: number };
  mean_gpus_held: number;
  peak_gpus_held: number;
  /** Time-weighted mean of ready workers per role. */
  mean_active_replicas: Record<string, number>;
  workers_added: number;
  workers_cancelled: number;
  workers_drained: number;
  /** Share of completed requests within the planner's TTFT and ITL targets (ITL: the request's mean gap). */
  slo_attainment: {
    ttft_ms: number;
    itl_ms: number;
    fraction: number;
    ttft_fraction: number;
    itl_fraction: number;
  };
  /** Fitted pass-time models (seconds; coefficients per feature) and the throughput decisions. */
  perf_model: Record<string, { intercept: number; coef: number[] } | null>;
  throughput_decisions: ThroughputRecord[];
  decision_reasons: Record<string, number>;
  worker_lifecycle: WorkerTimes[];
}

/** Builds the report from a finished simulation. `wallMs` is the host time the simulation took. */
export function buildReport(result: SimulationResult, wallMs: number, slo?: SloThresholds): SimulationReport {
  const { collector: pooled, engines, options } = result;
  const c = result.records;
  const n = c.size;
  const cap = options.maxSimTimeMs ?? Number.POSITIVE_INFINITY;
  // Warm-up (options.measureFromMs): rows arriving earlier are skipped below; throughput is over the span
  // measured. Engine-wide figures (utilisation, queue depth, KV tiers, planner) still cover the whole run.
  const from = options.measureFromMs;
  const ttft = new Float64Array(n);
  const ttst = new Float64Array(n);
  const tpot = new Float64Array(n);
  const e2e = new Float64Array(n);
  const queue = new Float64Array(n);
  let completed = 0;
  let nTtft = 0;
  let nTtst = 0;
  let nTpot = 0;
  let nE2e = 0;
  let zeroOutput = 0;
  let duration = 0;
  let inTok = 0;
  let outTok = 0;
  let allIn = 0;
  let allOut = 0;
  let reused = 0;
  let reusedFirst = 0;
  let good = 0;
  let goodOut = 0;
  const status = c.status;
  let measuredRows = n;
  let rejected = pooled.rejected;
  if (from !== undefined) {
    measuredRows = 0;
    rejected = 0;
  }
  for (let r = 0; r < n; r++) {
    if (from !== undefined) {
      if (!(c.arrivalMs[r] >= from)) continue;
      measuredRows++;
      if (status[r] === RequestStatus.Rejected) rejected++;
    }
    allIn += c.inputLength[r];
    allOut += c.outputLength[r];
    const end = c.terminalMs[r];
    // Counted: completed (zero-output requests too) by the end of the simulated window.
    if (status[r] !== RequestStatus.Done || !(end <= cap)) continue;
    completed++;
    if (end > duration) duration = end;
    inTok += c.inputLength[r];
    reused += c.reusedBest[r];
    reusedFirst += c.reusedFirst[r];
    const k = c.tokens[r];
    outTok += k;
    const arrival = c.arrivalMs[r];
    const first = c.firstTokenMs[r];
    const last = c.lastTokenMs[r];
    if (k >= 1) {
      ttft[nTtft] = first - arrival;
      nTtft++;
    } else zeroOutput++;
    // End-to-end and queueing count every completed request: one that produces no token ends with its prefill.
    e2e[nE2e] = (k >= 1 ? last : end) - arrival;
    queue[nE2e] = c.firstAdmitMs[r] - arrival;
    nE2e++;
    if (k >= 2) {
      ttst[nTtst++] = c.secondTokenMs[r] - first;
      tpot[nTpot++] = (last - first) / (k - 1);
    }
    if (slo) {
      const itl = k > 1 ? (last - first) / (k - 1) : 0;
      const ttftOk = k === 0 || slo.ttftMs === undefined || first - arrival <= slo.ttftMs;
      const e2eOk = slo.e2eMs === undefined || (k === 0 ? end - arrival : last - arrival) <= slo.e2eMs;
      if (ttftOk && e2eOk && (slo.itlMs === undefined || k <= 1 || itl <= slo.itlMs)) {
        good++;
        goodOut += k;
      }
    }
  }
  // The measured span: from the start, or from the end of the warm-up.
  const spanMs = from === undefined ? duration : Math.max(0, duration - from);
  const durS = Math.max(spanMs / 1000, 1e-9);
  let gpus = engines.reduce((sum, e) => sum + e.gpus, 0);
  let gpuMs = gpus * spanMs;
  // With a planner, GPUs are what the fleet held over time (starting and draining workers included).
  const fleet = result.planner?.fleet ?? null;
  const held = fleet ? integrateGpus(fleet.timeline, duration) : null;
  if (fleet && held) {
    gpuMs = held.starting + held.active + held.draining;
    const g = fleet.timeline.gpus;
    gpus = Math.max(0, ...g.active.map((a, i) => a + g.starting[i] + g.draining[i]));
  }
  const meanGpus = held ? (duration > 0 ? gpuMs / duration : gpus) : spanMs > 0 ? gpuMs / spanMs : gpus;
  let passes = 0;
  let runs = 0;
  let preemptions = 0;
  // With a planner a worker serves only between becoming ready and leaving.
  const lives = fleet?.workerTimes() ?? null;
  const servingMs = (e: number): number => {
    const w = lives?.[e];
    if (!w) return duration;
    const from = w.ready_s === null ? duration : w.ready_s * 1000;
    return Math.max(0, Math.min(duration, w.removed_s === null ? duration : w.removed_s * 1000) - from);
  };
  const workers: WorkerReport[] = engines.map((e) => {
    passes += e.passes;
    runs += e.coalescedRuns;
    preemptions += e.preemptions;
    const span = servingMs(e.index);
    return {
      worker: e.index,
      utilization: span > 0 ? Math.min(1, e.busyMs / span) : 0,
      passes: e.passes,
      preemptions: e.preemptions,
      role: e.role,
      gpus: e.gpus,
      kv_blocks_evicted: e.evictions,
    };
  });
  const report: SimulationReport = {
    num_requests: measuredRows,
    completed_requests: completed,
    rejected_requests: rejected,
    incomplete_requests: measuredRows - completed - rejected,
    total_input_tokens: allIn,
    total_output_tokens: allOut,
    simulated_duration_s: duration / 1000,
    wall_s: wallMs / 1000,
    ttft_ms: summarize(ttft, nTtft),
    ttst_ms: summarize(ttst, nTtst),
    tpot_ms: summarize(tpot, nTpot),
    itl_ms: summarizeHistogram(pooled.itl),
    e2e_ms: summarize(e2e, nE2e),
    queue_ms: summarize(queue, nE2e),
    zero_output_requests: zeroOutput,
    output_token_throughput_per_user: {
      mean: pooled.itl.count > 0 ? pooled.userRateSum / pooled.itl.count : Number.NaN,
    },
    request_throughput_rps: completed / durS,
    input_throughput_tok_s: inTok / durS,
    output_throughput_tok_s: outTok / durS,
    total_throughput_tok_s: (inTok + outTok) / durS,
    output_throughput_tok_s_per_gpu: outTok / durS / meanGpus,
    total_throughput_tok_s_per_gpu: (inTok + outTok) / durS / meanGpus,
    prefix_cache_reused_ratio: inTok > 0 ? reused / inTok : 0,
    first_admission_prefix_cache_reused_ratio: inTok > 0 ? reusedFirst / inTok : 0,
    committed_prefill_tokens: engines.reduce((sum, e) => sum + e.committedPrefillTokens, 0),
    gpus,
    gpu_hours: gpuMs / 3_600_000,
    preemptions,
    workers,
    roles: rolesOf(workers),
    queue_depth: result.queueDepth.series(duration, 120),
    simulator: {
      passes,
      coalesced_runs: runs,
      loop_steps: result.loopSteps,
      events_per_s: wallMs > 0 ? (result.loopSteps + result.arrivals) / (wallMs / 1000) : 0,
    },
  };
  const tiered = engines.filter((e) => (e as { offload?: unknown }).offload);
  if (tiered.length > 0) {
    let g2 = 0;
    let g3 = 0;
    let off = 0;
    const delays: number[] = [];
    for (const e of tiered as unknown as {
      tierHitBlocks: number[];
      onboardMs: number[];
      offload: { offloaded: number };
      config: { blockSize: number };
    }[]) {
      g2 += e.tierHitBlocks[2] * e.config.blockSize;
      g3 += e.tierHitBlocks[3] * e.config.blockSize;
      off += e.offload.offloaded;
      delays.push(...e.onboardMs);
    }
    const bs = (tiered[0] as unknown as { config: { blockSize: number } }).config.blockSize;
    report.kv_tiers = {
      g1_hit_ratio: inTok > 0 ? Math.max(0, reused - g2 - g3) / inTok : 0,
      g2_hit_ratio: inTok > 0 ? g2 / inTok : 0,
      g3_hit_ratio: inTok > 0 ? g3 / inTok : 0,
      offloaded_blocks: off,
      onboarded_blocks: (g2 + g3) / bs,
      onboard_ms: summarize(Float64Array.from(delays)),
    };
  }
  const tr = result.transfers;
  if (tr) {
    report.kv_transfer = {
      count: tr.count,
      bytes: tr.bytes,
      transfer_ms: summarize(tr.transferMs.slice(0, tr.count)),
      destination_wait_ms: summarize(tr.waitMs.slice(0, tr.count)),
      local_prefills: tr.localPrefills,
    };
  }
  if (result.planner && held) addPlannerReport(report, result, held, duration, ttft, nTtft, tpot, nTpot);
  if (slo) {
    report.goodput = {
      slo,
      completed_requests: good,
      fraction: completed > 0 ? good / completed : 0,
      request_throughput_rps: good / durS,
      output_throughput_tok_s: goodOut / durS,
    };
  }
  return report;
}

function addPlannerReport(
  report: SimulationReport,
  result: SimulationResult,
  held: { starting: number; active: number; draining: number },
  duration: number,
  ttft: Float64Array,
  nTtft: number,
  tpot: Float64Array,
  nTpot: number,
): void {
  const { planner, fleet } = result.planner as NonNullable<SimulationResult['planner']>;
  const c = planner.config;
  const tl = fleet.timeline;
  const counts: ScalingCounts = { up: 0, down: 0, total: 0, by_role: {} };
  for (const r of planner.roles) counts.by_role[r.role] = { up: 0, down: 0 };
  for (const e of fleet.events) {
    if (e.t_s * 1000 > duration) continue;
    counts[e.direction]++;
    counts.total++;
    counts.by_role[e.role][e.direction]++;
  }
  const keep = tl.t_ms.filter((t) => t <= duration).length;
  const roles: Record<string, { starting: number[]; active: number[]; draining: number[] }> = {};
  const meanActive: Record<string, number> = {};
  for (const [role, row] of Object.entries(tl.roles)) {
    roles[role] = {
      starting: row.starting.slice(0, keep),
      active: row.active.slice(0, keep),
      draining: row.draining.slice(0, keep),
    };
    let area = 0;
    for (let i = 0; i < keep; i++) {
      const to = i + 1 < keep ? tl.t_ms[i + 1] : duration;
      area += row.active[i] * Math.max(0, to - tl.t_ms[i]);
    }
    meanActive[role] = duration > 0 ? area / duration : (row.active[0] ?? 0);
  }
  report.scaling_events = counts;
  report.replicas_over_time = {
    t_s: tl.t_ms.slice(0, keep).map((t) => t / 1000),
    roles,
    gpus_held: tl.gpus.active.slice(0, keep).map((a, i) => a + tl.gpus.starting[i] + tl.gpus.draining[i]),
  };
  let okTtft = 0;
  let okItl = 0;
  let ok = 0;
  // Requests with one token have no ITL; the arrays hold TTFT for every completed request with a token and
  // TPOT for those with two or more, so count ITL misses and subtract.
  for (let i = 0; i < nTtft; i++) if (ttft[i] <= c.ttft_ms) okTtft++;
  let itlMiss = 0;
  for (let i = 0; i < nTpot; i++) if (tpot[i] > c.itl_ms) itlMiss++;
  okItl = nTtft - itlMiss;
  const col = result.records;
  const status = col.status;
  for (let r = 0; r < col.size; r++) {
    if (status[r] !== RequestStatus.Done || !(col.terminalMs[r] <= duration)) continue;
    const k = col.tokens[r];
    if (k < 1) continue;
    const first = col.firstTokenMs[r] - col.arrivalMs[r];
    const itl = k > 1 ? (col.lastTokenMs[r] - col.firstTokenMs[r]) / (k - 1) : 0;
    if (first <= c.ttft_ms && itl <= c.itl_ms) ok++;
  }
  const hours = (ms: number) => ms / 3_600_000;
  const workers = fleet.workerTimes();
  report.planner = {
    optimization_target: c.optimization_target,
    load_scaling: c.enable_load_scaling,
    throughput_scaling: c.enable_throughput_scaling,
    load_adjustment_interval_s: c.load_adjustment_interval_seconds,
    throughput_adjustment_interval_s: c.throughput_adjustment_interval_seconds,
    startup_time_s: result.options.planner ? result.options.planner.startupMs / 1000 : 0,
    ticks: planner.ticks,
    events: fleet.events,
    gpu_hours_held: hours(held.starting + held.active + held.draining),
    gpu_hours_by_state: {
      starting: hours(held.starting),
      active: hours(held.active),
      draining: hours(held.draining),
    },
    mean_gpus_held: duration > 0 ? (held.starting + held.active + held.draining) / duration : 0,
    peak_gpus_held: report.gpus,
    mean_active_replicas: meanActive,
    workers_added: workers.filter((w) => w.requested_s > 0).length,
    workers_cancelled: workers.filter((w) => w.cancelled).length,
    workers_drained: workers.filter((w) => w.drain_s !== null).length,
    slo_attainment: {
      ttft_ms: c.ttft_ms,
      itl_ms: c.itl_ms,
      fraction: nTtft > 0 ? ok / nTtft : 0,
      ttft_fraction: nTtft > 0 ? okTtft / nTtft : 0,
      itl_fraction: nTtft > 0 ? okItl / nTtft : 0,
    },
    perf_model: planner.modelFits(),
    throughput_decisions: planner.throughputLog,
    decision_reasons: Object.fromEntries(planner.loadReasons),
    worker_lifecycle: workers,
  };
}

function rolesOf(workers: WorkerReport[]): SimulationReport['roles'] {
  const out: SimulationReport['roles'] = {};
  for (const w of workers) {
    const r = out[w.role] ?? { workers: 0, gpus: 0, utilization: 0 };
    r.utilization = (r.utilization * r.workers + w.utilization) / (r.workers + 1);
    r.workers++;
    r.gpus += w.gpus;
    out[w.role] = r;
  }
  return out;
}
