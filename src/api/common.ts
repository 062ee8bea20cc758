import { z } from 'zod';
import { cel, listMap } from './crd.ts';

export const GROUP = 'servetune.dev';
export const VERSION = 'v1alpha1';
export const API_VERSION = `${GROUP}/${VERSION}`;

/** A Go-style duration such as `90s`, `15m`, `1h30m`. */
export const DURATION_PATTERN = '^([0-9]+(\\.[0-9]+)?(ms|s|m|h))+$';
export const Duration = z
  .string()
  .max(64)
  .regex(new RegExp(DURATION_PATTERN), 'must be a duration such as 90s, 15m or 1h30m');

const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** Milliseconds in a duration string (validated by {@link Duration}). */
export function parseDuration(text: string): number {
  let total = 0;
  let matched = '';
  for (const m of text.matchAll(/([0-9]+(?:\.[0-9]+)?)(ms|s|m|h)/g)) {
    total += Number(m[1]) * UNIT_MS[m[2]];
    matched += m[0];
  }
  if (matched !== text || text === '')
    throw new RangeError(`'${text}' is not a duration such as 90s or 1h30m`);
  return total;
}

/**
 * A duration no longer than `max` (e.g. '8760h'): checked at admission with CEL's duration() and at runtime by
 * zod, so absurd values (1e30h) never reach timers and date arithmetic.
 */
export function boundedDuration(max: string) {
  const maxMs = parseDuration(max);
  return cel(
    Duration.refine((d) => {
      try {
        return parseDuration(d) <= maxMs;
      } catch {
        return false;
      }
    }, `must be at most ${max}`),
    { rule: `duration(self) <= duration('${max}')`, message: `must be at most ${max}` },
  );
}

export const Timestamp = z.iso.datetime({ offset: false });

export const Name = z
  .string()
  .min(1)
  .max(253)
  .regex(/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/, 'must be a lowercase RFC 1123 name');

/** metav1.Condition, as api-conventions define it. */
export const ConditionSchema = z
  .object({
    type: z
      .string()
      .max(316)
      .regex(
        /^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\/)?(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$/,
      )
      .describe('Type of condition in CamelCase.'),
    status: z.enum(['True', 'False', 'Unknown']).describe('Status of the condition.'),
    observedGeneration: z
      .number()
      .int()
      .min(0)
      .optional()
      .describe('The .metadata.generation the condition was set from.'),
    lastTransitionTime: Timestamp.describe('When the condition last changed status.'),
    reason: z
      .string()
      .min(1)
      .max(1024)
      .regex(/^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$/)
      .describe('Machine-readable CamelCase reason for the last transition.'),
    message: z.string().max(32768).describe('Human-readable details.'),
  })
  .describe('One aspect of the object state.');
export type Condition = z.infer<typeof ConditionSchema>;

export const Conditions = listMap(
  z.array(ConditionSchema).max(16).describe('Latest observations of the object state.'),
  'type',
);

/** The workload a sweep may tune; the kind is pluggable (only DynamoGraphDeployment is implemented). */
export const TargetRefSchema = cel(
  z
    .object({
      apiVersion: z
        .string()
        .max(253)
        .default('nvidia.com/v1alpha1')
        .describe('API version of the target (default nvidia.com/v1alpha1).'),
      kind: z
        .enum(['DynamoGraphDeployment'])
        .default('DynamoGraphDeployment')
        .describe('Kind of the target. Only DynamoGraphDeployment is supported today.'),
      name: Name.describe('Name of the target in the same namespace.'),
    })
    .describe('The serving deployment to tune, in the same namespace.'),
  {
    rule: "self.kind != 'DynamoGraphDeployment' || self.apiVersion.startsWith('nvidia.com/')",
    message: 'a DynamoGraphDeployment target must use an nvidia.com API version',
  },
);
