"""Records the SGLang golden vectors in test/fixtures/reference/golden-sglang/ from the reference simulator.

Run inside a Python environment with the reference installed (ai-dynamo 1.6.1, aisimulate-core 0.13.0):
    python hack/reference/record-sglang-golden.py [OUT_DIR]
Each case replays a small trace round-robin and stores the trace, the engine arguments, the reference's
per-request records (sorted by arrival, input_length, requested_output_length) and its summary.
"""

import json
import os
import random
import sys
import tempfile

from dynamo.replay import run_trace_replay

OUT = sys.argv[1] if len(sys.argv) > 1 else "test/fixtures/reference/golden-sglang"
CONV = "test/fixtures/traces/conversation-sample.jsonl"


def row(ts, isl, osl, ids, **extra):
    return {"timestamp": ts, "input_length": isl, "output_length": osl, "hash_ids": ids, **extra}


def conv(n):
    with open(CONV) as f:
        return [json.loads(line) for line in f.read().splitlines()[:n]]


def fuzz(seed):
    rnd = random.Random(seed)
    rows = []
    t = 0
    for _ in range(rnd.randint(4, 12)):
        t += rnd.choice([0, 0, 3, 10, 40, 200])
        n = rnd.randint(1, 6)
        base = rnd.choice([[1, 2], [1, 3], [7], []])
        ids = (base + [rnd.randint(100, 10000) for _ in range(n)])[: max(1, n)]
        isl = rnd.randint(max(1, (len(ids) - 1) * 64 + 1), len(ids) * 64)
        rows.append(row(t, isl, rnd.choice([0, 1, 2, 5, 20, 60, 150]), ids))
    eng = {
        "backend": "sglang",
        "block_size": rnd.choice([16, 32, 64]),
        "num_gpu_blocks": rnd.choice([40, 80, 400, 16384]),
        "max_num_seqs": rnd.choice([2, 4, 256]),
    }
    sg = {}
    if rnd.random() < 0.4:
        sg["chunked_prefill_size"] = rnd.choice([128, 256, 512])
    if rnd.random() < 0.3:
        sg["max_prefill_tokens"] = rnd.choice([256, 1024])
    if rnd.random() < 0.3:
        sg["schedule_policy"] = "lpm"
    if rnd.random() < 0.3:
        sg["clip_max_new_tokens"] = rnd.choice([8, 64])
    if sg:
        eng["sglang"] = sg
    return {"trace": rows, "engine": eng, "num_workers": rnd.choice([1, 1, 2]), "trace_block_size": 64}


def sg(**kw):
    return {"backend": "sglang", **kw}


CASES = {
    "single_p100_o5": dict(trace=[row(0, 100, 5, [1, 2])], engine=sg(block_size=64)),
    "single_bs1_default_pool": dict(
        trace=[row(0, 100, 5, [1, 2]), row(3, 120, 30, [1, 2]), row(4, 90, 9, [3, 4])], engine=sg()
    ),
    "prefill_pauses_decode": dict(
        trace=[row(0, 100, 50, [1, 2]), row(100, 200, 3, [3, 4, 5, 6])], engine=sg(block_size=64)
    ),
    "chunked_10000_stalls_decode": dict(
        trace=[row(0, 100, 40, [1, 2]), row(30, 10000, 3, list(range(10, 30)))],
        engine=sg(block_size=64),
        trace_block_size=512,
    ),
    "chunk_budget_three_prompts": dict(
        trace=[row(0, 3000, 4, [1] * 0 + list(range(1, 7))), row(0, 3000, 4, list(range(11, 17))),
               row(0, 3000, 4, list(range(21, 27)))],
        engine=sg(block_size=64),
        trace_block_size=512,
    ),
    "max_prefill_tokens_budget": dict(
        trace=[row(0, 900, 3, [1, 2]), row(0, 900, 3, [3, 4]), row(0, 900, 3, [5, 6]), row(0, 700, 3, [7, 8])],
        engine=sg(block_size=64, sglang={"max_prefill_tokens": 2048, "chunked_prefill_size": 1024}),
        trace_block_size=512,
    ),
    "new_token_ratio_admission": dict(
        trace=[row(0, 256, 300, [1, 2, 3, 4]), row(0, 256, 300, [5, 6, 7, 8]), row(0, 256, 300, [9, 10, 11, 12]),
               row(5, 256, 300, [13, 14, 15, 16])],
        engine=sg(block_size=64, num_gpu_blocks=24),
    ),
    "retraction_shortest_output": dict(
        trace=[row(0, 256, 200, [1, 2, 3, 4]), row(20, 256, 200, [5, 6, 7, 8]), row(60, 256, 200, [9, 10, 11, 12])],
        engine=sg(block_size=64, num_gpu_blocks=16),
    ),
    "retraction_conservative": dict(
        trace=[row(i * 7, 300, 120, [100 + 5 * i + k for k in range(5)]) for i in range(8)],
        engine=sg(block_size=32, num_gpu_blocks=60, sglang={"schedule_conservativeness": 0.3}),
    ),
    "prefix_reuse_cap": dict(
        trace=[row(0, 128, 2, [1, 2]), row(100, 128, 2, [1, 2]), row(200, 129, 2, [1, 2, 3]), row(300, 300, 2, [1, 2, 4, 5, 6])],
        engine=sg(block_size=64),
    ),
    "same_pass_no_reuse": dict(
        trace=[row(0, 300, 3, [1, 2, 3, 4, 5]), row(0, 300, 3, [1, 2, 3, 4, 5])], engine=sg(block_size=64)
    ),
    "lpm_policy": dict(
        trace=[row(0, 600, 30, list(range(1, 11))), row(5, 600, 3, list(range(20, 30))),
               row(5, 640, 3, list(range(1, 11)) + [40]), row(5, 600, 3, list(range(50, 60))),
               row(5, 600, 3, list(range(50, 60)))],
        engine=sg(block_size=64, max_num_seqs=2, sglang={"schedule_policy": "lpm"}),
    ),
    "zero_and_one_output": dict(
        trace=[row(0, 100, 0, [1, 2]), row(0, 100, 1, [3, 4]), row(50, 128, 0, [1, 2]), row(60, 90, 4, [5, 6])],
        engine=sg(block_size=64),
    ),
    "max_num_seqs_2": dict(
        trace=[row(0, 100, 10, [1, 2]), row(0, 100, 10, [3, 4]), row(0, 100, 10, [5, 6]), row(1, 50, 5, [7])],
        engine=sg(block_size=64, max_num_seqs=2),
    ),
    "page16_eviction": dict(
        trace=[row(i * 30, 200 + 10 * i, 20, [i % 3, 50 + i, 60 + i, 70 + i, 80 + i]) for i in range(10)],
        engine=sg(block_size=16, num_gpu_blocks=64),
    ),
    "fixed_timing": dict(
        trace=[row(0, 100, 3, [1, 2]), row(10, 100, 3, [3, 4])],
        engine=sg(block_size=64, timing_model={"type": "fixed", "prefill_ms": 10, "decode_ms": 5}),
    ),
    "ratio_hand_case": dict(
        trace=[row(0, 256, 1000, [1, 2, 3, 4]), row(1, 256, 300, [5, 6, 7, 8])],
        engine=sg(block_size=64, num_gpu_blocks=24, timing_model={"type": "fixed", "prefill_ms": 10, "decode_ms": 5}),
    ),
    "retract_shortest_clip8": dict(
        trace=[row(0, 64, 200, [1]), row(1, 64, 200, [2]), row(2, 48, 150, [3])],
        engine=sg(block_size=16, num_gpu_blocks=20, sglang={"clip_max_new_tokens": 8}),
    ),
    "conv400_w2_bs64": dict(trace=conv(400), engine=sg(block_size=64), num_workers=2, trace_block_size=512),
    "conv400_w1_bs64_blocks3000": dict(
        trace=conv(400), engine=sg(block_size=64, num_gpu_blocks=3000), trace_block_size=512
    ),
    "conv200_w1_bs16_blocks6000_lpm": dict(
        trace=conv(200), engine=sg(block_size=16, num_gpu_blocks=6000, sglang={"schedule_policy": "lpm"}),
        trace_block_size=512,
    ),
}
for s in [11, 23, 37, 41, 53, 67, 79, 97]:
    CASES[f"fuzz_{s}"] = fuzz(s)


def record(name, case):
    trace = case["trace"]
    tbs = case.get("trace_block_size", 64)
    workers = case.get("num_workers", 1)
    with tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False) as f:
        f.write("\n".join(json.dumps(r) for r in trace) + "\n")
        path = f.name
    try:
        r = run_trace_replay(path, num_workers=workers, router_mode="round_robin",
                             extra_engine_args=json.dumps({"engine": case["engine"]}),
                             trace_block_size=tbs, capture_per_request=True)
    finally:
        os.unlink(path)
    keep = ["arrival_time_ms", "first_admit_ms", "first_token_ms", "ttst_ms", "last_token_ms", "terminal_time_ms",
            "input_length", "requested_output_length", "output_length", "reused_input_tokens", "decode_worker_idx",
            "terminal_status", "readmission_count", "first_admission_reused_input_tokens"]
    per = sorted(({k: p.get(k) for k in keep} for p in r.per_request),
                 key=lambda p: (p["arrival_time_ms"], p["input_length"], p["requested_output_length"]))
    g = {"name": name, "router_mode": "round_robin", "num_workers": workers, "trace_block_size": tbs,
         "engine": case["engine"], "extra_kwargs": {}, "trace": trace, "per_request": per,
         "summary": dict(r.summary)}
    with open(f"{OUT}/{name}.json", "w") as out:
        json.dump(g, out, indent=1)
        out.write("\n")
    return g


if __name__ == "__main__":
    os.makedirs(OUT, exist_ok=True)
    only = set(sys.argv[2:])
    for name, case in CASES.items():
        if only and name not in only:
            continue
        try:
            g = record(name, case)
            print(name, "ok", g["summary"]["completed_requests"], "completed")
        except Exception as e:  # the reference aborts on some configurations: keep going
            print(name, "FAILED", e)
