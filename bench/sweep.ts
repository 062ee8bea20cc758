/**
 * Sweep benchmark: a grid sweep of 200+ candidates over the full Mooncake conversation trace (12,031 requests,
 * 59 simulated minutes) on all cores, block size 512 (the trace's own block size), polynomial timing.
 * Prints candidates per minute, the best configuration and wall time; ends with one JSON line.
 * Usage: npm run bench:sweep [-- --trace FILE --threads N --gpus h100:16]
 */
import { existsSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { parseGpuBudget } from '../src/cli/sweep.ts';
import { parseSlos } from '../src/sweep/objective.ts';
import { SearchSpaceSchema } from '../src/sweep/space.ts';
import { runSweep } from '../src/sweep/sweep.ts';
import { readTrace } from '../src/telemetry/trace/index.ts';

const { values } = parseArgs({
  options: {
    trace: { type: 'string', default: '../shared/data/traces/mooncake_conversation.jsonl' },
    threads: { type: 'string' },
    gpus: { type: 'string', default: 'h100:16' },
    optimizer: { type: 'string', default: 'grid' },
  },
});
if (!existsSync(values.trace)) {
  console.error(`bench:sweep: trace not found: ${values.trace} (the benchmark reads ../shared/data)`);
  process.exit(2);
}
const { workload } = await readTrace(values.trace, { traceBlockSize: 512 });
const space = SearchSpaceSchema.parse({
  tensorParallel: [1, 2, 4, 8],
  workers: 'all',
  router: { modes: ['round-robin', 'kv'], overlapWeights: [0.5, 1, 2] },
  engine: { blockSize: [512], maxNumBatchedTokens: [4096, 8192] },
});
const t0 = performance.now();
let last = 0;
const result = await runSweep(
  {
    workload,
    space,
    budget: parseGpuBudget(values.gpus),
    objective: 'throughput_per_gpu',
    slos: parseSlos('ttft_p90=2000ms,itl_p90=50ms'),
    optimizer: values.optimizer as 'grid',
  },
  {
    threads: values.threads !== undefined ? Number(values.threads) : undefined,
    onProgress: (p) => {
      const now = performance.now();
      if (now - last > 10000 || p.done === p.planned) {
        console.error(`  ${p.done}/${p.planned} (${((now - t0) / 1000).toFixed(0)} s)`);
        last = now;
      }
    },
  },
);
const wall = (performance.now() - t0) / 1000;
const n = result.stats.evaluations;
const rec = result.recommended;
console.log(
  `trace              ${values.trace} (${workload.size} requests, ${(workload.arrivalMs[workload.size - 1] / 60000).toFixed(1)} min)`,
);
console.log(
  `space              TP 1,2,4,8 x workers 1..budget x router (round-robin, kv w=0.5,1,2) x max_num_batched_tokens 4096,8192; budget ${values.gpus}`,
);
console.log(
  `candidates         ${n} simulated on the full trace (${result.stats.enumerated} enumerated), ${result.stats.threads} threads`,
);
console.log(`wall               ${wall.toFixed(1)} s`);
console.log(`candidates/min     ${((n / wall) * 60).toFixed(0)}`);
console.log(
  `best               ${rec ? `${rec.label}: ${rec.metrics?.throughput_per_gpu.toFixed(1)} tok/s/GPU, TTFT p90 ${rec.metrics?.ttft.p90.toFixed(0)} ms, ITL p90 ${rec.metrics?.itl.p90.toFixed(2)} ms` : 'none feasible'}`,
);
console.log(
  JSON.stringify({
    candidates: n,
    wall_s: Number(wall.toFixed(2)),
    candidates_per_min: Math.round((n / wall) * 60),
  }),
);
