import { z } from 'zod';
import { CALIBRATION_METRICS } from '../telemetry/calibration/metrics.ts';
import { boundedDuration, Name, Timestamp } from './common.ts';

/**
 * The DeploymentTuning's telemetry: a Prometheus or request-trace traffic source, drift detection and live
 * calibration (spec), and what they last found (status). Written by tenants, so every value is bounded here
 * and again where it is used (src/telemetry/).
 */

/** Label matchers picking a deployment's frontend series; values cannot break out of a PromQL string. */
export const PrometheusSelectorSchema = z
  .record(
    z
      .string()
      .max(63)
      .regex(/^[a-zA-Z_][a-zA-Z0-9_]*$/, 'must be a Prometheus label name'),
    z
      .string()
      .max(253)
      .regex(/^[^"\\\n]*$/, 'must not contain quotes, backslashes or newlines'),
  )
  .meta({ maxProperties: 8 })
  .refine((r) => Object.keys(r).length <= 8, 'at most 8 labels');

const PrometheusUrl = z
  .string()
  .max(2048)
  .regex(
    /^https?:\/\/[^/?#@\s]+([/?#]\S*)?$/,
    'must be an http:// or https:// URL with a host and no credentials',
  );

const SecretKey = z
  .object({
    name: Name.describe('Object in the same namespace.'),
    key: z
      .string()
      .min(1)
      .max(253)
      .regex(/^[-._a-zA-Z0-9]+$/, 'must be a data key')
      .describe('Data key.'),
  })
  .describe('A key of an object in the DeploymentTuning namespace.');

export const PrometheusSourceSchema = z
  .object({
    url: PrometheusUrl.optional().describe(
      "Prometheus scraping the target's Dynamo frontend (default: spec.metrics.prometheusURL, else the operator's --prometheus-url). Subject to the operator's URL policy.",
    ),
    selector: PrometheusSelectorSchema.optional().describe(
      'Label matchers of the frontend series, e.g. model and dynamo_namespace (default: spec.metrics.selector, else model=<served model>; model is compared lower-cased, as Dynamo writes it).',
    ),
    window: boundedDuration('24h')
      .default('30m')
      .describe('Traffic window profiled and replayed: the last this-long, measured back from now.'),
    step: boundedDuration('10m')
      .default('15s')
      .describe('Resolution of the rate curve (the scrape interval keeps bursts).'),
    bearerTokenSecret: SecretKey.optional().describe(
      'Secret key holding a bearer token for Prometheus. The operator reads only Secrets it is allowed to (see the README).',
    ),
    caConfigMap: SecretKey.optional().describe(
      'ConfigMap key holding the PEM CA bundle of an https Prometheus.',
    ),
  })
  .describe(
    "Dynamo's frontend metrics in Prometheus: the window's profile (rate at the step, ISL/OSL histograms, prefix reuse) is synthesised into a trace.",
  );

export const RequestTraceSourceSchema = z
  .object({
    path: z
      .string()
      .min(1)
      .max(4096)
      .regex(/^\//, 'must be an absolute path')
      .describe(
        'Directory of DYN_REQUEST_TRACE segments (or their prefix path) on a volume mounted into the operator, under one of its --trace-root directories.',
      ),
  })
  .describe(
    "Dynamo's own request traces (rotating gzip segments): the last workload.lookback (default 1h) measured back from now.",
  );

const Threshold = z.number().gt(0).max(100);

export const DriftSpecSchema = z
  .object({
    enabled: z
      .boolean()
      .default(true)
      .describe('Compare the recent traffic with the last sweep and sweep out of schedule when it drifted.'),
    checkInterval: boundedDuration('24h')
      .default('5m')
      .describe('How often the recent traffic is profiled and compared (at least 5s).'),
    thresholds: z
      .object({
        rateLevel: Threshold.optional().describe('|log2| of the rate ratio (default 0.5).'),
        burstiness: Threshold.optional().describe('|log2| of the Allan-factor ratio (default 1).'),
        inputTokens: Threshold.optional().describe(
          'log2 Wasserstein distance of prompt lengths (default 0.6).',
        ),
        outputTokens: Threshold.optional().describe(
          'log2 Wasserstein distance of output lengths (default 0.6).',
        ),
        prefixReuse: Threshold.optional().describe(
          'Absolute change of the prefix-reuse share (default 0.15).',
        ),
        sessions: Threshold.optional().describe('|log2| of the turns-per-session ratio (default 0.5).'),
      })
      .default({})
      .describe(
        'Score per dimension at which it counts as moved (defaults chosen on public traces: docs/telemetry.md).',
      ),
    dwell: boundedDuration('24h')
      .default('10m')
      .describe('How long the traffic must stay drifted before it triggers a sweep.'),
    rearmLevel: z
      .number()
      .min(0)
      .lt(1)
      .default(0.7)
      .describe(
        'After a trigger, the drift level (largest score over its threshold) must fall below this first.',
      ),
    minInterval: boundedDuration('720h')
      .default('1h')
      .describe('Least time between two drift-triggered sweeps.'),
  })
  .describe('Workload drift detection (hysteresis as VPA and Karpenter stabilise: trigger, dwell, re-arm).');
export type DriftSpec = z.infer<typeof DriftSpecSchema>;

export const CalibrationSpecSchema = z
  .object({
    enabled: z
      .boolean()
      .default(true)
      .describe(
        'Replay the window with the current settings and compare with what the deployment measured (needs a Prometheus or request-trace source, or spec.metrics).',
      ),
    applyCorrection: z
      .boolean()
      .default(true)
      .describe(
        "Price the sweep's candidates with the fitted correction (not when a factor hit its bound: that is reported instead).",
      ),
    maxCorrection: z
      .number()
      .min(1)
      .max(4)
      .default(2)
      .describe('Bound of each correction factor (between 1/max and max).'),
  })
  .describe("Live calibration of the simulator against this deployment's measurements.");

const Score = z.number().min(0).max(1e6);
const Count = z.number().min(0).max(1e15);

/** A histogram as status keeps it: bounds and counts, empty stretches merged. */
const CompactHistogram = z
  .object({
    bounds: z.array(Count).max(128),
    counts: z.array(Count).max(129),
  })
  .describe('Upper bounds and counts per bucket (one more count than bounds: the overflow).');

export const DriftBaselineSchema = z
  .object({
    time: Timestamp.describe('When the window the baseline was computed on ended.'),
    requests: Count,
    requestRate: Count.describe('Requests per second.'),
    burstiness: Count.describe('Allan factor of the rate curve.'),
    stepSeconds: z.number().gt(0).max(1e7).describe('Bin width the burstiness was measured at.'),
    inputTokens: CompactHistogram,
    outputTokens: CompactHistogram,
    prefixReuse: z.number().min(0).max(1).optional(),
    prefixReuseBasis: z.enum(['blocks', 'cached_tokens', 'none']),
    turnsPerSession: Count.optional(),
  })
  .describe('The traffic the last sweep was computed on, as drift compares it.');
export type DriftBaseline = z.infer<typeof DriftBaselineSchema>;

export const DriftDimensionNames = [
  'rateLevel',
  'burstiness',
  'inputTokens',
  'outputTokens',
  'prefixReuse',
  'sessions',
] as const;

export const DriftStatusSchema = z
  .object({
    checkedTime: Timestamp.describe('When the recent traffic was last compared.'),
    level: Score.describe('Largest score over its threshold (1: at a threshold).'),
    drifted: z.boolean().describe('Some dimension is at or above its threshold.'),
    phase: z
      .enum(['Stable', 'Dwelling', 'Suppressed', 'Triggered', 'Disarmed', 'Unknown'])
      .describe('Where the hysteresis stands.'),
    armed: z
      .boolean()
      .describe('A trigger is possible (after one, the level must fall below the re-arm level).'),
    aboveSinceTime: Timestamp.optional().describe(
      'Since when the level has been at or above the trigger level.',
    ),
    lastTriggerTime: Timestamp.optional().describe('The last drift-triggered sweep.'),
    scores: z
      .object({
        rateLevel: Score.optional(),
        burstiness: Score.optional(),
        inputTokens: Score.optional(),
        outputTokens: Score.optional(),
        prefixReuse: Score.optional(),
        sessions: Score.optional(),
      })
      .describe('Per-dimension scores (absent: not comparable).'),
    moved: z
      .array(z.enum(DriftDimensionNames))
      .max(6)
      .optional()
      .describe('Dimensions at or above threshold.'),
    message: z.string().max(1024).optional(),
    baseline: DriftBaselineSchema.optional(),
  })
  .describe('The latest drift check.');
export type DriftStatus = z.infer<typeof DriftStatusSchema>;

const Percent = z.number().min(-1e6).max(1e6);

export const CalibrationStatusSchema = z
  .object({
    time: Timestamp.describe('When the calibration was measured.'),
    windowStartTime: Timestamp.optional(),
    windowEndTime: Timestamp.optional(),
    errorPercent: z
      .number()
      .min(0)
      .max(1e6)
      .describe(
        'Largest absolute error of the model as sweeps use it (after the correction when it is applied), in percent.',
      ),
    meanAbsErrorPercent: z
      .number()
      .min(0)
      .max(1e6)
      .optional()
      .describe('Mean absolute error before any correction.'),
    metrics: z
      .array(
        z.object({
          metric: z
            .string()
            .max(64)
            .describe(`One of ${CALIBRATION_METRICS.join(', ')} (ms for latencies, tokens/s, requests).`),
          observed: z.number().min(-1e12).max(1e12),
          predicted: z.number().min(-1e12).max(1e12),
          errorPercent: Percent.describe('predicted / observed - 1, in percent, before correction.'),
          correctedErrorPercent: Percent.optional().describe('The same with the correction.'),
        }),
      )
      .max(16)
      .optional()
      .describe('Per metric: predicted against observed over the same window.'),
    correction: z
      .object({
        prefill: z.number().gt(0).max(10),
        decode: z.number().gt(0).max(10),
        bounded: z
          .boolean()
          .describe('A factor reached its bound: the model is off by more than a scale explains.'),
        applied: z.boolean().describe("The sweep's candidates were priced with it."),
        meanAbsErrorPercent: z.number().min(0).max(1e6).describe('Mean absolute error with the correction.'),
      })
      .optional(),
    message: z.string().max(1024).optional(),
  })
  .describe("Live calibration of the simulator against this deployment's measurements.");
export type CalibrationStatus = z.infer<typeof CalibrationStatusSchema>;
