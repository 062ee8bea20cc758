import type { DependencyGraph, Workload } from './workload.ts';

/**
 * The leading part of a workload: first turns arriving in the first `fraction` of the arrival span (with their
 * later turns), or the first `fraction` of first turns when every arrival is at 0 (closed loop). Used to score
 * many candidates cheaply on a prefix before running the survivors on everything.
 */
export function sliceWorkload(w: Workload, fraction: number): Workload {
  if (fraction >= 1) return w;
  let span = 0;
  let firsts = 0;
  for (let i = 0; i < w.size; i++) {
    if (Number.isNaN(w.arrivalMs[i])) continue;
    firsts++;
    if (w.arrivalMs[i] > span) span = w.arrivalMs[i];
  }
  const keep = new Uint8Array(w.size);
  if (span > 0) {
    const cut = span * fraction;
    for (let i = 0; i < w.size; i++) if (!Number.isNaN(w.arrivalMs[i]) && w.arrivalMs[i] <= cut) keep[i] = 1;
  } else {
    const n = Math.max(1, Math.ceil(firsts * fraction));
    let taken = 0;
    for (let i = 0; i < w.size && taken < n; i++) {
      if (Number.isNaN(w.arrivalMs[i])) continue;
      keep[i] = 1;
      taken++;
    }
  }
  // Later turns follow their session's first turn; requests waiting for kept ones are kept (dependents come
  // later in index order than what they wait for, and only requests all of whose predecessors are kept).
  const dep = w.dependents ?? null;
  const keptWaits = dep ? new Int32Array(w.size) : null;
  for (let i = 0; i < w.size; i++) {
    if (keep[i] !== 1) continue;
    for (let t = w.nextTurn[i]; t >= 0; t = w.nextTurn[t]) keep[t] = 1;
    if (dep && keptWaits)
      for (let k = dep.offsets[i]; k < dep.offsets[i + 1]; k++) {
        const d = dep.ids[k];
        if (++keptWaits[d] === dep.waits[d]) keep[d] = 1;
      }
  }
  const ids: number[] = [];
  for (let i = 0; i < w.size; i++) if (keep[i] === 1) ids.push(i);
  return selectRequests(w, ids);
}

/** A workload made of the given requests (in the given order, which must keep first turns sorted by arrival). */
export function selectRequests(w: Workload, ids: readonly number[]): Workload {
  const n = ids.length;
  const index = new Int32Array(w.size).fill(-1);
  ids.forEach((id, k) => {
    index[id] = k;
  });
  let hashTotal = 0;
  for (const id of ids) hashTotal += w.hashOffsets[id + 1] - w.hashOffsets[id];
  const out = {
    size: n,
    traceBlockSize: w.traceBlockSize,
    arrivalMs: new Float64Array(n),
    inputLength: new Int32Array(n),
    outputLength: new Int32Array(n),
    hashOffsets: new Int32Array(n + 1),
    hashIds: new Int32Array(hashTotal),
    nextTurn: new Int32Array(n),
    delayMs: new Float64Array(n),
    session: new Int32Array(n),
    sourceLine: w.sourceLine ? new Int32Array(n) : null,
    dependents: w.dependents ? selectDependents(w.dependents, ids, index) : null,
    promptContinues: w.promptContinues ? new Uint8Array(n) : null,
    readyOrder: w.readyOrder ? Int32Array.from(ids, (id) => (w.readyOrder as Int32Array)[id]) : null,
  };
  let h = 0;
  ids.forEach((id, k) => {
    out.arrivalMs[k] = w.arrivalMs[id];
    out.inputLength[k] = w.inputLength[id];
    out.outputLength[k] = w.outputLength[id];
    out.hashOffsets[k] = h;
    for (let j = w.hashOffsets[id]; j < w.hashOffsets[id + 1]; j++) out.hashIds[h++] = w.hashIds[j];
    out.nextTurn[k] = w.nextTurn[id] >= 0 ? index[w.nextTurn[id]] : -1;
    out.delayMs[k] = w.delayMs[id];
    out.session[k] = w.session[id];
    if (out.sourceLine && w.sourceLine) out.sourceLine[k] = w.sourceLine[id];
    if (out.promptContinues && w.promptContinues)
      out.promptContinues[k] = w.nextTurn[id] >= 0 && index[w.nextTurn[id]] >= 0 ? w.promptContinues[id] : 0;
  });
  out.hashOffsets[n] = h;
  return out;
}

/** The dependency edges among the selected requests (`index`: old id -> new id, or -1). */
function selectDependents(g: DependencyGraph, ids: readonly number[], index: Int32Array): DependencyGraph {
  const n = ids.length;
  const offsets = new Int32Array(n + 1);
  const to: number[] = [];
  const delays: number[] = [];
  const dispatch: number[] = [];
  const waits = new Int32Array(n);
  ids.forEach((id, k) => {
    offsets[k] = to.length;
    for (let j = g.offsets[id]; j < g.offsets[id + 1]; j++) {
      const d = index[g.ids[j]];
      if (d < 0) continue;
      to.push(d);
      delays.push(g.delayMs[j]);
      dispatch.push(g.onDispatch?.[j] ?? 0);
      waits[d]++;
    }
  });
  offsets[n] = to.length;
  const nb = g.notBeforeMs;
  return {
    offsets,
    ids: Int32Array.from(to),
    delayMs: Float64Array.from(delays),
    onDispatch: g.onDispatch ? Uint8Array.from(dispatch) : null,
    waits,
    notBeforeMs: nb ? Float64Array.from(ids, (id) => nb[id]) : null,
  };
}
