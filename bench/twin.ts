/**
 * Twin benchmark: how large a simulated fleet, at how many requests per second, one core serves in real time
 * while serving metrics.
 *
 * Each probe runs an in-process twin (time scale 1: one simulated second per second) with W aggregated
 * workers (round-robin, block 64, polynomial timing) replaying the Mooncake conversation trace in a loop, its
 * arrivals sped up so that each worker is offered `--per-worker` requests per second (near what one worker
 * serves of this trace, so the fleet is busy but not drowning), while a scraper fetches /metrics every second
 * as Prometheus would. A probe keeps up when the simulation is never more than `--max-lag-ms` behind the
 * clock. The fleet doubles from 8 workers until a probe falls behind. Printed per probe: workers, requests
 * finished per second, workers x requests/s, CPU time (user + system, the whole process) per 1,000 requests
 * and the worst lag; then the largest fleet that kept up, the check the issue asks for (the conversation
 * trace's own rate on 32 workers keeps up), and one JSON line.
 *
 * Usage: npm run bench:twin [-- --trace FILE --per-worker 0.25 --max-workers 4096 --probe-s 15 --max-lag-ms 250]
 */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { SimulationConfigSchema } from '../src/config/schema.ts';
import { readTrace } from '../src/telemetry/trace/index.ts';
import { startTwin } from '../src/twin/twin.ts';

const SAMPLE = fileURLToPath(new URL('../test/fixtures/traces/conversation-sample.jsonl', import.meta.url));
const { values } = parseArgs({
  options: {
    trace: { type: 'string', default: '../shared/data/traces/mooncake_conversation.jsonl' },
    'per-worker': { type: 'string', default: '0.25' },
    'max-workers': { type: 'string', default: '4096' },
    'probe-s': { type: 'string', default: '15' },
    'max-lag-ms': { type: 'string', default: '250' },
  },
});
const trace = existsSync(values.trace) ? values.trace : SAMPLE;
if (trace !== values.trace) console.error(`bench:twin: ${values.trace} not found; using the bundled sample`);
const probeMs = Number(values['probe-s']) * 1000;
const maxLagMs = Number(values['max-lag-ms']);
const perWorker = Number(values['per-worker']);
const maxWorkers = Number(values['max-workers']);

const { workload } = await readTrace(trace);
let lastArrival = 0;
for (const a of workload.arrivalMs) if (a > lastArrival) lastArrival = a;
const traceRate = workload.size / (lastArrival / 1000);
console.log(`trace ${trace}: ${workload.size} requests, ${traceRate.toFixed(2)} req/s`);

interface Probe {
  workers: number;
  speedup: number;
  rps: number;
  finished: number;
  cpuMsPer1k: number;
  maxLagMs: number;
  ok: boolean;
}

async function probe(workers: number, speedup: number): Promise<Probe> {
  const config = SimulationConfigSchema.parse({
    workers,
    engine: { blockSize: 64 },
    router: { mode: 'round-robin' },
    workload: { trace, arrivalSpeedupRatio: speedup },
  });
  const twin = await startTwin({
    config,
    port: 0,
    host: '127.0.0.1',
    trace: { path: trace, loop: true, speedup },
  });
  let scrapes = 0;
  const scraper = setInterval(() => {
    fetch(`${twin.url}/metrics`)
      .then((r) => r.text())
      .then(() => scrapes++)
      .catch(() => {});
  }, 1000);
  // Warm-up (the JIT, the first arrivals), then the measured window.
  await new Promise((r) => setTimeout(r, Math.min(3000, probeMs / 3)));
  const done0 = twin.runtime.ended.finished;
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  twin.runtime.maxLagMs = 0;
  await new Promise((r) => setTimeout(r, probeMs));
  const wallS = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  const finished = twin.runtime.ended.finished - done0;
  const lag = Math.max(twin.runtime.maxLagMs, twin.runtime.clock.now() - twin.sim.now);
  clearInterval(scraper);
  await twin.stop(0);
  return {
    workers,
    speedup,
    rps: finished / wallS,
    finished,
    cpuMsPer1k: finished > 0 ? ((cpu.user + cpu.system) / 1000 / finished) * 1000 : Number.NaN,
    maxLagMs: lag,
    ok: lag <= maxLagMs && scrapes > 0,
  };
}

const rows: Probe[] = [];
const line = (p: Probe) =>
  `${String(p.workers).padStart(7)}  ${p.rps.toFixed(1).padStart(7)}  ${(p.workers * p.rps).toFixed(0).padStart(15)}  ${p.cpuMsPer1k.toFixed(0).padStart(20)}  ${p.maxLagMs.toFixed(0).padStart(10)}${p.ok ? '' : '  (fell behind)'}`;
console.log(
  `\nprobes of ${probeMs / 1000} s, ${perWorker} req/s offered per worker, metrics scraped every second:`,
);
console.log('workers    req/s  workers x req/s  CPU ms / 1k requests  max lag ms');
for (let workers = 8; workers <= maxWorkers; workers *= 2) {
  const p = await probe(workers, (workers * perWorker) / traceRate);
  console.log(line(p));
  rows.push(p);
  if (!p.ok) break;
}
const best = rows.filter((r) => r.ok).at(-1);
console.log(
  best
    ? `\nlargest fleet kept in real time on one core: ${best.workers} workers at ${best.rps.toFixed(1)} req/s (${Math.round(best.workers * best.rps)} worker-requests/s), ${best.cpuMsPer1k.toFixed(0)} ms CPU per 1,000 requests`
    : '\nno fleet kept up',
);
const check = await probe(32, 1);
console.log(
  `\nconversation trace rate (${traceRate.toFixed(2)} req/s) on 32 workers: ${check.ok ? 'keeps up' : 'FALLS BEHIND'} (max lag ${check.maxLagMs.toFixed(0)} ms)`,
);
console.log(
  JSON.stringify({
    trace,
    probe_s: probeMs / 1000,
    max_lag_ms: maxLagMs,
    per_worker_rps: perWorker,
    probes: rows.map((r) => ({
      workers: r.workers,
      requests_per_s: Number(r.rps.toFixed(2)),
      worker_requests_per_s: Math.round(r.workers * r.rps),
      cpu_ms_per_1k_requests: Math.round(r.cpuMsPer1k),
      max_lag_ms: Math.round(r.maxLagMs),
      kept_up: r.ok,
    })),
    largest_fleet: best ? { workers: best.workers, requests_per_s: Number(best.rps.toFixed(2)) } : null,
    conversation_rate_32_workers_keeps_up: check.ok,
  }),
);
process.exit(check.ok ? 0 : 1);
