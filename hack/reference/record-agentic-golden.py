"""Records the agentic and session trace golden vectors in test/fixtures/reference/golden-agentic/.

Run inside a Python environment with the reference installed (hack/reference/install-reference.sh):
    python hack/reference/record-agentic-golden.py [OUT_DIR [CASE...]]
Cases: `agentic_mooncake` (version 2: completion and dispatch dependencies, joins with their own delays,
`not_before_ms`; hand-made, and one built from the conversation sample's sessions), `mooncake-delta` (turns
holding only their new prompt segment) and `applied_compute_agentic` (one session per row, replayed with a
concurrency). Each file holds the trace rows as servetune reads them, the arguments, the reference's
per-request records (sorted by arrival, input_length, requested_output_length) and its summary. Round robin
everywhere.
"""

import json
import os
import sys
import tempfile

from dynamo.replay import run_trace_replay

OUT = sys.argv[1] if len(sys.argv) > 1 else "test/fixtures/reference/golden-agentic"
CONV = "test/fixtures/traces/conversation-sample.jsonl"
KEEP = (
    "arrival_time_ms first_admit_ms first_token_ms last_token_ms terminal_time_ms input_length "
    "requested_output_length output_length reused_input_tokens terminal_status"
).split()
FIXED = {"type": "fixed", "prefill_ms": 10, "decode_ms": 5}
HEADER = {
    "schema": "dynamo.agentic_mooncake",
    "version": 2,
    "block_size": 512,
    "hash_id_scope": "local",
    "source": {"format": "servetune-golden", "digest": "v1"},
}
AGENTIC = {"model_name": "m", "execution_model": "m"}


def node(rid, play, isl, osl, ids, not_before=0, deps=()):
    r = {
        "request_id": rid,
        "play_id": play,
        "session_id": play,
        "model": "m",
        "input_length": isl,
        "output_length": osl,
        "hash_ids": ids,
        "not_before_ms": not_before,
    }
    if deps:
        # The reference ties relations to triggers: dispatch edges spawn; completion edges continue a sequence
        # (the first) or join it.
        r["dependencies"] = [
            {
                "request_id": d,
                "trigger": trig,
                "delay_ms": delay,
                "relation": "spawn" if trig == "dispatch" else "sequence" if k == 0 else "join",
            }
            for k, (d, trig, delay) in enumerate(deps)
        ]
    return r


def conversation_sessions(rows, sessions):
    """Sessions of the conversation sample: a row continues the earlier row it shares the longest hash-id
    prefix with (two ids at least) when that covers all of that row's ids but perhaps its last. Returns
    (parent per row, the rows of the first `sessions` sessions with two turns or more)."""
    pref, parent = {}, [None] * len(rows)
    for i, r in enumerate(rows):
        h = r["hash_ids"]
        for k in range(len(h), 1, -1):
            p = pref.get(tuple(h[:k]))
            if p is not None:
                if k >= len(rows[p]["hash_ids"]) - 1:
                    parent[i] = p
                break
        for k in range(1, len(h) + 1):
            pref[tuple(h[:k])] = i
    root = list(range(len(rows)))
    for i, p in enumerate(parent):
        if p is not None:
            root[i] = root[p]
    multi = []
    for i, p in enumerate(parent):
        if p is not None and root[i] not in multi:
            multi.append(root[i])
    keep = set(sorted(multi)[:sessions])
    return parent, root, [i for i in range(len(rows)) if root[i] in keep]


def agentic_from_conversation(n_rows, sessions):
    """Version-2 rows: each session's first row at its timestamp, each later one waiting for the row it
    continues, delayed by the gap between their timestamps."""
    with open(CONV) as f:
        rows = [json.loads(line) for line in f.read().splitlines()[:n_rows]]
    parent, root, picked = conversation_sessions(rows, sessions)
    out = [HEADER]
    for i in picked:
        r, p = rows[i], parent[i]
        play = f"s{root[i]}"
        if p is None:
            out.append(node(f"r{i}", play, r["input_length"], r["output_length"], r["hash_ids"], r["timestamp"]))
        else:
            gap = r["timestamp"] - rows[p]["timestamp"]
            out.append(
                node(f"r{i}", play, r["input_length"], r["output_length"], r["hash_ids"], 0, [(f"r{p}", "completion", gap)])
            )
    return out


def delta_from_conversation(n_rows, sessions):
    """The same sessions as delta rows: a later turn holds the tokens its prompt adds to the previous
    prompt and output (at least one), after the gap between their timestamps; a second continuation of the
    same row starts a session of its own."""
    with open(CONV) as f:
        rows = [json.loads(line) for line in f.read().splitlines()[:n_rows]]
    parent, root, picked = conversation_sessions(rows, sessions)
    out, session, taken = [], {}, set()
    for i in picked:
        r, p = rows[i], parent[i]
        if p is None or p in taken:
            session[i] = f"s{i}"
            out.append(delta(session[i], r["timestamp"], r["input_length"], r["output_length"], r["hash_ids"]))
            continue
        taken.add(p)
        session[i] = session[p]
        added = max(1, r["input_length"] - rows[p]["input_length"] - rows[p]["output_length"])
        gap = r["timestamp"] - rows[p]["timestamp"]
        # The new segment's hash ids: the row's beyond its predecessor's, then ids of its own.
        known = r["hash_ids"][len(rows[p]["hash_ids"]) :]
        ids = [known[k] if k < len(known) else 10**9 + 1000 * i + k for k in range(-(-added // 512))]
        out.append(delta(session[i], None, added, r["output_length"], ids, gap))
    return out


def delta(session, ts, isl, osl, ids, d=None):
    r = {"session_id": session, "input_length": isl, "output_length": osl, "hash_ids": ids}
    if d is None:
        r["timestamp"] = ts
    else:
        r["delay"] = d
    return r


def applied(turns, prompt, answers, tools, latencies, final):
    return {
        "num_turns": turns,
        "input_prompt_length": prompt,
        "assistant_response_length": answers,
        "tool_call_output_length": tools,
        "tool_call_latency": latencies,
        "final_assistant_response_length": final,
    }


def applied_generated(n, seed):
    """n sessions of 1-6 turns from a fixed linear congruential stream (no dependence on Python's random)."""
    x = seed
    def nxt(m):
        nonlocal x
        x = (x * 1103515245 + 12345) % 2**31
        return x % m
    rows = []
    for _ in range(n):
        t = 1 + nxt(6)
        rows.append(
            applied(
                t,
                500 + nxt(6000),
                [20 + nxt(300) for _ in range(t)],
                [nxt(2000) for _ in range(t)],
                [nxt(3000) / 1000 for _ in range(t)],
                50 + nxt(400),
            )
        )
    return rows


CASES = {
    # A hand-made DAG: a fork on dispatch, a join whose edges have their own delays, a not_before later than
    # every predecessor, a chain, and a second root.
    "agentic_v2_fixed_dag": dict(
        format="agentic_mooncake",
        trace=[
            HEADER,
            node("a", "p", 1000, 10, [1, 2], 0),
            node("b", "p", 1000, 5, [1, 2], 400),
            node("c", "p", 1200, 5, [1, 2, 3], 2500, [("a", "completion", 10)]),
            node("d", "p", 1200, 5, [1, 2, 4], 0, [("a", "completion", 10), ("b", "completion", 300)]),
            node("e", "p", 1200, 5, [1, 2, 5], 0, [("a", "dispatch", 7)]),
            node("f", "p", 1700, 3, [1, 2, 4, 6], 0, [("d", "completion", 0), ("e", "completion", 50)]),
        ],
        workers=1,
        engine={"block_size": 64, "timing_model": FIXED},
        extra=AGENTIC,
    ),
    # Requests ready at the same time start in request-id order (string order), roots and dependents alike.
    # Round robin over 4 workers and prefixes cached on one worker each make the order visible: in id order
    # each tied request lands where its prefix is cached (reused 512 tokens), in file order none does.
    "agentic_v2_ready_ties_w4": dict(
        format="agentic_mooncake",
        trace=[
            HEADER,
            *[node(f"w{k}", "p", 1000, 5, [100 + k, 200 + k], 0) for k in range(4)],
            node("zz", "q", 990, 5, [103, 303], 900),
            node("mm", "q", 980, 5, [100, 300], 900),
            node("r9999", "q", 970, 5, [102, 302], 900),
            node("r10000", "q", 960, 5, [101, 301], 900),
            node("x", "r", 1000, 5, [500, 501], 2000),
            node("d9", "r", 950, 5, [103, 403], 0, [("x", "completion", 0)]),
            node("d1", "r", 940, 5, [101, 401], 0, [("x", "completion", 0)]),
            node("d5", "r", 930, 5, [102, 402], 0, [("x", "completion", 0)]),
        ],
        workers=4,
        engine={"block_size": 64, "timing_model": FIXED},
        extra=AGENTIC,
    ),
    # Sessions of the conversation sample (first 2,000 rows) as agentic rows, 8x faster.
    "agentic_v2_conversation_sessions_w2_bs64": dict(
        format="agentic_mooncake",
        trace=agentic_from_conversation(2000, 60),
        workers=2,
        engine={"block_size": 64},
        extra={**AGENTIC, "arrival_speedup_ratio": 8},
    ),
    # Delta sessions: a turn's prompt is the previous prompt, its output and the row's tokens; the second
    # session's first turn shares the first's prefix.
    "delta_fixed_two_sessions": dict(
        format="mooncake-delta",
        trace=[
            delta("s", 0, 1000, 100, [1, 2]),
            delta("s", None, 600, 70, [3, 4], 100),
            delta("s", None, 30, 5, [5], 100),
            delta("t", 10, 1000, 10, [1, 2]),
            delta("t", None, 100, 5, [5], 50),
        ],
        workers=1,
        engine={"block_size": 64, "timing_model": FIXED},
        extra={},
    ),
    "delta_conversation_sessions_w2_bs64": dict(
        format="mooncake-delta",
        trace=delta_from_conversation(2000, 60),
        workers=2,
        engine={"block_size": 64},
        extra={"arrival_speedup_ratio": 8},
    ),
    "applied_compute_fixed_c2": dict(
        format="applied_compute_agentic",
        trace=[
            applied(3, 1000, [20, 30, 25], [200, 100, 50], [0.5, 0.25, 0.1], 40),
            applied(0, 700, [], [], [], 12),
            applied(2, 3000, [64, 10], [0, 900], [0, 1.5], 7),
        ],
        workers=1,
        engine={"block_size": 64, "timing_model": FIXED},
        extra={"replay_concurrency": 2},
    ),
    "applied_compute_generated_c8_w2_bs64": dict(
        format="applied_compute_agentic",
        trace=applied_generated(60, 7),
        workers=2,
        engine={"block_size": 64},
        extra={"replay_concurrency": 8},
    ),
}


def record(name, c):
    with tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False) as f:
        f.write("\n".join(json.dumps(r) for r in c["trace"]) + "\n")
        path = f.name
    try:
        r = run_trace_replay(
            path,
            trace_format=c["format"],
            num_workers=c["workers"],
            router_mode="round_robin",
            extra_engine_args=json.dumps({"engine": c["engine"]}),
            trace_block_size=512,
            capture_per_request=True,
            **c["extra"],
        )
    finally:
        os.unlink(path)
    per = sorted(
        ({k: p.get(k) for k in KEEP} for p in r.per_request),
        key=lambda p: (p["arrival_time_ms"], p["input_length"], p["requested_output_length"]),
    )
    golden = {
        "name": name,
        "trace_format": c["format"],
        "num_workers": c["workers"],
        "trace_block_size": 512,
        "engine": c["engine"],
        "extra_kwargs": {k: v for k, v in c["extra"].items() if k not in AGENTIC},
        "trace": c["trace"],
        "per_request": per,
        "summary": {k: v for k, v in r.summary.items() if isinstance(v, (int, float)) and not isinstance(v, bool)},
    }
    with open(os.path.join(OUT, name + ".json"), "w") as f:
        f.write("{\n")
        items = list(golden.items())
        for i, (k, v) in enumerate(items):
            end = ",\n" if i < len(items) - 1 else "\n"
            if k in ("trace", "per_request"):
                body = ",\n  ".join(json.dumps(x, separators=(",", ":")) for x in v)
                f.write(f' "{k}": [\n  {body}\n ]{end}')
            else:
                f.write(f" {json.dumps(k)}: {json.dumps(v, separators=(',', ':'))}{end}")
        f.write("}\n")
    print(name, len(per), "requests")


def main():
    os.makedirs(OUT, exist_ok=True)
    only = sys.argv[2:]
    for name, c in CASES.items():
        if not only or name in only:
            record(name, c)


if __name__ == "__main__":
    main()
