import { createLiveSimulation, type LiveRole, type LiveSimulation } from '../sim/live.ts';
import type { PoolSpec, SimulationOptions } from '../sim/simulation.ts';
import type { Workload } from '../sim/workload/workload.ts';
import { Evaluator, type SimulationBase } from './evaluate.ts';
import { goodputThresholds } from './objective.ts';
import type { Candidate } from './space.ts';

/**
 * The transition itself, simulated: the workload replayed on the live simulation (src/sim/live.ts), on the
 * baseline until the change time, then switched to the proposal the way the operator applies it (replicas
 * scaled, a pool whose engine, GPU or TP changes restarted rolling, `maxSurge` new workers at a time, each
 * new worker cold for `coldStartMs`, old workers draining without losing requests; the router switched at
 * once). The same workload replayed on the proposal from the start (the steady run) is the reference: the
 * requests arriving during the transition are compared with themselves there (TTFT, ITL, queue wait, prefix
 * hits), so the figures are what the change costs, not what the proposal is.
 *
 * The change time defaults to the start of the busiest stretch of the trace (the most first-turn arrivals in
 * a span as long as the transition is expected to take), after the first tenth of the window so the
 * baseline's caches are warm: a change that is acceptable at the window's peak is acceptable at any time of it,
 * and the operator does not choose when a human approves.
 *
 * Changes the live simulation cannot make at run time (topology, KV block size, KV transfer settings,
 * data-parallel pools, closed-loop or agentic replays) are reported as unsupported; the caller keeps the
 * analytic cost only. Deterministic: two replays of a seeded simulation with the same calls.
 */

export interface TransitionSimInput {
  workload: Workload;
  /**
   * Both configurations as the sweep builds them. A pool whose `timing` is the same object in both runs on
   * the same hardware: only a different engine spec or GPU count then restarts it (share the baseline's
   * timing in the proposal when its GPU type and TP are unchanged).
   */
  baseline: SimulationOptions;
  proposal: SimulationOptions;
  /** Arrival compression of the replay (first-turn gaps and inter-turn delays divided). */
  speedup?: number;
  coldStartMs: number;
  /** New workers starting at once during a rolling restart (default 1). */
  maxSurge?: number;
  /** When to change (virtual ms from the first arrival); default: the start of the busiest stretch. */
  changeAtMs?: number;
  /** Per-request SLO bounds; with them the transition's time far outside them is measured. */
  slo?: { ttftMs?: number; itlMs?: number };
}

export interface TransitionSimResult {
  supported: true;
  changeAtSeconds: number;
  /** Change until the last new worker is ready and the last old one has left. */
  durationSeconds: number;
  /** Workers started cold and workers drained. */
  workersStarted: number;
  workersDrained: number;
  /** Requests arriving during the transition (first turns and follow-ups). */
  requests: number;
  /** p90 over those requests, in the transition and in the steady run of the proposal. */
  ttftP90Ms: { transition: number; steady: number };
  /** p90 over those requests of each request's mean inter-token gap. */
  itlP90Ms: { transition: number; steady: number };
  /** Of those requests, how many waited for admission more than QUEUE_SLACK_MS longer than when steady. */
  queuedLonger: number;
  /** The longest such extra wait. */
  maxExtraQueueMs: number;
  /** Prompt tokens served from the prefix cache by the new workers in their first minutes, against steady. */
  prefixHitRate: { transition: number; steady: number };
  /**
   * Seconds of the transition during which the p90 TTFT or ITL of arrivals (30 s buckets) exceeded twice its
   * SLO bound; absent without SLOs.
   */
  sloMissSeconds?: number;
}

export type TransitionSim = TransitionSimResult | { supported: false; reason: string };

/** Extra queue wait that counts as queueing longer (routing noise between runs stays under it). */
const QUEUE_SLACK_MS = 50;
/** A new worker's "first minutes", for lost cache warmth. */
const WARM_WINDOW_MS = 120_000;
/** Buckets of arrivals for the SLO check, and the factor over a bound that counts as missing it widely. */
const SLO_BUCKET_MS = 30_000;
const WIDE_MISS = 2;
/** Requests still unfinished this long after the last arrival are left (they count as never served). */
const DRAIN_LIMIT_MS = 6 * 3_600_000;
/** Values reported when a request never got its first token (finite, so they serialise). */
const NEVER_MS = 1e9;

type Step =
  | { role: LiveRole; kind: 'replicas'; n: number }
  | { role: LiveRole; kind: 'replace'; spec: PoolSpec };

/** What the change does per pool, or why it cannot be done at run time. */
function planChange(a: SimulationOptions, b: SimulationOptions): { now: Step[]; later: Step[] } | string {
  const da = a.disaggregation;
  const db = b.disaggregation;
  if ((da === undefined) !== (db === undefined))
    return 'the topology changes (aggregated <-> disaggregated), which needs a new deployment';
  const pools = (o: SimulationOptions): [LiveRole, PoolSpec][] =>
    o.disaggregation
      ? [
          ['prefill', o.disaggregation.prefill],
          ['decode', o.disaggregation.decode],
        ]
      : [
          [
            'aggregated',
            { workers: o.workers, engine: o.engine, timing: o.timing, gpusPerWorker: o.gpusPerWorker },
          ],
        ];
  if (da && db) {
    const rest = (d: typeof da) =>
      JSON.stringify([d.kvBytesPerToken, d.kvTransferGbps, d.kvLinkShared, d.transferMode, d.conditional]);
    if (rest(da) !== rest(db))
      return 'the KV transfer settings change, which the simulator cannot change at run time';
  }
  const now: Step[] = [];
  const later: Step[] = [];
  const pa = pools(a);
  const pb = pools(b);
  for (let k = 0; k < pa.length; k++) {
    const [role, from] = pa[k];
    const to = pb[k][1];
    if (from.engine.blockSize !== to.engine.blockSize)
      return `the KV block size changes (${from.engine.blockSize} -> ${to.engine.blockSize}), which restarts every worker at once`;
    const restart =
      from.timing !== to.timing ||
      from.gpusPerWorker !== to.gpusPerWorker ||
      JSON.stringify(from.engine) !== JSON.stringify(to.engine);
    if (!restart && from.workers === to.workers) continue;
    if ((a.dataParallelSize ?? 1) > 1 || (b.dataParallelSize ?? 1) > 1)
      return 'a pool with data-parallel ranks changes, which the simulator cannot do at run time';
    if (!restart) now.push({ role, kind: 'replicas', n: to.workers });
    else if (to.workers <= from.workers) {
      // Fewer workers: drain the surplus first (no cold start), then restart the rest rolling.
      if (to.workers < from.workers) now.push({ role, kind: 'replicas', n: to.workers });
      now.push({ role, kind: 'replace', spec: to });
    } else {
      // More workers: restart the existing ones rolling, then add the rest on the new spec.
      now.push({ role, kind: 'replace', spec: to });
      later.push({ role, kind: 'replicas', n: to.workers });
    }
  }
  return { now, later };
}

/** Why a workload cannot be replayed live, or null. */
function unreplayable(w: Workload, o: SimulationOptions): string | null {
  if (o.arrivals.kind !== 'trace') return 'closed-loop replays are not simulated live';
  if (w.dependents) return 'agentic traces (requests waiting on several others) are not replayed live';
  return null;
}

/** Per-request outcomes of one replay, by workload index. */
interface Outcome {
  arrival: Float64Array;
  ttft: Float64Array;
  itl: Float64Array;
  queue: Float64Array;
  cached: Float64Array;
  worker: Int32Array;
}

interface Replay {
  live: LiveSimulation;
  out: Outcome;
  pending: () => number;
}

/** Submits every request (sessions as chains of `after`) and records what happens to each. */
function replay(w: Workload, options: SimulationOptions, speedup: number): Replay {
  const { arrivals: _a, maxSimTimeMs: _m, driven: _d, ...rest } = options;
  const live = createLiveSimulation({ ...rest, traceBlockSize: w.traceBlockSize });
  const n = w.size;
  const out: Outcome = {
    arrival: new Float64Array(n).fill(Number.NaN),
    ttft: new Float64Array(n).fill(Number.POSITIVE_INFINITY),
    itl: new Float64Array(n).fill(Number.NaN),
    queue: new Float64Array(n).fill(Number.POSITIVE_INFINITY),
    cached: new Float64Array(n),
    worker: new Int32Array(n).fill(-1),
  };
  const index = new Int32Array(n);
  const firstAt = new Float64Array(n);
  const lastAt = new Float64Array(n);
  const tokens = new Int32Array(n);
  let ended = 0;
  let submitted = 0;
  live.setObserver({
    onRouted: (id, worker) => {
      const i = index[id];
      if (out.worker[i] < 0) out.worker[i] = worker;
    },
    onFirstToken: (id, t, cached) => {
      const i = index[id];
      firstAt[i] = t;
      out.cached[i] = cached;
    },
    onToken: (id, _k, t) => {
      const i = index[id];
      lastAt[i] = t;
      tokens[i]++;
    },
    onEnded: (id) => {
      const i = index[id];
      const info = live.requestInfo(id);
      ended++;
      if (!info) return;
      out.arrival[i] = info.arrivalMs;
      if (tokens[i] > 0) out.ttft[i] = firstAt[i] - info.arrivalMs;
      if (tokens[i] > 1) out.itl[i] = (lastAt[i] - firstAt[i]) / (tokens[i] - 1);
      if (!Number.isNaN(info.firstAdmitMs)) out.queue[i] = info.firstAdmitMs - info.arrivalMs;
    },
  });
  const hashes = (i: number) => w.hashIds.subarray(w.hashOffsets[i], w.hashOffsets[i + 1]);
  for (let i = 0; i < n; i++) {
    const a = w.arrivalMs[i];
    if (Number.isNaN(a)) continue;
    let prev = -1;
    for (let t = i; t >= 0; t = w.nextTurn[t]) {
      const id = live.submit({
        inputLength: w.inputLength[t],
        outputLength: w.outputLength[t],
        hashIds: hashes(t),
        ...(prev < 0 ? { atMs: a / speedup } : { after: { id: prev, delayMs: w.delayMs[t] / speedup } }),
      });
      index[id] = t;
      prev = id;
      submitted++;
    }
  }
  return { live, out, pending: () => submitted - ended };
}

/** Runs a replay until every request ended (or the drain limit). */
function finish(r: Replay, lastArrival: number): void {
  const limit = lastArrival + DRAIN_LIMIT_MS;
  while (r.pending() > 0) {
    const next = r.live.nextEventTime();
    if (!Number.isFinite(next) || next > limit) break;
    r.live.advanceTo(Math.min(limit, Math.max(next, r.live.now + 60_000)));
  }
}

/** First-turn arrivals, compressed and sorted. */
function firstArrivals(w: Workload, speedup: number): Float64Array {
  const xs: number[] = [];
  for (let i = 0; i < w.size; i++) if (!Number.isNaN(w.arrivalMs[i])) xs.push(w.arrivalMs[i] / speedup);
  return Float64Array.from(xs).sort();
}

/**
 * The start of the span of length `lengthMs` holding the most arrivals, not before a tenth of the window and
 * leaving the span inside it when the window is long enough.
 */
export function busiestStart(arrivals: Float64Array, lengthMs: number): number {
  const n = arrivals.length;
  if (n === 0) return 0;
  const lo = arrivals[0];
  const hi = arrivals[n - 1];
  const earliest = lo + (hi - lo) / 10;
  const latest = Math.max(earliest, hi - lengthMs);
  let best = earliest;
  let bestCount = -1;
  let j = 0;
  for (let i = 0; i < n; i++) {
    const s = arrivals[i];
    if (s < earliest) continue;
    if (s > latest) break;
    if (j < i) j = i;
    while (j < n && arrivals[j] < s + lengthMs) j++;
    if (j - i > bestCount) {
      bestCount = j - i;
      best = s;
    }
  }
  return best;
}

/** How long the change should take, for choosing when to make it: rolling waves of cold starts. */
function expectedLengthMs(
  plan: { now: Step[]; later: Step[] },
  a: SimulationOptions,
  coldStartMs: number,
  surge: number,
): number {
  let waves = 0;
  for (const s of plan.now) {
    if (s.kind !== 'replace') continue;
    const from = s.role === 'aggregated' ? a.workers : (a.disaggregation?.[s.role].workers ?? 0);
    waves = Math.max(waves, Math.ceil(Math.min(from, s.spec.workers) / surge));
  }
  if (plan.later.length > 0 || plan.now.some((s) => s.kind === 'replicas')) waves += 1;
  return Math.max(60_000, waves * coldStartMs);
}

function p90(xs: number[]): number {
  const v = xs.filter((x) => !Number.isNaN(x)).sort((x, y) => x - y);
  if (v.length === 0) return 0;
  const x = v[Math.min(v.length - 1, Math.ceil(0.9 * v.length) - 1)];
  return Number.isFinite(x) ? r1(Math.min(x, NEVER_MS)) : NEVER_MS;
}

const r1 = (x: number) => Number(x.toFixed(1));
const r3 = (x: number) => Number(x.toFixed(3));

export function simulateTransition(input: TransitionSimInput): TransitionSim {
  const { workload: w, baseline, proposal } = input;
  const speedup = input.speedup ?? 1;
  const surge = Math.max(1, Math.floor(input.maxSurge ?? 1));
  const coldStartMs = Math.max(0, input.coldStartMs);
  const plan = planChange(baseline, proposal);
  if (typeof plan === 'string') return { supported: false, reason: plan };
  const why = unreplayable(w, baseline) ?? unreplayable(w, proposal);
  if (why !== null) return { supported: false, reason: why };
  const arrivals = firstArrivals(w, speedup);
  if (arrivals.length === 0) return { supported: false, reason: 'the window has no requests' };
  const lastArrival = arrivals[arrivals.length - 1];
  const changeAt = Math.max(
    0,
    input.changeAtMs ?? busiestStart(arrivals, expectedLengthMs(plan, baseline, coldStartMs, surge)),
  );

  // The transition run: baseline, then the change, stepping until the fleet has settled.
  const t = replay(w, baseline, speedup);
  const live = t.live;
  live.advanceTo(changeAt);
  const existing = live.workers().length;
  const roles = new Set<LiveRole>();
  const apply = (s: Step) => {
    roles.add(s.role);
    if (s.kind === 'replicas') live.setReplicas(s.role, s.n, { startupMs: coldStartMs });
    else
      live.replacePool(
        s.role,
        { engine: s.spec.engine, timing: s.spec.timing, gpusPerWorker: s.spec.gpusPerWorker },
        { startupMs: coldStartMs, maxSurge: surge },
      );
  };
  for (const s of plan.now) apply(s);
  const routerChanged = JSON.stringify(baseline.router) !== JSON.stringify(proposal.router);
  if (routerChanged) live.setRouter(proposal.router);
  let later = plan.later;
  const readyAt = new Map<number, number>();
  const step = Math.min(5_000, Math.max(100, coldStartMs / 20));
  let endAt = changeAt;
  for (;;) {
    const ws = live.workers();
    for (const x of ws)
      if (x.id >= existing && x.state === 'ready' && !readyAt.has(x.id)) readyAt.set(x.id, live.now);
    const unsettled = (role: LiveRole) =>
      ws.some((x) => x.role === role && (x.state === 'starting' || x.state === 'draining'));
    const waiting = later.filter((s) => unsettled(s.role));
    for (const s of later) if (!waiting.includes(s)) apply(s);
    const applied = later.length > waiting.length;
    later = waiting;
    if (!applied && later.length === 0 && ![...roles].some(unsettled)) {
      endAt = live.now;
      break;
    }
    if (live.now > lastArrival + DRAIN_LIMIT_MS) {
      endAt = live.now;
      break;
    }
    live.advanceTo(live.now + step);
  }
  const drained = live.workers().filter((x) => x.id < existing && x.state === 'gone').length;
  if (proposal.planner !== baseline.planner) live.setPlanner(proposal.planner ?? null);
  finish(t, lastArrival);

  // The steady run of the proposal over the same traffic.
  const s = replay(w, proposal, speedup);
  finish(s, lastArrival);

  const during: number[] = [];
  for (let i = 0; i < w.size; i++) {
    const a = t.out.arrival[i];
    if (a >= changeAt && a <= endAt) during.push(i);
  }
  const pick = (o: Outcome, col: keyof Omit<Outcome, 'worker'>) => during.map((i) => o[col][i]);
  let queuedLonger = 0;
  let maxExtra = 0;
  for (const i of during) {
    const extra = t.out.queue[i] - s.out.queue[i];
    if (extra > QUEUE_SLACK_MS) {
      queuedLonger++;
      maxExtra = Math.max(maxExtra, Number.isFinite(extra) ? extra : NEVER_MS);
    }
  }

  // Warmth: requests a new worker prefilled in its first minutes; without new workers, the first minutes.
  const warm: number[] = [];
  for (let i = 0; i < w.size; i++) {
    const ready = readyAt.get(t.out.worker[i]);
    if (ready !== undefined && t.out.arrival[i] < ready + WARM_WINDOW_MS) warm.push(i);
  }
  if (warm.length === 0)
    for (let i = 0; i < w.size; i++) {
      const a = t.out.arrival[i];
      if (a >= changeAt && a < changeAt + WARM_WINDOW_MS) warm.push(i);
    }
  const hitRate = (o: Outcome) => {
    let cached = 0;
    let total = 0;
    for (const i of warm) {
      cached += o.cached[i];
      total += w.inputLength[i];
    }
    return total > 0 ? r3(cached / total) : 0;
  };

  return {
    supported: true,
    changeAtSeconds: r1(changeAt / 1000),
    durationSeconds: r1((endAt - changeAt) / 1000),
    workersStarted: readyAt.size,
    workersDrained: drained,
    requests: during.length,
    ttftP90Ms: { transition: p90(pick(t.out, 'ttft')), steady: p90(pick(s.out, 'ttft')) },
    itlP90Ms: { transition: p90(pick(t.out, 'itl')), steady: p90(pick(s.out, 'itl')) },
    queuedLonger,
    maxExtraQueueMs: r1(maxExtra),
    prefixHitRate: { transition: hitRate(t.out), steady: hitRate(s.out) },
    ...(input.slo && (input.slo.ttftMs !== undefined || input.slo.itlMs !== undefined)
      ? { sloMissSeconds: sloMissSeconds(t.out, during, changeAt, endAt, input.slo) }
      : {}),
  };
}

/** Seconds (whole buckets of arrivals) during the transition whose p90 TTFT or ITL exceeded twice its bound. */
function sloMissSeconds(
  o: Outcome,
  during: number[],
  changeAt: number,
  endAt: number,
  slo: { ttftMs?: number; itlMs?: number },
): number {
  const buckets = new Map<number, number[]>();
  for (const i of during) {
    const b = Math.floor((o.arrival[i] - changeAt) / SLO_BUCKET_MS);
    const list = buckets.get(b);
    if (list) list.push(i);
    else buckets.set(b, [i]);
  }
  let missed = 0;
  for (const list of buckets.values()) {
    const ttft = p90(list.map((i) => o.ttft[i]));
    const itl = p90(list.map((i) => o.itl[i]));
    if (
      (slo.ttftMs !== undefined && ttft > WIDE_MISS * slo.ttftMs) ||
      (slo.itlMs !== undefined && itl > WIDE_MISS * slo.itlMs)
    )
      missed++;
  }
  return Math.min(missed * SLO_BUCKET_MS, Math.ceil((endAt - changeAt) / 1000) * 1000) / 1000;
}

/**
 * The transition from one sweep candidate to another, with both built as the sweep evaluates them. Pools
 * whose GPU type and parallelism do not change keep the baseline's timing model (so only an engine change
 * restarts them); with a generic cost model, hardware never changes.
 */
export function simulateCandidateTransition(
  workload: Workload,
  base: SimulationBase,
  from: Candidate,
  to: Candidate,
  opts: { coldStartMs: number; maxSurge?: number; changeAtMs?: number },
): TransitionSim {
  const evaluator = new Evaluator(workload, base);
  const a = evaluator.options(from);
  let b = evaluator.options(to);
  const generic = base.hardware === undefined;
  const sameGpu = generic || from.gpuType === to.gpuType;
  const sameShape =
    (from.dataParallel ?? 1) === (to.dataParallel ?? 1) && !!from.expertParallel === !!to.expertParallel;
  if (sameGpu && sameShape && (generic || from.tensorParallel === to.tensorParallel))
    b = { ...b, timing: a.timing };
  const da = a.disaggregation;
  const db = b.disaggregation;
  if (da && db) {
    const keep = (same: boolean, pa: PoolSpec, pb: PoolSpec) => (same ? { ...pb, timing: pa.timing } : pb);
    b = {
      ...b,
      disaggregation: {
        ...db,
        prefill: keep(
          sameGpu && (generic || from.prefill?.tensorParallel === to.prefill?.tensorParallel),
          da.prefill,
          db.prefill,
        ),
        decode: keep(sameGpu && (generic || from.tensorParallel === to.tensorParallel), da.decode, db.decode),
      },
    };
  }
  const slo = goodputThresholds(base.slos);
  return simulateTransition({
    workload,
    baseline: a,
    proposal: b,
    speedup: base.arrivalSpeedupRatio,
    ...opts,
    slo: { ttftMs: slo.ttftMs, itlMs: slo.itlMs },
  });
}
