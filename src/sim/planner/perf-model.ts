import type { ForwardPassSnapshot } from '../engine/pass-metrics.ts';
import { FpmRegression, type PassWork, type WorkerRole } from './fpm-regression.ts';

/**
 * The SLA planner's performance model of one worker role, as Dynamo 1.6.1 builds it (`PlannerEnginePerfModel`
 * over AISimulate's engine-query layer): a forward-pass time estimator learnt from the workers' forward-pass
 * metrics (fpm-regression.ts), and the planner's questions answered by composing synthetic passes from it:
 *
 * - the TTFT of the next request behind a worker's queue: its queued prompt tokens plus one average request,
 *   chunked by the token budget, each chunk priced as a pass next to the worker's running decode batch;
 * - the ITL of the next decode step: the worker's decode batch plus one average request (aggregated: with
 *   the average prefill chunk that rides along);
 * - the requests per second one worker sustains within the SLOs (throughput scaling).
 *
 * Times are in seconds, SLOs in milliseconds, as in the reference.
 */
export interface RegressionSettings {
  maxSamples: number;
  minObservations: number;
  bucketCount: number;
}

/** What the planner knows of an engine's limits. */
export interface EngineCapabilities {
  maxNumBatchedTokens: number;
  maxKvTokens: number;
  maxNumSeqs: number;
  contextLength: number;
}

const MAX_KV_HIT = 0.95;
const MAX_CAPACITY_CANDIDATES = 128;
const DEFAULT_MAX_NUM_BATCHED_TOKENS = 8192;
const DEFAULT_MAX_NUM_SEQS = 512;
const DEFAULT_MAX_KV_TOKENS = 2_000_000;

/** The reference's hit-rate discount: at most 95 %, none when unknown. */
export function clampHit(h: number | null | undefined): number {
  return h === null || h === undefined || !Number.isFinite(h) ? 0 : Math.min(MAX_KV_HIT, Math.max(0, h));
}

const ceil0 = (v: number): number => (v <= 0 ? 0 : Math.ceil(v));

/** Mean of the last `window` values, ignoring everything before the first positive one. */
export class MovingAverage {
  private readonly window: number;
  private readonly values: number[] = [];
  private sum = 0;
  private seen = false;
  constructor(window: number) {
    this.window = Math.max(1, window);
  }
  add(v: number): void {
    if (v > 0) this.seen = true;
    if (!this.seen) return;
    const x = Math.max(0, v);
    this.values.push(x);
    this.sum += x;
    if (this.values.length > this.window) this.sum -= this.values.shift() as number;
  }
  get value(): number {
    return this.values.length === 0 ? 0 : this.sum / this.values.length;
  }
}

/** Options of a queued-prefill (TTFT) estimate: scaled queue and decode load, one more average request. */
export interface PrefillQuery {
  kvHit?: number | null;
  queueScale?: number;
  decodeScale?: number;
  includeQueuedDecode?: boolean;
  addNextRequest?: boolean;
}

/** Options of a decode-step (ITL) estimate. */
export interface DecodeQuery {
  decodeScale?: number;
  includeQueuedDecode?: boolean;
  /** Queued prompts count as decode KV (they become it once admitted). */
  includeQueuedPrefillAsKv?: boolean;
  addNextRequest?: boolean;
}

export interface CapacityRequest {
  isl: number;
  osl: number;
  ttftSlaMs?: number;
  itlSlaMs?: number;
  kvHit?: number | null;
}

/** Requests per second one worker sustains, and the latencies the model expects there (seconds). */
export interface EngineCapacity {
  rps: number;
  ttftS: number | null;
  itlS: number | null;
  e2eS: number | null;
  /** Within every given SLO. */
  eligible: boolean;
}

const work = (p: number, n: number, b: number, k: number): PassWork => ({
  numPrefillRequests: n,
  sumPrefillTokens: p,
  sumPrefillKvTokens: 0,
  numDecodeRequests: b,
  sumDecodeKvTokens: k,
});

export class EnginePerfModel {
  readonly role: WorkerRole;
  readonly reg: FpmRegression;
  private readonly caps: EngineCapabilities;
  private readonly avgIsl: MovingAverage;
  private readonly avgDecodeLength: MovingAverage;
  /** Over tuned passes: prefill requests and tokens per pass (the prefill an aggregated decode step carries). */
  private readonly avgNumPrefill: MovingAverage;
  private readonly avgPrefillTokens: MovingAverage;

  constructor(role: WorkerRole, s: RegressionSettings, caps: EngineCapabilities) {
    this.role = role;
    this.caps = caps;
    this.reg = new FpmRegression(role, {
      maxObservations: s.maxSamples,
      minObservations: s.minObservations,
      bucketCount: s.bucketCount,
    });
    this.avgIsl = new MovingAverage(s.maxSamples);
    this.avgDecodeLength = new MovingAverage(s.maxSamples);
    this.avgNumPrefill = new MovingAverage(s.maxSamples);
    this.avgPrefillTokens = new MovingAverage(s.maxSamples);
  }

  private get mbt(): number {
    return this.caps.maxNumBatchedTokens > 0 ? this.caps.maxNumBatchedTokens : DEFAULT_MAX_NUM_BATCHED_TOKENS;
  }
  private get maxSeqs(): number {
    return this.caps.maxNumSeqs > 0 ? this.caps.maxNumSeqs : DEFAULT_MAX_NUM_SEQS;
  }
  private get maxKv(): number {
    return this.caps.maxKvTokens > 0 ? this.caps.maxKvTokens : DEFAULT_MAX_KV_TOKENS;
  }

  /** Average prompt tokens per prefill request of the observed passes (zeros for passes without prefill). */
  get isl(): number {
    return this.avgIsl.value;
  }
  get decodeLength(): number {
    return this.avgDecodeLength.value;
  }

  /** Enough data in some store to answer. */
  hasSufficientData(): boolean {
    return this.reg.ready;
  }

  private observeForNext(f: ForwardPassSnapshot): void {
    this.avgIsl.add(f.numPrefillRequests > 0 ? f.sumPrefillTokens / f.numPrefillRequests : 0);
    if (f.numDecodeRequests > 0) this.avgDecodeLength.add(f.sumDecodeKvTokens / f.numDecodeRequests);
  }

  private tune(list: readonly ForwardPassSnapshot[]): void {
    for (const f of list) this.reg.tune(f, f.wallTimeS);
    for (const f of list) {
      this.avgNumPrefill.add(Math.max(f.numPrefillRequests, 0));
      this.avgPrefillTokens.add(f.sumPrefillTokens);
    }
  }

  /**
   * One load tick's latest metrics of every ready worker, in the order the planner first heard from each
   * (the averages' order); the estimator learns them in worker-id order, as the reference sorts them (ids as
   * strings: "10" before "2").
   */
  observe(fpms: readonly ForwardPassSnapshot[]): void {
    for (const f of fpms) this.observeForNext(f);
    const sorted = fpms.slice().sort((a, b) => {
      const x = String(a.engine);
      const y = String(b.engine);
      return x < y ? -1 : x > y ? 1 : 0;
    });
    this.tune(sorted);
  }

  /** Samples for the estimator only (it learns them; the planner's averages do not see them). */
  seed(fpms: readonly ForwardPassSnapshot[]): void {
    for (const f of fpms) this.reg.tune(f, f.wallTimeS);
  }

  /** Pre-deployment samples (a profile), learnt in order, as Dynamo installs its benchmark passes. */
  bootstrap(fpms: readonly ForwardPassSnapshot[]): void {
    for (const f of fpms) this.observeForNext(f);
    this.tune(fpms);
  }

  private passSeconds(w: PassWork): number | null {
    const ms = this.reg.estimateMs(w);
    return ms === null ? null : Math.max(0, ms) / 1000;
  }

  /** Chunk by chunk through `tokens` prompt tokens, each chunk priced by `chunk`. */
  private chunked(tokens: number, chunk: (t: number) => number | null): number | null {
    const mbt = this.mbt;
    const full = Math.floor(tokens / mbt);
    const tail = tokens % mbt;
    let total = 0;
    if (full > 0) {
      const d = chunk(mbt);
      if (d === null) return null;
      total += d * full;
    }
    if (tail > 0) {
      const d = chunk(tail);
      if (d === null) return null;
      total += d;
    }
    return total;
  }

  /** Time (s) to prefill the worker's queue and one more average request; null when the model cannot say. */
  queuedPrefillTime(f: ForwardPassSnapshot, q: PrefillQuery = {}): number | null {
    if (this.role === 'decode') return null;
    const queueScale = q.queueScale ?? 1;
    const decodeScale = q.decodeScale ?? 1;
    let tokens = f.sumQueuedPrefillTokens * queueScale;
    let requests = f.numQueuedPrefill * queueScale;
    if ((q.addNextRequest ?? true) && this.avgIsl.value > 0) {
      tokens += this.avgIsl.value;
      requests += 1;
    }
    tokens *= 1 - clampHit(q.kvHit);
    let kv = f.sumDecodeKvTokens;
    let batch = f.numDecodeRequests;
    if (q.includeQueuedDecode) {
      kv += f.sumQueuedDecodeKvTokens;
      batch += f.numQueuedDecode;
    }
    const qTokens = ceil0(tokens);
    const qRequests = ceil0(requests);
    const agg = this.role === 'aggregated';
    const b = agg ? ceil0(batch * decodeScale) : 0;
    const k = agg ? ceil0(kv * decodeScale) : 0;
    if (qTokens === 0) return 0;
    return this.chunked(qTokens, (c) => this.passSeconds(work(c, Math.max(1, qRequests), b, k)));
  }

  /** Time (s) of the worker's next decode step with one more average request. */
  scheduledDecodeItl(f: ForwardPassSnapshot, q: DecodeQuery = {}): number | null {
    if (this.role === 'prefill') return null;
    const decodeScale = q.decodeScale ?? 1;
    let kv = f.sumDecodeKvTokens;
    let batch = f.numDecodeRequests;
    if (q.includeQueuedDecode ?? true) {
      kv += f.sumQueuedDecodeKvTokens;
      batch += f.numQueuedDecode;
    }
    if (q.includeQueuedPrefillAsKv) {
      kv += f.sumQueuedPrefillTokens;
      batch += f.numQueuedPrefill;
    }
    kv *= decodeScale;
    batch *= decodeScale;
    if ((q.addNextRequest ?? true) && this.avgDecodeLength.value > 0) {
      kv += this.avgDecodeLength.value;
      batch += 1;
    }
    // An aggregated worker's step carries the average prefill of its passes (the reference ignores the
    // snapshot's own prefill here).
    let p = 0;
    let n = 0;
    if (this.role === 'aggregated') {
      p = ceil0(this.avgPrefillTokens.value);
      n = Math.max(ceil0(this.avgNumPrefill.value), p > 0 ? 1 : 0);
    }
    return this.passSeconds(work(p, n, ceil0(batch), ceil0(kv)));
  }

  // ---------------------------------------------------------------------------------------------------------
  // Capacity (throughput scaling)

  /** Requests per second one worker sustains for requests of `isl` / `osl` tokens, best within the SLOs. */
  capacity(r: CapacityRequest): EngineCapacity | null {
    const isl = Math.ceil(r.isl);
    const osl = Math.max(1, Math.ceil(r.osl));
    if (!(isl > 0)) return null;
    if (this.role !== 'prefill' && !(r.osl > 0)) return null;
    const effIsl = Math.max(1, ceil0(isl * (1 - clampHit(r.kvHit))));
    const ttftSla = r.ttftSlaMs === undefined ? null : r.ttftSlaMs / 1000;
    const itlSla = r.itlSlaMs === undefined ? null : r.itlSlaMs / 1000;
    const ok = (v: number | null, sla: number | null) => sla === null || (v !== null && v <= sla);
    let best: EngineCapacity | null = null;
    const pick = (c: EngineCapacity) => {
      if (best === null || (!best.eligible && c.eligible)) best = c;
      else if (best.eligible === c.eligible && c.rps > best.rps) best = c;
    };
    const ctx = Math.max(1, isl + Math.floor(osl / 2));
    const decodeMax = Math.min(this.maxSeqs, Math.floor(this.maxKv / ctx));
    if (this.role === 'prefill') {
      const maxBatch = effIsl > this.mbt ? 1 : Math.min(this.maxSeqs, Math.floor(this.mbt / effIsl));
      for (const bs of batchSizes(maxBatch)) {
        const t = this.chunked(effIsl * bs, (c) => this.passSeconds(work(c, 1, 0, 0)));
        if (t === null) return null;
        if (t === 0) continue;
        pick({ rps: bs / t, ttftS: t, itlS: null, e2eS: t, eligible: ok(t, ttftSla) });
      }
      return best;
    }
    if (this.role === 'decode') {
      for (const bs of batchSizes(decodeMax)) {
        const t = this.passSeconds(work(0, 0, bs, bs * ctx));
        if (t === null) return null;
        if (t === 0) continue;
        pick({ rps: bs / (osl * t), ttftS: null, itlS: t, e2eS: null, eligible: ok(t, itlSla) });
      }
      return best;
    }
    const mbt = this.mbt;
    if (mbt <= 1) return null;
    const hard = Math.min(decodeMax, Math.max(1, mbt - 1));
    for (const bs of batchSizes(hard)) {
      const perIter = ceil0((bs * effIsl) / Math.max(1, osl));
      if (mbt - bs <= 0 || perIter > mbt - bs) continue;
      const kv = bs * ctx;
      const prefill = Math.min(mbt, perIter);
      const t = this.passSeconds(work(prefill, prefill > 0 ? 1 : 0, bs, kv));
      if (t === null) return null;
      if (t === 0) continue;
      const ttft = this.chunked(prefill + effIsl, (c) => this.passSeconds(work(c, c > 0 ? 1 : 0, bs, kv)));
      if (ttft === null) return null;
      const e2e = ttft + t * Math.max(0, osl - 1);
      pick({
        rps: bs / (osl * t),
        ttftS: ttft,
        itlS: t,
        e2eS: e2e,
        eligible: ok(ttft, ttftSla) && ok(t, itlSla),
      });
    }
    return best;
  }
}

/** Batch sizes a capacity search tries: all up to 128, else 128 spread evenly. */
function batchSizes(max: number): number[] {
  if (max <= 0) return [];
  if (max <= MAX_CAPACITY_CANDIDATES) return Array.from({ length: max }, (_, i) => i + 1);
  const span = max - 1;
  const den = MAX_CAPACITY_CANDIDATES - 1;
  return Array.from({ length: MAX_CAPACITY_CANDIDATES }, (_, i) => 1 + Math.floor((i * span) / den));
}
