import { describe, expect, it } from 'vitest';
import { toSimulationOptions } from '../../../src/config/run.ts';
import {
  createLiveSimulation,
  type LiveObserver,
  type LiveOptions,
  type LiveSimulation,
} from '../../../src/sim/live.ts';
import { PlannerConfigSchema } from '../../../src/sim/planner/config.ts';
import { plannerSpec } from '../../../src/sim/planner/spec.ts';
import { simulate } from '../../../src/sim/simulation.ts';
import type { Workload } from '../../../src/sim/workload/workload.ts';
import { config, conversationSample, synthetic } from '../../support/sim.ts';

/** Everything an observer heard, per request, checked for order and causality as it arrives. */
class Recorder implements LiveObserver {
  /** Ids are recycled: `began(id)` after each submit forgets what the id meant before. */
  began(id: number): number {
    this.tokens.delete(id);
    this.first.delete(id);
    this.ended.delete(id);
    this.routed.delete(id);
    return id;
  }
  readonly tokens = new Map<number, number[]>();
  /** Ends heard in all (ids are reused, so the maps hold only the latest of each). */
  endCount = 0;
  readonly first = new Map<number, number>();
  readonly ended = new Map<number, { t: number; reason: string }>();
  readonly routed = new Map<number, number>();
  readonly decisions: [string, number, number][] = [];
  private live: LiveSimulation | null = null;
  attach(live: LiveSimulation): this {
    this.live = live;
    live.setObserver(this);
    return this;
  }
  private check(id: number, t: number): void {
    const now = (this.live as LiveSimulation).now;
    if (t > now) throw new Error(`callback for ${id} at ${t}, after now ${now}`);
    if (this.ended.has(id)) throw new Error(`callback for ${id} after its end`);
  }
  onRouted(id: number, worker: number, t: number): void {
    this.check(id, t);
    this.routed.set(id, worker);
  }
  onFirstToken(id: number, t: number): void {
    this.check(id, t);
    this.first.set(id, t);
  }
  onToken(id: number, index: number, t: number): void {
    this.check(id, t);
    const list = this.tokens.get(id) ?? [];
    if (index !== list.length + 1) throw new Error(`token ${index} of ${id} after ${list.length}`);
    if (list.length > 0 && t < list[list.length - 1]) throw new Error(`token ${index} of ${id} back in time`);
    list.push(t);
    this.tokens.set(id, list);
  }
  onEnded(id: number, t: number, reason: string): void {
    this.check(id, t);
    this.ended.set(id, { t, reason });
    this.endCount++;
  }
  /** Submits through the recorder (which forgets the id's previous meaning). */
  submit(live: LiveSimulation, request: Parameters<LiveSimulation['submit']>[0]): number {
    return this.began(live.submit(request));
  }
  onPlannerDecision(role: string, replicas: number, t: number): void {
    this.decisions.push([role, replicas, t]);
  }
}

function liveOptions(overrides: Record<string, unknown>, traceBlockSize = 512): LiveOptions {
  const options = toSimulationOptions(config(overrides));
  return { ...options, traceBlockSize };
}

/** Submits every request of a workload (first turns, no sessions) at its arrival time, stepping the clock. */
function replay(live: LiveSimulation, w: Workload, rec: Recorder, step = 50): Map<number, number[]> {
  const tokensOf = new Map<number, number[]>();
  const order = Array.from({ length: w.size }, (_, i) => i).sort(
    (a, b) => w.arrivalMs[a] - w.arrivalMs[b] || a - b,
  );
  let k = 0;
  const ends = rec.endCount;
  for (let t = 0; k < order.length || rec.endCount - ends < w.size; t += step) {
    while (k < order.length && w.arrivalMs[order[k]] < t + step) {
      const i = order[k++];
      const at = Math.max(live.now, w.arrivalMs[i]);
      const ids = Array.from(w.hashIds.subarray(w.hashOffsets[i], w.hashOffsets[i + 1]));
      const id = rec.began(
        live.submit({
          inputLength: w.inputLength[i],
          outputLength: w.outputLength[i],
          hashIds: ids,
          atMs: at,
        }),
      );
      // This submission's tokens: the list is the recorder's until the id is reused (after its end).
      const list: number[] = [];
      rec.tokens.set(id, list);
      tokensOf.set(i, list);
    }
    live.advanceTo(t + step);
    if (t > 10_000_000) throw new Error('replay did not end');
  }
  return tokensOf;
}

const equivalence: [string, () => Workload, Record<string, unknown>][] = [
  [
    'vLLM, KV router',
    () => conversationSample(300),
    { workers: 3, engine: { blockSize: 64 }, router: { mode: 'kv' } },
  ],
  [
    'SGLang, round-robin',
    () => conversationSample(300),
    { workers: 2, engine: { engine: 'sglang', blockSize: 64 } },
  ],
  [
    'disaggregated, KV router',
    () => conversationSample(200),
    {
      engine: { blockSize: 64 },
      router: { mode: 'kv' },
      disaggregation: { prefill: { workers: 1 }, decode: { workers: 2 } },
    },
  ],
];

describe('live simulation', () => {
  for (const [name, workload, overrides] of equivalence) {
    it(`gives every token at the time the batch simulation does: ${name}`, () => {
      const w = workload();
      const batch = simulate(w, toSimulationOptions(config(overrides)));
      const live = createLiveSimulation(liveOptions(overrides, w.traceBlockSize));
      const rec = new Recorder().attach(live);
      const tokensOf = replay(live, w, rec, 37);
      for (let i = 0; i < w.size; i++) {
        const b = batch.records;
        const tokens = tokensOf.get(i) ?? [];
        expect(tokens.length, `request ${i} tokens`).toBe(b.tokens[i]);
        if (b.tokens[i] > 0) {
          expect(tokens[0], `request ${i} first token`).toBe(b.firstTokenMs[i]);
          expect(tokens[tokens.length - 1], `request ${i} last token`).toBe(b.lastTokenMs[i]);
          if (b.tokens[i] > 1) expect(tokens[1], `request ${i} second token`).toBe(b.secondTokenMs[i]);
        }
      }
      expect(rec.ended.size).toBeGreaterThan(0);
      // Everything ended: the table and the event buffer are empty again.
      const m = live.memory?.();
      expect(m?.liveRequests).toBe(0);
      expect(m?.bufferedEvents).toBe(0);
    });
  }

  it('never runs ahead: a pass in flight delivers its tokens only when the clock reaches them', () => {
    const live = createLiveSimulation(
      liveOptions({ workers: 1, timing: { model: 'fixed', prefillMs: 10, decodeMs: 5 } }),
    );
    const rec = new Recorder().attach(live);
    const id = rec.submit(live, { inputLength: 100, outputLength: 4, hashIds: [1] });
    live.advanceTo(9.999);
    expect(rec.tokens.get(id)).toBeUndefined();
    expect(live.nextEventTime()).toBe(10);
    live.advanceTo(10);
    expect(rec.tokens.get(id)).toEqual([10]);
    expect(rec.first.get(id)).toBe(10);
    live.advanceTo(22);
    expect(rec.tokens.get(id)).toEqual([10, 15, 20]);
    live.advanceTo(100);
    expect(rec.tokens.get(id)).toEqual([10, 15, 20, 25]);
    expect(rec.ended.get(id)).toEqual({ t: 25, reason: 'finished' });
    expect(() => live.advanceTo(50)).toThrow(/not before now/);
    expect(() => rec.submit(live, { inputLength: 100, outputLength: 4, hashIds: [1], atMs: 10 })).toThrow(
      /before now/,
    );
    expect(() => rec.submit(live, { inputLength: 2000, outputLength: 4, hashIds: [1] })).toThrow(/hashIds/);
  });

  it('cancels a waiting and a running request: no tokens after the cancel, KV released, ids recycled', () => {
    const live = createLiveSimulation(
      liveOptions({
        workers: 1,
        engine: { blockSize: 64, maxNumSeqs: 1 },
        timing: { model: 'fixed', prefillMs: 10, decodeMs: 5 },
      }),
    );
    const rec = new Recorder().attach(live);
    const a = rec.submit(live, { inputLength: 500, outputLength: 100, hashIds: [1] });
    const b = rec.submit(live, { inputLength: 500, outputLength: 100, hashIds: [2] });
    const later = rec.submit(live, { inputLength: 500, outputLength: 5, hashIds: [3], atMs: 1000 });
    live.advanceTo(32);
    expect(rec.tokens.get(a)?.length).toBe(5); // 10, 15, 20, 25, 30
    live.cancel(b); // waiting (max one running)
    live.cancel(a); // running: leaves when the pass in flight (30-35) ends
    live.cancel(later); // not arrived yet
    live.advanceTo(33);
    // Not arrived: ends at once. On the worker: leaves at its next scheduling point, the pass end at 35.
    expect(rec.ended.get(later)).toEqual({ t: 32, reason: 'cancelled' });
    expect(rec.ended.get(b)).toBeUndefined();
    live.advanceTo(2000);
    expect(rec.tokens.get(a)?.length).toBe(5);
    expect(rec.ended.get(a)).toEqual({ t: 35, reason: 'cancelled' });
    expect(rec.ended.get(b)).toEqual({ t: 35, reason: 'cancelled' });
    expect(rec.tokens.get(b)).toBeUndefined();
    const w = live.workers()[0];
    expect(w.activeBlocks).toBe(0);
    expect(w.running + w.waiting).toBe(0);
    // A new request may reuse an id, only now that every end was told.
    const c = rec.submit(live, { inputLength: 100, outputLength: 2, hashIds: [9] });
    expect([a, b, later]).toContain(c);
  });

  it('adds workers that serve only after their start-up, and drains removed ones without losing requests', () => {
    const live = createLiveSimulation(
      liveOptions({
        workers: 1,
        router: { mode: 'round-robin' },
        timing: { model: 'fixed', prefillMs: 10, decodeMs: 5 },
      }),
    );
    const rec = new Recorder().attach(live);
    live.setReplicas('aggregated', 3, { startupMs: 1000 });
    expect(live.workers().map((w) => w.state)).toEqual(['ready', 'starting', 'starting']);
    const early = Array.from({ length: 4 }, (_, k) =>
      rec.submit(live, { inputLength: 100, outputLength: 50, hashIds: [k] }),
    );
    live.advanceTo(999);
    expect(new Set(early.map((id) => rec.routed.get(id)))).toEqual(new Set([0]));
    live.advanceTo(1000);
    expect(live.workers().map((w) => w.state)).toEqual(['ready', 'ready', 'ready']);
    const late = Array.from({ length: 3 }, (_, k) =>
      rec.submit(live, { inputLength: 100, outputLength: 400, hashIds: [10 + k] }),
    );
    live.advanceTo(1001);
    expect(new Set(late.map((id) => rec.routed.get(id)))).toEqual(new Set([0, 1, 2]));
    live.setReplicas('aggregated', 1);
    expect(live.workers().filter((w) => w.state === 'draining').length).toBe(2);
    live.advanceTo(60_000);
    for (const id of [...early, ...late]) expect(rec.ended.get(id)?.reason).toBe('finished');
    expect(live.workers().map((w) => w.state)).toEqual(['ready', 'gone', 'gone']);
  });

  it('replaces a pool rolling onto a new engine spec: old workers drain as new ones become ready', () => {
    const overrides = { workers: 2, timing: { model: 'fixed', prefillMs: 10, decodeMs: 5 } };
    const live = createLiveSimulation(liveOptions(overrides));
    const rec = new Recorder().attach(live);
    const ids = Array.from({ length: 6 }, (_, k) =>
      rec.submit(live, { inputLength: 200, outputLength: 300, hashIds: [k] }),
    );
    live.advanceTo(100);
    const slower = toSimulationOptions(
      config({ ...overrides, timing: { model: 'fixed', prefillMs: 20, decodeMs: 10 } }),
    );
    live.replacePool(
      'aggregated',
      { engine: slower.engine, timing: slower.timing, gpusPerWorker: 1 },
      { startupMs: 500 },
    );
    expect(live.workers().map((w) => w.state)).toEqual(['ready', 'ready', 'starting']);
    live.advanceTo(600);
    expect(live.workers().map((w) => w.state)).toEqual(['draining', 'ready', 'ready', 'starting']);
    live.advanceTo(1100);
    expect(
      live
        .workers()
        .slice(2)
        .map((w) => w.state),
    ).toEqual(['ready', 'ready']);
    const after = rec.submit(live, { inputLength: 200, outputLength: 10, hashIds: [99] });
    live.advanceTo(60_000);
    for (const id of ids) expect(rec.ended.get(id)?.reason).toBe('finished');
    expect(live.workers().map((w) => w.state)).toEqual(['gone', 'gone', 'ready', 'ready']);
    // The new workers price passes with the new timing: 20 ms prefill, then 10 ms per token.
    const t = rec.tokens.get(after) ?? [];
    expect(t[1] - t[0]).toBe(10);
  });

  it('gives the workers a pool creates the pass-time factor asked for, leaving the others as they are', () => {
    const opts = liveOptions({ workers: 1, timing: { model: 'fixed', prefillMs: 10, decodeMs: 5 } });
    const live = createLiveSimulation(opts);
    const rec = new Recorder().attach(live);
    live.replacePool(
      'aggregated',
      { engine: opts.engine, timing: opts.timing, gpusPerWorker: 1 },
      { passTimeFactor: 3 },
    );
    live.advanceTo(1);
    expect(live.workers().map((w) => w.state)).toEqual(['draining', 'ready']);
    const a = rec.submit(live, { inputLength: 100, outputLength: 3, hashIds: [1] });
    live.advanceTo(500);
    // On the new worker: 30 ms prefill, then 15 ms per token.
    expect(rec.tokens.get(a)).toEqual([31, 46, 61]);
    live.setReplicas('aggregated', 2, { passTimeFactor: 1 });
    live.advanceTo(501);
    const b = rec.submit(live, { inputLength: 100, outputLength: 2, hashIds: [2] });
    const c = rec.submit(live, { inputLength: 100, outputLength: 2, hashIds: [3] });
    live.advanceTo(1000);
    const gaps = [b, c].map(
      (id) => (rec.tokens.get(id) as number[])[1] - (rec.tokens.get(id) as number[])[0],
    );
    expect(gaps.sort((x, y) => x - y)).toEqual([5, 15]);
  });

  it('switches the router during the run without losing or double-counting requests', () => {
    const w = conversationSample(150);
    const live = createLiveSimulation(
      liveOptions({ workers: 3, engine: { blockSize: 64 } }, w.traceBlockSize),
    );
    const rec = new Recorder().attach(live);
    let switched = false;
    const lists = new Map<number, number[]>();
    for (let i = 0; i < w.size; i++) {
      if (!switched && w.arrivalMs[i] > 30_000) {
        live.advanceTo(30_000);
        live.setRouter({ kind: 'kv', overlapWeight: 1, overlapCredit: 1, temperature: 0 });
        switched = true;
      }
      if (w.arrivalMs[i] > live.now) live.advanceTo(w.arrivalMs[i]);
      const ids = Array.from(w.hashIds.subarray(w.hashOffsets[i], w.hashOffsets[i + 1]));
      const id = rec.submit(live, {
        inputLength: w.inputLength[i],
        outputLength: w.outputLength[i],
        hashIds: ids,
      });
      const list: number[] = [];
      rec.tokens.set(id, list);
      lists.set(i, list);
    }
    live.advanceTo(10_000_000);
    expect(switched).toBe(true);
    for (const [i, list] of lists) expect(list.length, `request ${i}`).toBe(w.outputLength[i]);
    expect(live.workers().every((x) => x.activeBlocks === 0)).toBe(true);
  });

  it('scales passes by a factor, stalls a worker, and migrates a killed worker’s requests', () => {
    const opts = liveOptions({
      workers: 2,
      router: { mode: 'round-robin' },
      timing: { model: 'fixed', prefillMs: 10, decodeMs: 5 },
    });
    const live = createLiveSimulation(opts);
    const rec = new Recorder().attach(live);
    live.setPassTimeFactor([1], 2);
    const a = rec.submit(live, { inputLength: 100, outputLength: 3, hashIds: [1] }); // worker 0
    const b = rec.submit(live, { inputLength: 100, outputLength: 3, hashIds: [2] }); // worker 1, twice as slow
    live.advanceTo(200);
    expect(rec.tokens.get(a)).toEqual([10, 15, 20]);
    expect(rec.tokens.get(b)).toEqual([20, 30, 40]);
    live.stall('all', 500);
    const c = rec.submit(live, { inputLength: 100, outputLength: 2, hashIds: [3] });
    live.advanceTo(499);
    expect(rec.tokens.get(c)).toBeUndefined();
    live.advanceTo(600);
    expect(rec.first.get(c)).toBe(510);
    // A long request on worker 1, killed mid-decode: it carries on from its tokens on worker 0.
    live.setPassTimeFactor('all', 1);
    const d = rec.submit(live, { inputLength: 100, outputLength: 40, hashIds: [4] });
    const e = rec.submit(live, { inputLength: 100, outputLength: 40, hashIds: [5] });
    live.advanceTo(700);
    const on1 = rec.routed.get(d) === 1 ? d : e;
    const had = rec.tokens.get(on1)?.length ?? 0;
    expect(had).toBeGreaterThan(5);
    live.killWorker(1);
    live.advanceTo(5000);
    expect(rec.tokens.get(on1)?.length).toBe(40);
    expect(rec.ended.get(on1)?.reason).toBe('finished');
    expect(live.workers()[1].state).toBe('gone');
    // Without migrations allowed, a killed worker's requests fail.
    const strict = createLiveSimulation({ ...opts, migrationLimit: 0 });
    const rec2 = new Recorder().attach(strict);
    const f = rec2.submit(strict, { inputLength: 100, outputLength: 40, hashIds: [1] });
    strict.advanceTo(50);
    strict.killWorker(rec2.routed.get(f) as number);
    strict.advanceTo(100);
    expect(rec2.ended.get(f)).toEqual({ t: 50, reason: 'worker killed' });
  });

  it('runs the Planner on the fleet and reports its decisions', () => {
    const overrides = { workers: 1, engine: { blockSize: 512 }, startupTimeS: 5 };
    const planner = PlannerConfigSchema.parse({
      optimization_target: 'load',
      enable_load_scaling: true,
      load_adjustment_interval_seconds: 5,
      max_gpu_budget: 4,
      min_endpoint: 1,
    });
    const opts = liveOptions(overrides);
    const live = createLiveSimulation(opts);
    const rec = new Recorder().attach(live);
    live.setPlanner(
      plannerSpec(planner, 5, null, {
        workers: 1,
        engine: opts.engine,
        timing: opts.timing,
        gpusPerWorker: 1,
      }),
    );
    const w = synthetic({ sessions: 600, arrival: { kind: 'poisson', ratePerS: 20 }, blockSize: 512 });
    const tokensOf = replay(live, w, rec, 250);
    expect(rec.decisions.length).toBeGreaterThan(0);
    expect(rec.decisions.some(([, n]) => n > 1)).toBe(true);
    for (let i = 0; i < w.size; i++) expect(tokensOf.get(i)?.length, `request ${i}`).toBe(w.outputLength[i]);
  });

  it('keeps its memory bounded over a long run of fresh prompts', () => {
    const live = createLiveSimulation({
      ...liveOptions({ workers: 2, engine: { blockSize: 16, numGpuBlocks: 2048 }, router: { mode: 'kv' } }),
      compactKeysAbove: 20_000,
    });
    let t = 0;
    let next = 1;
    const max = [
      { keys: 0, slots: 0 },
      { keys: 0, slots: 0 },
    ];
    for (let k = 0; k < 6000; k++) {
      const ids = Array.from({ length: 4 }, () => next++);
      live.submit({ inputLength: 2000, outputLength: 20, hashIds: ids });
      t += 200; // a load the two workers keep up with: queues do not grow
      live.advanceTo(t);
      const m = live.memory?.() as { requestSlots: number; prefixKeys: number };
      const half = max[k < 3000 ? 0 : 1];
      half.keys = Math.max(half.keys, m.prefixKeys);
      half.slots = Math.max(half.slots, m.requestSlots);
    }
    // 6,000 prompts of 125 blocks (32 per content id): 768,000 keys interned in all. What stays is bounded by
    // the caches (2 x 2,048 blocks, each keeping its content id's 32 keys) and does not grow with the run.
    // Compaction runs when the keys double what survived the last one: at most twice what is held.
    expect(max[1].keys).toBeLessThan(2 * (2 * 2048 * 32));
    expect(max[1].keys).toBeLessThanOrEqual(max[0].keys * 1.2);
    expect(max[1].slots).toBeLessThanOrEqual(max[0].slots);
    expect(max[1].slots).toBeLessThanOrEqual(256);
  });
});
