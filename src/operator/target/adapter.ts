import type { ServingSettings } from '../../api/index.ts';
import type { KubeObject, ResourceType } from '../kube/resources.ts';

/**
 * A kind of workload the operator can tune. Adding a target kind means one adapter: where its objects live
 * and how to read their serving settings (and, in later versions, how to write a proposal back).
 */
export interface TargetAdapter {
  kind: string;
  resource: ResourceType;
  /** Reads the current settings; `knownGpuTypes` (inventory first) resolves a GPU type the object omits. */
  readBaseline(obj: KubeObject, knownGpuTypes: string[]): BaselineResult;
}

/**
 * The settings, or why there are none: the object cannot be read (`error`), it uses a feature the
 * simulator does not model (`reason: 'UnsupportedFeature'`, the error naming it), so any recommendation
 * would be priced as if the feature were absent, or its Planner's configuration cannot be read
 * (`PlannerConfigInvalid`, naming the component and field), so its scaling could not be priced.
 */
export type BaselineReason = 'UnsupportedFeature' | 'PlannerConfigInvalid';
export type BaselineResult =
  | { settings: ServingSettings; warnings: string[] }
  | { error: string; reason?: BaselineReason };
