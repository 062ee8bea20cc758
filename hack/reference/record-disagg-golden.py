"""Records the disaggregated golden vectors in test/fixtures/reference/golden-disagg/ from the reference.

Run inside a Python environment with the reference installed (hack/reference/install-reference.sh):
    python hack/reference/record-disagg-golden.py [OUT_DIR]
Each case replays a small trace on prefill and decode pools, round robin, with the KV transfer set
(`kv_transfer_bytes_per_token`, `kv_transfer_bandwidth` in GB/s) in both pools' engine arguments, and stores
the trace, the arguments, the reference's per-request records (sorted by arrival, input_length,
requested_output_length) and its summary.
"""

import json
import os
import sys
import tempfile

from dynamo.replay import run_trace_replay

OUT = sys.argv[1] if len(sys.argv) > 1 else "test/fixtures/reference/golden-disagg"
CONV = "test/fixtures/traces/conversation-sample.jsonl"
KEEP = (
    "arrival_time_ms first_admit_ms first_token_ms last_token_ms terminal_time_ms input_length "
    "requested_output_length output_length reused_input_tokens terminal_status source_held_ms "
    "destination_reserved_ms destination_activated_ms"
).split()


def row(ts, isl, osl, ids):
    return {"timestamp": ts, "input_length": isl, "output_length": osl, "hash_ids": ids}


def conv(n):
    with open(CONV) as f:
        return [json.loads(line) for line in f.read().splitlines()[:n]]


FIXED = {"type": "fixed", "prefill_ms": 10, "decode_ms": 5}
CASES = {
    # One request: prefill, then 1000 tokens x 100 kB over 10 GB/s = 10 ms, then a decode step per token.
    "single_transfer": dict(
        trace=[row(0, 1000, 3, [1, 2])], engine={"block_size": 64}, p=1, d=1, bpt=100000, gbps=10
    ),
    # Two transfers from one prefill worker at once: each takes 10 ms (the link is not shared).
    "concurrent_transfers": dict(
        trace=[row(0, 1000, 2, [1, 2]), row(0, 1000, 2, [3, 4])],
        engine={"block_size": 64},
        p=1,
        d=2,
        bpt=100000,
        gbps=10,
    ),
    # B's prefill ends inside a decode pass of A: the decode worker reserves B's KV when that pass ends.
    "busy_decode_reserves_at_pass_end": dict(
        trace=[row(0, 1000, 20, [1, 2]), row(12, 100, 2, [3])],
        engine={"block_size": 64, "timing_model": FIXED},
        p=1,
        d=1,
        bpt=100000,
        gbps=10,
    ),
    "conv400_p2d6_bs512": dict(trace=conv(400), engine={"block_size": 512}, p=2, d=6, bpt=131072, gbps=64),
    # Several handoffs reaching one busy decode worker within one pass: reserved one per scheduler step.
    "conv300_p1d3_bs64": dict(trace=conv(300), engine={"block_size": 64}, p=1, d=3, bpt=131072, gbps=64),
    "reservations_per_step": dict(
        trace=[row(0, 1000, 40, [1, 2])] + [row(12, 100 * k, 2, [2 + k]) for k in range(1, 5)],
        engine={"block_size": 64, "timing_model": FIXED},
        p=1,
        d=1,
        bpt=100000,
        gbps=10,
    ),
    # SGLang's handoff order: the decode worker reserves KV when the request arrives, before its prefill.
    "sglang_reserve_first": dict(
        trace=[row(0, 1000, 40, [1, 2])] + [row(27, 100 * k, 2, [2 + k]) for k in range(1, 5)],
        engine={"backend": "sglang", "block_size": 64, "timing_model": FIXED},
        p=1,
        d=1,
        bpt=100000,
        gbps=10,
    ),
    "sglang_conv400_p2d6_p64": dict(
        trace=conv(400), engine={"backend": "sglang", "block_size": 64}, p=2, d=6, bpt=131072, gbps=64
    ),
}


def main():
    os.makedirs(OUT, exist_ok=True)
    for name, c in CASES.items():
        eng = {**c["engine"], "kv_transfer_bytes_per_token": c["bpt"], "kv_transfer_bandwidth": c["gbps"]}
        with tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False) as f:
            f.write("\n".join(json.dumps(r) for r in c["trace"]) + "\n")
            path = f.name
        try:
            r = run_trace_replay(
                path,
                num_prefill_workers=c["p"],
                num_decode_workers=c["d"],
                router_mode="round_robin",
                prefill_engine_args=json.dumps({"engine": {**eng, "worker_type": "prefill"}}),
                decode_engine_args=json.dumps({"engine": {**eng, "worker_type": "decode"}}),
                trace_block_size=512,
                capture_per_request=True,
            )
        finally:
            os.unlink(path)
        per = sorted(
            ({k: p.get(k) for k in KEEP} for p in r.per_request),
            key=lambda p: (p["arrival_time_ms"], p["input_length"], p["requested_output_length"]),
        )
        golden = {
            "name": name,
            "num_workers": c["p"] + c["d"],
            "num_prefill_workers": c["p"],
            "num_decode_workers": c["d"],
            "trace_block_size": 512,
            "engine": eng,
            "extra_kwargs": {},
            "trace": c["trace"],
            "per_request": per,
            "summary": r.summary,
        }
        with open(os.path.join(OUT, name + ".json"), "w") as f:
            json.dump(golden, f, indent=1)
        print(name, len(per), "requests")


if __name__ == "__main__":
    main()
