import { selectRequests } from '../../sim/workload/slice.ts';
import type { Workload } from '../../sim/workload/workload.ts';

/**
 * A warm-up for the replay of a calibration window. A replay that starts from an empty deployment runs faster
 * than the deployment did (it had requests in flight and warm caches when the window began): on short windows
 * under load TTFT p50 came out 25-40 % low. So the window is replayed after a warm-up span, and the simulator
 * measures only the window (SimulationOptions.measureFromMs).
 *
 * The window sources (a Prometheus profile synthesised over the window, request-trace segments selected by
 * the window) hold no traffic from before the window, so the warm-up is the window's own first `spanMs`
 * replayed just before it: the same rate, lengths and sessions. Prefix blocks shared by several requests of
 * the window (system prompts, documents) keep their ids, so they warm the caches as earlier traffic would;
 * blocks only one request has are renamed, so the window's requests do not find their own prompts cached.
 */

interface WarmedWindow {
  workload: Workload;
  /** Where the window starts in the warmed workload: measure from here. */
  measureFromMs: number;
  /** Requests added before the window. */
  warmupRequests: number;
}

/** The default warm-up span: the shorter of five minutes and the window. */
export const warmupSpanMs = (windowMs: number) => Math.max(0, Math.min(300_000, windowMs));

/**
 * `w` preceded by its first `spanMs` of traffic, with at most `maxRows` requests in all (the warm-up counts
 * against the bound: it is cut to the sessions that fit). Without room, span or arrivals, `w` as is.
 */
export function withWarmup(w: Workload, o: { spanMs: number; maxRows: number }): WarmedWindow {
  const none = { workload: w, measureFromMs: 0, warmupRequests: 0 };
  // Dependency graphs (agentic traces) do not come from telemetry windows; they are replayed as they are.
  if (!(o.spanMs > 0) || w.dependents || w.readyOrder || w.size === 0) return none;
  const room = Math.min(o.maxRows, 2 * w.size) - w.size;
  const ids: number[] = [];
  for (let i = 0; i < w.size; i++) {
    const a = w.arrivalMs[i];
    if (Number.isNaN(a) || !(a < o.spanMs)) continue;
    let turns = 1;
    for (let t = w.nextTurn[i]; t >= 0; t = w.nextTurn[t]) turns++;
    if (ids.length + turns > room) break;
    ids.push(i);
    for (let t = w.nextTurn[i]; t >= 0; t = w.nextTurn[t]) ids.push(t);
  }
  if (ids.length === 0) return none;
  ids.sort((x, y) => x - y);
  const warm = selectRequests(w, ids);
  return { workload: concat(warm, w, o.spanMs), measureFromMs: o.spanMs, warmupRequests: warm.size };
}

/** `a` (the warm-up, hash ids renamed where only one request has them), then `b` shifted by `shiftMs`. */
function concat(a: Workload, b: Workload, shiftMs: number): Workload {
  let maxId = -1;
  for (let j = 0; j < b.hashIds.length; j++) if (b.hashIds[j] > maxId) maxId = b.hashIds[j];
  const uses = new Int32Array(maxId + 1);
  for (let j = 0; j < b.hashIds.length; j++) uses[b.hashIds[j]]++;
  let maxSession = -1;
  for (let i = 0; i < b.size; i++) if (b.session[i] > maxSession) maxSession = b.session[i];
  const n = a.size + b.size;
  const ha = a.hashIds.length;
  const out = {
    size: n,
    traceBlockSize: b.traceBlockSize,
    arrivalMs: new Float64Array(n),
    inputLength: new Int32Array(n),
    outputLength: new Int32Array(n),
    hashOffsets: new Int32Array(n + 1),
    hashIds: new Int32Array(ha + b.hashIds.length),
    nextTurn: new Int32Array(n),
    delayMs: new Float64Array(n),
    session: new Int32Array(n),
    sourceLine: a.sourceLine && b.sourceLine ? new Int32Array(n) : null,
    promptContinues: a.promptContinues && b.promptContinues ? new Uint8Array(n) : null,
  };
  for (let j = 0; j < ha; j++) {
    const id = a.hashIds[j];
    out.hashIds[j] = uses[id] > 1 ? id : id + maxId + 1;
  }
  out.hashIds.set(b.hashIds, ha);
  for (let i = 0; i < n; i++) {
    const fromA = i < a.size;
    const w = fromA ? a : b;
    const k = fromA ? i : i - a.size;
    const arrival = w.arrivalMs[k];
    out.arrivalMs[i] = fromA || Number.isNaN(arrival) ? arrival : arrival + shiftMs;
    out.inputLength[i] = w.inputLength[k];
    out.outputLength[i] = w.outputLength[k];
    out.hashOffsets[i] = w.hashOffsets[k] + (fromA ? 0 : ha);
    const next = w.nextTurn[k];
    out.nextTurn[i] = next < 0 || fromA ? next : next + a.size;
    out.delayMs[i] = w.delayMs[k];
    const s = w.session[k];
    out.session[i] = s < 0 || !fromA ? s : s + maxSession + 1;
    if (out.sourceLine) out.sourceLine[i] = (w.sourceLine as Int32Array)[k];
    if (out.promptContinues) out.promptContinues[i] = (w.promptContinues as Uint8Array)[k];
  }
  out.hashOffsets[n] = ha + b.hashIds.length;
  return out;
}
