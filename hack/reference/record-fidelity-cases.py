"""Prints the reference's figures for the small comparison cases pinned in test/unit/sim/fidelity-cases.test.ts.

Run inside a Python environment with the reference installed (hack/reference/install-reference.sh):
    python hack/reference/record-fidelity-cases.py [NAME_REGEX]
(NAME_REGEX: only the cases whose name it matches, e.g. '^offload_'.)
For each case: mean and p90 TTFT, mean TPOT, mean E2E, output throughput and prefix-reuse ratio, as in
docs/fidelity.md. KV-router cases break ties at random, so they run RUNS times and print each metric's range.
Planner cases (PLANNER) add the GPU-hours and the scaling decisions, [tick time in s, target workers].
"""

import json
import re
import sys

import yaml

from dynamo.replay import run_synthetic_trace_replay, run_trace_replay

CONV = "test/fixtures/traces/conversation-sample.jsonl"
SYNTH = "test/fixtures/traces/synthetic-sample.jsonl"
RUNS = 8
KEYS = {
    "ttft_mean": "mean_ttft_ms",
    "ttft_p90": "p90_ttft_ms",
    "tpot_mean": "mean_tpot_ms",
    "e2e_mean": "mean_e2e_latency_ms",
    "output_tok_s": "output_throughput_tok_s",
    "prefix_reuse": "prefix_cache_reused_ratio",
}


def eng(**e):
    return json.dumps({"engine": e})


def disagg(**e):
    return {
        "num_prefill_workers": 2,
        "num_decode_workers": 6,
        "prefill_engine_args": json.dumps({"engine": {**e, "worker_type": "prefill"}}),
        "decode_engine_args": json.dumps({"engine": {**e, "worker_type": "decode"}}),
    }


KV = dict(kv_transfer_bytes_per_token=131072, kv_transfer_bandwidth=64)


def offload(g2, g3=0):
    e = dict(
        block_size=64,
        num_gpu_blocks=6000,
        kv_cache_bytes_per_token=131072,
        native_host_offload={"num_host_blocks": g2, "d2h_bandwidth_gbps": 14, "h2d_bandwidth_gbps": 14},
    )
    if g3:
        e["g3_offload"] = {
            "scope": "worker_local",
            "num_g3_blocks": g3,
            "read_bandwidth_gbps": 7,
            "write_bandwidth_gbps": 7,
            "latency_to_first_byte_ms": 0,
        }
    return e
CASES = {
    "conv2000_w4_rr_bs64": lambda: run_trace_replay(CONV, num_workers=4, extra_engine_args=eng(block_size=64)),
    "conv2000_w8_rr_bs512": lambda: run_trace_replay(CONV, num_workers=8, extra_engine_args=eng(block_size=512)),
    "synth500_w1_rr_bs64": lambda: run_trace_replay(SYNTH, num_workers=1, extra_engine_args=eng(block_size=64)),
    "closed300_c32_w4_rr_bs64": lambda: run_synthetic_trace_replay(
        2000, 200, 300, replay_concurrency=32, num_workers=4, extra_engine_args=eng(block_size=64)
    ),
    "disagg_conv2000_p2d6_rr_bs512": lambda: run_trace_replay(CONV, **disagg(block_size=512, **KV)),
    "sglang_conv2000_w4_rr_p64": lambda: run_trace_replay(
        CONV, num_workers=4, extra_engine_args=eng(backend="sglang", block_size=64)
    ),
    "conv2000_w4_kv_bs64": lambda: run_trace_replay(
        CONV, num_workers=4, router_mode="kv_router", extra_engine_args=eng(block_size=64)
    ),
    # KV offload: 6,000 GPU blocks per worker, a host tier (G2) larger or smaller than that, and a disk tier
    # (G3) behind the smaller one; 128 KiB per token, host links 14 GB/s, disk 7 GB/s.
    "offload_conv2000_w4_rr_bs64_g2": lambda: run_trace_replay(
        CONV, num_workers=4, extra_engine_args=eng(**offload(20000))
    ),
    "offload_conv2000_w4_rr_bs64_g2small": lambda: run_trace_replay(
        CONV, num_workers=4, extra_engine_args=eng(**offload(5000))
    ),
    "offload_conv2000_w4_rr_bs64_g2g3": lambda: run_trace_replay(
        CONV, num_workers=4, extra_engine_args=eng(**offload(5000, 50000))
    ),
}




def planner(file):
    with open(file, encoding="utf-8") as f:
        return yaml.safe_load(f)


PLANNER = {
    # The Planner cases of docs/fidelity.md on the first 2,000 conversation rows.
    "planner_thr_conv2000_x4_w2": lambda: run_trace_replay(
        CONV,
        num_workers=2,
        arrival_speedup_ratio=4,
        extra_engine_args=eng(block_size=64),
        planner_config=planner("bench/fidelity/planner-throughput.yaml"),
    ),
    "planner_sla_conv2000_x4_w2": lambda: run_trace_replay(
        CONV,
        num_workers=2,
        arrival_speedup_ratio=4,
        extra_engine_args=eng(block_size=64),
        planner_config=planner("bench/fidelity/planner-sla.yaml"),
    ),
    # At the trace's own pace the SLA planner scales up and down many times.
    "planner_sla_conv2000_x1_w2": lambda: run_trace_replay(
        CONV,
        num_workers=2,
        extra_engine_args=eng(block_size=64),
        planner_config=planner("bench/fidelity/planner-sla.yaml"),
    ),
}


def main():
    only = re.compile(sys.argv[1]) if len(sys.argv) > 1 else None
    out = {}
    for name, fn in PLANNER.items():
        if only and not only.search(name):
            continue
        report = fn()
        row = report.summary
        out[name] = {k: row[v] for k, v in KEYS.items()}
        out[name]["gpu_hours"] = row["gpu_hours"]
        out[name]["scale_to"] = [
            [t["at_ms"] / 1000, t["effects"]["scale_to"]["num_decode"]]
            for t in report.planner.ticks
            if (t.get("effects") or {}).get("scale_to")
        ]
        print(name, json.dumps(out[name]), file=sys.stderr)
    for name, fn in CASES.items():
        if only and not only.search(name):
            continue
        runs = RUNS if "_kv_" in name else 1
        rows = [fn().summary for _ in range(runs)]
        out[name] = {
            k: rows[0][v] if runs == 1 else [min(r[v] for r in rows), max(r[v] for r in rows)]
            for k, v in KEYS.items()
        }
        print(name, json.dumps(out[name]), file=sys.stderr)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
