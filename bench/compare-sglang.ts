/**
 * Compares the SGLang engine with the reference simulator's summaries of the full Mooncake conversation trace
 * (round robin, `trace_block_size` 512), stored in bench/reference/sglang_w{W}_bs{B}.json. They were recorded
 * with `run_trace_replay(trace, num_workers=W, router_mode="round_robin", trace_block_size=512,
 * extra_engine_args=json.dumps({"engine": {"backend": "sglang", "block_size": B}}))`.
 * Usage: sh hack/run.sh node bench/compare-sglang.ts [--trace FILE]
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { runSimulation } from '../src/config/run.ts';
import { SimulationConfigSchema } from '../src/config/schema.ts';
import { readTrace } from '../src/telemetry/trace/index.ts';

const { values } = parseArgs({
  options: { trace: { type: 'string', default: '../shared/data/traces/mooncake_conversation.jsonl' } },
});
if (!existsSync(values.trace)) {
  console.error(`compare-sglang: trace not found: ${values.trace}`);
  process.exit(2);
}
const { workload } = await readTrace(values.trace, { traceBlockSize: 512 });
const dir = new URL('./reference/', import.meta.url);
let worstAll = 0;
for (const file of readdirSync(dir).filter((f) => /^sglang_w\d+_bs\d+\.json$/.test(f))) {
  const [, w, bs] = file.match(/w(\d+)_bs(\d+)/) as RegExpMatchArray;
  const ref = JSON.parse(readFileSync(new URL(file, dir), 'utf8'));
  const config = SimulationConfigSchema.parse({
    workers: Number(w),
    engine: { engine: 'sglang', blockSize: Number(bs) },
    workload: { trace: values.trace, traceBlockSize: 512 },
  });
  const { report } = runSimulation(config, workload);
  const pairs: [string, number, number][] = [
    ['mean TTFT', report.ttft_ms.mean, ref.mean_ttft_ms],
    ['p99 TTFT', report.ttft_ms.p99, ref.p99_ttft_ms],
    ['mean TPOT', report.tpot_ms.mean, ref.mean_tpot_ms],
    ['mean ITL', report.itl_ms.mean, ref.mean_itl_ms],
    ['mean E2E', report.e2e_ms.mean, ref.mean_e2e_latency_ms],
    ['reuse', report.prefix_cache_reused_ratio, ref.prefix_cache_reused_ratio],
    ['duration', report.simulated_duration_s * 1000, ref.duration_ms],
    ['completed', report.completed_requests, ref.completed_requests],
    ['committed prefill', report.committed_prefill_tokens, ref.committed_prefill_tokens],
  ];
  let worst = 0;
  for (const [, a, b] of pairs) worst = Math.max(worst, Math.abs(a - b) / (Math.abs(b) || 1));
  worstAll = Math.max(worstAll, worst);
  console.log(
    `${w} workers, page ${bs}: worst relative difference ${worst.toExponential(2)} ` +
      `(mean TTFT ${report.ttft_ms.mean.toFixed(3)} vs ${ref.mean_ttft_ms.toFixed(3)} ms), wall ${report.wall_s.toFixed(2)} s`,
  );
}
process.exit(worstAll < 1e-9 ? 0 : 1);
