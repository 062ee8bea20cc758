import { describeGoldens, type Golden, goldenTiming, loadGoldens } from '../../support/golden.ts';
import { FIXTURES } from '../../support/sim.ts';

/**
 * Per-request agreement with NVIDIA's reference simulator on the recorded vectors in
 * test/fixtures/reference/golden (see its README for the command that produced them).
 */
const cases = loadGoldens(`${FIXTURES}reference/golden/`);

function overrides(g: Golden): Record<string, unknown> {
  const e = g.engine;
  const engine: Record<string, unknown> = {};
  if (e.block_size !== undefined) engine.blockSize = e.block_size;
  if (e.num_gpu_blocks !== undefined) engine.numGpuBlocks = e.num_gpu_blocks;
  if (e.max_num_seqs !== undefined) engine.maxNumSeqs = e.max_num_seqs;
  if (e.max_num_batched_tokens !== undefined) engine.maxNumBatchedTokens = e.max_num_batched_tokens;
  return {
    workers: g.num_workers,
    engine,
    timing: goldenTiming(g),
    workload: {
      trace: 'inline',
      traceBlockSize: g.trace_block_size,
      arrivalSpeedupRatio: g.extra_kwargs.arrival_speedup_ratio ?? 1,
    },
  };
}

describeGoldens('agreement with the reference simulator (recorded vectors)', cases, overrides);
