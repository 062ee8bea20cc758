/**
 * One retuning cycle as the operator runs it, for the sample DeploymentTuning (config/samples/): read a one-hour
 * window of traffic, read the baseline from the sample DynamoGraphDeployment, sweep its search space on 2
 * threads (the sweep job the operator runs in its worker thread, prediction intervals and transition cost
 * included), and decide whether to propose. Prints the steps' times and ends with one JSON line with
 * `seconds` and `candidates` (plus `cpu_s` and `load_avg`). Target: under 60 s on the 2-vCPU CI machine.
 * With `--planner JSON`, the sample DGD gets a Planner component with that `--config` (e.g.
 * '{"mode":"agg","optimization_target":"throughput","min_endpoint":4,"max_gpu_budget":12}'): the cycle of a
 * Planner-managed deployment, priced under its Planner with its bounds as the knobs.
 * Usage: npm run bench:retune [-- --trace FILE --threads N --gpus 16 --planner JSON]
 */
import { existsSync, readFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import { parse } from 'yaml';
import { DeploymentTuningSpecSchema } from '../src/api/index.ts';
import { runSweepJobInline } from '../src/operator/sweep/job.ts';
import { plannerSummary } from '../src/operator/sweep/mapping.ts';
import { readDynamoBaseline } from '../src/operator/target/dynamo.ts';
import { decideProposal } from '../src/operator/tuning/policy.ts';

const { values } = parseArgs({
  options: {
    trace: { type: 'string', default: '../shared/data/traces/mooncake_conversation.jsonl' },
    threads: { type: 'string', default: '2' },
    gpus: { type: 'string', default: '16' },
    planner: { type: 'string' },
  },
});
if (!existsSync(values.trace)) {
  console.error(`bench:retune: trace not found: ${values.trace} (the benchmark reads ../shared/data)`);
  process.exit(2);
}
const t0 = performance.now();
const dt = parse(readFileSync('config/samples/deploymenttuning.yaml', 'utf8')) as { spec: unknown };
const spec = DeploymentTuningSpecSchema.parse(dt.spec);
const dgd = parse(readFileSync('config/samples/dynamographdeployment.yaml', 'utf8'));
if (values.planner !== undefined) {
  dgd.spec.services.Planner = {
    componentType: 'planner',
    replicas: 1,
    extraPodSpec: { mainContainer: { args: ['python3 -m dynamo.planner', '--config', values.planner] } },
  };
}
const base = readDynamoBaseline(dgd, ['h100_sxm']);
if ('error' in base) throw new Error(base.error);
const traceBytes = readFileSync(values.trace);
const tRead = performance.now();
const result = await runSweepJobInline({
  traceText: traceBytes,
  source: values.trace,
  traceBlockSize: spec.workload.traceBlockSize,
  lookbackMs: 3_600_000, // one hour, whatever the sample's own lookback
  baseline: { ...base.settings, ...(spec.model && { model: spec.model }) },
  spec: { objective: spec.objective, slos: spec.slos, searchSpace: spec.searchSpace },
  budget: { h100_sxm: Number(values.gpus) },
  threads: Number(values.threads),
  rollout: { maxGpusChanging: spec.updatePolicy.maxGPUsChanging },
});
const tSweep = performance.now();
const decision = decideProposal({
  best: result.best,
  baseline: base.settings,
  baselineMeetsSlos: result.baseline.meetsSlos,
  gainPercent: result.gainPercent,
  gainPercentLow: result.gainPercentLow,
  objective: spec.objective,
  guardrails: spec.guardrails,
  completedTime: new Date().toISOString(),
});
const seconds = (performance.now() - t0) / 1000;
const cpu = process.cpuUsage();
console.log(
  `window       ${result.summary.requests} requests, ${result.summary.requestRate} req/s (${values.trace})`,
);
console.log(
  `baseline     ${base.settings.gpus} GPUs${base.settings.planner.enabled ? `, ${plannerSummary(base.settings.planner)}` : ''}; read in ${((tRead - t0) / 1000).toFixed(2)} s`,
);
console.log(
  `sweep        ${result.candidates} candidates (${result.feasible} feasible) in ${((tSweep - tRead) / 1000).toFixed(1)} s on ${values.threads} threads`,
);
console.log(`decision     ${decision.outcome}: ${decision.message}`);
if (result.best) {
  console.log(
    `proposal     ${result.best.settings.gpus} GPUs${result.best.settings.planner.enabled ? `, ${plannerSummary(result.best.settings.planner)}` : ''}, gain ${result.gainPercent}% (at least ${result.gainPercentLow}% across sub-windows)`,
  );
}
const tr = result.transition;
if (tr) {
  const sim = tr.simulated;
  console.log(
    `transition   ${tr.workersStarting} cold start(s) of ${tr.coldStartSeconds} s, payback ${tr.paybackHours} h; ${
      sim
        ? `simulated: settled in ${sim.durationSeconds} s, TTFT p90 ${sim.ttftP90Ms.transition} ms (steady ${sim.ttftP90Ms.steady} ms) over ${sim.requests} requests, ${sim.queuedLonger} queued longer, prefix hits ${sim.prefixHitRate.transition} (steady ${sim.prefixHitRate.steady}), ${sim.sloMissSeconds ?? 0} s over twice the SLOs`
        : `not simulated: ${tr.notSimulated}`
    }`,
  );
}
console.log(
  JSON.stringify({
    seconds: Number(seconds.toFixed(2)),
    candidates: result.candidates,
    feasible: result.feasible,
    requests: result.summary.requests,
    outcome: decision.outcome,
    gainPercent: result.gainPercent,
    gainPercentLow: result.gainPercentLow,
    // The CPU the process got (every thread) and the machine's load: on a shared machine the wall time says as
    // much about the neighbours; cpu_s / threads is the wall time on an idle machine.
    cpu_s: Number((cpu.user / 1e6 + cpu.system / 1e6).toFixed(2)),
    load_avg: Number(loadavg()[0].toFixed(1)),
  }),
);
