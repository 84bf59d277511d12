"""Where a Horovod step's time goes, from a Horovod Timeline (HOROVOD_TIMELINE=file.json).

The timeline is rank 0's record of every collective: per tensor, NEGOTIATE_ALLREDUCE (from the
first request to the coordinator's go), then ALLREDUCE with the activities MEMCPY_IN_FUSION_BUFFER,
GLOO_ALLREDUCE and MEMCPY_OUT_FUSION_BUFFER inside it. `analyze` groups the gradient tensors (the
ones allreduced once per step) into fused operations (the tensors of one fusion share one
GLOO_ALLREDUCE interval) and into steps (a step ends when a tensor comes round again), and sums per
step: negotiation, each allreduce phase, the rest of the ALLREDUCE (scaling, bookkeeping), and the
compute in between, i.e. time with no gradient collective under way on rank 0 at all.

    python benchmarks/horovod_timeline.py [--quick] [--env KEY=VALUE ...]   # record a 2-rank run, analyze
    python benchmarks/horovod_timeline.py --analyze timeline.json           # analyze a recorded one
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from collections import Counter, defaultdict
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

PHASES = ("MEMCPY_IN_FUSION_BUFFER", "GLOO_ALLREDUCE", "MEMCPY_OUT_FUSION_BUFFER")
_DTYPE_BYTES = {"float16": 2, "float32": 4, "float64": 8, "int8": 1, "uint8": 1, "int32": 4, "int64": 8, "bool": 1}

Interval = tuple[float, float]


def load_events(path: str) -> list[dict[str, Any]]:
    """The timeline's events; a file cut short by a killed rank 0 is closed off and read too."""
    with open(path) as handle:
        text = handle.read().strip()
    try:
        events: list[dict[str, Any]] = json.loads(text)
    except json.JSONDecodeError:
        events = json.loads(text.rstrip(",\n") + "]")
    return events


def _intervals(events: list[dict[str, Any]]) -> dict[str, list[tuple[str, float, float, dict[str, Any]]]]:
    """Per tensor name, its (activity, start µs, end µs, end args) intervals, nested ones included."""
    names = {e["pid"]: e["args"]["name"] for e in events if e.get("name") == "process_name" and "name" in e["args"]}
    open_: dict[int, list[tuple[str, float]]] = defaultdict(list)
    out: dict[str, list[tuple[str, float, float, dict[str, Any]]]] = defaultdict(list)
    for event in events:
        if event.get("ph") == "B":
            open_[event["pid"]].append((event["name"], event["ts"]))
        elif event.get("ph") == "E" and open_[event["pid"]]:
            name, start = open_[event["pid"]].pop()
            out[names.get(event["pid"], str(event["pid"]))].append((name, start, event["ts"], event.get("args", {})))
    return out


def _union(intervals: list[Interval]) -> float:
    total, end = 0.0, float("-inf")
    for start, stop in sorted(intervals):
        if stop > end:
            total += stop - max(start, end)
            end = stop
    return total


def _nbytes(args: dict[str, Any]) -> int:
    shape = [int(d) for d in args.get("shape", "[]").strip("[]").split(",") if d.strip()]
    count = 1
    for dim in shape:
        count *= dim
    return count * _DTYPE_BYTES.get(args.get("dtype", "float32"), 4)


def analyze(path: str, skip_steps: int = 2) -> dict[str, Any]:
    """Per-step breakdown (ms, median over the steps after the first `skip_steps`) of a Horovod Timeline."""
    events = load_events(path)
    per_tensor = _intervals(events)
    counts = {name: sum(1 for iv in ivs if iv[0] == "ALLREDUCE") for name, ivs in per_tensor.items()}
    most = max(counts.values(), default=0)
    # Gradients are allreduced once a step; metrics once an epoch and broadcasts once a run.
    grads = {name for name, n in counts.items() if most and n >= most / 2}

    # One fused operation = the tensors whose GLOO_ALLREDUCE intervals overlap (ops run one at a time).
    runs = []
    for name in grads:
        ivs = per_tensor[name]
        tops = [iv for iv in ivs if iv[0] == "ALLREDUCE"]
        for top in tops:
            inner = {iv[0]: (iv[1], iv[2]) for iv in ivs if iv[0] in PHASES and top[1] <= iv[1] <= top[2]}
            runs.append({"tensor": name, "span": (top[1], top[2]), "bytes": _nbytes(top[3]), "phases": inner})
    runs.sort(key=lambda r: r["phases"].get("GLOO_ALLREDUCE", r["span"])[0])
    ops: list[dict[str, Any]] = []
    for run in runs:
        gloo = run["phases"].get("GLOO_ALLREDUCE", run["span"])
        if ops and gloo[0] < ops[-1]["gloo_end"]:
            op = ops[-1]
        else:
            op = {"tensors": [], "bytes": 0, "spans": [], "phases": defaultdict(list), "gloo_end": gloo[1]}
            ops.append(op)
        op["tensors"].append(run["tensor"])
        op["bytes"] += run["bytes"]
        op["spans"].append(run["span"])
        op["gloo_end"] = max(op["gloo_end"], gloo[1])
        for phase, interval in run["phases"].items():
            op["phases"][phase].append(interval)

    negotiations = sorted(
        (iv[1], iv[2], name) for name in grads for iv in per_tensor[name] if iv[0] == "NEGOTIATE_ALLREDUCE"
    )
    cycles = sorted(e["ts"] for e in events if e.get("name") == "CYCLE_START")

    # Steps: a new one starts when an operation carries a tensor the current step already reduced.
    steps: list[list[dict[str, Any]]] = []
    seen: set[str] = set()
    for op in ops:
        if not steps or seen & set(op["tensors"]):
            steps.append([])
            seen = set()
        steps[-1].append(op)
        seen |= set(op["tensors"])

    rows = []
    previous_end = None
    for step in steps:
        start = min(s[0] for op in step for s in op["spans"])
        end = max(s[1] for op in step for s in op["spans"])
        negotiate = [(a, b) for a, b, _ in negotiations if (previous_end or 0) <= a < end]
        row: dict[str, Any] = {
            "fused_allreduces": len(step),
            "bytes": [op["bytes"] for op in step],
            "negotiate_ms": _union(negotiate) / 1e3,
        }
        for phase in PHASES:
            row[phase] = sum(_union(op["phases"][phase]) for op in step) / 1e3
        allreduce = sum(_union(op["spans"]) for op in step)
        row["allreduce_other_ms"] = allreduce / 1e3 - sum(row[p] for p in PHASES)
        if previous_end is not None:
            row["period_ms"] = (end - previous_end) / 1e3
            busy = _union(negotiate + [s for op in step for s in op["spans"]])
            row["compute_ms"] = row["period_ms"] - busy / 1e3  # no gradient collective under way
            first = min([a for a, _ in negotiate] + [start])
            row["compute_before_first_negotiation_ms"] = (first - previous_end) / 1e3
            row["cycles"] = sum(1 for ts in cycles if previous_end <= ts < end)
            rows.append(row)
        previous_end = end

    steady = rows[skip_steps:] or rows
    keys = ["period_ms", "compute_ms", "compute_before_first_negotiation_ms", "negotiate_ms", *PHASES]
    summary = {key: round(statistics.median(r[key] for r in steady), 2) if steady else None for key in keys}
    summary["allreduce_other_ms"] = (
        round(statistics.median(r["allreduce_other_ms"] for r in steady), 2) if steady else None
    )
    fusion = Counter(tuple(r["bytes"]) for r in steady)
    return {
        "steps": len(rows),
        "gradient_tensors": len(grads),
        "gradient_bytes": sum(_nbytes(next(iv[3] for iv in per_tensor[n] if iv[0] == "ALLREDUCE")) for n in grads),
        "median_ms_per_step": summary,
        "fused_allreduces_per_step": statistics.median(r["fused_allreduces"] for r in steady) if steady else None,
        "fusion_patterns": [{"bytes": list(k), "steps": v} for k, v in fusion.most_common(4)],
        "cycles_per_step": statistics.median(r["cycles"] for r in steady) if steady and cycles else None,
        "other_collectives": {n: c for n, c in counts.items() if n not in grads and c},
    }


def report(result: dict[str, Any]) -> str:
    ms = result["median_ms_per_step"]
    lines = [
        f"{result['steps']} steps, {result['gradient_tensors']} gradient tensors "
        f"({result['gradient_bytes'] / 2**20:.1f} MiB), median per step (ms):",
        f"  step period {ms['period_ms']}, compute (no gradient collective) {ms['compute_ms']}"
        f" (of which before the first negotiation {ms['compute_before_first_negotiation_ms']})",
        f"  negotiate {ms['negotiate_ms']}, memcpy in {ms['MEMCPY_IN_FUSION_BUFFER']}, gloo allreduce "
        f"{ms['GLOO_ALLREDUCE']}, memcpy out {ms['MEMCPY_OUT_FUSION_BUFFER']}, rest of allreduce "
        f"{ms['allreduce_other_ms']}",
        f"  fused allreduces per step {result['fused_allreduces_per_step']}; sizes (bytes, steps): "
        + "; ".join(f"{p['bytes']} x{p['steps']}" for p in result["fusion_patterns"]),
    ]
    if result["cycles_per_step"] is not None:
        lines.append(f"  background cycles per step {result['cycles_per_step']}")
    return "\n".join(lines)


def record(quick: bool, env: dict[str, str], path: str, model: str = "mlp") -> float:
    """One 2-rank run of one of the scaling benchmark's models with the timeline on; its samples/s."""
    from benchmarks.common import commit_training_dataset, fresh_store, s3_server
    from benchmarks.horovod_scaling import FULL, QUICK, params, run_horovod

    cfg = QUICK if quick else FULL
    with s3_server():
        store = fresh_store("timeline")
        dataset = commit_training_dataset(store, cfg["rows"])
        return run_horovod(store, dataset, 2, params(cfg, model), {"HOROVOD_TIMELINE": path, **env})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--analyze", metavar="TIMELINE", help="analyze this timeline instead of recording one")
    parser.add_argument("--quick", action="store_true", help="the scaling benchmark's --quick configuration")
    parser.add_argument("--model", default="mlp", choices=["cnn", "mlp"], help="the scaling benchmark's model")
    parser.add_argument("--env", action="append", default=[], metavar="KEY=VALUE", help="extra launch environment")
    parser.add_argument("--timeline", help="where to write the recorded timeline (default: a temporary file)")
    parser.add_argument("--json", action="store_true", help="print the analysis as JSON")
    args = parser.parse_args()
    path = args.analyze
    if path is None:
        path = args.timeline or os.path.join(tempfile.mkdtemp(prefix="hvd-timeline-"), "timeline.json")
        env = dict(item.split("=", 1) for item in args.env)
        print(f"2 ranks: {record(args.quick, env, path, args.model):.0f} samples/s (timeline {path})")
    result = analyze(path)
    print(json.dumps(result, indent=2) if args.json else report(result))


if __name__ == "__main__":
    main()
