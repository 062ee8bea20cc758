"""Records the reference SLA planner's performance model on synthetic forward-pass metrics, for
test/unit/planner/perf-model-vectors.test.ts (fixture: test/fixtures/reference/planner/perf-model.json).

Run inside a Python environment with the reference installed (hack/reference/install-reference.sh):
    python hack/reference/record-planner-perf-model.py > test/fixtures/reference/planner/perf-model.json

Two parts, both on ai-dynamo 1.6.1 / aisimulate-core 0.13.0 without AI Configurator data (the replay's case):
- "estimator": AISimulate's forward-pass regression (estimation_mode fpm_regression) of each worker role, tuned
  pass by pass with made-up passes; after each pass, its estimate of a fixed set of query passes.
- "planner": the planner's model of each role (PlannerEnginePerfModel): ticks of per-worker metrics (queues
  included; worker ids out of string order on purpose), then its TTFT and ITL estimates with the options the
  load-scaling rules use, and its capacity answers for throughput scaling.
Stores of at most max_num_fpm_samples (64) passes: eviction, whose ties the reference breaks in hash order, is
not exercised.
"""

import json
import random

from dynamo.common.forward_pass_metrics import (
    ForwardPassMetrics,
    QueuedRequestMetrics,
    ScheduledRequestMetrics,
)
from dynamo.planner.config.planner_config import PlannerConfig
from dynamo.planner.core.perf_model.ais_adapter import PlannerEnginePerfModel
from dynamo.planner.core.perf_model.engine_query import _fpm_to_ais_dict
from dynamo.planner.core.types import EngineCapabilities

CAPS = dict(max_num_batched_tokens=8192, max_num_seqs=256, max_kv_tokens=1048576)


def planner_model(role):
    config = PlannerConfig.from_config_arg(
        json.dumps(
            {
                "mode": "agg" if role == "aggregated" else "disagg",
                "optimization_target": "sla",
                "enable_load_scaling": True,
                "enable_throughput_scaling": False,
            }
        )
    )
    caps = EngineCapabilities(num_gpu=1, context_length=CAPS["max_kv_tokens"], **CAPS)
    return PlannerEnginePerfModel(worker_type=role, config=config, capabilities=caps)


def fpm(w, wall=0.0, worker="0", queued=(0, 0, 0, 0)):
    p, h, n, b, k = w
    qn, qt, qdn, qdk = queued
    return ForwardPassMetrics(
        worker_id=worker,
        wall_time=wall,
        scheduled_requests=ScheduledRequestMetrics(
            num_prefill_requests=n,
            sum_prefill_tokens=p,
            sum_prefill_kv_tokens=h,
            num_decode_requests=b,
            sum_decode_kv_tokens=k,
        ),
        queued_requests=QueuedRequestMetrics(
            num_prefill_requests=qn,
            sum_prefill_tokens=qt,
            num_decode_requests=qdn,
            sum_decode_kv_tokens=qdk,
        ),
    )


def random_pass(role, rng):
    """(P, H, N, B, K) and a wall time in s from a made-up polynomial pass cost, sometimes a heartbeat."""
    kind = rng.random()
    if role == "prefill" or (role == "aggregated" and kind < 0.25):
        n = rng.randint(1, 4)
        p = rng.randint(50, 8192)
        h = rng.choice([0, 0, 512, 2048, rng.randint(0, 30000)])
        b = k = 0
    elif role == "decode" or (role == "aggregated" and kind < 0.55):
        p = h = n = 0
        b = rng.randint(1, 200)
        k = b * rng.randint(200, 9000)
    else:
        n = rng.randint(1, 4)
        p = rng.randint(50, 8192)
        h = rng.choice([0, 512, rng.randint(0, 30000)])
        b = rng.randint(1, 120)
        k = b * rng.randint(200, 9000)
    ms = 8 + 0.02 * p + 1e-6 * h * p + 1e-6 * p * p + 1.5e-5 * k + 0.05 * b + rng.random() * 3
    if rng.random() < 0.05:
        ms = 0.0
    return (p, h, n, b, k), ms / 1000


def estimator_case(role, seed, steps):
    rng = random.Random(seed)
    model = planner_model(role)._engine_model._model
    queries = [random_pass(role, rng)[0] for _ in range(6)] + [(0, 0, 0, 0, 0)]
    if role == "aggregated":
        queries += [(4000, 0, 1, 0, 0), (0, 0, 0, 30, 90000), (8192, 0, 1, 40, 200000), (3000, 1000, 1, 0, 0)]
    tunes, predictions = [], []
    for _ in range(steps):
        w, wall = random_pass(role, rng)
        model.tune_with_fpms([[_fpm_to_ais_dict(fpm(w, wall))]])
        tunes.append([*w, wall])
        predictions.append([model.estimate_forward_pass_time_ms([_fpm_to_ais_dict(fpm(q))]) for q in queries])
    return {"role": role, "tunes": tunes, "queries": queries, "predictions": predictions}


PREFILL_OPTIONS = [
    {},
    {"kv_hit_rate": 0.3},
    {"queue_scale": 0.0},
    {"queue_scale": 1.5, "decode_scale": 1.5, "include_queued_decode": True},
    {"queue_scale": 0.0, "decode_scale": 2.0, "include_queued_decode": True, "kv_hit_rate": 0.99},
]
DECODE_OPTIONS = [
    {},
    {"include_queued_decode": False},
    {"decode_scale": 1.25},
    {"decode_scale": 2.0, "include_prefill_as_kv": True},
]
CAPACITY = [
    {"isl": 3000, "osl": 150},
    {"isl": 800.5, "osl": 40.2, "kv_hit_rate": 0.5},
    {"isl": 12000, "osl": 500},
]


def worker_metrics(role, rng, worker):
    w, wall = random_pass(role, rng)
    queued = (rng.randint(0, 20), 0, rng.randint(0, 3), 0)
    queued = (queued[0], queued[0] * rng.randint(100, 9000), queued[2], queued[2] * rng.randint(500, 5000))
    if role == "decode":
        queued = (0, 0, queued[2], queued[3])
    return fpm(w, wall, worker, queued)


def planner_case(role, seed, ticks, bootstrap):
    rng = random.Random(seed)
    model = planner_model(role)
    boot = []
    if bootstrap:
        for _ in range(12):
            w, wall = random_pass(role, rng)
            boot.append([*w, wall])
        model.load_benchmark_fpms([fpm(tuple(b[:5]), b[5]) for b in boot])
    workers = ["2", "0", "10", "1"]
    tick_rows, results = [], []
    for _ in range(ticks):
        metrics = {(wid, 0): worker_metrics(role, rng, wid) for wid in workers}
        model.add_observations(metrics)
        rows = []
        for (wid, _), m in metrics.items():
            s, q = m.scheduled_requests, m.queued_requests
            rows.append(
                {
                    "worker": int(wid),
                    "pass": [s.sum_prefill_tokens, s.sum_prefill_kv_tokens, s.num_prefill_requests,
                             s.num_decode_requests, s.sum_decode_kv_tokens, m.wall_time],
                    "queued": [q.num_prefill_requests, q.sum_prefill_tokens, q.num_decode_requests,
                               q.sum_decode_kv_tokens],
                }
            )
        tick_rows.append(rows)
        out = {"avg_isl": model.avg_isl, "avg_decode_length": model.avg_decode_length,
               "ready": model.has_sufficient_data(), "ttft": [], "itl": [], "capacity": []}
        for m in metrics.values():
            out["ttft"].append([
                model.estimate_queued_prefill_time([m], max_num_batched_tokens=CAPS["max_num_batched_tokens"], **o)
                for o in PREFILL_OPTIONS
            ])
            out["itl"].append([
                model.estimate_scheduled_decode_itl(
                    [m],
                    decode_scale=o.get("decode_scale", 1.0),
                    include_queued_decode=o.get("include_queued_decode", True),
                    include_queued_prefill_as_kv=o.get("include_prefill_as_kv", False),
                )
                for o in DECODE_OPTIONS
            ])
        for c in CAPACITY:
            cap = model.find_engine_capacity_rps(
                isl=c["isl"], osl=c["osl"], ttft_sla_ms=None if role == "decode" else 2000.0,
                itl_sla_ms=None if role == "prefill" else 50.0, kv_hit_rate=c.get("kv_hit_rate"),
            )
            out["capacity"].append(
                None if cap is None else [cap.rps, cap.ttft_ms, cap.itl_ms, cap.e2e_latency_ms, cap.eligible]
            )
        results.append(out)
    return {"role": role, "bootstrap": boot, "ticks": tick_rows, "results": results}


def main():
    out = {
        "caps": CAPS,
        "prefill_options": PREFILL_OPTIONS,
        "decode_options": DECODE_OPTIONS,
        "capacity_requests": CAPACITY,
        "estimator": [
            estimator_case("aggregated", 1, 120),
            estimator_case("prefill", 2, 60),
            estimator_case("decode", 3, 60),
        ],
        "planner": [
            planner_case("aggregated", 11, 8, False),
            planner_case("aggregated", 12, 6, True),
            planner_case("prefill", 13, 8, True),
            planner_case("decode", 14, 8, False),
        ],
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
