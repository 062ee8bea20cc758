/**
 * Scale benchmark: a day of traffic in one run. Builds a trace of at least 1,000,000 requests from the
 * Mooncake conversation trace (copies one after another in time, each with hash ids of its own so no copy
 * shares a prefix with another), then replays it through 8 aggregated round-robin workers with the streaming
 * core, reading the file while simulating, as `servetune simulate --trace` does. Prints progress on stderr and
 * ends with one JSON line: requests, simulated_s, wall_s (reading and simulating), speedup (simulated /
 * wall), peak_rss_mb (the process's maximum resident set), and cpu_s and load_avg (the CPU time the process
 * got, and the machine's load: on a shared machine the wall time says as much about the neighbours).
 * Targets on the 2-vCPU development machine: peak RSS at most 1,024 MB, at least 10,000x real time.
 *
 * Usage: npm run bench:scale [-- --requests N --block-size B --trace FILE --keep]
 * The built trace is cached in the OS temporary directory (reused while its size matches) unless --keep is
 * absent and it was built by this run, in which case it is removed at the end.
 */

import { once } from 'node:events';
import { createWriteStream, existsSync, readFileSync, rmSync, statSync } from 'node:fs';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { finished } from 'node:stream/promises';
import { parseArgs } from 'node:util';
import { toSimulationOptions } from '../src/config/run.ts';
import { SimulationConfigSchema } from '../src/config/schema.ts';
import { buildReport } from '../src/sim/metrics/report.ts';
import { replayTrace } from '../src/telemetry/trace/index.ts';

const { values } = parseArgs({
  options: {
    trace: { type: 'string', default: '../shared/data/traces/mooncake_conversation.jsonl' },
    requests: { type: 'string', default: '1000000' },
    // The Mooncake trace's own granularity, as bench:sim's headline case (64, the CLI default, costs ~3x).
    'block-size': { type: 'string', default: '512' },
    keep: { type: 'boolean', default: false },
  },
});
if (!existsSync(values.trace)) {
  console.error(`bench:scale: trace not found: ${values.trace} (the benchmark reads ../shared/data)`);
  process.exit(2);
}
const wanted = Number(values.requests);
const blockSize = Number(values['block-size']);
if (!Number.isInteger(wanted) || wanted < 1 || wanted > 50_000_000) {
  console.error('bench:scale: --requests must be an integer in [1, 50000000]');
  process.exit(2);
}

interface Row {
  timestamp: number;
  input_length: number;
  output_length: number;
  hash_ids: number[];
}
const rows = readFileSync(values.trace, 'utf8')
  .split('\n')
  .filter((l) => l.trim() !== '')
  .map((l) => JSON.parse(l) as Row);
let maxId = 0;
let lastTs = 0;
for (const r of rows) {
  for (const h of r.hash_ids) if (h > maxId) maxId = h;
  if (r.timestamp > lastTs) lastTs = r.timestamp;
}
const copies = Math.ceil(wanted / rows.length);
const requests = Math.min(wanted, copies * rows.length);
// Each copy starts one mean gap after the previous copy's last request.
const period = lastTs + Math.round(lastTs / rows.length);
const idStride = maxId + 1;

const path = join(tmpdir(), `servetune-scale-${rows.length}x${copies}-${requests}.jsonl`);
const built = !existsSync(path);
const tBuild = performance.now();
if (built) {
  const out = createWriteStream(path, { highWaterMark: 1 << 20 });
  let written = 0;
  for (let c = 0; c < copies && written < requests; c++) {
    let chunk = '';
    for (const r of rows) {
      if (written++ >= requests) break;
      const shift = c * idStride;
      chunk += `{"timestamp":${r.timestamp + c * period},"input_length":${r.input_length},"output_length":${r.output_length},"hash_ids":[${r.hash_ids.map((h) => h + shift).join(',')}]}\n`;
      if (chunk.length > 1 << 20) {
        if (!out.write(chunk)) await once(out, 'drain');
        chunk = '';
      }
    }
    if (chunk !== '' && !out.write(chunk)) await once(out, 'drain');
  }
  out.end();
  await finished(out);
}
const bytes = statSync(path).size;
console.error(
  `bench:scale: ${requests.toLocaleString('en-US')} requests (${copies} copies of ${rows.length.toLocaleString('en-US')}), ` +
    `${(bytes / 2 ** 20).toFixed(0)} MiB at ${path}${built ? ` (built in ${((performance.now() - tBuild) / 1000).toFixed(1)} s)` : ' (cached)'}`,
);

const config = SimulationConfigSchema.parse({
  workload: { trace: path, traceBlockSize: 512 },
  workers: 8,
  router: { mode: 'round-robin' },
  engine: { blockSize },
});
let lastReport = 0;
const t0 = performance.now();
const cpu0 = process.cpuUsage();
const replay = await replayTrace(path, { traceBlockSize: 512 }, toSimulationOptions(config), {
  onProgress: (p) => {
    const now = performance.now();
    if (now - lastReport < 5000) return;
    lastReport = now;
    const wall = (now - t0) / 1000;
    console.error(
      `progress: simulated ${(p.simulatedMs / 3.6e6).toFixed(1)} h, ${p.done.toLocaleString('en-US')} requests done ` +
        `(${p.inFlight} in flight), ${Math.round(p.simulatedMs / 1000 / wall).toLocaleString('en-US')}x real time, ` +
        `RSS ${(process.memoryUsage().rss / 2 ** 20).toFixed(0)} MB`,
    );
  },
});
const wallS = (performance.now() - t0) / 1000;
const cpu = process.cpuUsage(cpu0);
const cpuS = (cpu.user + cpu.system) / 1e6;
const report = buildReport(replay.result, wallS * 1000);
if (built && !values.keep) rmSync(path, { force: true });
const peakRssMb = Math.round(process.resourceUsage().maxRSS / 1024);
const simulatedS = report.simulated_duration_s;
console.log(
  `requests      ${report.num_requests.toLocaleString('en-US')} (${report.completed_requests.toLocaleString('en-US')} completed)`,
);
console.log(`simulated     ${simulatedS.toFixed(0)} s (${(simulatedS / 3600).toFixed(1)} h)`);
console.log(`wall          ${wallS.toFixed(2)} s (reading and simulating; block size ${blockSize})`);
console.log(`speed-up      ${Math.round(simulatedS / wallS).toLocaleString('en-US')}x real time`);
console.log(`peak RSS      ${peakRssMb} MB`);
// Other processes share the machine: the CPU time this process got tells the speed apart from contention.
console.log(
  `CPU time      ${cpuS.toFixed(2)} s (${Math.round(simulatedS / cpuS).toLocaleString('en-US')}x real time per CPU second; load average ${loadavg()[0].toFixed(1)} on ${availableParallelism()} CPUs)`,
);
console.log(
  JSON.stringify({
    requests: report.num_requests,
    simulated_s: Number(simulatedS.toFixed(1)),
    wall_s: Number(wallS.toFixed(3)),
    speedup: Math.round(simulatedS / wallS),
    peak_rss_mb: peakRssMb,
    cpu_s: Number(cpuS.toFixed(3)),
    load_avg: Number(loadavg()[0].toFixed(2)),
  }),
);
