import { compareScored, type Objective, type Scored, type Slo, score, violation } from './objective.ts';
import type { EvalOutcome, EvalTask, EvaluationPool } from './pool.ts';
import { type Candidate, candidateGpus } from './space.ts';

export type OptimizerName = 'grid' | 'coordinate' | 'halving';

/** Evaluations an optimiser asked for, keyed by candidate id and workload fraction. */
export interface OptimizerContext {
  pool: EvaluationPool;
  objective: Objective;
  slos: Slo[];
  signal?: AbortSignal;
  onEvaluated?: (done: number, planned: number, phase: string) => void;
}

export interface Evaluation extends Scored {
  fraction: number;
  error?: string;
}

/** Records every evaluation (candidate id -> best-fraction evaluation) and scores them. */
export class EvaluationLog {
  readonly byId = new Map<number, Evaluation>();
  private done = 0;
  private planned = 0;
  private readonly ctx: OptimizerContext;

  constructor(ctx: OptimizerContext) {
    this.ctx = ctx;
  }

  get aborted(): boolean {
    return this.ctx.signal?.aborted ?? false;
  }

  /** Evaluates the candidates not yet evaluated at `fraction`; returns their scored evaluations. */
  async evaluate(cands: readonly Candidate[], fraction: number, phase: string): Promise<Evaluation[]> {
    const todo: EvalTask[] = [];
    for (const c of cands) {
      const prev = this.byId.get(c.id);
      if (!prev || prev.fraction < fraction) todo.push({ candidate: c, fraction });
    }
    this.planned += todo.length;
    await this.ctx.pool.run(
      todo,
      (o) => {
        this.record(o);
        this.done++;
        this.ctx.onEvaluated?.(this.done, this.planned, phase);
      },
      this.ctx.signal,
    );
    const out: Evaluation[] = [];
    for (const c of cands) {
      const e = this.byId.get(c.id);
      if (e && e.fraction >= fraction) out.push(e);
    }
    return out;
  }

  private record(o: EvalOutcome): void {
    if (o.metrics === null) {
      if (o.error === undefined) return; // not run (aborted)
      const prev = this.byId.get(o.task.candidate.id);
      if (prev && prev.fraction >= o.task.fraction) return;
      this.byId.set(o.task.candidate.id, {
        id: o.task.candidate.id,
        fraction: o.task.fraction,
        metrics: null as never,
        feasible: false,
        violation: Number.POSITIVE_INFINITY,
        score: Number.NEGATIVE_INFINITY,
        error: o.error,
      });
      return;
    }
    const v = violation(o.metrics, this.ctx.slos);
    this.byId.set(o.task.candidate.id, {
      id: o.task.candidate.id,
      fraction: o.task.fraction,
      metrics: o.metrics,
      feasible: v === 0,
      violation: v,
      score: score(o.metrics, this.ctx.objective),
    });
  }
}

const ranked = (evals: Evaluation[]): Evaluation[] => evals.filter((e) => !e.error).sort(compareScored);

/** Every candidate on the whole workload. */
export async function gridSearch(cands: readonly Candidate[], log: EvaluationLog): Promise<void> {
  await log.evaluate(cands, 1, 'grid');
}

/**
 * Block-coordinate descent, as the reference optimiser does: starting from the largest deployment of the
 * first shape, search one coordinate at a time holding the others — GPU type and tensor parallelism (at the
 * most workers the budget allows), then the worker count, then the router, then engine knobs — and repeat
 * until a round leaves the incumbent unchanged (at most `rounds`).
 */
export async function coordinateSearch(
  cands: readonly Candidate[],
  log: EvaluationLog,
  rounds = 3,
): Promise<void> {
  if (cands.length === 0) return;
  const key = (c: Candidate) => JSON.stringify([c.router, c.engine]);
  const same = (a: Candidate, b: Candidate, fields: ('gpu' | 'tp' | 'workers' | 'router' | 'engine')[]) =>
    fields.every((f) =>
      f === 'gpu'
        ? a.gpuType === b.gpuType
        : f === 'tp'
          ? a.tensorParallel === b.tensorParallel
          : f === 'workers'
            ? a.workers === b.workers
            : f === 'router'
              ? JSON.stringify(a.router) === JSON.stringify(b.router)
              : JSON.stringify(a.engine) === JSON.stringify(b.engine),
    );
  const best = async (group: Candidate[], phase: string): Promise<Candidate | null> => {
    if (group.length === 0) return null;
    const evals = ranked(await log.evaluate(group, 1, phase));
    return evals.length > 0 ? (group.find((c) => c.id === evals[0].id) ?? null) : null;
  };
  // Start: the first router/engine variant, first shape, at the largest worker count.
  const firstVariant = key(cands[0]);
  let incumbent = cands
    .filter(
      (c) =>
        key(c) === firstVariant &&
        c.gpuType === cands[0].gpuType &&
        c.tensorParallel === cands[0].tensorParallel,
    )
    .reduce((a, b) => (b.workers > a.workers ? b : a));
  for (let round = 0; round < rounds && !log.aborted; round++) {
    const start = incumbent;
    // 1. GPU type x TP, each at its largest worker count, with the incumbent's router and engine.
    const shapes = new Map<string, Candidate>();
    for (const c of cands) {
      if (!same(c, incumbent, ['router', 'engine'])) continue;
      const k = `${c.gpuType}/${c.tensorParallel}`;
      const cur = shapes.get(k);
      if (!cur || candidateGpus(c) > candidateGpus(cur)) shapes.set(k, c);
    }
    incumbent = (await best([...shapes.values()], `round ${round + 1}: GPU type and TP`)) ?? incumbent;
    // 2. Worker count.
    incumbent =
      (await best(
        cands.filter((c) => same(c, incumbent, ['gpu', 'tp', 'router', 'engine'])),
        `round ${round + 1}: workers`,
      )) ?? incumbent;
    // 3. Router.
    incumbent =
      (await best(
        cands.filter((c) => same(c, incumbent, ['gpu', 'tp', 'workers', 'engine'])),
        `round ${round + 1}: router`,
      )) ?? incumbent;
    // 4. Engine knobs.
    incumbent =
      (await best(
        cands.filter((c) => same(c, incumbent, ['gpu', 'tp', 'workers', 'router'])),
        `round ${round + 1}: engine`,
      )) ?? incumbent;
    if (incumbent.id === start.id && round > 0) break;
  }
}

/**
 * Successive halving on prefixes of the workload: score every candidate on a short leading slice, keep the
 * best 1/eta (feasible first, then by objective), grow the slice by eta, repeat until the survivors run on
 * everything. A slice is never shorter than `minFraction`; at least `keepAtLeast` candidates survive a rung.
 */
export async function halvingSearch(
  cands: readonly Candidate[],
  log: EvaluationLog,
  eta = 3,
  minFraction = 0.1,
  keepAtLeast = 4,
): Promise<void> {
  let rungs = 0;
  while (eta ** -(rungs + 1) >= minFraction && Math.ceil(cands.length / eta ** (rungs + 1)) >= keepAtLeast)
    rungs++;
  let alive = cands.slice();
  for (let r = rungs; r >= 1 && !log.aborted; r--) {
    const fraction = eta ** -r;
    const evals = ranked(await log.evaluate(alive, fraction, `slice ${(fraction * 100).toFixed(0)}%`));
    const keep = Math.max(keepAtLeast, Math.ceil(alive.length / eta));
    const ids = new Set(evals.slice(0, keep).map((e) => e.id));
    alive = alive.filter((c) => ids.has(c.id));
  }
  if (!log.aborted) await log.evaluate(alive, 1, 'full workload');
}

export function bestOf(log: EvaluationLog, cands: readonly Candidate[]): Evaluation | null {
  const full = ranked(
    cands.map((c) => log.byId.get(c.id)).filter((e): e is Evaluation => !!e && e.fraction >= 1),
  );
  return full[0] ?? null;
}
