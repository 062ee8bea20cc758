import type { ForwardPassSnapshot } from '../engine/pass-metrics.ts';
import { constrainReplicas } from './budget.ts';
import type { ClusterRole, PlannerConfig } from './config.ts';
import { type EngineCapabilities, EnginePerfModel } from './perf-model.ts';
import { createPredictor, type LoadPredictor } from './predictors.ts';

/**
 * Dynamo's Planner as a pure state machine on the simulation clock: at each tick it receives worker counts,
 * the latest forward-pass metrics of every ready engine and the traffic since the previous tick, and returns
 * replica targets. Two loops, as in the reference:
 *
 * - load scaling, every `load_adjustment_interval_seconds`: per-engine signals (SLA target: TTFT and ITL
 *   estimated from each worker's latest forward-pass metrics through the performance model of perf-model.ts;
 *   other targets: queue and KV-utilisation thresholds) add or remove one worker per role; nothing new is
 *   decided for a role whose previous change is still in flight (workers starting), nor while a ready worker
 *   has not reported yet (the reference's worker-count check);
 * - throughput scaling, every `throughput_adjustment_interval_seconds` (SLA target): predict the coming
 *   interval's requests, ISL and OSL, and size each role from a performance model of one worker. With load
 *   scaling on, that size is only a floor under load scaling's decisions.
 *
 * Results are then kept within `min_endpoint` / `max_endpoint` and the GPU budget.
 */

/** One pool the planner sees. */
export interface RoleSpec {
  role: ClusterRole;
  /** GPUs one worker holds. */
  gpus: number;
  caps: EngineCapabilities;
  /** False for the pool a prefill-only or decode-only planner leaves alone. */
  scaled: boolean;
  bounds: { min: number; max: number };
}

/**
 * Requests seen between two ticks (offered load), the shapes and latencies of those that completed, and the
 * router's prefix-cache hit estimate at admission (overlap / prompt blocks, per request the router scored:
 * none with round robin).
 */
export interface TrafficWindow {
  durationS: number;
  numReq: number;
  completed: number;
  sumIsl: number;
  sumOsl: number;
  ttftCount: number;
  sumTtftMs: number;
  itlCount: number;
  sumItlMs: number;
  hitCount: number;
  sumHit: number;
}

export function emptyTraffic(): TrafficWindow {
  return {
    durationS: 0,
    numReq: 0,
    completed: 0,
    sumIsl: 0,
    sumOsl: 0,
    ttftCount: 0,
    sumTtftMs: 0,
    itlCount: 0,
    sumItlMs: 0,
    hitCount: 0,
    sumHit: 0,
  };
}

/** Sums two windows: every mean in a window is kept as a sum with its own count, so merging is exact. */
export function mergeTraffic(a: TrafficWindow, b: TrafficWindow): TrafficWindow {
  const out = emptyTraffic();
  for (const k of Object.keys(out) as (keyof TrafficWindow)[]) out[k] = a[k] + b[k];
  return out;
}

export interface RoleObservation {
  /** Ready (active, not draining) workers. */
  ready: number;
  /** Workers the last decision asked for (starting and active, not draining). */
  expected: number;
  /**
   * Latest forward-pass metrics of each ready worker that has reported, in the order the planner first heard
   * from them.
   */
  fpm: ForwardPassSnapshot[];
}

export interface TickResult {
  /** New replica target per role (index as the roles given), or null to leave it. */
  targets: (number | null)[];
  reasons: string[];
}

/** One throughput decision, for the report. */
export interface ThroughputRecord {
  t_s: number;
  predicted_requests: number;
  predicted_isl: number;
  predicted_osl: number;
  demand_rps: number;
  engine_rps: (number | null)[];
  replicas: (number | null)[];
}

/** Performance-profile samples that bootstrap the regressions (see profile.ts). */
export interface PerfSamples {
  prefill: ForwardPassSnapshot[];
  decode: ForwardPassSnapshot[];
  /** Aggregated workers: the pure prefill and decode samples, as Dynamo bootstraps them. */
  agg: ForwardPassSnapshot[];
  /** Aggregated workers: mixed passes that only seed the estimator (see profile.ts). */
  mixed?: ForwardPassSnapshot[];
}

export class Planner {
  readonly config: PlannerConfig;
  readonly roles: readonly RoleSpec[];
  private readonly sla: boolean;
  private readonly models: (EnginePerfModel | null)[];
  private readonly numReq: LoadPredictor;
  private readonly isl: LoadPredictor;
  private readonly osl: LoadPredictor;
  private readonly floors: number[];
  private nextLoadS: number;
  private nextThroughputS: number;
  private readonly mergeTolS: number;
  private pending = emptyTraffic();
  private lastHit: number | null = null;
  ticks = 0;
  readonly throughputLog: ThroughputRecord[] = [];
  readonly loadReasons = new Map<string, number>();

  /** `startS`: when it starts ticking (a planner turned on during a live run; 0 otherwise). */
  constructor(config: PlannerConfig, roles: RoleSpec[], samples?: PerfSamples, startS = 0) {
    this.config = config;
    this.roles = roles;
    this.sla = config.optimization_target === 'sla';
    const settings = {
      maxSamples: config.max_num_fpm_samples,
      minObservations: config.load_min_observations,
      bucketCount: config.fpm_sample_bucket_size,
    };
    this.models = roles.map((r) => {
      if (!this.sla) return null;
      const m = new EnginePerfModel(r.role, settings, r.caps);
      if (samples) {
        if (r.role === 'aggregated' && samples.mixed) m.seed(samples.mixed);
        m.bootstrap(
          r.role === 'prefill' ? samples.prefill : r.role === 'decode' ? samples.decode : samples.agg,
        );
      }
      return m;
    });
    this.numReq = createPredictor(config);
    this.isl = createPredictor(config);
    this.osl = createPredictor(config);
    this.floors = roles.map((r) => r.bounds.min);
    const li = config.load_adjustment_interval_seconds;
    const ti = config.throughput_adjustment_interval_seconds;
    this.nextLoadS = startS + li;
    this.nextThroughputS = config.enable_throughput_scaling ? startS + ti : Number.POSITIVE_INFINITY;
    this.mergeTolS = Math.min(0.5, li / 2, ti / 2);
  }

  /** Simulated time (s) of the next tick. */
  get nextTickS(): number {
    return Math.min(this.nextLoadS, this.nextThroughputS);
  }

  /** The fitted pass-time models (ms; per store of each role), for the report. */
  modelFits(): Record<string, { intercept: number; coef: number[] } | null> {
    const out: Record<string, { intercept: number; coef: number[] } | null> = {};
    this.roles.forEach((r, i) => {
      const m = this.models[i];
      if (!m) return;
      for (const [kind, store] of m.reg.stores) out[`${r.role}.${kind}`] = store.rawFit();
    });
    return out;
  }

  tick(nowS: number, obs: RoleObservation[], traffic: TrafficWindow): TickResult {
    this.ticks++;
    const at = this.nextTickS;
    const isLoad = this.nextLoadS <= at + this.mergeTolS;
    const isThroughput = this.nextThroughputS <= at + this.mergeTolS;
    this.pending = mergeTraffic(this.pending, traffic);
    // The router's hit rate over the window (0 when nothing was scored), as the reference's last value.
    this.lastHit = traffic.hitCount > 0 ? traffic.sumHit / traffic.hitCount : 0;
    let result: TickResult = {
      targets: this.roles.map(() => null),
      reasons: this.roles.map(() => 'no_change'),
    };
    if (isLoad) {
      if (this.sla) {
        this.roles.forEach((_, i) => {
          const m = this.models[i];
          if (m && obs[i].fpm.length > 0) m.observe(obs[i].fpm);
        });
      }
      if (this.config.enable_load_scaling) result = this.loadDecision(obs);
      this.nextLoadS = nowS + this.config.load_adjustment_interval_seconds;
    }
    if (isThroughput) {
      const w = this.pending;
      this.pending = emptyTraffic();
      const decided = this.throughputDecision(nowS, obs, w);
      if (decided && result.targets.every((t) => t === null)) result = decided;
      this.nextThroughputS = nowS + this.config.throughput_adjustment_interval_seconds;
    }
    for (const r of result.reasons) this.loadReasons.set(r, (this.loadReasons.get(r) ?? 0) + 1);
    return result;
  }

  // -----------------------------------------------------------------------------------------------------------
  // Load scaling

  private loadDecision(obs: RoleObservation[]): TickResult {
    const reasons = this.roles.map(() => 'no_change');
    const desired = this.roles.map((r, i) => {
      const o = obs[i];
      if (!r.scaled) {
        reasons[i] = 'not_scaled';
        return o.expected;
      }
      if (o.expected !== o.ready) {
        reasons[i] = 'scaling_in_progress';
        return o.expected;
      }
      if (o.fpm.length === 0) {
        reasons[i] = 'no_fpm_data';
        return o.ready;
      }
      if (o.fpm.length !== o.ready) {
        reasons[i] = 'worker_count_mismatch';
        return o.ready;
      }
      const d = this.sla ? this.slaDecision(i, o) : this.easyDecision(i, o);
      if (d === null) {
        reasons[i] = this.sla && !this.models[i]?.hasSufficientData() ? 'insufficient_data' : 'no_change';
        return o.ready;
      }
      return d;
    });
    // Throughput floor (when both loops run), then replica bounds and the GPU budget.
    const lifted = desired.map((d, i) =>
      this.config.enable_throughput_scaling && this.roles[i].scaled && obs[i].expected === obs[i].ready
        ? Math.max(d, this.floors[i])
        : d,
    );
    const final = this.constrain(obs, lifted);
    return {
      targets: final.map((v, i) => (v !== obs[i].expected ? v : null)),
      reasons: final.map((v, i) =>
        v > obs[i].expected ? 'scale_up' : v < obs[i].expected ? 'scale_down' : reasons[i],
      ),
    };
  }

  private constrain(obs: RoleObservation[], proposed: number[]): number[] {
    const cur = obs.map((o) => o.expected);
    const bounds = this.roles.map((r, i) => (r.scaled ? r.bounds : { min: cur[i], max: cur[i] }));
    return constrainReplicas(
      cur,
      proposed,
      this.roles.map((r) => r.gpus),
      bounds,
      this.config.min_gpu_budget,
      this.config.max_gpu_budget,
    );
  }

  /** Static thresholds (targets throughput, latency) or the user's (target load); up on any, down on all. */
  private easyDecision(i: number, o: RoleObservation): number | null {
    const c = this.config;
    const role = this.roles[i];
    const n = o.ready;
    const min = role.bounds.min;
    const target = c.optimization_target;
    const latency = target === 'latency';
    if (role.role === 'prefill') {
      const q = o.fpm.map((f) => f.sumQueuedPrefillTokens);
      if (target === 'load') {
        const up = c.prefill_scale_up_queue_tokens as number;
        const down = c.prefill_scale_down_queue_tokens as number;
        if (q.some((v) => v >= up)) return n + 1;
        if (n > 1 && q.every((v) => v <= down)) return consolidated(Math.max(n - 1, min), n, q, up);
        return null;
      }
      const ratios = q.map((v) => v / role.caps.contextLength);
      const upR = latency ? 0.1 : 1;
      if (ratios.some((r) => r >= upR)) return n + 1;
      if (n > 1 && ratios.every((r) => (latency ? r <= 0 : r < 0.1)))
        return consolidated(Math.max(n - 1, min), n, ratios, upR);
      return null;
    }
    const agg = role.role === 'aggregated';
    const utils = o.fpm.map(
      (f) =>
        (f.sumDecodeKvTokens + f.sumQueuedDecodeKvTokens + (agg ? f.sumQueuedPrefillTokens : 0)) /
        role.caps.maxKvTokens,
    );
    if (target === 'load') {
      const up = (c.decode_scale_up_kv_rate as number) / 100;
      const down = (c.decode_scale_down_kv_rate as number) / 100;
      if (utils.some((u) => u >= up)) return n + 1;
      if (n > 1 && utils.every((u) => u <= down)) return consolidated(Math.max(n - 1, min), n, utils, up);
      return null;
    }
    const upU = latency ? 0.4 : 1;
    if (utils.some((u) => u > upU)) return n + 1;
    if (n > 1 && utils.every((u) => u < (latency ? 0.1 : 0.6)))
      return consolidated(Math.max(n - 1, min), n, utils, upU);
    return null;
  }

  /**
   * SLA target, as Dynamo 1.6.1 decides it: up when every engine's estimate misses the SLO; down only when,
   * with one engine fewer (its load spread over the survivors: x N / (N - 1)), every survivor's estimate
   * stays within `load_scaling_down_sensitivity` % of the SLO — for TTFT, of the part the queue causes (the
   * request's own prefill does not shrink with more engines); a survivor whose KV would overflow refuses.
   */
  private slaDecision(i: number, o: RoleObservation): number | null {
    const m = this.models[i];
    const role = this.roles[i].role;
    if (!m?.hasSufficientData()) return null;
    const n = o.ready;
    if (n === 0) return null;
    if (role === 'prefill') return this.prefillSla(m, o, n, i);
    if (role === 'decode') return this.decodeSla(m, o, n, i);
    return this.aggSla(m, o, n, i);
  }

  private scaleDecision(est: number[], slaMs: number, n: number, canDown: boolean, i: number): number | null {
    if (est.length === 0) return null;
    if (est.every((t) => t > slaMs)) return n + 1;
    if (n > 1 && canDown) return Math.max(n - 1, this.roles[i].bounds.min);
    return null;
  }

  private prefillSla(m: EnginePerfModel, o: RoleObservation, n: number, i: number): number | null {
    const c = this.config;
    const sens = c.load_scaling_down_sensitivity / 100;
    const grow = n > 1 ? n / (n - 1) : 1;
    const kvHit = this.lastHit;
    let canDown = n > 1;
    const est: number[] = [];
    for (const f of o.fpm) {
      const e = m.queuedPrefillTime(f, { kvHit });
      if (e !== null) est.push(e * 1000);
      if (!canDown) continue;
      const own = m.queuedPrefillTime(f, { kvHit, queueScale: 0 });
      if (own === null) {
        canDown = false;
        continue;
      }
      const budgetMs = (c.ttft_ms - own * 1000) * sens;
      if (budgetMs <= 0) {
        canDown = false;
        continue;
      }
      const post = m.queuedPrefillTime(f, { kvHit, queueScale: grow });
      if (post === null || post * 1000 - own * 1000 >= budgetMs) canDown = false;
    }
    return this.scaleDecision(est, c.ttft_ms, n, canDown, i);
  }

  private decodeSla(m: EnginePerfModel, o: RoleObservation, n: number, i: number): number | null {
    const c = this.config;
    const maxKv = this.roles[i].caps.maxKvTokens;
    const sens = c.load_scaling_down_sensitivity / 100;
    const grow = n > 1 ? n / (n - 1) : 1;
    let canDown = n > 1;
    const est: number[] = [];
    for (const f of o.fpm) {
      const e = m.scheduledDecodeItl(f, { includeQueuedDecode: true });
      if (e !== null) est.push(e * 1000);
      if (!canDown) continue;
      const post = Math.trunc((f.sumDecodeKvTokens + f.sumQueuedDecodeKvTokens) * grow);
      if (maxKv > 0 && post >= maxKv) {
        canDown = false;
        continue;
      }
      const itl = m.scheduledDecodeItl(f, { decodeScale: grow, includeQueuedDecode: true });
      if (itl === null || itl * 1000 >= c.itl_ms * sens) canDown = false;
    }
    return this.scaleDecision(est, c.itl_ms, n, canDown, i);
  }

  /** Aggregated: up when TTFT or ITL calls for it; down only when both allow it. */
  private aggSla(m: EnginePerfModel, o: RoleObservation, n: number, i: number): number | null {
    const c = this.config;
    const caps = this.roles[i].caps;
    const sens = c.load_scaling_down_sensitivity / 100;
    const grow = n > 1 ? n / (n - 1) : 1;
    const kvHit = this.lastHit;
    // Prefill side: the survivor inherits queued prompts and decode KV (scheduled and queued).
    let p: number | null = null;
    if (caps.maxNumBatchedTokens > 0) {
      let pDown = n > 1;
      let pRefused = false;
      const ttft: number[] = [];
      for (const f of o.fpm) {
        const e = m.queuedPrefillTime(f, { kvHit });
        if (e !== null) ttft.push(e * 1000);
        if (!pDown) continue;
        const post = { kvHit, decodeScale: grow, includeQueuedDecode: true };
        const own = m.queuedPrefillTime(f, { ...post, queueScale: 0 });
        const after = m.queuedPrefillTime(f, { ...post, queueScale: grow });
        if (own === null || after === null) {
          pDown = false;
          continue;
        }
        const budgetMs = (c.ttft_ms - own * 1000) * sens;
        if (budgetMs <= 0 || after * 1000 - own * 1000 >= budgetMs) {
          pDown = false;
          pRefused = true;
        }
      }
      p = this.scaleDecision(ttft, c.ttft_ms, n, pDown, i);
      if (p === null && pRefused) p = n;
    }
    // Decode side: queued prompts become decode KV, so they count toward the consolidated cache.
    let dDown = n > 1;
    let dRefused = false;
    const itl: number[] = [];
    for (const f of o.fpm) {
      const e = m.scheduledDecodeItl(f, { includeQueuedDecode: true });
      if (e !== null) itl.push(e * 1000);
      if (!dDown) continue;
      const post = Math.trunc(
        (f.sumDecodeKvTokens + f.sumQueuedDecodeKvTokens + f.sumQueuedPrefillTokens) * grow,
      );
      if (caps.maxKvTokens > 0 && post >= caps.maxKvTokens) {
        dDown = false;
        dRefused = true;
        continue;
      }
      const e2 = m.scheduledDecodeItl(f, {
        decodeScale: grow,
        includeQueuedDecode: true,
        includeQueuedPrefillAsKv: true,
      });
      if (e2 === null) dDown = false;
      else if (e2 * 1000 >= c.itl_ms * sens) {
        dDown = false;
        dRefused = true;
      }
    }
    let d = this.scaleDecision(itl, c.itl_ms, n, dDown, i);
    if (d === null && dRefused) d = n;
    if (p !== null && p > n) return p;
    if (d !== null && d > n) return d;
    if (p === null && d !== null && d < n) return d;
    if (p !== null && p < n && d !== null && d < n) return Math.max(p, d);
    return null;
  }

  // -----------------------------------------------------------------------------------------------------------
  // Throughput scaling

  private throughputDecision(nowS: number, obs: RoleObservation[], w: TrafficWindow): TickResult | null {
    if (w.completed > 0) {
      this.isl.add(w.sumIsl / w.completed);
      this.osl.add(w.sumOsl / w.completed);
    } else {
      this.isl.add(0);
      this.osl.add(0);
    }
    this.numReq.add(w.numReq);
    if (!this.config.enable_throughput_scaling || w.durationS <= 0) return null;
    const nextReq = this.numReq.predict();
    const isl = this.isl.predict();
    const osl = this.osl.predict();
    const demand = nextReq / w.durationS;
    const c = this.config;
    const engineRps: (number | null)[] = [];
    const replicas = this.roles.map((r, i) => {
      const m = this.models[i];
      engineRps.push(null);
      if (!r.scaled || m === null) return null;
      // What one worker sustains within the SLOs that apply to its role.
      const cap = m.capacity({
        isl,
        osl,
        ...(r.role !== 'decode' ? { ttftSlaMs: c.ttft_ms, kvHit: this.lastHit } : {}),
        ...(r.role !== 'prefill' ? { itlSlaMs: c.itl_ms } : {}),
      });
      if (cap === null || !(cap.rps > 0)) return null;
      const rps = cap.rps;
      engineRps[i] = rps;
      return Math.max(Math.ceil(demand / rps), r.bounds.min);
    });
    this.throughputLog.push({
      t_s: nowS,
      predicted_requests: nextReq,
      predicted_isl: isl,
      predicted_osl: osl,
      demand_rps: demand,
      engine_rps: engineRps,
      replicas,
    });
    // Every scaled role needs a model answer (a disaggregated pair moves together).
    if (this.roles.some((r, i) => r.scaled && replicas[i] === null)) return null;
    if (c.enable_load_scaling) {
      replicas.forEach((v, i) => {
        if (v !== null) this.floors[i] = v;
      });
      return null;
    }
    const proposed = replicas.map((v, i) => v ?? obs[i].expected);
    const final = this.constrain(obs, proposed);
    return {
      targets: final.map((v, i) => (v !== obs[i].expected ? v : null)),
      reasons: final.map((v, i) =>
        v > obs[i].expected ? 'scale_up' : v < obs[i].expected ? 'scale_down' : 'no_change',
      ),
    };
  }
}

/**
 * The reference's guard on an easy-mode scale-down: no worker is drained if spreading the busiest worker's
 * load over the survivors (x ready / desired) would reach the scale-up threshold at once. Null = hold.
 */
export function consolidated(desired: number, ready: number, values: number[], up: number): number | null {
  if (desired > 0 && desired < ready) {
    let max = Number.NEGATIVE_INFINITY;
    for (const v of values) if (v > max) max = v;
    if ((max * ready) / desired >= up) return null;
  }
  return desired;
}
