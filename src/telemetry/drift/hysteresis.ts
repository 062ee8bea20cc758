/**
 * When drift counts, as VPA's and Karpenter's stabilisation do it: the drift level (largest score over its
 * threshold, see verdict.ts) must stay at or above the trigger level for a dwell time before it triggers; after
 * a trigger it must fall below the lower re-arm level before it can trigger again (so a workload hovering at
 * the threshold triggers once, not on every wobble); and triggers are at least a minimum interval apart.
 *
 * A pure function of the previous state, the level just measured and the clock, so the operator can persist
 * the state in status and resume it after a restart, and tests can drive it exhaustively.
 */

export interface DriftPolicy {
  /** Level that counts as drift (1 = a dimension at its threshold). */
  triggerLevel: number;
  /** Level the score must fall below before another trigger (< triggerLevel). */
  rearmLevel: number;
  /** How long the level must stay at or above the trigger level (ms). */
  dwellMs: number;
  /** Least time between two triggers (ms). */
  minIntervalMs: number;
}

export const DEFAULT_DRIFT_POLICY: DriftPolicy = {
  triggerLevel: 1,
  rearmLevel: 0.7,
  dwellMs: 10 * 60_000,
  minIntervalMs: 60 * 60_000,
};

export interface DriftState {
  /** A trigger is possible (false after one, until the level falls below the re-arm level). */
  armed: boolean;
  /** Since when the level has been at or above the trigger level (epoch ms), or null. */
  aboveSinceMs: number | null;
  /** The last trigger (epoch ms), or null. */
  lastTriggerMs: number | null;
}

export const INITIAL_DRIFT_STATE: DriftState = { armed: true, aboveSinceMs: null, lastTriggerMs: null };

export type DriftPhase =
  /** Below the trigger level. */
  | 'Stable'
  /** At or above it, for less than the dwell time. */
  | 'Dwelling'
  /** At or above it long enough, but within the minimum interval of the last trigger. */
  | 'Suppressed'
  /** Triggered now. */
  | 'Triggered'
  /** Triggered before; waiting for the level to fall below the re-arm level. */
  | 'Disarmed';

export interface DriftStep {
  state: DriftState;
  phase: DriftPhase;
  trigger: boolean;
}

export function stepDrift(prev: DriftState, level: number, nowMs: number, policy: DriftPolicy): DriftStep {
  if (!prev.armed) {
    if (level < policy.rearmLevel)
      return { state: { ...prev, armed: true, aboveSinceMs: null }, phase: 'Stable', trigger: false };
    return { state: { ...prev, aboveSinceMs: null }, phase: 'Disarmed', trigger: false };
  }
  if (!(level >= policy.triggerLevel))
    return { state: { ...prev, aboveSinceMs: null }, phase: 'Stable', trigger: false };
  const since = prev.aboveSinceMs ?? nowMs;
  if (nowMs - since < policy.dwellMs)
    return { state: { ...prev, aboveSinceMs: since }, phase: 'Dwelling', trigger: false };
  if (prev.lastTriggerMs !== null && nowMs - prev.lastTriggerMs < policy.minIntervalMs)
    return { state: { ...prev, aboveSinceMs: since }, phase: 'Suppressed', trigger: false };
  return {
    state: { armed: false, aboveSinceMs: null, lastTriggerMs: nowMs },
    phase: 'Triggered',
    trigger: true,
  };
}
