import { z } from 'zod';

/**
 * The search space of a sweep: which deployments to consider for one workload. Every list is a set of
 * alternatives; a candidate picks one value from each. Designed for roles (aggregated now; prefill/decode
 * pools when disaggregation is enabled) so the same file format grows with the simulator.
 */
const positiveInt = z.number().int('must be an integer').positive('must be positive');
const nonNegative = z.number().nonnegative('must not be negative');

const intList = z.array(positiveInt).min(1, 'must list at least one value');

/** `'all'` = every count from 1 up to what the GPU budget allows; or an explicit list; or a range. */
const WorkerCountsSchema = z.union([
  z.literal('all'),
  intList,
  z
    .object({ min: positiveInt, max: positiveInt })
    .strict()
    .refine((r) => r.min <= r.max, 'min must not exceed max'),
]);

export const RouterSpaceSchema = z
  .object({
    modes: z
      .array(z.enum(['round-robin', 'random', 'least-loaded', 'kv']))
      .min(1)
      .default(['round-robin', 'kv']),
    overlapWeights: z.array(nonNegative).min(1).default([0.5, 1, 2]).describe('KV router prefill weights'),
    overlapCredits: z.array(nonNegative).min(1).default([1]),
    temperatures: z.array(nonNegative).min(1).default([0]),
  })
  .strict();

export const EngineSpaceSchema = z
  .object({
    maxNumBatchedTokens: intList.default([8192]),
    maxNumSeqs: intList.default([256]),
    blockSize: intList.default([64]),
    numGpuBlocks: intList.optional().describe('KV blocks per worker; derived from GPU memory when omitted'),
  })
  .strict();

export const SearchSpaceSchema = z
  .object({
    topologies: z
      .array(z.enum(['aggregated']))
      .min(1)
      .default(['aggregated']),
    tensorParallel: intList.default([1, 2, 4, 8]).describe('GPUs per worker'),
    workers: WorkerCountsSchema.default('all'),
    router: RouterSpaceSchema.default(RouterSpaceSchema.parse({})),
    engine: EngineSpaceSchema.default(EngineSpaceSchema.parse({})),
  })
  .strict();

export type SearchSpace = z.infer<typeof SearchSpaceSchema>;

/** One GPU type the sweep may use, how many are available, and what one costs per hour. */
export interface GpuBudget {
  type: string;
  count: number;
  pricePerHour?: number;
}

/** One concrete deployment to evaluate. */
export interface Candidate {
  id: number;
  gpuType: string;
  topology: 'aggregated';
  tensorParallel: number;
  workers: number;
  router: {
    mode: 'round-robin' | 'random' | 'least-loaded' | 'kv';
    overlapWeight: number;
    overlapCredit: number;
    temperature: number;
  };
  engine: { maxNumBatchedTokens: number; maxNumSeqs: number; blockSize: number; numGpuBlocks?: number };
}

export function candidateGpus(c: Candidate): number {
  return c.workers * c.tensorParallel;
}

/** Short human label, e.g. `h100 4x TP2 kv(w=1)`. */
export function candidateLabel(c: Candidate): string {
  const r = c.router;
  const router =
    r.mode === 'kv'
      ? `kv(w=${r.overlapWeight}${r.overlapCredit !== 1 ? `,c=${r.overlapCredit}` : ''}${r.temperature > 0 ? `,T=${r.temperature}` : ''})`
      : r.mode;
  const e = c.engine;
  const knobs: string[] = [];
  if (e.maxNumBatchedTokens !== 8192) knobs.push(`mbt=${e.maxNumBatchedTokens}`);
  if (e.maxNumSeqs !== 256) knobs.push(`seqs=${e.maxNumSeqs}`);
  if (e.blockSize !== 64) knobs.push(`bs=${e.blockSize}`);
  return `${c.gpuType} ${c.workers}x TP${c.tensorParallel} ${router}${knobs.length ? ` ${knobs.join(' ')}` : ''}`;
}

/** Why a candidate was left out before running, with the candidate's description. */
export interface Pruned {
  label: string;
  reason: string;
}

export interface Enumeration {
  candidates: Candidate[];
  pruned: Pruned[];
}

/**
 * Expands a space into candidates within the GPU budget. `fits` may veto a (GPU type, TP, engine) shape, e.g.
 * when the model does not fit in memory; vetoed shapes are reported, not silently dropped.
 */
export function enumerateCandidates(
  space: SearchSpace,
  budget: GpuBudget[],
  fits: (gpuType: string, tp: number, engine: Candidate['engine']) => string | null = () => null,
): Enumeration {
  const candidates: Candidate[] = [];
  const pruned: Pruned[] = [];
  const routers = expandRouters(space.router);
  const engines = expandEngines(space.engine);
  for (const gpu of budget) {
    for (const tp of [...new Set(space.tensorParallel)].sort((a, b) => a - b)) {
      const maxWorkers = Math.floor(gpu.count / tp);
      if (maxWorkers < 1) {
        pruned.push({ label: `${gpu.type} TP${tp}`, reason: `needs ${tp} GPUs, budget has ${gpu.count}` });
        continue;
      }
      for (const engine of engines) {
        const veto = fits(gpu.type, tp, engine);
        if (veto !== null) {
          pruned.push({ label: `${gpu.type} TP${tp}`, reason: veto });
          continue;
        }
        for (const workers of workerCounts(space.workers, maxWorkers)) {
          if (workers * tp > gpu.count) {
            pruned.push({
              label: `${gpu.type} ${workers}x TP${tp}`,
              reason: `${workers * tp} GPUs exceed the budget of ${gpu.count}`,
            });
            continue;
          }
          for (const router of routers) {
            // Routing is moot with one worker; keep a single router variant there.
            if (workers === 1 && router !== routers[0]) continue;
            candidates.push({
              id: candidates.length,
              gpuType: gpu.type,
              topology: 'aggregated',
              tensorParallel: tp,
              workers,
              router,
              engine,
            });
          }
        }
      }
    }
  }
  return { candidates, pruned };
}

function workerCounts(spec: SearchSpace['workers'], max: number): number[] {
  if (spec === 'all') return Array.from({ length: max }, (_, i) => i + 1);
  if (Array.isArray(spec)) return [...new Set(spec)].sort((a, b) => a - b);
  const out: number[] = [];
  for (let w = spec.min; w <= Math.min(spec.max, max); w++) out.push(w);
  return out;
}

function expandRouters(space: SearchSpace['router']): Candidate['router'][] {
  const out: Candidate['router'][] = [];
  for (const mode of [...new Set(space.modes)]) {
    if (mode !== 'kv') {
      out.push({ mode, overlapWeight: 1, overlapCredit: 1, temperature: 0 });
      continue;
    }
    for (const overlapWeight of [...new Set(space.overlapWeights)])
      for (const overlapCredit of [...new Set(space.overlapCredits)])
        for (const temperature of [...new Set(space.temperatures)])
          out.push({ mode, overlapWeight, overlapCredit, temperature });
  }
  return out;
}

function expandEngines(space: SearchSpace['engine']): Candidate['engine'][] {
  const out: Candidate['engine'][] = [];
  for (const maxNumBatchedTokens of [...new Set(space.maxNumBatchedTokens)])
    for (const maxNumSeqs of [...new Set(space.maxNumSeqs)])
      for (const blockSize of [...new Set(space.blockSize)])
        for (const numGpuBlocks of space.numGpuBlocks ? [...new Set(space.numGpuBlocks)] : [undefined])
          out.push({
            maxNumBatchedTokens,
            maxNumSeqs,
            blockSize,
            ...(numGpuBlocks !== undefined ? { numGpuBlocks } : {}),
          });
  return out;
}
