import { z } from 'zod';
import { HardwareConfigSchema } from '../hardware/config.ts';
import { LARGEST_CATALOGUED_CONTEXT } from '../hardware/models.ts';
import { PlannerConfigSchema } from '../sim/planner/config.ts';

/**
 * Validated configuration of one simulation: engine, cluster, router, timing, workload and replay mode.
 * The same schema backs `servetune simulate --config FILE` and the flags (which fill the same object), so a
 * flag and its config key always mean the same thing. Defaults follow the reference simulator.
 */
const positiveInt = z.number().int('must be an integer').positive('must be positive');

/**
 * Bounds on what a run may ask for, checked with the rest of the configuration so that an absurd value ends
 * with a message naming it, never a RangeError or a run that allocates without bound (memory is estimated
 * against the machine before a run starts: src/sim/cost.ts).
 */
export const RUN_LIMITS = {
  /** Workers per pool. */
  workers: 10_000,
  /** Synthetic sessions (times turns: requests). */
  requests: 100_000_000,
  /** One prompt or output, in tokens: the longest context of any catalogued model. */
  tokens: LARGEST_CATALOGUED_CONTEXT,
  turnsPerSession: 10_000,
  maxNumSeqs: 65_536,
  numGpuBlocks: 1 << 24,
  batchedTokens: 1 << 24,
  concurrency: 1_000_000,
} as const;
const atMost = (n: number) => `must be at most ${n.toLocaleString('en-US')}`;
const positive = z.number().positive('must be positive');
const nonNegative = z.number().nonnegative('must not be negative');

/** Acceptance rates as a list or, as the reference spells them, a comma-separated string. */
const AcceptRatesSchema = z.preprocess(
  (v) => (typeof v === 'string' ? v.split(',').map((x) => (x.trim() === '' ? Number.NaN : Number(x))) : v),
  z
    .array(z.number().min(0, 'must be in [0, 1]').max(1, 'must be in [0, 1]'))
    .min(1, 'give at least one rate')
    .max(5, 'at most 5 rates'),
);

export const EngineConfigSchema = z
  .object({
    engine: z.enum(['vllm', 'sglang', 'trtllm']).default('vllm').describe('Scheduler to simulate.'),
    blockSize: positiveInt
      .default(64)
      .describe(
        'Tokens per KV block (SGLang: the page size; the reference defaults it to 1). TRT-LLM: 32 unless set.',
      ),
    numGpuBlocks: positiveInt
      .max(RUN_LIMITS.numGpuBlocks, atMost(RUN_LIMITS.numGpuBlocks))
      .optional()
      .describe('KV capacity per worker, in blocks (hardware timing: from HBM; otherwise 16384).'),
    maxNumSeqs: positiveInt
      .max(RUN_LIMITS.maxNumSeqs, atMost(RUN_LIMITS.maxNumSeqs))
      .default(256)
      .describe('Running-request cap per worker.'),
    maxNumBatchedTokens: positiveInt
      .max(RUN_LIMITS.batchedTokens, atMost(RUN_LIMITS.batchedTokens))
      .default(8192)
      .describe('Token budget of one forward pass.'),
    enableChunkedPrefill: z.boolean().default(true),
    enablePrefixCaching: z.boolean().default(true),
    speedupRatio: positive.default(1).describe('Divides every modelled duration.'),
    kvBytesPerToken: positiveInt
      .optional()
      .describe(
        'KV bytes per token, all layers (hardware timing: from the model; otherwise 131072 = Llama-3.1-8B bf16).',
      ),
    g2Blocks: z
      .number()
      .int()
      .nonnegative()
      .default(0)
      .describe('Host-memory KV tier size in blocks (0 = none).'),
    g2Gbps: positive.default(14).describe('GPU <-> host bandwidth per direction, GB/s.'),
    g3Blocks: z
      .number()
      .int()
      .nonnegative()
      .default(0)
      .describe('Disk KV tier size in blocks (needs the host tier).'),
    g3Gbps: positive.default(7).describe('Host <-> disk bandwidth, GB/s.'),
    offloadPolicy: z
      .enum(['write-through', 'on-evict'])
      .default('write-through')
      .describe(
        'When blocks reach the host tier: prompt blocks once computed (vLLM offloading connector) or GPU evictions (KVBM mocker).',
      ),
    // SGLang scheduler knobs (ignored by vLLM), defaults as in the reference mocker.
    schedulePolicy: z
      .enum(['fifo', 'lpm'])
      .default('fifo')
      .describe('SGLang: waiting order (lpm = longest cached prefix first).'),
    maxPrefillTokens: positiveInt.default(16384).describe('SGLang: tokens one prefill batch may compute.'),
    chunkedPrefillSize: positiveInt.default(8192).describe('SGLang: tokens of one prompt chunk.'),
    clipMaxNewTokens: positiveInt
      .default(4096)
      .describe('SGLang: output tokens per request counted in the admission reserve.'),
    scheduleConservativeness: positive
      .default(1)
      .describe('SGLang: scales the admission reserve (initial new_token_ratio 0.7).'),
    nextn: z
      .number()
      .int('must be an integer')
      .min(0)
      .max(5, 'at most 5 draft tokens')
      .default(0)
      .describe('MTP / speculative decoding: draft tokens per forward (0 = off).'),
    nextnAcceptRates: AcceptRatesSchema.optional().describe(
      'MTP: conditional acceptance probability of each draft position (default 0.85,0.3,0,0,0).',
    ),
    mtpSeed: z.number().int().default(42).describe('MTP: seed of the acceptance draws.'),
  })
  .strict();

export const RouterConfigSchema = z
  .object({
    mode: z.enum(['round-robin', 'random', 'least-loaded', 'kv']).default('round-robin'),
    overlapWeight: nonNegative
      .default(1)
      .describe('KV router: weight of the prefill term (prefill load scale).'),
    overlapCredit: nonNegative
      .default(1)
      .describe('KV router: prefill blocks credited per cached prefix block.'),
    temperature: nonNegative.default(0).describe('KV router: 0 = cheapest worker, > 0 = softmax sampling.'),
  })
  .strict();

export const TimingConfigSchema = z
  .object({
    model: z.enum(['polynomial', 'fixed', 'hardware']).default('polynomial'),
    prefillMs: nonNegative.default(10).describe('fixed timing: ms of a pass with prefill work'),
    decodeMs: nonNegative.default(5).describe('fixed timing: ms added when the pass decodes'),
  })
  .strict();

const LengthSchema = z.union([
  positiveInt.max(RUN_LIMITS.tokens, atMost(RUN_LIMITS.tokens)).transform((mean) => ({ mean, stddev: 0 })),
  z
    .object({
      mean: positive.max(RUN_LIMITS.tokens, atMost(RUN_LIMITS.tokens)),
      stddev: nonNegative.max(RUN_LIMITS.tokens, atMost(RUN_LIMITS.tokens)).default(0),
    })
    .strict(),
]);

export const SyntheticConfigSchema = z
  .object({
    requests: positiveInt
      .max(RUN_LIMITS.requests, atMost(RUN_LIMITS.requests))
      .describe('Requests (sessions when turnsPerSession > 1).'),
    inputTokens: LengthSchema,
    outputTokens: LengthSchema,
    arrival: z.enum(['poisson', 'constant', 'gamma', 'burst']).default('poisson'),
    requestRate: positive.optional().describe('Requests (sessions) per second for open-loop arrivals.'),
    burstiness: positive.default(1).describe('Gamma shape for arrival = gamma (< 1 burstier).'),
    sharedPrefixRatio: z.number().min(0).max(1).default(0),
    numPrefixGroups: z.number().int().nonnegative().default(0),
    turnsPerSession: positiveInt
      .max(RUN_LIMITS.turnsPerSession, atMost(RUN_LIMITS.turnsPerSession))
      .default(1),
    interTurnDelayMs: nonNegative.default(0),
    seed: z.number().int().default(42),
  })
  .strict();

export const WorkloadConfigSchema = z
  .object({
    trace: z.string().min(1).optional().describe('Trace file (plain or gzip-compressed).'),
    traceFormat: z
      .string()
      .min(1)
      .optional()
      .describe('Trace format (default: detected from the first row), e.g. mooncake.'),
    traceBlockSize: positiveInt.default(512).describe('Tokens per trace hash id.'),
    synthetic: SyntheticConfigSchema.optional(),
    arrivalSpeedupRatio: positive.default(1).describe('Divides arrival gaps and think times of a trace.'),
    concurrency: positiveInt
      .max(RUN_LIMITS.concurrency, atMost(RUN_LIMITS.concurrency))
      .optional()
      .describe('Closed loop: requests (or sessions) kept in flight.'),
  })
  .strict()
  .superRefine((w, ctx) => {
    if ((w.trace === undefined) === (w.synthetic === undefined)) {
      ctx.addIssue({ code: 'custom', message: 'give exactly one of trace or synthetic', path: ['trace'] });
    }
    const s = w.synthetic;
    if (s && w.concurrency === undefined && s.arrival !== 'burst' && s.requestRate === undefined) {
      ctx.addIssue({
        code: 'custom',
        message: 'synthetic open-loop arrivals need requestRate (or set concurrency for a closed loop)',
        path: ['synthetic', 'requestRate'],
      });
    }
  });

type WithoutDefaults<S extends z.ZodRawShape> = {
  [K in keyof S]: z.ZodOptional<S[K] extends z.ZodDefault<infer I> ? I : S[K]>;
};

/** The shape with every field optional and no defaults: an override sets only what it names. */
function withoutDefaults<S extends z.ZodRawShape>(shape: S): WithoutDefaults<S> {
  const out: Record<string, z.ZodType> = {};
  for (const [k, v] of Object.entries(shape)) {
    const inner = (v instanceof z.ZodDefault ? v.unwrap() : v) as z.ZodType;
    out[k] = inner.optional();
  }
  return out as WithoutDefaults<S>;
}

const PoolConfigSchema = z
  .object({
    workers: positiveInt
      .max(RUN_LIMITS.workers, atMost(RUN_LIMITS.workers))
      .describe('Workers in this pool.'),
    tensorParallelSize: positiveInt.default(1).describe('GPUs per worker.'),
    // Without defaults: an override must not reset top-level settings it does not name.
    engine: z
      .object(withoutDefaults(EngineConfigSchema.shape))
      .strict()
      .optional()
      .describe('Overrides of the top-level engine settings.'),
  })
  .strict();

export const DisaggregationConfigSchema = z
  .object({
    prefill: PoolConfigSchema,
    decode: PoolConfigSchema,
    // No default: unset, transfers use engine.kvBytesPerToken (what --kv-bytes-per-token sets).
    kvBytesPerToken: positiveInt
      .optional()
      .describe(
        "KV bytes per token moved per transfer (all layers); default: engine.kvBytesPerToken (the model's under hardware timing), else 131072 (Llama-3.1-8B bf16).",
      ),
    kvTransferGbps: positive
      .default(64)
      .describe('GB/s of each prefill worker link, shared by its transfers (see kvLink).'),
    kvLink: z
      .enum(['shared', 'per-transfer'])
      .default('shared')
      .describe(
        "shared: a prefill worker's concurrent transfers share its link's bandwidth; per-transfer: each moves at the full bandwidth (the reference simulator's model).",
      ),
    transferMode: z.enum(['full-prompt', 'destination-missing']).default('full-prompt'),
    conditional: z
      .union([
        z.boolean(),
        z
          .object({
            maxUncachedTokens: positiveInt.default(2048),
            maxUncachedRatio: z.number().positive().max(1).default(0.7),
          })
          .strict(),
      ])
      .default(false)
      .describe('Prefill on the decode worker when little of the prompt is uncached there.'),
  })
  .strict();

export const SloSchema = z
  .object({
    ttftMs: positive.optional(),
    itlMs: positive.optional(),
    e2eMs: positive.optional(),
  })
  .strict();

/** TensorRT-LLM's KV block size when none is given (the reference's default for it). */
export const TRTLLM_DEFAULT_BLOCK_SIZE = 32;

/** Engine-dependent defaults, filled in before validation: TRT-LLM's block size. */
function engineDefaults(input: unknown): unknown {
  if (typeof input !== 'object' || input === null) return input;
  const engine = (input as { engine?: unknown }).engine;
  if (typeof engine !== 'object' || engine === null) return input;
  const e = engine as { engine?: unknown; blockSize?: unknown };
  if (e.engine !== 'trtllm' || e.blockSize !== undefined) return input;
  return { ...input, engine: { ...e, blockSize: TRTLLM_DEFAULT_BLOCK_SIZE } };
}

const SimulationConfigObject = z
  .object({
    workers: positiveInt.max(RUN_LIMITS.workers, atMost(RUN_LIMITS.workers)).default(1),
    tensorParallelSize: positiveInt.default(1).describe('GPUs per worker (for GPU-hours).'),
    dataParallelSize: positiveInt
      .max(64, 'at most 64 data-parallel ranks')
      .default(1)
      .describe(
        'Attention-data-parallel ranks per worker, each with its own scheduler and KV pool; a worker holds TP x DP GPUs.',
      ),
    disaggregation: DisaggregationConfigSchema.optional().describe('Prefill and decode on separate workers.'),
    engine: EngineConfigSchema.default(EngineConfigSchema.parse({})),
    router: RouterConfigSchema.default(RouterConfigSchema.parse({})),
    timing: TimingConfigSchema.default(TimingConfigSchema.parse({})),
    hardware: HardwareConfigSchema.optional(),
    workload: WorkloadConfigSchema,
    seed: z.number().int().default(0),
    maxSimTimeS: positive.optional(),
    slo: SloSchema.optional(),
    coalesceDecode: z
      .boolean()
      .default(true)
      .describe(
        'Fast paths (coalesced decode runs, in-place decode steps); results are identical either way.',
      ),
    planner: PlannerConfigSchema.optional().describe(
      "Dynamo's Planner (reference field names and defaults).",
    ),
    startupTimeS: nonNegative
      .default(0)
      .describe('Planner: seconds from a new worker getting its GPUs to serving (cold start).'),
  })
  .strict()
  .superRefine((c, ctx) => {
    if (c.disaggregation && c.disaggregation.conditional !== false && c.router.mode !== 'kv') {
      ctx.addIssue({
        code: 'custom',
        message: "conditional disaggregation needs router mode 'kv' (Dynamo decides it in its KV router)",
        path: ['disaggregation', 'conditional'],
      });
    }
    if (c.dataParallelSize > 1) {
      // As the reference: ranks are simulated for aggregated workers, without the Planner or host offload.
      const clash = c.disaggregation
        ? 'disaggregation'
        : c.planner
          ? 'planner'
          : c.engine.g2Blocks > 0
            ? 'engine.g2Blocks'
            : null;
      if (clash !== null)
        ctx.addIssue({
          code: 'custom',
          message: `data-parallel ranks (dataParallelSize > 1) cannot be combined with ${clash}`,
          path: ['dataParallelSize'],
        });
    }
    if (c.engine.g3Blocks > 0 && c.engine.g2Blocks === 0) {
      ctx.addIssue({
        code: 'custom',
        message: 'the disk tier (g3Blocks) needs a host tier (g2Blocks)',
        path: ['engine', 'g3Blocks'],
      });
    }
    if (c.timing.model !== 'hardware') return;
    for (const k of ['gpu', 'model'] as const) {
      if (c.hardware?.[k] === undefined) {
        ctx.addIssue({
          code: 'custom',
          message: `timing model 'hardware' needs ${k}`,
          path: ['hardware', k],
        });
      }
    }
  });

export const SimulationConfigSchema = z.preprocess(engineDefaults, SimulationConfigObject);

/** KV bytes per token when neither the configuration nor the hardware model sets them (Llama-3.1-8B, bf16). */
export const DEFAULT_KV_BYTES_PER_TOKEN = 131072;

/** KV blocks per worker when neither the configuration nor a hardware memory plan sets them. */
export const DEFAULT_NUM_GPU_BLOCKS = 16384;

export type SimulationConfig = z.infer<typeof SimulationConfigSchema>;
