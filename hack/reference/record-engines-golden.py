"""Records the engine-breadth golden vectors in test/fixtures/reference/golden-engines/ from the reference.

Run inside a Python environment with the reference installed (hack/reference/install-reference.sh):
    python hack/reference/record-engines-golden.py [OUT_DIR]
Cases: TensorRT-LLM (`engine.backend = "trtllm"`, aggregated and disaggregated, with and without KV
pressure), attention-data-parallel ranks (top-level `dp_size` of the engine arguments; vLLM, SGLang and
TRT-LLM), and MTP (`aic_nextn` with acceptance rates of 0 and 1 only, so the bursts do not depend on the
reference's random stream) on every engine, aggregated, disaggregated and with DP. Each file holds the trace,
the arguments, the reference's per-request records (sorted by arrival, input_length, requested_output_length)
and its summary. Round robin everywhere: the KV router breaks ties at random.
"""

import json
import os
import sys
import tempfile

from dynamo.replay import run_trace_replay

OUT = sys.argv[1] if len(sys.argv) > 1 else "test/fixtures/reference/golden-engines"
CONV = "test/fixtures/traces/conversation-sample.jsonl"
KEEP = (
    "arrival_time_ms first_admit_ms first_token_ms last_token_ms terminal_time_ms input_length "
    "requested_output_length output_length reused_input_tokens terminal_status"
).split()
XFER = {"kv_transfer_bytes_per_token": 131072, "kv_transfer_bandwidth": 64}


def row(ts, isl, osl, ids):
    return {"timestamp": ts, "input_length": isl, "output_length": osl, "hash_ids": ids}


def conv(n):
    """The first n rows of the bundled conversation sample (stored as a row count, not the rows)."""
    return {"sample_rows": n}


def rows_of(trace):
    if isinstance(trace, list):
        return trace
    with open(CONV) as f:
        return [json.loads(line) for line in f.read().splitlines()[: trace["sample_rows"]]]


def dump(golden, f):
    """Compact JSON, one trace row or request record per line."""
    f.write("{\n")
    items = list(golden.items())
    for i, (k, v) in enumerate(items):
        end = ",\n" if i < len(items) - 1 else "\n"
        if k in ("trace", "per_request") and isinstance(v, list):
            body = ",\n  ".join(json.dumps(x, separators=(",", ":")) for x in v)
            f.write(f' "{k}": [\n  {body}\n ]{end}')
        else:
            f.write(f" {json.dumps(k)}: {json.dumps(v, separators=(',', ':'))}{end}")
    f.write("}\n")


FIXED = {"type": "fixed", "prefill_ms": 10, "decode_ms": 5}
MTP11 = {"aic_nextn": 2, "aic_nextn_accept_rates": "1,1"}
MTP10 = {"aic_nextn": 3, "aic_nextn_accept_rates": "1,0"}
CASES = {
    # TensorRT-LLM: vLLM's core under GUARANTEED_NO_EVICT (its default block size is 32).
    "trtllm_conv200_w2": dict(trace=conv(200), workers=2, engine={"backend": "trtllm"}),
    "trtllm_conv200_w1_blocks4000": dict(
        trace=conv(200), workers=1, engine={"backend": "trtllm", "num_gpu_blocks": 4000}
    ),
    "trtllm_disagg_conv200_p2d2": dict(trace=conv(200), p=2, d=2, engine={"backend": "trtllm", **XFER}),
    # Attention-data-parallel ranks: one scheduler and KV pool per rank, the slowest rank's pass time.
    "dp2_vllm_conv200_w2_bs64": dict(trace=conv(200), workers=2, dp=2, engine={"block_size": 64}),
    "dp4_vllm_conv200_w1_bs64": dict(trace=conv(200), workers=1, dp=4, engine={"block_size": 64}),
    "dp2_sglang_conv200_w2_p64": dict(
        trace=conv(200), workers=2, dp=2, engine={"backend": "sglang", "block_size": 64}
    ),
    "dp2_trtllm_conv200_w2": dict(trace=conv(200), workers=2, dp=2, engine={"backend": "trtllm"}),
    # MTP with deterministic acceptance: bursts of 3 (rates 1,1) and of 2 (rates 1,0,...).
    "mtp11_fixed_one_request": dict(
        trace=[row(0, 1000, 20, [1, 2])], workers=1, engine={"block_size": 64, "timing_model": FIXED, **MTP11}
    ),
    "mtp11_vllm_conv200_w2_bs64": dict(trace=conv(200), workers=2, engine={"block_size": 64, **MTP11}),
    # (vLLM MTP under preemption is not pinned: the reference preempts more often; see docs/fidelity.md.)
    "mtp11_sglang_conv200_w2_p64": dict(
        trace=conv(200), workers=2, engine={"backend": "sglang", "block_size": 64, **MTP11}
    ),
    "mtp11_sglang_conv200_w1_p64_blocks2200": dict(
        trace=conv(200), workers=1, engine={"backend": "sglang", "block_size": 64, "num_gpu_blocks": 2200, **MTP11}
    ),
    "mtp11_trtllm_conv200_w2": dict(trace=conv(200), workers=2, engine={"backend": "trtllm", **MTP11}),
    "mtp11_vllm_disagg_conv200_p2d2_bs64": dict(
        trace=conv(200), p=2, d=2, engine={"block_size": 64, **XFER, **MTP11}
    ),
    "mtp11_sglang_disagg_conv200_p2d2_p64": dict(
        trace=conv(200), p=2, d=2, engine={"backend": "sglang", "block_size": 64, **XFER, **MTP11}
    ),
    "mtp10_dp2_vllm_conv200_w2_bs64": dict(trace=conv(200), workers=2, dp=2, engine={"block_size": 64, **MTP10}),
}


def record(name, c):
    with tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False) as f:
        f.write("\n".join(json.dumps(r) for r in rows_of(c["trace"])) + "\n")
        path = f.name
    top = {"dp_size": c["dp"]} if "dp" in c else {}
    kwargs = dict(router_mode="round_robin", trace_block_size=512, capture_per_request=True)
    if "p" in c:
        eng = c["engine"]
        kwargs.update(
            num_prefill_workers=c["p"],
            num_decode_workers=c["d"],
            prefill_engine_args=json.dumps({"engine": {**eng, "worker_type": "prefill"}}),
            decode_engine_args=json.dumps({"engine": {**eng, "worker_type": "decode"}}),
        )
    else:
        kwargs.update(num_workers=c["workers"], extra_engine_args=json.dumps({"engine": c["engine"], **top}))
    try:
        r = run_trace_replay(path, **kwargs)
    finally:
        os.unlink(path)
    per = sorted(
        ({k: p.get(k) for k in KEEP} for p in r.per_request),
        key=lambda p: (p["arrival_time_ms"], p["input_length"], p["requested_output_length"]),
    )
    golden = {
        "name": name,
        "num_workers": c.get("workers", c.get("p", 0) + c.get("d", 0)),
        "trace_block_size": 512,
        "engine": c["engine"],
        "dp_size": c.get("dp", 1),
        "extra_kwargs": {},
        **({"trace": c["trace"]} if isinstance(c["trace"], list) else {"trace_sample_rows": c["trace"]["sample_rows"]}),
        "per_request": per,
        "summary": {k: v for k, v in r.summary.items() if isinstance(v, (int, float)) and not isinstance(v, bool)},
    }
    if "p" in c:
        golden["num_prefill_workers"] = c["p"]
        golden["num_decode_workers"] = c["d"]
    with open(os.path.join(OUT, name + ".json"), "w") as f:
        dump(golden, f)
    print(name, len(per), "requests")


def main():
    os.makedirs(OUT, exist_ok=True)
    only = sys.argv[2:]
    for name, c in CASES.items():
        if not only or name in only:
            record(name, c)


if __name__ == "__main__":
    main()
