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

/** The percentile metrics: which latency ('ttft' | 'itl' | 'e2e', as `${kind}_ms` in reports and profiles), which field, which quantile. */
export const PERCENTILE_METRICS: readonly [
  CalibrationMetric,
  'ttft' | 'itl' | 'e2e',
  'p50' | 'p90' | 'p99',
  number,
][] = [
  ['ttft_p50', 'ttft', 'p50', 0.5],
  ['ttft_p90', 'ttft', 'p90', 0.9],
  ['ttft_p99', 'ttft', 'p99', 0.99],
  ['itl_p50', 'itl', 'p50', 0.5],
  ['itl_p90', 'itl', 'p90', 0.9],
  ['itl_p99', 'itl', 'p99', 0.99],
  ['e2e_p50', 'e2e', 'p50', 0.5],
  ['e2e_p90', 'e2e', 'p90', 0.9],
];
