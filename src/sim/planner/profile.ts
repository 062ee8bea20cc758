import { emptySnapshot, type ForwardPassSnapshot, type PassRecord } from '../engine/pass-metrics.ts';
import type { EngineSpec } from '../simulation.ts';
import { simulate } from '../simulation.ts';
import type { TimingModel } from '../timing/timing-model.ts';
import { type Workload, WorkloadBuilder } from '../workload/workload.ts';
import type { PerfSamples } from './planner.ts';

/**
 * The planner's performance model of one worker comes from the simulator itself: a quick profile sweep of a
 * single engine with the configured settings and timing, like the reference's pre-deployment sweep (which
 * asks AI Configurator). Prefill: one request at a time, prompts from 100 tokens up to the pass budget.
 * Decode: closed loops of B requests at context C (C in 500 / 2000 / 4000 / 8000 tokens, B up to
 * `max_num_seqs`, within the KV cache), keeping the first pass where all B decode, and for aggregated workers
 * a few of the mixed passes before it (prompt chunks next to decodes). The passes' forward-pass metrics seed
 * the performance model; live metrics refine it during the run. Results are cached per engine settings and
 * timing model, so a sweep profiles each shape once per thread.
 */
const cache = new Map<string, ForwardPassSnapshot[]>();
const loops = new Map<string, { decode: ForwardPassSnapshot[]; mixed: ForwardPassSnapshot[] }>();
/** Mixed passes kept per decode loop, evenly spaced. */
const MIXED_PER_LOOP = 4;

const GRANULARITY = 8;
const CONTEXTS = [500, 2000, 4000, 8000];

/** What the profile depends on: the engine's scheduling and KV settings and the timing model. */
function cacheKey(kind: string, engine: EngineSpec, t: TimingModel): string {
  const { coalesceDecode: _c, ...rest } = engine;
  const { offload: _o, ...shape } = rest as typeof rest & { offload?: unknown };
  const k = (t as { cacheKey?: string }).cacheKey;
  return `${kind}|${JSON.stringify(shape)}|${t.name}:${k ?? JSON.stringify(t)}`;
}

function toSnapshot(p: PassRecord): ForwardPassSnapshot {
  const f = emptySnapshot(0);
  p.writeTo(f);
  return f;
}

/** Passes of one engine running `workload` as a closed loop of `concurrency`. */
function passes(
  engine: EngineSpec,
  timing: TimingModel,
  workload: Workload,
  concurrency: number,
): PassRecord[] {
  const log: PassRecord[] = [];
  const result = simulate(workload, {
    workers: 1,
    engine:
      engine.kind === 'sglang'
        ? { ...engine, coalesceDecode: false }
        : { ...engine, coalesceDecode: false, offload: undefined },
    timing,
    gpusPerWorker: 1,
    router: { kind: 'round-robin' },
    arrivals: { kind: 'closed-loop', concurrency },
    seed: 0,
    onEngineCreated: (e) => {
      if (e.history) e.history.log = log;
    },
  });
  void result;
  return log;
}

function uniqueRequests(shapes: { isl: number; osl: number }[], blockSize: number): Workload {
  const b = new WorkloadBuilder(blockSize);
  for (const s of shapes) {
    const ids: number[] = [];
    for (let k = 0; k < Math.ceil(s.isl / blockSize); k++) ids.push(b.freshHash());
    b.add({ arrivalMs: 0, inputLength: s.isl, outputLength: s.osl, hashIds: ids, denseHashIds: true });
  }
  return b.build();
}

/** Tokens one pass may prefill (vLLM's batch budget; SGLang's chunk size). */
function passBudget(engine: EngineSpec): number {
  return engine.kind === 'sglang' ? engine.chunkedPrefillSize : engine.maxNumBatchedTokens;
}

export function profilePrefill(engine: EngineSpec, timing: TimingModel): ForwardPassSnapshot[] {
  const key = cacheKey('prefill', engine, timing);
  const hit = cache.get(key);
  if (hit) return hit;
  const mbt = passBudget(engine);
  const kv = engine.numGpuBlocks * engine.blockSize;
  const hi = Math.max(1, Math.min(mbt, kv - 1));
  const lo = Math.min(100, hi);
  const isls = [
    ...new Set(
      Array.from({ length: GRANULARITY }, (_, k) => Math.round(lo + ((hi - lo) * k) / (GRANULARITY - 1))),
    ),
  ];
  const w = uniqueRequests(
    isls.map((isl) => ({ isl, osl: 1 })),
    engine.blockSize,
  );
  const out = passes(engine, timing, w, 1)
    .filter((p) => p.prefillRequests > 0)
    .map(toSnapshot);
  cache.set(key, out);
  return out;
}

/** Decode samples (all B requests decoding) and mixed ones (prefill chunks next to decodes), per loop. */
function decodeLoops(
  engine: EngineSpec,
  timing: TimingModel,
): { decode: ForwardPassSnapshot[]; mixed: ForwardPassSnapshot[] } {
  const key = cacheKey('decode', engine, timing);
  const hit = loops.get(key);
  if (hit) return hit;
  const kv = engine.numGpuBlocks * engine.blockSize;
  const maxSeqs = engine.maxNumSeqs;
  const batches = [
    ...new Set([
      1,
      ...Array.from({ length: GRANULARITY }, (_, k) =>
        Math.max(1, Math.round((maxSeqs * (k + 1)) / GRANULARITY)),
      ),
    ]),
  ];
  const decode: ForwardPassSnapshot[] = [];
  const mixed: ForwardPassSnapshot[] = [];
  for (const ctx of CONTEXTS) {
    for (const bs of batches) {
      // Long enough answers that the first request still decodes when the last prompt is in; whole blocks
      // per request, so a batch that fits on paper fits in the pool.
      const osl = Math.ceil((bs * ctx) / passBudget(engine)) + 4;
      const blocks = Math.ceil((ctx + osl) / engine.blockSize);
      if (bs * blocks > engine.numGpuBlocks || bs * (ctx + osl) > kv) continue;
      const w = uniqueRequests(
        Array.from({ length: bs }, () => ({ isl: ctx, osl })),
        engine.blockSize,
      );
      const log = passes(engine, timing, w, bs);
      const first = log.find((p) => p.prefillRequests === 0 && p.decodeRequests === bs);
      if (first) decode.push(toSnapshot(first));
      // While the prompts go in, chunks share passes with the requests already decoding.
      const mix = log.filter((p) => p.prefillRequests > 0 && p.decodeRequests > 0);
      const step = Math.max(1, Math.ceil(mix.length / MIXED_PER_LOOP));
      for (let k = 0; k < mix.length; k += step) mixed.push(toSnapshot(mix[k]));
    }
  }
  const out = { decode, mixed };
  loops.set(key, out);
  return out;
}

/** Samples for every model a planner may need on a cluster with these prefill and decode engines. */
export function profileWorker(
  prefill: { engine: EngineSpec; timing: TimingModel },
  decode: { engine: EngineSpec; timing: TimingModel },
): PerfSamples {
  const p = profilePrefill(prefill.engine, prefill.timing);
  const d = decodeLoops(decode.engine, decode.timing);
  // An aggregated worker also runs mixed passes, which its model keeps apart: AI Configurator's estimator
  // covers them analytically, the regression needs samples (`mixed`; they seed its store only, not the
  // averages the planner keeps of live passes).
  return { prefill: p, decode: d.decode, agg: [...p, ...d.decode], mixed: d.mixed };
}
