import { RequestStatus } from '../engine/request-table.ts';
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
}

/** Builds the report from a finished simulation. `wallMs` is the host time the simulation took. */
export function buildReport(result: SimulationResult, wallMs: number, slo?: SloThresholds): SimulationReport {
  const { workload, collector: c, engines, options } = result;
  const n = workload.size;
  const cap = options.maxSimTimeMs ?? Number.POSITIVE_INFINITY;
  const ttft = new Float64Array(n);
  const ttst = new Float64Array(n);
  const tpot = new Float64Array(n);
  const e2e = new Float64Array(n);
  const queue = new Float64Array(n);
  let completed = 0;
  let nTtft = 0;
  let nTtst = 0;
  let nTpot = 0;
  let duration = 0;
  let inTok = 0;
  let outTok = 0;
  let allIn = 0;
  let allOut = 0;
  let reused = 0;
  let reusedFirst = 0;
  let good = 0;
  let goodOut = 0;
  const status = result.requests.status;
  for (let r = 0; r < n; r++) {
    allIn += workload.inputLength[r];
    allOut += workload.outputLength[r];
    const end = c.terminalMs[r];
    // Counted: completed (zero-output requests too) by the end of the simulated window.
    if (status[r] !== RequestStatus.Done || !(end <= cap)) continue;
    completed++;
    if (end > duration) duration = end;
    inTok += workload.inputLength[r];
    reused += c.reusedBest[r];
    reusedFirst += c.reusedFirst[r];
    const k = c.tokens[r];
    outTok += k;
    const arrival = c.arrivalMs[r];
    const first = c.firstTokenMs[r];
    const last = c.lastTokenMs[r];
    if (k >= 1) {
      ttft[nTtft] = first - arrival;
      e2e[nTtft] = last - arrival;
      queue[nTtft] = c.firstAdmitMs[r] - arrival;
      nTtft++;
    }
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
  const durS = Math.max(duration / 1000, 1e-9);
  const gpus = engines.reduce((sum, e) => sum + e.gpus, 0);
  let passes = 0;
  let runs = 0;
  let preemptions = 0;
  const workers: WorkerReport[] = engines.map((e) => {
    passes += e.passes;
    runs += e.coalescedRuns;
    preemptions += e.preemptions;
    return {
      worker: e.index,
      utilization: duration > 0 ? Math.min(1, e.busyMs / duration) : 0,
      passes: e.passes,
      preemptions: e.preemptions,
      role: e.role,
      gpus: e.gpus,
      kv_blocks_evicted: e.evictions,
    };
  });
  const report: SimulationReport = {
    num_requests: n,
    completed_requests: completed,
    rejected_requests: c.rejected,
    incomplete_requests: n - completed - c.rejected,
    total_input_tokens: allIn,
    total_output_tokens: allOut,
    simulated_duration_s: duration / 1000,
    wall_s: wallMs / 1000,
    ttft_ms: summarize(ttft, nTtft),
    ttst_ms: summarize(ttst, nTtst),
    tpot_ms: summarize(tpot, nTpot),
    itl_ms: summarizeHistogram(c.itl),
    e2e_ms: summarize(e2e, nTtft),
    queue_ms: summarize(queue, nTtft),
    output_token_throughput_per_user: { mean: c.itl.count > 0 ? c.userRateSum / c.itl.count : Number.NaN },
    request_throughput_rps: completed / durS,
    input_throughput_tok_s: inTok / durS,
    output_throughput_tok_s: outTok / durS,
    total_throughput_tok_s: (inTok + outTok) / durS,
    output_throughput_tok_s_per_gpu: outTok / durS / gpus,
    total_throughput_tok_s_per_gpu: (inTok + outTok) / durS / gpus,
    prefix_cache_reused_ratio: inTok > 0 ? reused / inTok : 0,
    first_admission_prefix_cache_reused_ratio: inTok > 0 ? reusedFirst / inTok : 0,
    committed_prefill_tokens: engines.reduce((sum, e) => sum + e.committedPrefillTokens, 0),
    gpus,
    gpu_hours: (gpus * duration) / 3_600_000,
    preemptions,
    workers,
    roles: rolesOf(workers),
    queue_depth: resampleQueue(result, duration, 120),
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

/** Time-weighted mean queue depth in `points` equal buckets over [0, duration]. */
function resampleQueue(
  result: SimulationResult,
  durationMs: number,
  points: number,
): { t_s: number[]; waiting: number[]; running: number[] } {
  const q = result.queueSamples;
  const out = { t_s: [] as number[], waiting: [] as number[], running: [] as number[] };
  if (q.length === 0 || durationMs <= 0) return out;
  const step = durationMs / points;
  let i = 0;
  for (let b = 0; b < points; b++) {
    const lo = b * step;
    const hi = lo + step;
    let w = 0;
    let r = 0;
    let covered = 0;
    while (i + 1 < q.length && q.t[i + 1] <= lo) i++;
    for (let k = i; k < q.length && q.t[k] < hi; k++) {
      const from = Math.max(lo, q.t[k]);
      const to = Math.min(hi, k + 1 < q.length ? q.t[k + 1] : hi);
      if (to <= from) continue;
      w += q.waiting[k] * (to - from);
      r += q.running[k] * (to - from);
      covered += to - from;
    }
    out.t_s.push(Math.round(((lo + hi) / 2) * 1e3) / 1e6);
    out.waiting.push(covered > 0 ? w / covered : 0);
    out.running.push(covered > 0 ? r / covered : 0);
  }
  return out;
}
