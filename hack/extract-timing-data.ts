/**
 * Regenerates the bundled kernel tables (src/hardware/data/kernels/<gpu>.json) from the extracted AIC data in
 * ../shared/data/timing (see its README). Keeps what the hardware timing model reads: vLLM GEMM grids per
 * dtype, context/decode attention grids, custom all-reduce curves and the power-law MoE tables with
 * tp x ep <= 16, with latencies packed as log-scaled u16 (src/hardware/kernels/encoding.ts).
 *
 * Usage: node hack/extract-timing-data.ts [--from ../shared/data/timing] [--out src/hardware/data/kernels]
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { encodeLatencies } from '../src/hardware/kernels/encoding.ts';

const { values } = parseArgs({
  options: {
    from: { type: 'string', default: '../shared/data/timing' },
    out: { type: 'string', default: 'src/hardware/data/kernels' },
  },
});
const from = values.from;
const out = values.out;
mkdirSync(out, { recursive: true });

const GPUS = ['h100_sxm', 'h200_sxm', 'b200_sxm', 'gb200', 'l40s', 'a100_sxm'];
const read = (f: string) => JSON.parse(readFileSync(join(from, f), 'utf8'));
const comm = read('comm.json');
const moe = read('moe.json');

type Grid = (number | null)[][];
for (const gpu of GPUS) {
  const gemm = read(`gemm_${gpu}.json`);
  const attn = read(`attention_${gpu}.json`);
  const gemmOut: Record<string, unknown> = {};
  for (const [dtype, t] of Object.entries<Record<string, unknown>>(gemm.tables)) {
    const lat = t.latMs as (number | null)[][][];
    gemmOut[dtype] = {
      kernels: t.kernels,
      m: t.m,
      n: t.n,
      k: t.k,
      lat: encodeLatencies(lat.flat(2)),
    };
  }
  const attention = (part: 'context' | 'generation') => {
    const res: Record<string, unknown> = {};
    for (const [kv, t] of Object.entries<Record<string, unknown>>(attn[part])) {
      const grids = t.grids as Record<string, Grid>;
      const heads = Object.keys(grids);
      res[kv] = {
        kernels: t.kernels,
        batch: t.batch,
        seq: t.seq,
        heads,
        lat: encodeLatencies(heads.flatMap((h) => grids[h].flat())),
      };
    }
    return res;
  };
  const c = comm.gpus[gpu];
  const m = moe.gpus[gpu];
  const moeTables: unknown[] = [];
  for (const s of m.shapes) {
    for (const t of s.tables) {
      if (t.distribution !== 'power_law_1.2' || t.moeTp * t.moeEp > 16) continue;
      moeTables.push({
        hidden: s.hidden,
        inter: s.inter,
        topk: s.topk,
        experts: s.experts,
        dtype: t.dtype,
        tp: t.moeTp,
        ep: t.moeEp,
        kernel: t.kernel.join('+'),
        tokens: t.tokens,
        latMs: t.latMs,
      });
    }
  }
  const doc = {
    attribution: gemm.attribution,
    derivedBy:
      'hack/extract-timing-data.ts from ../shared/data/timing (itself extracted from AIC Parquet tables)',
    gpu,
    device: gemm.device,
    backend: gemm.backend,
    version: gemm.version,
    sources: {
      gemm: gemm.source,
      contextAttention: attn.sources.context,
      generationAttention: attn.sources.generation,
      allReduce: c.customAllReduce.source,
      moe: m.source,
    },
    encoding:
      'lat: base64 of little-endian u16 codes, ms = 2^(code/2048 - 16), 0 = not measured. gemm lat index = ' +
      '(n_i*|k| + k_i)*|m| + m_i; attention lat index = (head_i*|batch| + batch_i)*|seq| + seq_i; attention ' +
      'heads = "<q heads per GPU>,<kv heads per GPU>", one layer, head_dim 128.',
    gemm: gemmOut,
    contextAttention: attention('context'),
    generationAttention: attention('generation'),
    allReduce: {
      kernel: c.customAllReduce.kernels.join('+'),
      version: c.customAllReduce.version,
      byGpus: c.customAllReduce.byGpus,
    },
    moe: { distribution: 'power_law_1.2', version: m.version, tables: moeTables },
  };
  const file = join(out, `${gpu}.json`);
  writeFileSync(file, `${JSON.stringify(doc)}\n`);
  console.log(`${file}: ${(JSON.stringify(doc).length / 1024).toFixed(0)} KB`);
}
