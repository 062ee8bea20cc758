/**
 * The Planner experiments of docs/planner.md: on the Mooncake conversation trace (arrivals 4x faster, so the
 * fleet has to grow from 2 workers to about 8), sweep the load adjustment interval (1 s to 300 s) and the
 * startup time of new workers (0 s to 300 s), and plot p90 TTFT, scaling events and GPU-hours held against
 * each, as SVG charts. Prints the tables the page quotes and writes the raw numbers as JSON.
 *
 * Usage: npm run experiments:planner [-- --trace FILE --out DIR --quick]
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { parse as parseYaml } from 'yaml';
import { runSimulation } from '../src/config/run.ts';
import { SimulationConfigSchema } from '../src/config/schema.ts';
import type { SimulationReport } from '../src/sim/metrics/report.ts';
import { readTrace } from '../src/telemetry/trace/index.ts';
import { type Chart, renderChart, type Series } from './svg-chart.ts';

const { values } = parseArgs({
  options: {
    trace: { type: 'string', default: '../shared/data/traces/mooncake_conversation.jsonl' },
    out: { type: 'string', default: 'docs/planner' },
    quick: { type: 'boolean', default: false },
  },
});
if (!existsSync(values.trace)) {
  console.error(`experiments:planner: trace not found: ${values.trace} (pass --trace FILE)`);
  process.exit(2);
}

const SPEEDUP = 4;
const planner = (file: string): Record<string, unknown> =>
  parseYaml(readFileSync(join(values.out, file), 'utf8')) as Record<string, unknown>;
const loadOnly = planner('sla-load.yaml');
const bothLoops = planner('sla-load-throughput.yaml');

const t0 = performance.now();
const { workload } = await readTrace(values.trace, { traceBlockSize: 512 });

interface Point {
  x: number;
  ttft_p50_s: number;
  ttft_p90_s: number;
  ttft_p99_s: number;
  itl_p90_ms: number;
  scaling_events: number;
  up: number;
  down: number;
  gpu_hours: number;
  mean_ready_workers: number;
  peak_gpus: number;
  slo_attainment: number;
  duration_s: number;
}

function run(
  workers: number,
  plannerSettings: Record<string, unknown>,
  startupTimeS: number,
  x: number,
): Point {
  const config = SimulationConfigSchema.parse({
    workers,
    planner: plannerSettings,
    startupTimeS,
    workload: { trace: values.trace, traceBlockSize: 512, arrivalSpeedupRatio: SPEEDUP },
  });
  const r: SimulationReport = runSimulation(config, workload).report;
  const p = r.planner as NonNullable<SimulationReport['planner']>;
  const ev = r.scaling_events as NonNullable<SimulationReport['scaling_events']>;
  return {
    x,
    ttft_p50_s: r.ttft_ms.p50 / 1000,
    ttft_p90_s: r.ttft_ms.p90 / 1000,
    ttft_p99_s: r.ttft_ms.p99 / 1000,
    itl_p90_ms: r.itl_ms.p90,
    scaling_events: ev.total,
    up: ev.up,
    down: ev.down,
    gpu_hours: r.gpu_hours,
    mean_ready_workers: p.mean_active_replicas.aggregated,
    peak_gpus: p.peak_gpus_held,
    slo_attainment: p.slo_attainment.fraction,
    duration_s: r.simulated_duration_s,
  };
}

/** Static fleets for reference: what a fixed size costs and delivers. */
function fixed(workers: number): Point {
  const config = SimulationConfigSchema.parse({
    workers,
    workload: { trace: values.trace, traceBlockSize: 512, arrivalSpeedupRatio: SPEEDUP },
  });
  const r = runSimulation(config, workload).report;
  return {
    x: workers,
    ttft_p50_s: r.ttft_ms.p50 / 1000,
    ttft_p90_s: r.ttft_ms.p90 / 1000,
    ttft_p99_s: r.ttft_ms.p99 / 1000,
    itl_p90_ms: r.itl_ms.p90,
    scaling_events: 0,
    up: 0,
    down: 0,
    gpu_hours: r.gpu_hours,
    mean_ready_workers: workers,
    peak_gpus: workers,
    slo_attainment: Number.NaN,
    duration_s: r.simulated_duration_s,
  };
}

const intervals = values.quick ? [1, 5, 30, 300] : [1, 2, 5, 10, 20, 30, 60, 120, 300];
const startups = values.quick ? [0, 30, 120, 300] : [0, 10, 20, 30, 45, 60, 90, 120, 180, 240, 300];

const log = (s: string) => process.stderr.write(`${s}\n`);
log(`experiments:planner: ${workload.size} requests, arrivals x${SPEEDUP}`);
const intervalSweep = intervals.map((li) => {
  log(`  load interval ${li} s`);
  return run(2, { ...loadOnly, load_adjustment_interval_seconds: li }, 0, li);
});
const startupFrom2 = startups.map((st) => {
  log(`  startup ${st} s, from 2 workers`);
  return run(2, bothLoops, st, st);
});
const startupFrom6 = startups.map((st) => {
  log(`  startup ${st} s, from 6 workers`);
  return run(6, bothLoops, st, st);
});
const statics = (values.quick ? [8] : [2, 4, 6, 8, 12]).map((w) => {
  log(`  fixed ${w} workers`);
  return fixed(w);
});

const blue = '#1f77b4';
const orange = '#ff7f0e';
const green = '#2ca02c';
const pts = (ps: Point[], k: keyof Point): [number, number][] => ps.map((p) => [p.x, p[k] as number]);
const fixed8 = statics.find((p) => p.x === 8);

const intervalChart: Chart = {
  title: `Load adjustment interval (conversation trace x${SPEEDUP}, 2 workers at start, startup 0 s)`,
  xLabel: 'load_adjustment_interval_seconds (s, log scale)',
  xLog: true,
  xTicks: [1, 2, 5, 10, 20, 30, 60, 120, 300],
  panels: [
    {
      yLabel: 'p90 TTFT (s, log)',
      yLog: true,
      reference: { y: 2, label: 'TTFT target 2 s' },
      series: [{ name: 'SLA planner', color: blue, points: pts(intervalSweep, 'ttft_p90_s') }],
    },
    {
      yLabel: 'scaling events (log)',
      yLog: true,
      series: [{ name: 'up + down', color: orange, points: pts(intervalSweep, 'scaling_events') }],
    },
    {
      yLabel: 'GPU-hours held',
      series: [
        { name: 'SLA planner', color: green, points: pts(intervalSweep, 'gpu_hours') },
        ...(fixed8
          ? [
              {
                name: '8 fixed workers',
                color: '#777777',
                dashed: true,
                points: intervals.map((x) => [x, fixed8.gpu_hours] as [number, number]),
              },
            ]
          : []),
      ],
    },
  ],
};
const both = (k: keyof Point): Series[] => [
  { name: 'from 2 workers', color: blue, points: pts(startupFrom2, k) },
  { name: 'from 6 workers', color: orange, points: pts(startupFrom6, k) },
];
const startupChart: Chart = {
  title: `Worker startup time (conversation trace x${SPEEDUP}, load 5 s + throughput 180 s)`,
  xLabel: 'startup time of a new worker (s)',
  xTicks: [0, 30, 60, 90, 120, 180, 240, 300],
  panels: [
    {
      yLabel: 'p90 TTFT (s, log)',
      yLog: true,
      reference: { y: 2, label: 'TTFT target 2 s' },
      series: both('ttft_p90_s'),
    },
    { yLabel: 'scaling events', series: both('scaling_events') },
    { yLabel: 'GPU-hours held', series: both('gpu_hours') },
  ],
};

mkdirSync(values.out, { recursive: true });
writeFileSync(join(values.out, 'interval-sweep.svg'), renderChart(intervalChart));
writeFileSync(join(values.out, 'startup-sweep.svg'), renderChart(startupChart));
writeFileSync(
  join(values.out, 'results.json'),
  `${JSON.stringify({ trace: values.trace, arrival_speedup: SPEEDUP, intervalSweep, startupFrom2, startupFrom6, statics }, null, 2)}\n`,
);

const f = (v: number, d = 2) => (Number.isFinite(v) ? v.toFixed(d) : '-');
const table = (head: string, ps: Point[]) =>
  [
    `| ${head} | p50 TTFT (s) | p90 TTFT (s) | p99 TTFT (s) | p90 ITL (ms) | events (up/down) | GPU-hours | mean ready workers | peak GPUs | within SLO |`,
    '|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
    ...ps.map(
      (p) =>
        `| ${p.x} | ${f(p.ttft_p50_s)} | ${f(p.ttft_p90_s)} | ${f(p.ttft_p99_s)} | ${f(p.itl_p90_ms, 1)} | ${p.scaling_events} (${p.up}/${p.down}) | ${f(p.gpu_hours)} | ${f(p.mean_ready_workers, 1)} | ${p.peak_gpus} | ${f(p.slo_attainment * 100, 1)}% |`,
    ),
  ].join('\n');
console.log('### Load adjustment interval (load scaling only, startup 0 s, 2 workers at start)\n');
console.log(table('interval (s)', intervalSweep));
console.log('\n### Startup time, 2 workers at start\n');
console.log(table('startup (s)', startupFrom2));
console.log('\n### Startup time, 6 workers at start\n');
console.log(table('startup (s)', startupFrom6));
console.log('\n### Fixed fleets (no planner)\n');
console.log(table('workers', statics));
log(
  `experiments:planner: done in ${((performance.now() - t0) / 1000).toFixed(0)} s; charts in ${values.out}`,
);
