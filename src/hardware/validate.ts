import { z } from 'zod';
import { simulate } from '../sim/simulation.ts';
import { emptyPassShape } from '../sim/timing/timing-model.ts';
import { generateSynthetic } from '../sim/workload/synthetic.ts';
import type { Calibration } from './calibration.ts';
import type { Catalog } from './catalog.ts';
import type { KvDtype, WeightDtype } from './dtypes.ts';
import { hardwareModel, longestRequest, resolveHardware } from './setup.ts';

/**
 * Validation against measured end-to-end serving benchmarks (AIConfigurator's silicon_sample.csv, extracted
 * to ../shared/data/timing/silicon_e2e.json): each aggregated row is replayed as a closed loop at its
 * concurrency with fixed ISL/OSL, and the simulated median TTFT and mean TPOT are compared with the
 * measured ones. Shared by `npm run bench:timing`, hack/calibrate-timing.ts and the regression test.
 */
export const E2eRowSchema = z.object({
  backend: z.string(),
  backend_version: z.string().nullable(),
  model_path: z.string(),
  system: z.string(),
  precision: z.string().nullable(),
  mode: z.string(),
  isl: z.number(),
  osl: z.number(),
  batch_size: z.number().nullable(),
  tp_size: z.number().nullable(),
  pp_size: z.number().nullable(),
  attention_dp_size: z.number().nullable(),
  moe_tp_size: z.number().nullable(),
  moe_ep_size: z.number().nullable(),
  silicon_ttft_ms: z.number().nullable(),
  silicon_tpot_ms: z.number().nullable(),
});
export type E2eRow = z.infer<typeof E2eRowSchema>;

/** A measured setup the simulator can replay. */
export interface E2eCase {
  gpu: string;
  model: string;
  backend: string;
  version: string;
  dtype: WeightDtype;
  kvDtype: KvDtype;
  tp: number;
  expertParallel: boolean;
  isl: number;
  osl: number;
  concurrency: number;
  ttftMs: number;
  tpotMs: number;
}

/** Columns + rows (the JSON layout of silicon_e2e.json) to objects. */
export function rowsFromTable(doc: { columns: string[]; rows: unknown[][] }): E2eRow[] {
  return doc.rows.map((r) => E2eRowSchema.parse(Object.fromEntries(doc.columns.map((c, i) => [c, r[i]]))));
}

const DTYPES: Record<string, WeightDtype> = { bf16: 'bf16', fp16: 'bf16', fp8: 'fp8', fp4: 'fp4' };

/** Turns a row into a case, or says why it is out of scope. `backends` lists the backends to keep. */
export function caseFromRow(
  row: E2eRow,
  catalog: Catalog,
  backends: readonly string[] = ['vllm'],
): { case: E2eCase } | { excluded: string } {
  if (row.mode !== 'agg') return { excluded: 'disaggregated serving (another issue)' };
  if (!backends.includes(row.backend))
    return { excluded: `backend ${row.backend} (the simulator models vLLM)` };
  const gpu = catalog.findGpu(row.system);
  if (!gpu) return { excluded: `GPU ${row.system} not in the catalog` };
  const model = catalog.findModel(row.model_path);
  if (!model) return { excluded: `model ${row.model_path} not in the catalog` };
  const dtype = row.precision === null ? 'bf16' : DTYPES[row.precision];
  if (!dtype) return { excluded: `precision ${row.precision} not modelled` };
  const tp = row.tp_size ?? 1;
  const dp = row.attention_dp_size ?? 1;
  const moeTp = row.moe_tp_size ?? 0;
  const moeEp = row.moe_ep_size ?? 0;
  if ((row.pp_size ?? 1) !== 1) return { excluded: 'pipeline parallelism not modelled' };
  if (dp > 1) return { excluded: 'attention data parallelism (wide EP) not modelled' };
  const moeLayout = moeTp * moeEp;
  if (model.moe && moeLayout !== 0 && moeLayout !== tp) {
    return { excluded: 'MoE TP x EP differs from the attention TP size' };
  }
  if (row.batch_size === null || row.silicon_ttft_ms === null || row.silicon_tpot_ms === null) {
    return { excluded: 'incomplete row' };
  }
  return {
    case: {
      gpu: gpu.id,
      model: model.id,
      backend: row.backend,
      version: row.backend_version ?? '?',
      dtype,
      // The quantised runs use an FP8 KV cache (AIC's recipes do; the KV-limited rows agree: e.g.
      // Llama-3.1-70B FP8 on one H200 holds 32 x 9k-token requests, which a bf16 cache could not).
      kvDtype: dtype === 'bf16' ? 'bf16' : 'fp8',
      tp,
      expertParallel: model.moe !== undefined && tp > 1 && moeEp === tp,
      isl: row.isl,
      osl: row.osl,
      concurrency: row.batch_size,
      ttftMs: row.silicon_ttft_ms,
      tpotMs: row.silicon_tpot_ms,
    },
  };
}

/** Chunk size of the replayed engine (vLLM's max_num_batched_tokens), shared by simulateCase and the check below. */
const MAX_BATCHED_TOKENS = 8192;

/** No overhead, no prefill scale: the measured (or roofline) kernels alone. */
const KERNELS_ONLY: Calibration = { stepMs: 0, perSeqMs: 0, perPrefillMs: 0, prefillScale: 1, moeScale: 1 };

/**
 * Fraction of the run the GPUs would spend on prefill kernels alone if every request's prompt were computed:
 * the measured request rate of the closed loop (concurrency / (TTFT + (OSL - 1) x TPOT)) times the kernel time
 * of one request's prefill (token-linear kernels, LM head and causal attention from the kernel tables, in
 * 8,192-token chunks; no calibrated overhead, no decode work). Above 1 the benchmark cannot have prefilled
 * its prompts in full on that hardware (a prefix-cache hit or a shorter prompt than the row says): no faithful
 * model of the stated setup can reproduce it, so the bench leaves such rows out and says so.
 */
export function prefillBusyFraction(c: E2eCase, catalog: Catalog): number {
  const { timing } = hardwareModel({
    gpu: catalog.gpu(c.gpu),
    model: catalog.model(c.model),
    tp: c.tp,
    weightDtype: c.dtype,
    kvDtype: c.kvDtype,
    expertParallel: c.expertParallel,
    calibration: KERNELS_ONLY,
  });
  const shape = emptyPassShape();
  shape.kvCapacityTokens = c.isl;
  let kernelsMs = 0;
  for (let done = 0; done < c.isl; done += MAX_BATCHED_TOKENS) {
    const chunk = Math.min(MAX_BATCHED_TOKENS, c.isl - done);
    shape.prefillRequests = 1;
    shape.prefillNewTokens = chunk;
    shape.prefillCachedTokens = done;
    shape.prefillAttentionPairs = chunk * done + (chunk * (chunk + 1)) / 2;
    kernelsMs += timing.prefillMs(shape);
  }
  const requestsPerMs = c.concurrency / (c.ttftMs + (c.osl - 1) * c.tpotMs);
  return requestsPerMs * kernelsMs;
}

/** Why a covered row cannot be reproduced by a faithful simulation of its stated setup, if it cannot. */
export function infeasibleReason(c: E2eCase, catalog: Catalog): string | undefined {
  return prefillBusyFraction(c, catalog) > 1
    ? "measured request rate x one prompt's prefill kernels > 100 % of the time (the run must have reused " +
        'cached prefixes or had shorter prompts)'
    : undefined;
}

export interface CaseResult {
  ttftMs: number;
  tpotMs: number;
  /** Why the simulator refused the setup (memory), if it did. */
  rejected?: string;
  tier?: string;
}

/**
 * A real closed-loop benchmark with fixed lengths does not stay in lock-step: arrivals that straddle a pass
 * boundary split a wave by a pass or two, so the clients drift apart over the run. A spread of a couple of
 * tokens in output length reproduces that drift; exact lengths would keep every wave's prefills bunched.
 */
export const DEFAULT_OUTPUT_JITTER = 2;

export interface SimulateCaseOptions {
  /** Requests per concurrency slot (the closed loop replays concurrency x this many requests). */
  wavesPerSlot?: number;
  tier?: 'auto' | 'roofline';
  calibration?: Partial<Calibration>;
  /** Spread (stddev, tokens) of output lengths; see DEFAULT_OUTPUT_JITTER. */
  outputJitterTokens?: number;
  skipFirstWave?: boolean;
}

/**
 * Replays a case: one vLLM worker with vLLM's defaults for large GPUs (block 16, 8,192 batched tokens,
 * 1,024 sequences, chunked prefill), a closed loop of fixed-length requests at the measured concurrency.
 */
export function simulateCase(c: E2eCase, catalog: Catalog, opts: SimulateCaseOptions = {}): CaseResult {
  const waves = opts.wavesPerSlot ?? 6;
  const blockSize = 16;
  const engineShape = { blockSize, maxNumSeqs: 1024, maxNumBatchedTokens: MAX_BATCHED_TOKENS };
  const workload = generateSynthetic({
    sessions: Math.max(16, c.concurrency * waves),
    inputTokens: { mean: c.isl },
    outputTokens: { mean: c.osl, stddev: opts.outputJitterTokens ?? DEFAULT_OUTPUT_JITTER },
    arrival: { kind: 'burst' },
    blockSize,
    seed: 42,
  });
  const hardware = resolveHardware(
    {
      gpu: c.gpu,
      model: c.model,
      dtype: c.dtype,
      kvDtype: c.kvDtype,
      expertParallel: c.expertParallel,
      tier: opts.tier ?? 'auto',
      gpuMemoryUtilization: 0.9,
    },
    c.tp,
    engineShape,
    catalog,
    longestRequest(workload),
    opts.calibration,
  );
  if (!hardware.memory.fits) {
    return { ttftMs: Number.NaN, tpotMs: Number.NaN, rejected: hardware.memory.reason ?? 'does not fit' };
  }
  const result = simulate(workload, {
    workers: 1,
    gpusPerWorker: c.tp,
    engine: {
      ...engineShape,
      numGpuBlocks: hardware.memory.numGpuBlocks,
      enableChunkedPrefill: true,
      enablePrefixCaching: true,
      speedupRatio: 1,
      coalesceDecode: true,
    },
    timing: hardware.timing,
    router: { kind: 'round-robin' },
    arrivals: { kind: 'closed-loop', concurrency: c.concurrency },
    seed: 0,
  });
  // Steady state: the first wave (all slots dispatched at once) is left out.
  const col = result.records;
  const ttft: number[] = [];
  let tpotSum = 0;
  let tpotN = 0;
  const skip = opts.skipFirstWave === false ? 0 : c.concurrency;
  for (let r = skip; r < workload.size; r++) {
    const k = col.tokens[r];
    if (k < 1) continue;
    ttft.push(col.firstTokenMs[r] - col.arrivalMs[r]);
    if (k >= 2) {
      tpotSum += (col.lastTokenMs[r] - col.firstTokenMs[r]) / (k - 1);
      tpotN++;
    }
  }
  return { ttftMs: median(ttft), tpotMs: tpotSum / tpotN, tier: hardware.profile.tier };
}

/** Absolute percentage error. */
export function absPctErr(sim: number, measured: number): number {
  return (Math.abs(sim - measured) / measured) * 100;
}

export function median(xs: readonly number[]): number {
  if (xs.length === 0) return Number.NaN;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}
