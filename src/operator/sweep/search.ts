import type { DeploymentTuningSpec, PredictedMetrics, ServingSettings } from '../../api/index.ts';
import type { Workload } from '../../sim/workload/workload.ts';
import { evaluateSettings, higherIsBetter } from './evaluate.ts';

/**
 * The candidate search the controller runs. Interim: an exhaustive grid over aggregated configurations
 * simulated one after another, until the sweep library (`src/sweep/`, with its optimisers, disaggregated
 * model and worker pool) replaces it behind the same result shape.
 */

export interface Candidate {
  settings: ServingSettings;
  metrics: PredictedMetrics;
  feasible: boolean;
}

export interface SearchOutcome {
  candidates: number;
  feasible: number;
  best: Candidate | null;
  /** Pareto frontier of feasible candidates: fewer GPUs against lower p90 TTFT, by GPUs. */
  frontier: Candidate[];
  optimizer: string;
  notes: string[];
}

type Spec = Pick<DeploymentTuningSpec, 'objective' | 'slos' | 'searchSpace'>;

function* grid(base: ServingSettings, spec: Spec, budget: Record<string, number>, notes: string[]) {
  const space = spec.searchSpace;
  if (!space.topologies.includes('Aggregated')) notes.push('only aggregated topologies are searched for now');
  else if (space.topologies.includes('Disaggregated'))
    notes.push('disaggregated candidates are not searched yet');
  if (!space.topologies.includes('Aggregated')) return;
  const types = (space.gpuTypes ?? Object.keys(budget)).filter((t) => (budget[t] ?? 0) > 0);
  const tps = space.tensorParallel?.aggregated ?? [1, 2, 4, 8];
  const seqs = space.maxNumSeqs ?? [base.engine?.maxNumSeqs];
  const batched = space.maxNumBatchedTokens ?? [base.engine?.maxNumBatchedTokens];
  const weights = space.kvOverlapWeights ?? [base.router.overlapWeight];
  for (const gpuType of types) {
    for (const tp of tps) {
      const maxWorkers = Math.floor(budget[gpuType] / tp);
      const range = space.workers?.aggregated ?? { min: 1, max: maxWorkers };
      for (let w = range.min; w <= Math.min(range.max, maxWorkers); w++) {
        for (const mode of space.routers) {
          for (const overlapWeight of mode === 'KV' ? weights : [undefined]) {
            for (const maxNumSeqs of seqs) {
              for (const maxNumBatchedTokens of batched) {
                const engine = {
                  ...(base.engine?.blockSize && { blockSize: base.engine.blockSize }),
                  ...(maxNumSeqs && { maxNumSeqs }),
                  ...(maxNumBatchedTokens && { maxNumBatchedTokens }),
                };
                yield {
                  ...(base.model && { model: base.model }),
                  gpuType,
                  gpus: w * tp,
                  topology: 'Aggregated',
                  aggregated: { workers: w, tensorParallel: tp, gpusPerWorker: tp },
                  router: { mode, ...(overlapWeight !== undefined && { overlapWeight }) },
                  planner: { enabled: false },
                  ...(Object.keys(engine).length > 0 && { engine }),
                } satisfies ServingSettings;
              }
            }
          }
        }
      }
    }
  }
}

export function better(objective: Spec['objective'], a: PredictedMetrics, b: PredictedMetrics): boolean {
  return higherIsBetter(objective)
    ? a.objectiveValue > b.objectiveValue
    : a.objectiveValue < b.objectiveValue;
}

export function searchCandidates(
  workload: Workload,
  base: ServingSettings,
  spec: Spec,
  budget: Record<string, number>,
  shouldStop: () => boolean = () => false,
): SearchOutcome {
  const notes: string[] = [];
  const max = spec.searchSpace.maxCandidates ?? 200;
  const all: Candidate[] = [];
  for (const settings of grid(base, spec, budget, notes)) {
    if (all.length >= max) {
      notes.push(`stopped after maxCandidates=${max}`);
      break;
    }
    if (shouldStop()) throw new Error('sweep cancelled');
    const metrics = evaluateSettings(settings, workload, spec.slos, spec.objective);
    all.push({ settings, metrics, feasible: metrics.meetsSlos });
  }
  const feasible = all.filter((c) => c.feasible);
  let best: Candidate | null = null;
  for (const c of feasible) {
    // Ties go to fewer GPUs, then to the earlier (simpler) candidate.
    if (
      !best ||
      better(spec.objective, c.metrics, best.metrics) ||
      (c.metrics.objectiveValue === best.metrics.objectiveValue && c.settings.gpus < best.settings.gpus)
    ) {
      best = c;
    }
  }
  // Frontier: fewer GPUs against lower p90 TTFT, among feasible candidates.
  const byGpus = [...feasible].sort(
    (a, b) => a.settings.gpus - b.settings.gpus || a.metrics.ttftMs.p90 - b.metrics.ttftMs.p90,
  );
  const frontier: Candidate[] = [];
  for (const c of byGpus) {
    const last = frontier[frontier.length - 1];
    if (last && c.metrics.ttftMs.p90 >= last.metrics.ttftMs.p90) continue;
    frontier.push(c);
  }
  return { candidates: all.length, feasible: feasible.length, best, frontier, optimizer: 'grid', notes };
}
