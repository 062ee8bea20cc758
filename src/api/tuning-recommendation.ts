import { z } from 'zod';
import { Conditions, GROUP, Name, TargetRefSchema, Timestamp, VERSION } from './common.ts';
import { type CrdDefinition, cel } from './crd.ts';
import type { KubeMeta } from './deployment-tuning.ts';
import { PredictedMetricsSchema, ServingSettingsSchema } from './settings.ts';

/**
 * TuningRecommendation: one proposal and the evidence for it. The spec is the audit record and is immutable
 * (CEL); the lifecycle (`status.state`) moves on as approval, apply and rollback arrive in later versions.
 */

export const RecommendationStates = [
  'Proposed',
  'Approved',
  'Applied',
  'Verified',
  'RolledBack',
  'Superseded',
  'Rejected',
] as const;

const immutable = { rule: 'self == oldSelf', message: 'the proposal of a TuningRecommendation is immutable' };

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
    })
    .describe('The proposal and its evidence; immutable once created.'),
  immutable,
);
export type TuningRecommendationSpec = z.infer<typeof TuningRecommendationSpecSchema>;

export const TuningRecommendationStatusSchema = z
  .object({
    state: z.enum(RecommendationStates).describe('Lifecycle state of the proposal.'),
    stateTransitionTime: Timestamp.optional(),
    message: z.string().max(1024).optional(),
    supersededBy: z.string().max(253).optional().describe('The recommendation that replaced this one.'),
    observedGeneration: z.number().int().min(0).optional(),
    conditions: Conditions.optional(),
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
