"""Runs one case through the reference simulator (NVIDIA Dynamo's offline replay) and prints its summary.

Used by bench/compare-reference.ts with the python of the venv hack/reference/install-reference.sh makes:

    python hack/reference/replay-driver.py CASE.json     # or the case JSON on stdin
    python hack/reference/replay-driver.py --versions

The installed releases (ai-dynamo 1.6.1, aisimulate 0.13.0) have no `python -m dynamo.replay` or
`python -m aisimulate.replay` command, so this calls the Python API, `dynamo.replay.run_trace_replay` /
`run_synthetic_trace_replay`. A case is a JSON object:

    {"kind": "trace", "trace": PATH, "trace_block_size": 512,        # or "kind": "synthetic" with
     "synthetic": {"input_tokens": N, "output_tokens": N, "request_count": N},
     "num_workers": N, "router_mode": "round_robin" | "kv_router",
     "engine": {...},                                              # extra_engine_args["engine"]
     "dp_size": N,                                                 # optional: attention-DP ranks per worker
     "trace_format": NAME,                                         # optional: e.g. "agentic_mooncake"
     "extra": {...},                                               # optional: more replay keyword arguments
     "replay_concurrency": N,                                      # optional: closed loop
     "arrival_speedup_ratio": X,                                   # optional
     "planner": PATH,                                              # optional: a Planner YAML/JSON file
     "disagg": {"num_prefill_workers": N, "num_decode_workers": N,  # optional: disaggregated
                "prefill_engine": {...}, "decode_engine": {...}}}

The output is one JSON object: the replay's `summary`, `call_wall_ms` (host time around the API call,
which includes trace parsing; the summary's own `wall_time_ms` covers the Rust runtime's construction and
execution) and `import_ms` (importing dynamo.replay).
"""

import json
import sys
import time
from importlib import metadata


def versions():
    out = {"python": sys.version.split()[0]}
    for name in ("ai-dynamo", "ai-dynamo-runtime", "aisimulate"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def run(case):
    t0 = time.perf_counter()
    from dynamo.replay import run_synthetic_trace_replay, run_trace_replay

    import_ms = (time.perf_counter() - t0) * 1000
    kwargs = {
        "num_workers": case.get("num_workers", 1),
        "router_mode": case.get("router_mode", "round_robin"),
    }
    if case.get("engine") is not None or case.get("dp_size") is not None:
        top = {"dp_size": case["dp_size"]} if case.get("dp_size") is not None else {}
        kwargs["extra_engine_args"] = json.dumps({"engine": case.get("engine", {}), **top})
    if case.get("trace_format") is not None:
        kwargs["trace_format"] = case["trace_format"]
    kwargs.update(case.get("extra", {}))
    if case.get("replay_concurrency") is not None:
        kwargs["replay_concurrency"] = case["replay_concurrency"]
    if case.get("arrival_speedup_ratio") is not None:
        kwargs["arrival_speedup_ratio"] = case["arrival_speedup_ratio"]
    if case.get("planner") is not None:
        import yaml

        with open(case["planner"], encoding="utf-8") as f:
            kwargs["planner_config"] = yaml.safe_load(f)
    disagg = case.get("disagg")
    if disagg is not None:
        kwargs["num_prefill_workers"] = disagg["num_prefill_workers"]
        kwargs["num_decode_workers"] = disagg["num_decode_workers"]
        kwargs["prefill_engine_args"] = json.dumps(
            {"engine": {**disagg.get("prefill_engine", {}), "worker_type": "prefill"}}
        )
        kwargs["decode_engine_args"] = json.dumps(
            {"engine": {**disagg.get("decode_engine", {}), "worker_type": "decode"}}
        )
    t1 = time.perf_counter()
    if case["kind"] == "trace":
        report = run_trace_replay(
            case["trace"], trace_block_size=case.get("trace_block_size", 512), **kwargs
        )
    elif case["kind"] == "synthetic":
        s = case["synthetic"]
        extra = {k: v for k, v in s.items() if k not in ("input_tokens", "output_tokens", "request_count")}
        report = run_synthetic_trace_replay(
            s["input_tokens"], s["output_tokens"], s["request_count"], **extra, **kwargs
        )
    else:
        raise ValueError(f"unknown case kind {case['kind']!r}")
    call_wall_ms = (time.perf_counter() - t1) * 1000
    out = {"summary": report.summary, "call_wall_ms": call_wall_ms, "import_ms": import_ms}
    if report.planner is not None:
        events = [
            {"t_s": e.get("at_ms", 0) / 1000, **((e.get("effects") or {}).get("scale_to") or {})}
            for e in report.planner.ticks
            if ((e.get("effects") or {}).get("scale_to") or {})
        ]
        out["planner"] = {"ticks": report.planner.total_ticks, "scale_to": events}
    return out


def main():
    if sys.argv[1:] == ["--versions"]:
        print(json.dumps(versions()))
        return
    if len(sys.argv) > 1:
        with open(sys.argv[1], encoding="utf-8") as f:
            case = json.load(f)
    else:
        case = json.load(sys.stdin)
    print(json.dumps(run(case)))


if __name__ == "__main__":
    main()
