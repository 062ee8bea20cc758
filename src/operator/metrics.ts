import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { CALIBRATION_METRICS } from '../telemetry/calibration/metrics.ts';
import { DRIFT_DIMENSIONS } from '../telemetry/drift/scores.ts';
import { TERMINAL_STATES } from './rollout/decide.ts';

/**
 * Operator metrics. Names mirror controller-runtime's and client-go's so standard dashboards work; the
 * servetune_* ones are the domain's. One registry per operator instance (tests run several in a process).
 */
export class OperatorMetrics {
  readonly registry = new Registry();
  readonly reconcileTotal = new Counter({
    name: 'controller_runtime_reconcile_total',
    help: 'Reconciles per controller and result.',
    labelNames: ['controller', 'result'],
    registers: [this.registry],
  });
  readonly reconcileErrors = new Counter({
    name: 'controller_runtime_reconcile_errors_total',
    help: 'Reconciles that returned an error.',
    labelNames: ['controller'],
    registers: [this.registry],
  });
  readonly reconcileTime = new Histogram({
    name: 'controller_runtime_reconcile_time_seconds',
    help: 'Time per reconcile.',
    labelNames: ['controller'],
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [this.registry],
  });
  readonly queueDepth = new Gauge({
    name: 'workqueue_depth',
    help: 'Keys waiting in the work queue.',
    labelNames: ['name'],
    registers: [this.registry],
  });
  readonly queueRetries = new Counter({
    name: 'workqueue_retries_total',
    help: 'Rate-limited requeues.',
    labelNames: ['name'],
    registers: [this.registry],
  });
  readonly leader = new Gauge({
    name: 'leader_election_master_status',
    help: '1 while this instance holds the lease.',
    labelNames: ['name'],
    registers: [this.registry],
  });
  readonly sweeps = new Counter({
    name: 'servetune_sweeps_total',
    help: 'Finished sweeps by outcome.',
    labelNames: ['outcome'],
    registers: [this.registry],
  });
  readonly sweepDuration = new Histogram({
    name: 'servetune_sweep_duration_seconds',
    help: 'Wall time of a sweep, trace loading included.',
    buckets: [0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800],
    registers: [this.registry],
  });
  readonly candidates = new Counter({
    name: 'servetune_sweep_candidates_evaluated_total',
    help: 'Candidate configurations simulated.',
    registers: [this.registry],
  });
  readonly activeSweeps = new Gauge({
    name: 'servetune_active_sweeps',
    help: 'Sweeps running now.',
    registers: [this.registry],
  });
  readonly rollouts = new Counter({
    name: 'servetune_rollouts_total',
    help: 'Rollouts of recommendations by how they ended (Verified, RolledBack, Failed, Rejected, Expired, Superseded).',
    labelNames: ['outcome'],
    registers: [this.registry],
  });
  readonly rolloutStateSeconds = new Histogram({
    name: 'servetune_rollout_state_seconds',
    help: 'Time a recommendation spent in a rollout state, observed when it leaves the state.',
    labelNames: ['state'],
    buckets: [1, 5, 15, 60, 300, 900, 3600, 4 * 3600, 24 * 3600, 7 * 24 * 3600],
    registers: [this.registry],
  });
  // Per DeploymentTuning (namespace, name): drift and live calibration, for the dashboard.
  readonly driftScore = new Gauge({
    name: 'servetune_drift_score',
    help: 'Latest drift score per dimension (0: unchanged; see servetune_drift_threshold).',
    labelNames: ['namespace', 'name', 'dimension'],
    registers: [this.registry],
  });
  readonly driftThreshold = new Gauge({
    name: 'servetune_drift_threshold',
    help: 'Score at which a drift dimension counts as moved.',
    labelNames: ['namespace', 'name', 'dimension'],
    registers: [this.registry],
  });
  readonly driftLevel = new Gauge({
    name: 'servetune_drift_level',
    help: 'Largest drift score over its threshold (1: at a threshold; a sweep follows after the dwell time).',
    labelNames: ['namespace', 'name'],
    registers: [this.registry],
  });
  readonly driftTriggers = new Counter({
    name: 'servetune_drift_triggers_total',
    help: 'Out-of-schedule sweeps triggered by workload drift.',
    labelNames: ['namespace', 'name'],
    registers: [this.registry],
  });
  readonly calibrationError = new Gauge({
    name: 'servetune_calibration_error_percent',
    help: "Simulator's error against the deployment's measurements (predicted / observed - 1, percent), before correction.",
    labelNames: ['namespace', 'name', 'metric'],
    registers: [this.registry],
  });
  readonly calibrationCorrectedError = new Gauge({
    name: 'servetune_calibration_corrected_error_percent',
    help: 'The same with the fitted correction.',
    labelNames: ['namespace', 'name', 'metric'],
    registers: [this.registry],
  });
  readonly calibrationCorrection = new Gauge({
    name: 'servetune_calibration_correction',
    help: 'Fitted scale of forward-pass time (part prefill or decode); 1 is none.',
    labelNames: ['namespace', 'name', 'part'],
    registers: [this.registry],
  });
  readonly predicted = new Gauge({
    name: 'servetune_predicted',
    help: "The simulator's prediction for the current settings over the last calibration window (ms for latencies).",
    labelNames: ['namespace', 'name', 'metric'],
    registers: [this.registry],
  });
  readonly observed = new Gauge({
    name: 'servetune_observed',
    help: 'What the deployment measured over the same window.',
    labelNames: ['namespace', 'name', 'metric'],
    registers: [this.registry],
  });
  readonly recommendations = new Gauge({
    name: 'servetune_recommendations',
    help: 'TuningRecommendations by state.',
    labelNames: ['state'],
    registers: [this.registry],
  });

  constructor() {
    // Every outcome exists from the start at 0, so a dashboard's rate over it is 0 before the first rollout,
    // not "no data" (which would hide a renamed metric too).
    for (const outcome of TERMINAL_STATES) this.rollouts.inc({ outcome }, 0);
  }

  /** Drops a deleted DeploymentTuning's series (every label value these gauges take). */
  forget(namespace: string, name: string): void {
    const both = { namespace, name };
    this.driftLevel.remove(both);
    this.driftTriggers.remove(both);
    for (const dimension of DRIFT_DIMENSIONS) {
      this.driftScore.remove({ ...both, dimension });
      this.driftThreshold.remove({ ...both, dimension });
    }
    for (const metric of CALIBRATION_METRICS) {
      for (const g of [this.calibrationError, this.calibrationCorrectedError, this.predicted, this.observed])
        g.remove({ ...both, metric });
    }
    for (const part of ['prefill', 'decode']) this.calibrationCorrection.remove({ ...both, part });
  }
}
