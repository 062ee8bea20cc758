import { Counter, Gauge, Histogram, Registry } from 'prom-client';

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
  readonly recommendations = new Gauge({
    name: 'servetune_recommendations',
    help: 'TuningRecommendations by state.',
    labelNames: ['state'],
    registers: [this.registry],
  });
}
