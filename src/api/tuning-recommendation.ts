import { z } from 'zod';
import { Conditions, GROUP, Name, TargetRefSchema, Timestamp, VERSION } from './common.ts';
import { type CrdDefinition, cel } from './crd.ts';
import type { KubeMeta } from './deployment-tuning.ts';
import { ReviewSchema, RollbackRequestSchema, RolloutStates, RolloutStatusSchema } from './rollout.ts';
import { PredictedMetricsSchema, ServingSettingsSchema } from './settings.ts';

/**
 * TuningRecommendation: one proposal and the evidence for it. The spec is the audit record and is immutable
 * (CEL) except for two fields people write once: `review` (approve or reject) and `rollbackRequest`; an
 * admission policy (config/admission/) makes their `by` equal the requesting user, so an approval cannot be
 * forged. The lifecycle (`status.state`) is the rollout state machine, persisted here.
 */

export const RecommendationStates = RolloutStates;

const Interval = z
  .object({ low: z.number(), high: z.number() })
  .describe('The range the value fell in over the replays (sub-windows of the trace).');

export const IntervalMetricsSchema = z
  .object({
    objectiveValue: Interval,
    ttftP90Ms: Interval,
    itlP90Ms: Interval,
    e2eP90Ms: Interval,
  })
  .describe('Prediction intervals of one configuration.');

const Ms = z.number().min(0).max(1e9);
const Versus = (what: string) =>
  z
    .object({ transition: Ms, steady: Ms })
    .describe(
      `${what} of the requests arriving during the transition, and of the same requests when steady.`,
    );

const SimulatedTransitionSchema = z
  .object({
    changeAtSeconds: z
      .number()
      .min(0)
      .max(1e7)
      .describe('When the change was made, seconds into the window.'),
    durationSeconds: z
      .number()
      .min(0)
      .max(1e7)
      .describe('From the change until the last new worker was ready and the last old one had drained.'),
    workersStarted: z.number().int().min(0).max(100_000).describe('Workers started cold.'),
    workersDrained: z.number().int().min(0).max(100_000).describe('Old workers drained.'),
    requests: z.number().int().min(0).describe('Requests arriving during the transition.'),
    ttftP90Ms: Versus('p90 TTFT (ms)'),
    itlP90Ms: Versus("p90 of each request's mean inter-token gap (ms)"),
    queuedLonger: z
      .number()
      .int()
      .min(0)
      .describe(
        'Requests arriving during the transition that queued more than 50 ms longer than when steady.',
      ),
    maxExtraQueueMs: Ms.describe('The longest extra queue wait.'),
    prefixHitRate: z
      .object({ transition: z.number().min(0).max(1), steady: z.number().min(0).max(1) })
      .describe(
        'Prompt tokens served from the prefix cache by the new workers in their first two minutes, against the same requests when steady (the cache warmth lost).',
      ),
    sloMissSeconds: z
      .number()
      .min(0)
      .max(1e7)
      .optional()
      .describe(
        'Seconds of the transition during which the p90 TTFT or ITL of arrivals was over twice its SLO.',
      ),
  })
  .describe(
    'The transition replayed on the simulator: the trace on the baseline, switched to the proposal at the busiest stretch (workers started cold, restarted rolling, drained), against the proposal run steady.',
  );

export const TransitionCostSchema = z
  .object({
    workersStarting: z.number().int().min(0).describe('Workers that start cold.'),
    coldStartSeconds: z.number().min(0).describe('Model load time of a new worker.'),
    extraGpuHours: z
      .number()
      .min(0)
      .describe('GPU-hours held twice while new workers start (make before break).'),
    stages: z.number().int().min(1).describe('Steps the change is split into under the disruption budget.'),
    gainPerHour: z
      .number()
      .describe('Objective gain per hour once applied, in GPU-hours saved or equivalent.'),
    paybackHours: z.number().min(0).describe('Hours of the new settings needed to repay the transition.'),
    simulated: SimulatedTransitionSchema.optional(),
    notSimulated: z
      .string()
      .max(256)
      .optional()
      .describe('Why the transition was not simulated (the analytic cost above is all there is).'),
  })
  .describe('What the change costs while it happens.');

/** Fields people may write once; everything else in the spec is immutable. */
const REVIEW_FIELDS = ['review', 'rollbackRequest'];

export const FrontierPointSchema = z.object({
  summary: z.string().max(256).describe('Short description of the configuration.'),
  gpus: z.number().int().min(0),
  objectiveValue: z.number(),
  ttftP90Ms: z.number().min(0),
  itlP90Ms: z.number().min(0),
  outputTokensPerSecondPerGpu: z.number().min(0),
  meetsSlos: z.boolean(),
});

export const TuningRecommendationSpecSchema = cel(
  z
    .object({
      deploymentTuning: Name.describe('The DeploymentTuning that produced this recommendation.'),
      targetRef: TargetRefSchema,
      objective: z.string().max(64).describe('Objective the sweep optimised.'),
      baseline: ServingSettingsSchema.describe('Settings read from the target when the sweep ran.'),
      proposal: ServingSettingsSchema.describe('Proposed settings.'),
      predicted: z
        .object({
          baseline: PredictedMetricsSchema,
          proposal: PredictedMetricsSchema,
          gainPercent: z.number().describe('Relative improvement of the objective, in percent.'),
          intervals: z
            .object({ baseline: IntervalMetricsSchema, proposal: IntervalMetricsSchema })
            .optional()
            .describe('Prediction intervals of both, from replays of sub-windows of the trace.'),
          gainPercentLow: z
            .number()
            .optional()
            .describe('The gain with the uncertainty subtracted (worst proposal against best baseline).'),
        })
        .describe('Simulated metrics of the baseline and the proposal over the same traffic.'),
      frontier: z
        .array(FrontierPointSchema)
        .max(32)
        .describe('Pareto frontier of the sweep: fewer GPUs against lower p90 TTFT, by GPU count.'),
      explanation: z.string().max(4096).describe('Why the proposal was chosen.'),
      trace: z
        .object({
          source: z.string().max(4096),
          hash: z.string().max(128).describe('sha256 of the trace window replayed.'),
          windowStartSeconds: z.number().min(0),
          windowEndSeconds: z.number().min(0),
          requests: z.number().int().min(0),
        })
        .describe('The traffic replayed.'),
      sweep: z
        .object({
          scheduledTime: Timestamp.describe('The schedule slot this sweep ran for.'),
          startedTime: Timestamp,
          completedTime: Timestamp,
          candidates: z.number().int().min(0),
          feasible: z.number().int().min(0),
          optimizer: z.string().max(64),
          simulatorVersion: z.string().max(64),
        })
        .describe('The sweep that produced the proposal.'),
      transition: TransitionCostSchema.optional(),
      review: ReviewSchema.optional(),
      rollbackRequest: RollbackRequestSchema.optional(),
    })
    .describe('The proposal and its evidence (immutable once created), and the reviews people add once.'),
  ...immutableExcept(
    [
      'deploymentTuning',
      'targetRef',
      'objective',
      'baseline',
      'proposal',
      'predicted',
      'frontier',
      'explanation',
      'trace',
      'sweep',
      'transition',
    ],
    REVIEW_FIELDS,
  ),
);

/** CEL: the evidence never changes; each review field, once set, stays as it is. */
function immutableExcept(fields: string[], once: string[]) {
  const same = (f: string) =>
    `(has(self.${f}) == has(oldSelf.${f})) && (!has(self.${f}) || self.${f} == oldSelf.${f})`;
  return [
    {
      rule: fields.map(same).join(' && '),
      message: 'the proposal of a TuningRecommendation is immutable',
    },
    ...once.map((f) => ({
      rule: `!has(oldSelf.${f}) || (has(self.${f}) && self.${f} == oldSelf.${f})`,
      message: `spec.${f} is set once and cannot be changed or removed`,
    })),
  ];
}
export type TuningRecommendationSpec = z.infer<typeof TuningRecommendationSpecSchema>;

export const TuningRecommendationStatusSchema = z
  .object({
    state: z.enum(RecommendationStates).describe('Lifecycle state of the proposal.'),
    stateTransitionTime: Timestamp.optional(),
    message: z.string().max(1024).optional(),
    supersededBy: z.string().max(253).optional().describe('The recommendation that replaced this one.'),
    observedGeneration: z.number().int().min(0).optional(),
    conditions: Conditions.optional(),
    rollout: RolloutStatusSchema.optional(),
  })
  .describe('Lifecycle of the recommendation, written by the operator.');
export type TuningRecommendationStatus = z.infer<typeof TuningRecommendationStatusSchema>;

export const TUNING_RECOMMENDATION: CrdDefinition = {
  group: GROUP,
  version: VERSION,
  kind: 'TuningRecommendation',
  plural: 'tuningrecommendations',
  singular: 'tuningrecommendation',
  shortNames: ['trec'],
  categories: ['servetune'],
  description:
    'TuningRecommendation records one proposed configuration for a serving deployment, with the baseline, simulated predictions for both and the evidence used. Owned by its DeploymentTuning.',
  spec: TuningRecommendationSpecSchema,
  status: TuningRecommendationStatusSchema,
  printerColumns: [
    { name: 'Target', type: 'string', jsonPath: '.spec.targetRef.name' },
    { name: 'State', type: 'string', jsonPath: '.status.state' },
    { name: 'GPUs Before', type: 'integer', jsonPath: '.spec.baseline.gpus' },
    { name: 'GPUs After', type: 'integer', jsonPath: '.spec.proposal.gpus' },
    { name: 'Gain %', type: 'number', jsonPath: '.spec.predicted.gainPercent' },
    { name: 'Reviewed By', type: 'string', jsonPath: '.spec.review.by', priority: 1 },
    { name: 'Topology', type: 'string', jsonPath: '.spec.proposal.topology', priority: 1 },
    { name: 'Router', type: 'string', jsonPath: '.spec.proposal.router.mode', priority: 1 },
    { name: 'Tuning', type: 'string', jsonPath: '.spec.deploymentTuning', priority: 1 },
    { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' },
  ],
};

export interface TuningRecommendation {
  apiVersion: string;
  kind: 'TuningRecommendation';
  metadata: KubeMeta;
  spec: TuningRecommendationSpec;
  status?: TuningRecommendationStatus;
}
