import { describeGoldens, type Golden, goldenTiming, loadGoldens } from '../../support/golden.ts';
import { FIXTURES } from '../../support/sim.ts';

/**
 * Per-request agreement of the SGLang engine with the reference simulator's SGLang scheduler on the vectors
 * recorded in test/fixtures/reference/golden-sglang (see the README there for the command).
 */
const cases = loadGoldens(`${FIXTURES}reference/golden-sglang/`);

function overrides(g: Golden): Record<string, unknown> {
  const e = g.engine;
  const sg = (e.sglang ?? {}) as Record<string, unknown>;
  const engine: Record<string, unknown> = { engine: 'sglang', blockSize: e.block_size ?? 1 };
  if (e.num_gpu_blocks !== undefined) engine.numGpuBlocks = e.num_gpu_blocks;
  if (e.max_num_seqs !== undefined) engine.maxNumSeqs = e.max_num_seqs;
  if (sg.schedule_policy !== undefined) engine.schedulePolicy = sg.schedule_policy;
  if (sg.max_prefill_tokens !== undefined) engine.maxPrefillTokens = sg.max_prefill_tokens;
  if (sg.chunked_prefill_size !== undefined) engine.chunkedPrefillSize = sg.chunked_prefill_size;
  if (sg.clip_max_new_tokens !== undefined) engine.clipMaxNewTokens = sg.clip_max_new_tokens;
  if (sg.schedule_conservativeness !== undefined)
    engine.scheduleConservativeness = sg.schedule_conservativeness;
  return {
    workers: g.num_workers,
    engine,
    timing: goldenTiming(g),
    workload: { trace: 'inline', traceBlockSize: g.trace_block_size },
  };
}

describeGoldens('SGLang engine: agreement with the reference simulator (recorded vectors)', cases, overrides);
