import { z } from 'zod';
import { boundedDuration, Timestamp } from './common.ts';
import { cel, intOrString } from './crd.ts';
import { PercentilesSchema } from './settings.ts';

/**
 * What a rollout records: who reviewed a recommendation, the exact fields servetune changes on the target
 * (so a rollback restores exactly what was there), each state transition, and the verification windows.
 */

/** Who may write a review: the person (or service account) whose identity the API server authenticated. */
const Identity = z.string().min(1).max(253);

export const ReviewSchema = cel(
  z
    .object({
      decision: z.enum(['Approved', 'Rejected']).describe('Approve or reject the proposal.'),
      by: Identity.describe(
        'Who decides: must equal the requesting user (`kubectl auth whoami`); an admission policy refuses anything else.',
      ),
      reason: z.string().max(1024).optional().describe('Why (required to reject).'),
    })
    .refine((r) => r.decision !== 'Rejected' || (r.reason ?? '') !== '', 'a rejection needs a reason')
    .describe('A human decision on the proposal; set once, never changed.'),
  {
    rule: "self.decision != 'Rejected' || (has(self.reason) && size(self.reason) > 0)",
    message: 'a rejection needs a reason',
  },
);

export const RollbackRequestSchema = z
  .object({
    by: Identity.describe('Who asks for the rollback (must equal the requesting user).'),
    reason: z.string().max(1024).optional(),
  })
  .describe('Asks the operator to restore the settings this recommendation replaced; set once.');

/** One component's fields servetune owns, with their values (absent: not set on the target). */
export const OwnedComponentSchema = z
  .object({
    name: z.string().min(1).max(63).describe('Component (v1beta1) or service (v1alpha1) name.'),
    replicas: z.number().int().min(0).max(100_000).optional().describe('Replicas (or those of its adapter).'),
    args: z.array(z.string().max(8192)).max(256).optional().describe("The main container's args."),
    gpus: z.string().max(16).optional().describe("GPUs per pod (the main container's GPU limit)."),
    env: z
      .array(z.object({ name: z.string().min(1).max(256), value: z.string().max(4096) }))
      .max(16)
      .optional()
      .describe('Environment entries servetune sets (router settings given by environment).'),
    scalingAdapter: z
      .string()
      .max(253)
      .optional()
      .describe('The DynamoGraphDeploymentScalingAdapter that owns the replicas, if one does.'),
  })
  .describe('Fields of one component that servetune may change.');
export type OwnedComponent = z.infer<typeof OwnedComponentSchema>;

export const OwnedFieldsSchema = z
  .object({
    apiVersion: z.string().max(64).describe('API version the target was read and written in.'),
    components: z.array(OwnedComponentSchema).max(25),
  })
  .describe('The values of every field servetune owns on the target.');
export type OwnedFields = z.infer<typeof OwnedFieldsSchema>;

export const RolloutStates = [
  'Proposed',
  'Approved',
  'Rejected',
  'Expired',
  'Superseded',
  'Applying',
  'Applied',
  'Verifying',
  'Verified',
  'RollingBack',
  'RolledBack',
  'Failed',
] as const;
export type RolloutState = (typeof RolloutStates)[number];

export const TransitionSchema = z.object({
  state: z.enum(RolloutStates),
  time: Timestamp,
  actor: z.string().max(253).optional().describe('Who caused it (a reviewer, or servetune).'),
  reason: z.string().max(128).describe('CamelCase reason.'),
  message: z.string().max(1024).optional(),
});
export type Transition = z.infer<typeof TransitionSchema>;

export const VerificationWindowSchema = z.object({
  start: Timestamp,
  end: Timestamp,
  outcome: z.enum(['Successful', 'Failed', 'Inconclusive']),
  message: z.string().max(1024).optional(),
  requests: z.number().min(0).optional().describe('Requests the frontend served in the window.'),
  ttftMs: PercentilesSchema.partial().optional(),
  itlMs: PercentilesSchema.partial().optional(),
  requestRateRps: z.number().min(0).optional(),
});
export type VerificationWindow = z.infer<typeof VerificationWindowSchema>;

export const RolloutStatusSchema = z
  .object({
    transitions: z
      .array(TransitionSchema)
      .max(32)
      .optional()
      .describe('Every state change, oldest first (the first and last 16 are kept).'),
    baseline: OwnedFieldsSchema.optional().describe(
      'The exact values of the owned fields just before the change: what a rollback restores.',
    ),
    target: OwnedFieldsSchema.optional().describe('The values the change sets.'),
    applied: OwnedFieldsSchema.optional().describe(
      'The values applied so far: the target, or the last stage of a change staged under the disruption budget.',
    ),
    appliedGeneration: z
      .number()
      .int()
      .min(0)
      .optional()
      .describe("The target's metadata.generation after the change was applied."),
    readySince: Timestamp.optional().describe('When the target reported Ready after the change.'),
    windows: z
      .array(VerificationWindowSchema)
      .max(16)
      .optional()
      .describe('Verification windows, newest last.'),
    consecutiveFailures: z.number().int().min(0).optional(),
    conflict: z
      .object({
        managers: z.array(z.string().max(253)).max(16),
        fields: z.array(z.string().max(512)).max(32),
      })
      .optional()
      .describe('Fields another manager owns, which blocked the apply.'),
  })
  .describe('Where the rollout of this recommendation stands.');
export type RolloutStatus = z.infer<typeof RolloutStatusSchema>;

const ROLLOUT_LIMITS = { window: '24h', readyTimeout: '24h', approvalWindow: '720h', coolDown: '720h' };

export const VerificationPolicySchema = z
  .object({
    readyTimeout: boundedDuration(ROLLOUT_LIMITS.readyTimeout)
      .default('15m')
      .describe(
        'How long the target may take to report Ready after a change before the change counts as Failed.',
      ),
    window: boundedDuration(ROLLOUT_LIMITS.window)
      .default('5m')
      .describe('Length of one analysis window of live metrics.'),
    windows: z
      .number()
      .int()
      .min(1)
      .max(12)
      .default(2)
      .describe('Successful windows needed to mark the change Verified.'),
    failuresBeforeRollback: z
      .number()
      .int()
      .min(1)
      .max(12)
      .default(1)
      .describe('Consecutive failed windows that roll the change back.'),
    minRequests: z
      .number()
      .int()
      .min(1)
      .max(1_000_000)
      .default(50)
      .describe('A window with fewer requests is Inconclusive (never a success).'),
    tolerancePercent: z
      .number()
      .min(0)
      .max(1000)
      .default(10)
      .describe(
        'How far an observed percentile may exceed the upper end of its prediction interval and pass.',
      ),
    onInconclusive: z
      .enum(['Hold', 'Retry', 'Rollback'])
      .default('Hold')
      .describe(
        'Hold: stay Verifying and keep measuring (never counted as success); Retry: the same, counting a failure after three inconclusive windows in a row; Rollback: roll back at once.',
      ),
  })
  .describe('How a change is verified against its prediction.');

export const MaintenanceWindowSchema = z.object({
  start: z.string().max(256).describe('Cron expression (UTC) of when a window opens.'),
  duration: boundedDuration('168h').describe('How long it stays open.'),
});

export const UpdatePolicySchema = cel(
  z
    .object({
      mode: z
        .enum(['Off', 'Approval', 'Automatic'])
        .default('Off')
        .describe(
          'Off: recommend only. Approval: apply a recommendation once a person approves it. Automatic: apply when the guardrails allow.',
        ),
      approvalWindow: boundedDuration(ROLLOUT_LIMITS.approvalWindow)
        .default('24h')
        .describe('A proposal not reviewed within this time expires.'),
      forceConflicts: z
        .boolean()
        .default(false)
        .describe(
          'Take fields another manager (GitOps, a person) owns on the target. Off: report FieldConflict.',
        ),
      maxGPUsChanging: cel(
        intOrString(z.union([z.number().int().min(1).max(16_384), z.string().regex(/^([1-9][0-9]?|100)%$/)])),
        {
          rule: "type(self) == int ? (self >= 1 && self <= 16384) : self.matches('^([1-9][0-9]?|100)%$')",
          message: 'a number of GPUs (1-16384) or a percentage such as 25%',
        },
      )
        .default('50%')
        .describe(
          'Disruption budget: GPUs (or a percentage of the target) changing at once; larger changes are staged.',
        ),
      verification: VerificationPolicySchema.default({
        readyTimeout: '15m',
        window: '5m',
        windows: 2,
        failuresBeforeRollback: 1,
        minRequests: 50,
        tolerancePercent: 10,
        onInconclusive: 'Hold',
      }),
      automatic: z
        .object({
          coolDown: boundedDuration(ROLLOUT_LIMITS.coolDown)
            .default('2h')
            .describe('No automatic change within this time after the last change or rollback.'),
          maxCalibrationErrorPercent: z
            .number()
            .min(0)
            .max(1000)
            .default(25)
            .describe("Apply automatically only while the simulator's live calibration error is below this."),
          maintenanceWindows: z
            .array(MaintenanceWindowSchema)
            .max(8)
            .optional()
            .describe('When automatic changes may start (none: any time).'),
        })
        .default({ coolDown: '2h', maxCalibrationErrorPercent: 25 })
        .describe('Guardrails of the Automatic mode.'),
    })
    .describe('What happens to recommendations, and how changes are verified and rolled back.'),
  {
    rule: "self.mode != 'Automatic' || !has(self.automatic.maintenanceWindows) || size(self.automatic.maintenanceWindows) > 0",
    message: 'automatic.maintenanceWindows, when given, must list at least one window',
  },
);
