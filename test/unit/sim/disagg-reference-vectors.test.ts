import { describeGoldens, type Golden, goldenTiming, loadGoldens } from '../../support/golden.ts';
import { FIXTURES } from '../../support/sim.ts';

/**
 * Per-request agreement of disaggregated serving with the reference simulator on the vectors recorded in
 * test/fixtures/reference/golden-disagg (`python hack/reference/record-disagg-golden.py`, see the README
 * there). The reference gives every KV transfer the full bandwidth, so these run with
 * `kvLink: 'per-transfer'`.
 */
const cases = loadGoldens(`${FIXTURES}reference/golden-disagg/`) as (Golden & {
  num_prefill_workers: number;
  num_decode_workers: number;
})[];

function overrides(g: (typeof cases)[number]): Record<string, unknown> {
  const e = g.engine;
  return {
    engine: { engine: e.backend ?? 'vllm', blockSize: e.block_size },
    timing: goldenTiming(g),
    disaggregation: {
      prefill: { workers: g.num_prefill_workers },
      decode: { workers: g.num_decode_workers },
      kvBytesPerToken: e.kv_transfer_bytes_per_token,
      kvTransferGbps: e.kv_transfer_bandwidth,
      kvLink: 'per-transfer',
    },
    workload: { trace: 'inline', traceBlockSize: g.trace_block_size },
  };
}

describeGoldens(
  'disaggregated serving: agreement with the reference simulator (recorded vectors)',
  cases,
  overrides,
);
