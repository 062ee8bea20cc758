/**
 * Simulator-core benchmark: replays the full Mooncake conversation trace (12,031 requests, 59 simulated
 * minutes) on 8 aggregated round-robin workers, polynomial timing, block size 512, and prints speed figures.
 * `--engine sglang` runs the SGLang scheduler instead (page size = block size, 64 unless given).
 * Ends with one JSON line.
 * Usage: npm run bench:sim [-- --trace FILE --workers N --repeat K --engine vllm|sglang --block-size B --no-coalesce]
 */
import { existsSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { SimulationConfigSchema } from '../src/sim/config.ts';
import { runSimulation } from '../src/sim/run.ts';
import { readMooncakeFile } from '../src/telemetry/mooncake-trace.ts';

const { values } = parseArgs({
  options: {
    trace: { type: 'string', default: '../shared/data/traces/mooncake_conversation.jsonl' },
    workers: { type: 'string', default: '8' },
    'block-size': { type: 'string' },
    engine: { type: 'string', default: 'vllm' },
    router: { type: 'string', default: 'round-robin' },
    repeat: { type: 'string', default: '5' },
    'no-coalesce': { type: 'boolean', default: false },
  },
});
if (!existsSync(values.trace)) {
  console.error(`bench:sim: trace not found: ${values.trace} (the benchmark reads ../shared/data)`);
  process.exit(2);
}
if (values.engine !== 'vllm' && values.engine !== 'sglang') {
  console.error(`bench:sim: --engine must be vllm or sglang`);
  process.exit(2);
}
const blockSize = Number(values['block-size'] ?? (values.engine === 'sglang' ? 64 : 512));
const config = SimulationConfigSchema.parse({
  workers: Number(values.workers),
  engine: { engine: values.engine, blockSize },
  router: { mode: values.router },
  workload: { trace: values.trace, traceBlockSize: 512 },
  coalesceDecode: !values['no-coalesce'],
});
const t0 = performance.now();
const { workload } = await readMooncakeFile(values.trace, { traceBlockSize: 512 });
const loadMs = performance.now() - t0;
const repeat = Number(values.repeat);
const walls: number[] = [];
let report = runSimulation(config, workload).report; // warm-up
for (let i = 0; i < repeat; i++) {
  report = runSimulation(config, workload).report;
  walls.push(report.wall_s);
}
walls.sort((a, b) => a - b);
const wall = walls[Math.floor(walls.length / 2)];
const sim = report.simulated_duration_s;
const events = report.simulator.loop_steps + workload.size;
const rss = process.resourceUsage().maxRSS / 1024;
console.log(
  `trace              ${values.trace} (${workload.size} requests, loaded in ${(loadMs / 1000).toFixed(3)} s)`,
);
console.log(
  `setup              ${config.engine.engine}, ${config.workers} workers, ${config.router.mode}, block ${config.engine.blockSize}, polynomial timing, coalesce ${config.coalesceDecode}`,
);
console.log(
  `wall (median of ${repeat})  ${wall.toFixed(4)} s   [min ${walls[0].toFixed(4)}, max ${walls[walls.length - 1].toFixed(4)}]`,
);
console.log(`simulated          ${sim.toFixed(1)} s`);
console.log(`speed-up           ${(sim / wall).toFixed(0)}x real time`);
console.log(`requests/s         ${(report.completed_requests / wall).toFixed(0)}`);
console.log(
  `events/s           ${(events / wall).toFixed(0)} (${events} loop steps + arrivals; ${report.simulator.passes} forward passes, ${(report.simulator.passes / wall).toFixed(0)}/s)`,
);
console.log(`peak RSS           ${rss.toFixed(0)} MB`);
console.log(
  `check              ttft mean ${report.ttft_ms.mean.toFixed(2)} ms, tpot mean ${report.tpot_ms.mean.toFixed(3)} ms, reuse ${report.prefix_cache_reused_ratio.toFixed(4)}`,
);
console.log(
  JSON.stringify({
    engine: config.engine.engine,
    wall_s: Number(wall.toFixed(4)),
    simulated_s: Number(sim.toFixed(2)),
    speedup: Math.round(sim / wall),
    requests_per_s: Math.round(report.completed_requests / wall),
    peak_rss_mb: Math.round(rss),
  }),
);
