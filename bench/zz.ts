import { readFileSync } from 'node:fs';
import { SimulationConfigSchema } from '../src/sim/config.ts';
import { runSimulation } from '../src/sim/run.ts';
import { readMooncakeFile } from '../src/telemetry/mooncake-trace.ts';
const [w, bs] = [Number(process.argv[2]), Number(process.argv[3])];
const { workload } = await readMooncakeFile('/work/shared/data/traces/mooncake_conversation.jsonl', { traceBlockSize: 512 });
const config = SimulationConfigSchema.parse({ workers: w, engine: { engine: 'sglang', blockSize: bs }, workload: { trace: 'x', traceBlockSize: 512 } });
const { report } = runSimulation(config, workload);
const ref = JSON.parse(readFileSync(`/tmp/ref_sglang_w${w}_bs${bs}.json`, 'utf8'));
const pairs: [string, number, number][] = [
  ['mean_ttft', report.ttft_ms.mean, ref.mean_ttft_ms], ['p99_ttft', report.ttft_ms.p99, ref.p99_ttft_ms],
  ['mean_tpot', report.tpot_ms.mean, ref.mean_tpot_ms], ['mean_itl', report.itl_ms.mean, ref.mean_itl_ms],
  ['mean_e2e', report.e2e_ms.mean, ref.mean_e2e_latency_ms], ['reuse', report.prefix_cache_reused_ratio, ref.prefix_cache_reused_ratio],
  ['duration_ms', report.simulated_duration_s * 1000, ref.duration_ms], ['completed', report.completed_requests, ref.completed_requests],
  ['committed_prefill', report.committed_prefill_tokens, ref.committed_prefill_tokens],
];
for (const [k, a, b] of pairs) console.log(k.padEnd(18), a, b, ((a - b) / (Math.abs(b) || 1)).toExponential(2));
console.log('preemptions', report.preemptions, 'wall', report.wall_s);
