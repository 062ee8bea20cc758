/**
 * Simulator-core benchmark: replays the full Mooncake conversation trace (12,031 requests, 59 simulated
 * minutes) and prints speed figures per case:
 *   - aggregated: 8 round-robin workers, polynomial timing, block size 512 (the headline case);
 *   - disaggregated: 3 prefill + 5 decode workers, KV router, 64 GB/s KV transfer;
 *   - sglang: the SGLang scheduler on 8 round-robin workers, 64-token pages;
 *   - trtllm: TensorRT-LLM (GUARANTEED_NO_EVICT admission) on 8 round-robin workers, block 32 (its default);
 *   - dp: 4 workers of 2 attention-data-parallel ranks each, round robin, block 64 (ranks run the plain path);
 *   - planner: the aggregated case under Dynamo's Planner (SLA target, load every 5 s, throughput every
 *     180 s, 60 s startup), which profiles one worker, ticks 700 times and scales the fleet;
 *   - further cases registered in CASES (e.g. other engines).
 * Ends with one JSON line: the headline case's figures plus every case's speed-up.
 * Usage: npm run bench:sim [-- --trace FILE --repeat K --case NAME --no-coalesce]
 */
import { existsSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { runSimulation } from '../src/config/run.ts';
import { SimulationConfigSchema } from '../src/config/schema.ts';
import { readTrace } from '../src/telemetry/trace/index.ts';

const { values } = parseArgs({
  options: {
    trace: { type: 'string', default: '../shared/data/traces/mooncake_conversation.jsonl' },
    repeat: { type: 'string', default: '5' },
    case: { type: 'string', multiple: true },
    'no-coalesce': { type: 'boolean', default: false },
  },
});
if (!existsSync(values.trace)) {
  console.error(`bench:sim: trace not found: ${values.trace} (the benchmark reads ../shared/data)`);
  process.exit(2);
}

const CASES: Record<string, { label: string; config: Record<string, unknown> }> = {
  aggregated: {
    label: '8 aggregated workers, round-robin, block 512',
    config: { workers: 8, engine: { blockSize: 512 }, router: { mode: 'round-robin' } },
  },
  disaggregated: {
    label: '3 prefill + 5 decode workers, KV router, block 512',
    config: {
      engine: { blockSize: 512 },
      router: { mode: 'kv' },
      disaggregation: { prefill: { workers: 3 }, decode: { workers: 5 }, kvTransferGbps: 64 },
    },
  },
  sglang: {
    label: 'SGLang scheduler, 8 workers, round-robin, 64-token pages',
    config: { workers: 8, engine: { engine: 'sglang', blockSize: 64 }, router: { mode: 'round-robin' } },
  },
  trtllm: {
    label: 'TRT-LLM scheduler, 8 workers, round-robin, block 32',
    config: { workers: 8, engine: { engine: 'trtllm' }, router: { mode: 'round-robin' } },
  },
  dp: {
    label: '4 workers x 2 attention-DP ranks, round-robin, block 64',
    config: {
      workers: 4,
      dataParallelSize: 2,
      engine: { blockSize: 64 },
      router: { mode: 'round-robin' },
    },
  },
  planner: {
    label: '8 aggregated workers at start under the SLA Planner (load 5 s + throughput 180 s), block 512',
    config: {
      workers: 8,
      engine: { blockSize: 512 },
      router: { mode: 'round-robin' },
      planner: {
        optimization_target: 'sla',
        enable_load_scaling: true,
        ttft_ms: 2000,
        itl_ms: 50,
        max_gpu_budget: 16,
      },
      startupTimeS: 60,
    },
  },
};

const selected = values.case ?? Object.keys(CASES);
for (const name of selected) {
  if (!CASES[name]) {
    console.error(`bench:sim: unknown case '${name}' (known: ${Object.keys(CASES).join(', ')})`);
    process.exit(2);
  }
}

const t0 = performance.now();
const { workload } = await readTrace(values.trace, { traceBlockSize: 512 });
const loadMs = performance.now() - t0;
console.log(
  `trace   ${values.trace}: ${workload.size} requests, loaded in ${(loadMs / 1000).toFixed(3)} s; polynomial timing; median of ${values.repeat} runs after a warm-up`,
);
const repeat = Number(values.repeat);
const results: Record<
  string,
  { wall: number; sim: number; completed: number; passes: number; events: number }
> = {};
for (const name of selected) {
  const config = SimulationConfigSchema.parse({
    ...CASES[name].config,
    workload: { trace: values.trace, traceBlockSize: 512 },
    coalesceDecode: !values['no-coalesce'],
  });
  let report = runSimulation(config, workload).report; // warm-up
  const walls: number[] = [];
  for (let i = 0; i < repeat; i++) {
    report = runSimulation(config, workload).report;
    walls.push(report.wall_s);
  }
  walls.sort((a, b) => a - b);
  const wall = walls[Math.floor(walls.length / 2)];
  const sim = report.simulated_duration_s;
  results[name] = {
    wall,
    sim,
    completed: report.completed_requests,
    passes: report.simulator.passes,
    events: report.simulator.loop_steps + workload.size,
  };
  console.log('');
  console.log(`case ${name}: ${CASES[name].label}`);
  console.log(
    `  wall        ${wall.toFixed(4)} s  [min ${walls[0].toFixed(4)}, max ${walls[walls.length - 1].toFixed(4)}]`,
  );
  console.log(`  simulated   ${sim.toFixed(1)} s`);
  console.log(`  speed-up    ${(sim / wall).toFixed(0)}x real time`);
  console.log(`  requests/s  ${(report.completed_requests / wall).toFixed(0)}`);
  console.log(
    `  events/s    ${(results[name].events / wall).toFixed(0)} (${results[name].events} loop steps + arrivals; ${report.simulator.passes} forward passes, ${(report.simulator.passes / wall).toFixed(0)}/s)`,
  );
  console.log(
    `  check       ttft mean ${report.ttft_ms.mean.toFixed(2)} ms, tpot mean ${report.tpot_ms.mean.toFixed(3)} ms, reuse ${report.prefix_cache_reused_ratio.toFixed(4)}`,
  );
  if (report.planner && report.scaling_events) {
    console.log(
      `  planner     ${report.planner.ticks} ticks, ${report.scaling_events.total} scaling events, ${report.gpu_hours.toFixed(2)} GPU-hours held`,
    );
  }
}
const rss = process.resourceUsage().maxRSS / 1024;
console.log('');
console.log(`peak RSS ${rss.toFixed(0)} MB`);
const head = results.aggregated ?? results[selected[0]];
console.log(
  JSON.stringify({
    wall_s: Number(head.wall.toFixed(4)),
    simulated_s: Number(head.sim.toFixed(2)),
    speedup: Math.round(head.sim / head.wall),
    requests_per_s: Math.round(head.completed / head.wall),
    peak_rss_mb: Math.round(rss),
    cases: Object.fromEntries(
      Object.entries(results).map(([k, v]) => [
        k,
        { speedup: Math.round(v.sim / v.wall), wall_s: Number(v.wall.toFixed(4)) },
      ]),
    ),
  }),
);
