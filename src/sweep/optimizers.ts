import { compareScored, type Objective, type Scored, type Slo, score, violation } from './objective.ts';
import type { EvalOutcome, EvalTask, EvaluationPool } from './pool.ts';
import { type Candidate, candidateGpus, shapeKey, workersKey } from './space.ts';

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
 * first shape, search one coordinate at a time holding the others — GPU type, topology and tensor parallelism
 * per role (at the largest deployment the budget allows, most even split first), then worker counts, then the
 * router, then engine knobs, then Planner settings — and repeat until a round leaves the incumbent unchanged
 * (at most `rounds`).
 */
export async function coordinateSearch(
  cands: readonly Candidate[],
  log: EvaluationLog,
  rounds = 3,
): Promise<void> {
  if (cands.length === 0) return;
  type Field = 'shape' | 'workers' | 'router' | 'engine' | 'link' | 'planner';
  const key = (c: Candidate, f: Field): string =>
    f === 'shape'
      ? shapeKey(c)
      : f === 'workers'
        ? workersKey(c)
        : f === 'router'
          ? JSON.stringify(c.router)
          : f === 'engine'
            ? JSON.stringify(c.engine)
            : f === 'planner'
              ? (c.planner?.label ?? '')
              : JSON.stringify(c.disagg ?? null);
  const same = (a: Candidate, b: Candidate, fields: Field[]) => fields.every((f) => key(a, f) === key(b, f));
  const best = async (group: Candidate[], phase: string): Promise<Candidate | null> => {
    if (group.length === 0) return null;
    const evals = ranked(await log.evaluate(group, 1, phase));
    return evals.length > 0 ? (group.find((c) => c.id === evals[0].id) ?? null) : null;
  };
  // Start: the first shape and variant, at its largest deployment.
  let incumbent = cands
    .filter((c) => same(c, cands[0], ['shape', 'router', 'engine', 'link', 'planner']))
    .reduce((a, b) => (candidateGpus(b) > candidateGpus(a) ? b : a));
  for (let round = 0; round < rounds && !log.aborted; round++) {
    const start = incumbent;
    // 1. GPU type, topology and TP per role, each at its largest deployment, with the incumbent's knobs.
    const shapes = new Map<string, Candidate>();
    for (const c of cands) {
      if (
        !same(c, incumbent, ['router', 'engine', 'planner']) ||
        (c.disagg && incumbent.disagg && !same(c, incumbent, ['link']))
      )
        continue;
      const k = shapeKey(c);
      const cur = shapes.get(k);
      if (
        !cur ||
        candidateGpus(c) > candidateGpus(cur) ||
        (candidateGpus(c) === candidateGpus(cur) && balance(c) < balance(cur))
      ) {
        shapes.set(k, c);
      }
    }
    incumbent = (await best([...shapes.values()], `round ${round + 1}: GPU type, topology, TP`)) ?? incumbent;
    // 2. Worker counts (per role).
    incumbent =
      (await best(
        cands.filter((c) => same(c, incumbent, ['shape', 'router', 'engine', 'link', 'planner'])),
        `round ${round + 1}: workers`,
      )) ?? incumbent;
    // 3. Router.
    incumbent =
      (await best(
        cands.filter((c) => same(c, incumbent, ['shape', 'workers', 'engine', 'link', 'planner'])),
        `round ${round + 1}: router`,
      )) ?? incumbent;
    // 4. Engine knobs and, disaggregated, the KV link settings.
    incumbent =
      (await best(
        cands.filter((c) => same(c, incumbent, ['shape', 'workers', 'router', 'planner'])),
        `round ${round + 1}: engine`,
      )) ?? incumbent;
    // 5. Planner settings (when the space has them).
    incumbent =
      (await best(
        cands.filter(
          (c) => c.planner && same(c, incumbent, ['shape', 'workers', 'router', 'engine', 'link']),
        ),
        `round ${round + 1}: planner`,
      )) ?? incumbent;
    if (incumbent.id === start.id && round > 0) break;
  }
}

/** How uneven a disaggregated split is (0 for aggregated): the reference starts TP search at equal counts. */
function balance(c: Candidate): number {
  return c.prefill ? Math.abs(c.prefill.workers - c.workers) : 0;
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
