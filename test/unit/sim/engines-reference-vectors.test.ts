import { readFileSync } from 'node:fs';
import { describeGoldens, type Golden, goldenTiming, loadGoldens } from '../../support/golden.ts';
import { FIXTURES } from '../../support/sim.ts';

/**
 * Per-request agreement with the reference simulator of TensorRT-LLM workers, attention-data-parallel ranks
 * and MTP (deterministic acceptance rates), aggregated and disaggregated, on the vectors recorded in
 * test/fixtures/reference/golden-engines (`python hack/reference/record-engines-golden.py`, see the README).
 */
type EngineGolden = Golden & {
  dp_size: number;
  trace_sample_rows?: number;
  num_prefill_workers?: number;
  num_decode_workers?: number;
};

const sample = readFileSync(`${FIXTURES}traces/conversation-sample.jsonl`, 'utf8').split('\n');
const cases = (loadGoldens(`${FIXTURES}reference/golden-engines/`) as EngineGolden[]).map((g) =>
  g.trace_sample_rows === undefined
    ? g
    : { ...g, trace: sample.slice(0, g.trace_sample_rows).map((l) => JSON.parse(l) as object) },
);

function overrides(g: EngineGolden): Record<string, unknown> {
  const e = g.engine;
  const engine: Record<string, unknown> = { engine: e.backend ?? 'vllm' };
  if (e.block_size !== undefined) engine.blockSize = e.block_size;
  if (e.num_gpu_blocks !== undefined) engine.numGpuBlocks = e.num_gpu_blocks;
  if (e.aic_nextn !== undefined) {
    engine.nextn = e.aic_nextn;
    engine.nextnAcceptRates = e.aic_nextn_accept_rates;
  }
  const base = {
    engine,
    timing: goldenTiming(g),
    workload: { trace: 'inline', traceBlockSize: g.trace_block_size },
  };
  if (g.num_prefill_workers === undefined)
    return { ...base, workers: g.num_workers, dataParallelSize: g.dp_size };
  return {
    ...base,
    disaggregation: {
      prefill: { workers: g.num_prefill_workers },
      decode: { workers: g.num_decode_workers },
      kvBytesPerToken: e.kv_transfer_bytes_per_token,
      kvTransferGbps: e.kv_transfer_bandwidth,
      kvLink: 'per-transfer',
    },
  };
}

describeGoldens(
  'TRT-LLM, data-parallel ranks and MTP: agreement with the reference simulator (recorded vectors)',
  cases,
  overrides,
);
