/**
 * The cases of the servetune-versus-reference comparison (bench/compare-reference.ts). Each case is the
 * same workload and settings expressed twice: as `servetune simulate` flags and as the JSON case
 * hack/reference/replay-driver.py hands to the reference's Python API.
 */
import { join, resolve } from 'node:path';
import { DERIVED } from './derived.ts';

const ROOT = resolve(import.meta.dirname, '../..');

export type CaseGroup =
  | 'aggregated'
  | 'closed-loop'
  | 'disaggregated'
  | 'sglang'
  | 'offload'
  | 'planner'
  | 'trtllm'
  | 'data-parallel'
  | 'mtp'
  | 'agentic';

export interface Case {
  id: string;
  group: CaseGroup;
  label: string;
  requests: number;
  /** KV-router ties are broken at random in the reference: its metrics vary run to run. */
  random: boolean;
  /** `servetune simulate` flags (without --json, --seed, --quiet). */
  servetune: string[];
  /** The reference driver's case. */
  reference: Record<string, unknown>;
}

/** Disaggregated cases set the KV transfer on both sides: 128 KiB per token over 64 GB/s per transfer. */
export const KV_BYTES_PER_TOKEN = 131072;
export const KV_TRANSFER_GBPS = 64;

export const TRACES = {
  conv: { file: 'mooncake_conversation.jsonl', name: 'conversation', requests: 12031 },
  synth: { file: 'mooncake_synthetic.jsonl', name: 'synthetic', requests: 3993 },
} as const;

export const CLOSED_LOOP = {
  requests: 2000,
  inputTokens: 4000,
  outputTokens: 250,
  workers: 4,
  blockSize: 64,
};

/** The KV offload cases: GPU, host (G2) and disk (G3) blocks per worker, GB/s of the host and disk links. */
export const OFFLOAD_CASES = [
  {
    id: 'offload-conv-w4-rr-bs64-g2',
    workers: 4,
    gpuBlocks: 8000,
    g2Blocks: 20000,
    g2Gbps: 14,
    g3Blocks: 0,
    g3Gbps: 7,
  },
  {
    id: 'offload-conv-w8-rr-bs64-g2',
    workers: 8,
    gpuBlocks: 4000,
    g2Blocks: 20000,
    g2Gbps: 14,
    g3Blocks: 0,
    g3Gbps: 7,
  },
  {
    id: 'offload-conv-w4-rr-bs64-g2g3',
    workers: 4,
    gpuBlocks: 8000,
    g2Blocks: 5000,
    g2Gbps: 14,
    g3Blocks: 50000,
    g3Gbps: 7,
  },
] as const;

/** `derivedDir`: where bench/fidelity/derived.ts writes the traces it derives (agentic). */
export function buildCases(traceDir: string, derivedDir: string): Case[] {
  const cases: Case[] = [];
  const router = (kv: boolean) => (kv ? 'kv' : 'rr');
  for (const [key, trace] of Object.entries(TRACES)) {
    const path = join(traceDir, trace.file);
    const traceArgs = ['--trace', path, '--trace-block-size', '512'];
    const refTrace = { kind: 'trace', trace: path, trace_block_size: 512 };
    // Aggregated vLLM: 1, 4, 8 workers x round robin, KV router x block 64, 512. With one worker the
    // router has no choice to make, so only round robin is run.
    for (const workers of [1, 4, 8]) {
      for (const kv of workers === 1 ? [false] : [false, true]) {
        for (const bs of [64, 512]) {
          cases.push({
            id: `${key}-w${workers}-${router(kv)}-bs${bs}`,
            group: 'aggregated',
            label: `${trace.name}, ${workers}w ${kv ? 'KV router' : 'round robin'}, block ${bs}`,
            requests: trace.requests,
            random: kv,
            servetune: [
              ...traceArgs,
              '--workers',
              String(workers),
              '--router',
              kv ? 'kv' : 'round-robin',
              '--block-size',
              String(bs),
            ],
            reference: {
              ...refTrace,
              num_workers: workers,
              router_mode: kv ? 'kv_router' : 'round_robin',
              engine: { block_size: bs },
            },
          });
        }
      }
    }
    // Disaggregated: 2 prefill + 6 decode workers, block 512, KV transfer set on both sides. The reference
    // charges each transfer its full bandwidth (--kv-link per-transfer); servetune's default shares a prefill
    // worker's link between its concurrent transfers, run once as a '-shared' case to show the difference.
    for (const [kv, link] of [
      [false, 'per-transfer'],
      [true, 'per-transfer'],
      ...(key === 'conv' ? ([[false, 'shared']] as const) : []),
    ] as const) {
      const engine = {
        block_size: 512,
        kv_transfer_bytes_per_token: KV_BYTES_PER_TOKEN,
        kv_transfer_bandwidth: KV_TRANSFER_GBPS,
      };
      cases.push({
        id: `disagg-${key}-p2d6-${router(kv)}-bs512${link === 'shared' ? '-shared' : ''}`,
        group: 'disaggregated',
        label: `disagg ${trace.name}, 2P+6D ${kv ? 'KV router' : 'round robin'}, block 512${link === 'shared' ? ', shared links' : ''}`,
        requests: trace.requests,
        random: kv,
        servetune: [
          ...traceArgs,
          '--disagg',
          '--prefill-workers',
          '2',
          '--decode-workers',
          '6',
          '--router',
          kv ? 'kv' : 'round-robin',
          '--block-size',
          '512',
          '--kv-bytes-per-token',
          String(KV_BYTES_PER_TOKEN),
          '--kv-transfer-gbps',
          String(KV_TRANSFER_GBPS),
          '--kv-link',
          link,
        ],
        reference: {
          ...refTrace,
          router_mode: kv ? 'kv_router' : 'round_robin',
          disagg: {
            num_prefill_workers: 2,
            num_decode_workers: 6,
            prefill_engine: engine,
            decode_engine: engine,
          },
        },
      });
    }
    // SGLang disaggregated: 2 prefill + 6 decode workers, 64-token pages, per-transfer links as above.
    {
      const engine = {
        backend: 'sglang',
        block_size: 64,
        kv_transfer_bytes_per_token: KV_BYTES_PER_TOKEN,
        kv_transfer_bandwidth: KV_TRANSFER_GBPS,
      };
      cases.push({
        id: `sglang-disagg-${key}-p2d6-rr-p64`,
        group: 'sglang',
        label: `SGLang disagg ${trace.name}, 2P+6D round robin, page 64`,
        requests: trace.requests,
        random: false,
        servetune: [
          ...traceArgs,
          '--engine',
          'sglang',
          '--disagg',
          '--prefill-workers',
          '2',
          '--decode-workers',
          '6',
          '--router',
          'round-robin',
          '--page-size',
          '64',
          '--kv-bytes-per-token',
          String(KV_BYTES_PER_TOKEN),
          '--kv-transfer-gbps',
          String(KV_TRANSFER_GBPS),
          '--kv-link',
          'per-transfer',
        ],
        reference: {
          ...refTrace,
          router_mode: 'round_robin',
          disagg: {
            num_prefill_workers: 2,
            num_decode_workers: 6,
            prefill_engine: engine,
            decode_engine: engine,
          },
        },
      });
    }
    // SGLang: 4 and 8 workers, 64-token pages (set on both sides; the reference's default page is 1 token).
    for (const [workers, kv] of [
      [4, false],
      [8, false],
      [8, true],
    ] as const) {
      cases.push({
        id: `sglang-${key}-w${workers}-${router(kv)}-p64`,
        group: 'sglang',
        label: `SGLang ${trace.name}, ${workers}w ${kv ? 'KV router' : 'round robin'}, page 64`,
        requests: trace.requests,
        random: kv,
        servetune: [
          ...traceArgs,
          '--engine',
          'sglang',
          '--workers',
          String(workers),
          '--router',
          kv ? 'kv' : 'round-robin',
          '--page-size',
          '64',
        ],
        reference: {
          ...refTrace,
          num_workers: workers,
          router_mode: kv ? 'kv_router' : 'round_robin',
          engine: { backend: 'sglang', block_size: 64 },
        },
      });
    }
  }
  // KV offload tiers (vLLM): a GPU cache small enough that prefixes are evicted between turns, a host tier
  // (G2) and, once, a disk tier (G3) behind a smaller host tier, block 64, 128 KiB per token, the same
  // bandwidths on both sides (the reference's G3 is its worker-local disk tier, first-byte latency 0).
  for (const o of OFFLOAD_CASES) {
    const path = join(traceDir, TRACES.conv.file);
    const hostOffload = {
      num_host_blocks: o.g2Blocks,
      d2h_bandwidth_gbps: o.g2Gbps,
      h2d_bandwidth_gbps: o.g2Gbps,
    };
    cases.push({
      id: o.id,
      group: 'offload',
      label: `conversation, ${o.workers}w round robin, block 64, ${o.gpuBlocks.toLocaleString('en-US')} GPU + ${o.g2Blocks.toLocaleString('en-US')} host${o.g3Blocks ? ` + ${o.g3Blocks.toLocaleString('en-US')} disk` : ''} blocks`,
      requests: TRACES.conv.requests,
      random: false,
      servetune: [
        '--trace',
        path,
        '--trace-block-size',
        '512',
        '--workers',
        String(o.workers),
        '--router',
        'round-robin',
        '--block-size',
        '64',
        '--num-gpu-blocks',
        String(o.gpuBlocks),
        '--kv-bytes-per-token',
        String(KV_BYTES_PER_TOKEN),
        '--g2-blocks',
        String(o.g2Blocks),
        '--g2-gbps',
        String(o.g2Gbps),
        ...(o.g3Blocks ? ['--g3-blocks', String(o.g3Blocks), '--g3-gbps', String(o.g3Gbps)] : []),
      ],
      reference: {
        kind: 'trace',
        trace: path,
        trace_block_size: 512,
        num_workers: o.workers,
        router_mode: 'round_robin',
        engine: {
          block_size: 64,
          num_gpu_blocks: o.gpuBlocks,
          kv_cache_bytes_per_token: KV_BYTES_PER_TOKEN,
          native_host_offload: hostOffload,
          ...(o.g3Blocks
            ? {
                g3_offload: {
                  scope: 'worker_local',
                  num_g3_blocks: o.g3Blocks,
                  read_bandwidth_gbps: o.g3Gbps,
                  write_bandwidth_gbps: o.g3Gbps,
                  latency_to_first_byte_ms: 0,
                },
              }
            : {}),
        },
      },
    });
  }
  // Planner: the conversation trace 4x faster from 2 aggregated workers (as in docs/planner.md), load
  // scaling every 5 s on the "throughput" target's fixed thresholds and on the "sla" target (its performance
  // model learnt from live forward-pass metrics only, as the reference replay without AI Configurator data).
  for (const [name, file] of [
    ['thr', 'bench/fidelity/planner-throughput.yaml'],
    ['sla', 'bench/fidelity/planner-sla.yaml'],
  ] as const) {
    const path = join(traceDir, TRACES.conv.file);
    cases.push({
      id: `planner-${name}-conv-x4-w2`,
      group: 'planner',
      label: `Planner (${name === 'thr' ? 'throughput target' : 'SLA target'}, load scaling), conversation 4x, from 2 workers`,
      requests: TRACES.conv.requests,
      random: false,
      servetune: [
        '--trace',
        path,
        '--trace-block-size',
        '512',
        '--arrival-speedup-ratio',
        '4',
        '--workers',
        '2',
        '--router',
        'round-robin',
        '--block-size',
        '64',
        '--planner',
        join(ROOT, file),
      ],
      reference: {
        kind: 'trace',
        trace: path,
        trace_block_size: 512,
        arrival_speedup_ratio: 4,
        num_workers: 2,
        router_mode: 'round_robin',
        engine: { block_size: 64 },
        planner: join(ROOT, file),
      },
    });
  }
  // Closed loop: fixed-length synthetic requests, N in flight.
  const c = CLOSED_LOOP;
  for (const [concurrency, kv] of [
    [8, false],
    [32, false],
    [128, false],
    [512, false],
    [128, true],
  ] as const) {
    cases.push({
      id: `closed-c${concurrency}-${router(kv)}`,
      group: 'closed-loop',
      label: `closed loop ${concurrency} in flight, ${c.workers}w ${kv ? 'KV router' : 'round robin'}`,
      requests: c.requests,
      random: kv,
      servetune: [
        '--request-count',
        String(c.requests),
        '--input-tokens',
        String(c.inputTokens),
        '--output-tokens',
        String(c.outputTokens),
        '--concurrency',
        String(concurrency),
        '--workers',
        String(c.workers),
        '--router',
        kv ? 'kv' : 'round-robin',
        '--block-size',
        String(c.blockSize),
      ],
      reference: {
        kind: 'synthetic',
        synthetic: { input_tokens: c.inputTokens, output_tokens: c.outputTokens, request_count: c.requests },
        replay_concurrency: concurrency,
        num_workers: c.workers,
        router_mode: kv ? 'kv_router' : 'round_robin',
        engine: { block_size: c.blockSize },
      },
    });
  }
  cases.push(...engineCases(traceDir), ...agenticCases(derivedDir));
  return cases;
}

/** TRT-LLM aggregated and disaggregated, DP 2 and 4, MTP with two acceptance profiles: the conversation trace. */
function engineCases(traceDir: string): Case[] {
  const path = join(traceDir, TRACES.conv.file);
  const traceArgs = ['--trace', path, '--trace-block-size', '512'];
  const refTrace = { kind: 'trace', trace: path, trace_block_size: 512 };
  const requests = TRACES.conv.requests;
  const xfer = {
    kv_transfer_bytes_per_token: KV_BYTES_PER_TOKEN,
    kv_transfer_bandwidth: KV_TRANSFER_GBPS,
  };
  const cases: Case[] = [
    {
      id: 'trtllm-conv-w4-rr',
      group: 'trtllm',
      label: 'TRT-LLM conversation, 4w round robin, default block (32)',
      requests,
      random: false,
      servetune: [...traceArgs, '--engine', 'trtllm', '--workers', '4', '--router', 'round-robin'],
      reference: { ...refTrace, num_workers: 4, router_mode: 'round_robin', engine: { backend: 'trtllm' } },
    },
    {
      id: 'trtllm-disagg-conv-p2d6-rr',
      group: 'trtllm',
      label: 'TRT-LLM disagg conversation, 2P+6D round robin, default block (32)',
      requests,
      random: false,
      servetune: [
        ...traceArgs,
        '--engine',
        'trtllm',
        '--disagg',
        '--prefill-workers',
        '2',
        '--decode-workers',
        '6',
        '--router',
        'round-robin',
        '--kv-bytes-per-token',
        String(KV_BYTES_PER_TOKEN),
        '--kv-transfer-gbps',
        String(KV_TRANSFER_GBPS),
        '--kv-link',
        'per-transfer',
      ],
      reference: {
        ...refTrace,
        router_mode: 'round_robin',
        disagg: {
          num_prefill_workers: 2,
          num_decode_workers: 6,
          prefill_engine: { backend: 'trtllm', ...xfer },
          decode_engine: { backend: 'trtllm', ...xfer },
        },
      },
    },
  ];
  // DP: 8 ranks in all, as 4 workers of 2 ranks and 2 workers of 4.
  for (const [workers, dp] of [
    [4, 2],
    [2, 4],
  ] as const)
    cases.push({
      id: `dp${dp}-conv-w${workers}-rr-bs64`,
      group: 'data-parallel',
      label: `vLLM conversation, ${workers}w x ${dp} DP ranks round robin, block 64`,
      requests,
      random: false,
      servetune: [
        ...traceArgs,
        '--workers',
        String(workers),
        '--dp-size',
        String(dp),
        '--router',
        'round-robin',
        '--block-size',
        '64',
      ],
      reference: {
        ...refTrace,
        num_workers: workers,
        router_mode: 'round_robin',
        dp_size: dp,
        engine: { block_size: 64 },
      },
    });
  // MTP: two acceptance profiles (high and low), sampled on both sides.
  for (const [name, nextn, rates] of [
    ['hi', 2, '0.85,0.6'],
    ['lo', 3, '0.5,0.3,0.1'],
  ] as const)
    cases.push({
      id: `mtp-${name}-conv-w4-rr-bs64`,
      group: 'mtp',
      label: `vLLM conversation, MTP nextn ${nextn} accepting ${rates}, 4w round robin, block 64`,
      requests,
      random: true,
      servetune: [
        ...traceArgs,
        '--workers',
        '4',
        '--router',
        'round-robin',
        '--block-size',
        '64',
        '--nextn',
        String(nextn),
        '--nextn-accept-rates',
        rates,
      ],
      reference: {
        ...refTrace,
        num_workers: 4,
        router_mode: 'round_robin',
        engine: { block_size: 64, aic_nextn: nextn, aic_nextn_accept_rates: rates },
      },
    });
  return cases;
}

/** The conversation trace's sessions as agentic rows (bench/fidelity/derived.ts). */
function agenticCases(derivedDir: string): Case[] {
  const path = join(derivedDir, DERIVED.agenticConv);
  return [4, 8].map(
    (workers): Case => ({
      id: `agentic-conv-w${workers}-rr-bs64`,
      group: 'agentic',
      label: `agentic_mooncake v2 from the conversation sessions, ${workers}w round robin, block 64`,
      requests: TRACES.conv.requests,
      random: false,
      servetune: [
        '--trace',
        path,
        '--workers',
        String(workers),
        '--router',
        'round-robin',
        '--block-size',
        '64',
      ],
      reference: {
        kind: 'trace',
        trace: path,
        trace_block_size: 512,
        trace_format: 'agentic_mooncake',
        num_workers: workers,
        router_mode: 'round_robin',
        engine: { block_size: 64 },
        extra: { model_name: 'm', execution_model: 'm' },
      },
    }),
  );
}
