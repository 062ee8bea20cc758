/**
 * The metrics live calibration compares, by name: one list for the calibration itself, the DeploymentTuning
 * status schema and the operator's /metrics labels. A module of its own so that the API layer can name them
 * without loading the simulator.
 */
export const CALIBRATION_METRICS = [
  'ttft_p50',
  'ttft_p90',
  'ttft_p99',
  'itl_p50',
  'itl_p90',
  'itl_p99',
  'e2e_p50',
  'e2e_p90',
  'output_tokens_per_s',
  'queued_mean',
] as const;
export type CalibrationMetric = (typeof CALIBRATION_METRICS)[number];
