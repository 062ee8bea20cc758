/**
 * The hand-written parts of docs/fidelity.md: why metrics differ where they do, how the comparison is run,
 * and what is pending. Figures quoted in the prose come from the results file, so they follow the data.
 */
import type { CaseSummary, MetricKey } from './results.ts';

const KV =
  'KV-router ties are broken at random in the reference (unseeded), so its figures move from run to run; servetune draws ties from its seeded generator (one seed per run). See "KV router" below.';
const SHARED =
  'servetune\'s default shares a prefill worker\'s link between its concurrent transfers; the reference gives every transfer the full bandwidth. Same case with `--kv-link per-transfer`: `disagg-conv-p2d6-rr-bs512`. See "Disaggregated serving" below.';
/** Why a metric of a case differs from the reference by more than the tolerance, if known. */
export function explain(caseId: string, _metric: MetricKey): string | null {
  if (caseId.endsWith('-shared')) return SHARED;
  if (caseId.includes('-kv-')) return KV;
  return null;
}

const pct = (d: number | undefined): string =>
  d === undefined || !Number.isFinite(d)
    ? 'n/a'
    : `${d > 0 ? '+' : d < 0 ? '−' : '±'}${Math.abs(d * 100).toFixed(2)}%`;

export function analysis(get: (id: string) => CaseSummary | undefined): string {
  const shared = get('disagg-conv-p2d6-rr-bs512-shared');
  const perTransfer = get('disagg-conv-p2d6-rr-bs512');
  const thr = get('planner-thr-conv-x4-w2');
  const sla = get('planner-sla-conv-x4-w2');
  const offloadIds = [
    'offload-conv-w4-rr-bs64-g2',
    'offload-conv-w8-rr-bs64-g2',
    'offload-conv-w4-rr-bs64-g2g3',
  ];
  const offload = offloadIds.map(get).filter((s): s is CaseSummary => s !== undefined);
  const worstOf = (xs: CaseSummary[], key?: MetricKey) =>
    xs.reduce((w, s) => {
      const d = key ? s.metrics[key].diff : s.worst.diff;
      return Math.abs(d) > Math.abs(w) ? d : w;
    }, 0);
  const disk = get('offload-conv-w4-rr-bs64-g2g3');
  const breadth = (ids: string[]) => {
    const xs = ids.map(get).filter((s): s is CaseSummary => s !== undefined);
    return xs.length === 0 ? 'not run yet' : `worst metric ${pct(worstOf(xs))} over ${xs.length} cases`;
  };
  return `## Analysis

### Deterministic cases agree to rounding

Round robin (vLLM and SGLang, 1 to 8 workers, blocks of 64 and 512), the closed loop and vLLM
disaggregated serving with per-transfer links are deterministic on both sides, and servetune reproduces
the reference's timeline request by request: the summary metrics agree to below 1e-13 relative (the order
of floating-point sums). The same holds per request, to 1e-5 ms, on the 80 recorded vectors the unit tests
replay (\`test/fixtures/reference/golden*/\`), and to 1e-9 on the small versions of these cases in
\`test/unit/sim/fidelity-cases.test.ts\`.

One deterministic case keeps a small residual: SGLang disaggregated (\`sglang-disagg-*\`, within 1.1 % on
every metric). It agrees request by request on the first 400 conversation rows (a recorded vector); on the
first 2,000 rows, 132 requests differ, the first of them where a prefill worker's prefix lookup finds
2,048 cached tokens in servetune and 1,792 in the reference while an earlier request's KV is held for its
transfer. Not resolved yet.

### TensorRT-LLM, attention-data-parallel ranks, MTP, agentic traces

- **TRT-LLM** (\`trtllm-*\`, aggregated and disaggregated; ${breadth(['trtllm-conv-w4-rr', 'trtllm-disagg-conv-p2d6-rr'])}):
  vLLM's scheduling core under \`GUARANTEED_NO_EVICT\` (a request is admitted only when its whole
  to-completion footprint fits), the 32-token default block, and the decode side reserving that footprint
  before the transfer. Deterministic on both sides.
- **DP ranks** (\`dp2-*\`, \`dp4-*\`; ${breadth(['dp2-conv-w4-rr-bs64', 'dp4-conv-w2-rr-bs64'])}): each rank a
  whole engine, the ranks of a worker stepping together (a pass ends with the slowest rank's), round robin
  over (worker, rank) pairs. Ranks run the plain path (no coalesced decode runs), so these are servetune's
  slowest cases per request.
- **MTP** (\`mtp-*\`; ${breadth(['mtp-hi-conv-w4-rr-bs64', 'mtp-lo-conv-w4-rr-bs64'])}): acceptance is sampled per
  request and forward, from a seeded stream per worker and rank on both sides, but the two sides' generators
  differ, so the cases agree statistically, not request by request; rates of 0 and 1 (deterministic) agree
  request by request in \`test/fixtures/reference/golden-engines/\`.
- **Agentic** (\`agentic-*\`; ${breadth(['agentic-conv-w4-rr-bs64', 'agentic-conv-w8-rr-bs64'])}): the conversation
  trace's 12,031 rows as \`agentic_mooncake\` version 2 (3,959 of them waiting for the row they continue);
  the dependency release, the per-edge delays and \`not_before_ms\` follow the reference's, and so does the
  order in which requests ready at the same instant start: by request id as a string (\`r10000\` before
  \`r9999\`), which round robin then turns into worker choices. With that, every request agrees with the
  reference (checked per request on both cases; before it, 1,824 requests of the 4-worker case differed
  from the first tie of 9 roots at 2,988 s on, prefix reuse by 1.8 %).

### KV router

The reference breaks cost ties uniformly at random from a generator it does not let the caller seed (the
docstring of \`run_synthetic_trace_replay\` says so), and many decisions are ties — about a third at 8
workers with 512-token blocks, most of them while several workers are empty. So the reference's own runs
differ: the table shows each side's range over its runs in brackets, and the difference chart draws the
reference's range as a line through each marker. The cost function itself is the same: in the earlier
investigation every cost the reference logged (2 x 12,031 decisions) equalled servetune's, and with the
same tie choices every metric agreed exactly. Differences beyond 3 % in KV-router cases are therefore
judged against the two sides' run ranges ("runs overlap"): a median can move by a few percent between
batches of 3 runs, above all for p90 TTFT and on the synthetic trace (3,993 requests). More runs
(\`--runs 9\`) narrow it.

### Disaggregated serving

Comparing disaggregated cases exposed four places where servetune departed from the reference, and the
reference was right each time (it follows how vLLM and SGLang schedule a remote prefill); all four are fixed
and pinned by recorded vectors (\`test/fixtures/reference/golden-disagg/\`):

- **When the decode worker reserves KV.** servetune reserved a transferred prompt's blocks the instant the
  prefill ended, even in the middle of a decode pass. vLLM allocates them in its scheduler step, between
  passes: the reference (and now servetune) reserves at the end of the decode pass in flight, and a busy
  decode worker takes one waiting reservation per scheduler step, plus one per transfer that landed during
  the pass (four handoffs in one pass: 1, 2, 1 per pass end).
- **SGLang reserves first.** SGLang's decode server pre-allocates the KV when the request arrives, and the
  prefill server starts only then (the reference's \`HandoffOrder::DestinationFirst\`); servetune prefilled
  first. Now SGLang disaggregation reserves at arrival (at the decode worker's next scheduler step) and
  submits the prefill then.
- **The routers of the two pools.** With the KV router, Dynamo scores a disaggregated prefill pool without
  the blocks-in-flight term (prefill workers hold no decode KV) and the decode pool with every in-flight
  request's blocks counted in full (no reuse assumed, no prefill term). Found in the reference's routing
  log (e.g. three requests sharing a prefix on one decode worker: costs 8, 18, 28); servetune had used the
  aggregated formula on both pools.
- **\`--kv-bytes-per-token\` was ignored** for transfers (a schema default shadowed it).

What still differs, by design:

- **Shared links.** The reference charges each transfer tokens x bytes per token / bandwidth, however many
  transfers the prefill worker is sending at once. servetune by default shares a prefill worker's link
  between its concurrent transfers (processor sharing): the GPU's NICs have a fixed bandwidth, and NIXL
  transfers from one worker contend for it. \`--kv-link per-transfer\` reproduces the reference's model,
  which is what the \`disagg-*\` cases use${
    perTransfer ? ` (worst metric ${pct(perTransfer.worst.diff)})` : ''
  }; \`disagg-conv-p2d6-rr-bs512-shared\` runs servetune's default against the same reference${
    shared
      ? `: mean TTFT ${pct(shared.metrics.ttft_mean.diff)}, p90 TTFT ${pct(shared.metrics.ttft_p90.diff)}, mean E2E ${pct(shared.metrics.e2e_mean.diff)}`
      : ''
  }, the cost of contention on a 64 GB/s link carrying prompts of 12k tokens at 128 KiB each.
- **The transfer must be set on both sides.** Without \`kv_transfer_bytes_per_token\` and
  \`kv_transfer_bandwidth\` in both pools' engine arguments the reference's transfers take no time;
  servetune defaults to 128 KiB per token over 64 GB/s. The cases set both explicitly on both sides.
- **The first token on the decode side is not free in either.** It was expected that the reference emits
  the decode worker's first token without a decode step; in ai-dynamo 1.6.1 it does not: TTFT is prefill +
  transfer + one decode step on both sides (vector \`single_transfer\`).

### KV offload tiers

The installed reference has no KVBM mocker tiers any more: its engine configuration rejects
\`num_g2_blocks\` as an unknown field, and the lower tiers are \`native_host_offload\` (vLLM's native
offloading connector: \`num_host_blocks\` per worker, \`d2h_bandwidth_gbps\` / \`h2d_bandwidth_gbps\`, and
\`kv_cache_bytes_per_token\` for the block size in bytes) and \`g3_offload\` (a disk tier behind it:
\`scope\` \`worker_local\`, \`num_g3_blocks\`, read and write GB/s, first-byte latency). The \`offload-*\`
cases set the same tiers, 128 KiB per token and the same bandwidths on both sides (first-byte latency 0),
with GPU caches small enough that conversations lose their prefixes between turns.

Comparing them exposed one modelling difference, fixed in servetune: **when a block reaches the lower
tiers.** servetune wrote a block back to host memory when the GPU cache evicted it (the model of the KVBM
mocker in earlier releases), so the host tier extended the GPU cache. The reference writes every full
prompt block through to host memory, and to disk, once it is computed, and a request's prefix lookup
refreshes the host copies of its GPU hits: the host tier shadows the GPU cache and holds the most recently
used prompts, whether or not the GPU still has them. On the first 2,000 conversation rows (4 workers of
12,000 GPU blocks, 20,000 host blocks) write-back found 10.3 % of prompt tokens cached and the reference
9.1 %; with a host tier smaller than the GPU cache the reference finds nothing there at all. servetune now
writes through by default (\`--offload-policy on-evict\` keeps the write-back model), and each tier is an
LRU of its own. The prefix-reuse ratio then agrees exactly on the small pinned cases and to
${pct(worstOf(offload, 'prefix_reuse'))} at worst on the full trace; every metric of the ${offload.length}
cases is within ${(Math.abs(worstOf(offload)) * 100).toFixed(2)}%.

What is left is timing detail: servetune's stores are instantaneous (the reference's are transfers of
their own, on the other direction of the link; making the reference's writes instantaneous changes none
of its figures), and a disk hit is staged through host memory as one transfer after the other. The largest
residual is the disk case's TTFT (mean ${pct(disk?.metrics.ttft_mean.diff)}, p90 ${pct(disk?.metrics.ttft_p90.diff)}): servetune brings
disk hits to the GPU slightly sooner. It is not the disk bandwidth: with disk reads made instantaneous on
both sides (2,000 rows) the gap stays (mean TTFT −1.5 %), while the same workload with a host tier only
agrees to −0.2 %; so the reference spends longer between a disk read's end and the request's admission.
Starting the host transfer at the next pass start rather than when the disk read ends did not close it;
not pursued further, being well inside the tolerance.

Both KV routers see GPU-cache events only (the reference's replay indexer ignores the other tiers), so
lower-tier hits do not steer routing on either side; the cases route round robin.

### Other semantic differences (none of them triggered by these cases)

- **Requests that can never fit** (prompt plus output larger than a worker's KV cache): servetune rejects
  them up front and serves the rest; the reference aborts the whole replay ("effect-free zero-duration
  pass"). No request of either trace is that large at the block sizes used.
- **SGLang page size**: the reference's default is 1 token per page (its pool is then 16,384 tokens);
  servetune's is 64. The cases set 64 on both sides.
- **Multi-turn synthetic sessions**: servetune's later turns carry the conversation so far as their prompt
  prefix; the reference's turns are independent prompts. The closed-loop cases use single turns.

### Planner

Both sides run the same Planner configuration file (reference field names), load scaling every 5 s,
starting from 2 aggregated workers on the conversation trace replayed 4x faster.

- **Throughput target** (\`bench/fidelity/planner-throughput.yaml\`: fixed thresholds on queued prompt tokens
  and KV utilisation, no performance model) and **SLA target** (\`bench/fidelity/planner-sla.yaml\`: TTFT
  2 s, ITL 50 ms, the performance model learnt from live forward-pass metrics only, as the reference replay
  has no AI Configurator data): the two planners take the same decision at every tick, and the runs agree
  to rounding${
    thr && sla
      ? ` (mean TTFT ${pct(thr.metrics.ttft_mean.diff)} and ${pct(sla.metrics.ttft_mean.diff)}, GPU-hours as well)`
      : ''
  }. What it took, from the reference's tick records and source: a scale-down drains the newest worker; round
  robin over a changing pool keeps its position in the list of serving workers ordered by creation; an
  easy-mode scale-down is held when the busiest worker's load spread over the survivors would reach the
  scale-up threshold; ticks fire after the arrivals of their instant; a forward-pass record carries the queue
  the scheduler left when it formed the pass, and an idle worker sends a heartbeat record after 1 s; and the
  SLA model is AISimulate's online regression of a pass's wall time (two features, one store per kind of
  pass, bucketed retention, non-negative fit on standardized features), with TTFT, ITL and capacity priced
  on synthetic passes as the reference does. \`test/unit/planner/perf-model-vectors.test.ts\` pins the
  regression and the planner's estimates to recorded reference vectors; the small Planner cases of
  \`test/unit/sim/fidelity-cases.test.ts\` pin every scaling event (60 of them at the trace's own pace).
- By default (\`sla_bootstrap: profile\`) servetune seeds the SLA model from a profile of one worker the
  simulator runs itself, as a deployment bootstraps from AI Configurator or pre-deployment profiling, so it
  decides from the first tick; the comparison sets \`none\` to match the reference replay. Where the runs
  could still part: among equally full regression cells the reference evicts in its hash map's order
  (servetune takes the first cell created), and throughput scaling leaves out the reference's
  \`max_throughput_scaling_replicas\` cap (docs/planner.md).

### Speed

servetune runs the simulation in one thread of Node.js; the reference's engine is compiled Rust called from
Python. What each wall time covers:

- **servetune, simulation**: the report's \`wall_s\`, the event loop from the prepared workload (block layout
  included) to the last event; trace parsing and report building excluded.
- **reference, simulation**: the summary's \`wall_time_ms\`, "Rust runtime construction and execution" (its
  API docstring); the Python call around it adds trace handling and report conversion (\`call_wall_s\` in
  the JSON).
- **process**: each side's whole process, from interpreter start to exit: Node.js start, module loading (with
  Node's compile cache warm, as after the first run) and trace loading for servetune; Python start, importing
  \`dynamo.replay\` and the call for the reference.

The large cases are where servetune's lead is widest: the reference's cost grows with the number of passes
and workers, while servetune coalesces runs of identical decode passes into one event. On the small cases
the reference needs only a fraction of a second and servetune's lead shrinks. The closed loop sends 2,000
requests of 4,000 + 250 tokens with no prefix sharing (4,200 passes over the four workers at 512 in flight,
250,000 at 8); the synthetic trace on one worker pushes 61 million prompt tokens through one engine in 7,200
passes, which at block 64 means some 950,000 block allocations and 820,000 prefix-cache evictions, work
that no coalescing removes. At that size a fresh Node.js process spends most of the run warming up its JIT:
\`closed-c512-rr\` simulates in about 0.09 s cold but 0.03 s once the code is optimised (a second run in the
same process), and the comparison always measures the cold run. Fixed per-process costs weigh on both
sides: servetune's Node.js start and module loading take about 0.15 s with the compile cache warm, the
reference's Python start and import about 0.1 s (several seconds with the Planner's imports).`;
}

export const METHOD = `## Method

- **The reference.** NVIDIA publishes its simulator as \`aisimulate\` (engine-only replay, Rust core) and
  \`ai-dynamo\` (Dynamo's offline replay: the same engine plus the Router and the Planner). In the installed
  releases neither \`python -m aisimulate.replay\` nor \`python -m dynamo.replay\` is a command, so
  \`hack/reference/replay-driver.py\` calls the Python API (\`dynamo.replay.run_trace_replay\` /
  \`run_synthetic_trace_replay\`), one case per process, JSON in and out. ai-dynamo's Rust extension embeds
  the \`aisimulate-core\` 0.13.0 engine (its strings name the crate's files), so one reference covers both.
- **Installation.** \`hack/reference/install-reference.sh\` creates a venv outside the repository
  (\`\${SERVETUNE_CACHE_DIR:-$HOME/.cache/servetune}/reference-venv\`) and reuses it while its stamp matches
  the pinned versions. PyPI's \`aisimulate==0.13.0\` (which \`ai-dynamo==1.6.1\` requires) is a stub that
  downloads from NVIDIA's own index; the script installs the real wheel of the same release, published on
  PyPI as \`aisimulate==0.13.0.dev202610270000000085\`, then \`ai-dynamo\` and \`ai-dynamo-runtime\` 1.6.1
  without their dependency on it, then what the replay and the Planner import. \`--python\` (or
  \`SERVETUNE_REFERENCE_PYTHON\`) uses another interpreter that has the reference.
- **Same inputs and settings.** Each case is written once for each side (\`bench/fidelity/cases.ts\`): the
  same trace file, \`trace_block_size\` 512, worker counts, router, engine block size, polynomial timing
  (both sides' default) and default engine limits; the exact flags and arguments are in
  \`docs/fidelity.json\`.
- **Runs.** Every run is a fresh process on each side (\`node bin/servetune.js simulate ... --json\`,
  \`python replay-driver.py CASE\`). Runs alternate between the two sides and the side that goes first
  alternates too, so slow phases of the shared host fall on both. Each figure is the median of the runs;
  run i of servetune uses \`--seed i\` (only the KV router draws random numbers).
- **Metrics**, computed by each simulator itself: mean and p90 TTFT (p90: the sorted sample at rank
  round((n − 1) x 0.9), in both), mean TPOT (per request, (last − first token) / (tokens − 1), averaged over
  requests with 2+ tokens), mean end-to-end latency, output throughput (output tokens / time of the last
  completion), prefix-reuse ratio (prompt tokens found cached at admission / prompt tokens). The relative
  difference is (servetune − reference) / reference, of the medians.`;

export const PENDING = `## Pending

- **MTP speed.** The MTP cases are servetune's slowest per request (acceptance is drawn per request and decode
  forward, and MTP runs the plain path: no coalesced decode runs): 2.6x and 3.0x faster than the reference
  in the recorded runs (load average about 2.5), 1.4x to 1.9x in an earlier batch under a load average of 7.
- **Agentic traces with dispatch edges at this scale** (only the hand-made DAG of \`golden-agentic\`
  exercises them), and mooncake-delta and applied_compute_agentic beyond their golden vectors.

- **Planner with throughput scaling** (\`enable_throughput_scaling\`, predictors) and disaggregated Planner
  pools are not among the cases yet; the predictors \`arima\` and \`prophet\` are small stand-ins.
- **Disaggregated KV router with conditional disaggregation and \`--transfer-mode destination-missing\`**
  have no reference counterpart in these cases.
- **KV offload beyond the \`offload-*\` cases**: the reference's cluster-shared host and disk tiers
  (\`scope: cluster_shared\`, with their shared bandwidths), KVCR peer fetches, the disk tier's first-byte
  latency, host offload on disaggregated workers, and servetune's \`--offload-policy on-evict\` (the KVBM
  mocker model the installed reference no longer has) are not compared.

## Pinned in unit tests

CI does not run this comparison (it needs the package registry and a quarter of an hour). The unit tests pin
what it checks on small inputs, with the expected values recorded from the reference and the command that
produced them in each file:

- \`test/unit/sim/fidelity-cases.test.ts\`: small versions of the cases above (2,000 conversation rows on 4 and
  8 workers, 500 synthetic rows on one worker, a closed loop, 2P+6D disaggregated, SGLang, the range of 8
  KV-router runs, and three KV offload cases), from \`hack/reference/record-fidelity-cases.py\`;
- \`test/unit/sim/reference-vectors.test.ts\`, \`sglang-reference-vectors.test.ts\`,
  \`disagg-reference-vectors.test.ts\`, \`engines-reference-vectors.test.ts\` (TRT-LLM, DP ranks, MTP) and
  \`agentic-reference-vectors.test.ts\` (agentic_mooncake, mooncake-delta, applied_compute_agentic):
  per-request timelines of 80 recorded vectors (\`test/fixtures/reference/golden*/\`, each directory's
  README gives the command).`;
