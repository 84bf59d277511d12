"""Benchmarks 3 and 6: validate + preprocess rows/s against the floor, and preprocess's peak RSS.

Digits-shaped rows (row_id, label, 64 pixel ints) are landed in S3 as daily Parquet partitions.
The floor is the least work that reads the same data and does preprocess's numeric job: a bare
pyarrow read of the same objects (S3 GET + Parquet decode, batch by batch) plus the cast to
float32 and the per-feature mean and standard deviation in numpy. Each variant runs as its own
process (`python -m gauntlet ...` for the steps, exactly what the DAG's tasks run) and reports
its in-process seconds (the CLI's step_seconds) and its own peak RSS; rounds are interleaved.

    python benchmarks/data_path.py [--quick] [--rows 1000000 10000000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import uuid
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np

from benchmarks.common import ROOT, fresh_store, interleaved, land_raw_partitions, load_average, median, s3_server
from gauntlet.contract import parse_outputs
from gauntlet.steps import preprocess

RAW_PREFIX = "raw/digits"
PARTITIONS = 8
# The stated bound for preprocess's peak RSS, at any row count: the process (interpreter, Arrow,
# numpy) plus this much per partition in flight (one per thread). At 10 M rows the int64 table
# alone would be 5.3 GB.
RSS_BASE_BOUND_MB = 256
RSS_PER_THREAD_BOUND_MB = 512
FULL = {"rows": [1_000_000, 10_000_000], "rounds": 3, "gx_rows": 1_000_000}
QUICK = {"rows": [40_000], "rounds": 1, "gx_rows": 0}
# Runs a CLI command in this process and appends its own peak RSS. That is VmHWM: Linux carries
# ru_maxrss across fork and exec, so a step started by a big process (this benchmark after
# landing 10 M rows) would report the benchmark's size.
_WRAP = (
    "import sys; from gauntlet.cli import main; code = main(sys.argv[1:]); "
    "print('PEAK_RSS_KB', next(int(l.split()[1]) for l in open('/proc/self/status') if l.startswith('VmHWM:'))); "
    "sys.exit(code)"
)


def peak_rss_kb() -> int:
    """This process's own peak RSS (see _WRAP for why not ru_maxrss)."""
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))


def floor(store: str) -> dict[str, float]:
    """Read every raw partition with pyarrow and fit the scaler's numbers in numpy; time it."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from gauntlet import layout, storage

    started = time.perf_counter()
    rows, total, squares = 0, np.zeros(64), np.zeros(64)
    for obj in storage.list_objects(layout.raw_root(store, RAW_PREFIX) + "/"):
        source = pq.ParquetFile(pa.BufferReader(storage.get_bytes(obj["uri"])))
        for batch in source.iter_batches(batch_size=262_144):
            x = np.column_stack([batch.column(f"pixel_{i}").to_numpy() for i in range(64)]).astype(np.float32)
            rows += len(x)
            total += x.sum(axis=0, dtype=np.float64)
            squares += np.square(x, dtype=np.float64).sum(axis=0)
    mean = total / rows
    np.sqrt(squares / rows - mean**2)
    return {
        "seconds": time.perf_counter() - started,
        "rows": rows,
        "peak_rss_mb": peak_rss_kb() / 1024,
    }


def _run(args: list[str]) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-c", _WRAP, *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
        timeout=3600,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"{args} exited {done.returncode}:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}")
    lines = done.stdout.splitlines()
    outputs = parse_outputs(lines) or {}
    peak_kb = int(next(x for x in reversed(lines) if x.startswith("PEAK_RSS_KB "))[12:])
    return {"seconds": outputs["step_seconds"], "peak_rss_mb": peak_kb / 1024, "outputs": outputs}


def run_floor(store: str) -> dict[str, Any]:
    code = f"import json, sys; sys.path.insert(0, {str(ROOT)!r}); from benchmarks.data_path import floor; "
    code += f"print('FLOOR ' + json.dumps(floor({store!r})))"
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=3600,
        env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
        check=True,
    )
    return dict(json.loads(next(x for x in done.stdout.splitlines() if x.startswith("FLOOR "))[6:]))


def run_validate(store: str, engine: str) -> dict[str, Any]:
    return _run(
        [
            "--store",
            store,
            "--run-id",
            f"bench-{uuid.uuid4().hex[:8]}",
            "--set",
            f"dataset.validation={engine}",
            "validate",
            "--start",
            "2026-11-01",
            "--end",
            "2026-12-01",
        ]
    )


def run_preprocess(store: str, validation_uri: str) -> dict[str, Any]:
    # A fresh dataset name per run gives a new dataset version, so no run is a cache hit (an unknown
    # config key would be refused).
    return _run(
        [
            "--store",
            store,
            "--set",
            "dataset.validation=vectorised",
            "--set",
            f"dataset.name=digits-bench-{uuid.uuid4().hex[:8]}",
            "preprocess",
            "--validation",
            validation_uri,
        ],
    )


def bench_rows(store: str, rows: int, rounds: int, with_gx: bool) -> dict[str, Any]:
    land_raw_partitions(store, RAW_PREFIX, rows, PARTITIONS)
    validation_uri = run_validate(store, "vectorised")["outputs"]["result_uri"]
    samples: dict[str, list[dict[str, Any]]] = {"floor": [], "validate": [], "preprocess": []}

    def record(name: str, result: dict[str, Any]) -> float:
        samples[name].append({k: result[k] for k in ("seconds", "peak_rss_mb")})
        return float(result["seconds"])

    interleaved(
        {
            "floor": lambda: record("floor", run_floor(store)),
            "validate": lambda: record("validate", run_validate(store, "vectorised")),
            "preprocess": lambda: record("preprocess", run_preprocess(store, validation_uri)),
        },
        rounds,
    )
    seconds = {k: median([s["seconds"] for s in v]) for k, v in samples.items()}
    # Each round's floor / step seconds: the spread that load on a shared machine puts on the median.
    ratios = {
        k: [round(f["seconds"] / x["seconds"], 3) for f, x in zip(samples["floor"], samples[k], strict=True)]
        for k in ("validate", "preprocess")
    }
    out: dict[str, Any] = {
        "rows": rows,
        "seconds": seconds,
        "ratios": ratios,
        "runs": samples,
        "preprocess_peak_rss_mb": max(s["peak_rss_mb"] for s in samples["preprocess"]),
    }
    if with_gx:  # the old engine, once: GX over the concatenated snapshot (tens of seconds fixed cost)
        out["gx_validate_seconds"] = run_validate(store, "gx")["seconds"]
    return out


def _spread(ratios: list[float]) -> str:
    """' (rounds 0.41-0.52)': the per-round ratios' range beside their medians' ratio."""
    return f" (rounds {min(ratios):.2f}-{max(ratios):.2f})" if len(ratios) > 1 else ""


def bench(quick: bool = False, rows: list[int] | None = None, rounds: int | None = None) -> dict[str, Any]:
    cfg = {**(QUICK if quick else FULL), **({"rounds": rounds} if rounds else {})}
    load_before = load_average()
    sizes, table = rows or cfg["rows"], []
    results = []
    with s3_server():
        for n in sizes:
            results.append(bench_rows(fresh_store("data"), n, cfg["rounds"], n == cfg["gx_rows"]))
    for r in results:
        s, n = r["seconds"], r["rows"]
        label = f"{n / 1e6:g} M rows"
        v_ratio, p_ratio = s["floor"] / s["validate"], s["floor"] / s["preprocess"]
        both = s["floor"] / (s["validate"] + s["preprocess"])
        table += [
            {
                "figure": f"rows/s floor / validate / preprocess ({label})",
                "value": f"{n / s['floor']:,.0f} / {n / s['validate']:,.0f} / {n / s['preprocess']:,.0f}",
            },
            {
                "figure": f"validate (vectorised) rows/s / floor ({label})",
                "value": f"{v_ratio:.2f}x{_spread(r['ratios']['validate'])}",
                "target": ">= 0.7x",
                "met": v_ratio >= 0.7,
            },
            {
                "figure": f"preprocess rows/s / floor ({label})",
                "value": f"{p_ratio:.2f}x{_spread(r['ratios']['preprocess'])}",
                "target": ">= 0.7x",
                "met": p_ratio >= 0.7,
            },
            {"figure": f"validate + preprocess together / one floor pass ({label})", "value": f"{both:.2f}x"},
        ]
        if "gx_validate_seconds" in r:
            table.append(
                {
                    "figure": f"validate with the GX engine rows/s / floor ({label}, before)",
                    "value": f"{s['floor'] / r['gx_validate_seconds']:.3f}x",
                }
            )
    biggest = max(results, key=lambda r: r["rows"])
    # The same bound at any size: partitions stream from local copies in batches.
    threads = preprocess.worker_count(PARTITIONS)
    bound = RSS_BASE_BOUND_MB + RSS_PER_THREAD_BOUND_MB * threads
    peaks = {r["rows"]: r["preprocess_peak_rss_mb"] for r in results}
    table.append(
        {
            "figure": f"preprocess peak RSS, {threads} partitions at a time ("
            + " / ".join(f"{n / 1e6:g} M" for n in peaks)
            + " rows)",
            "value": " / ".join(f"{mb:.0f} MB" for mb in peaks.values()),
            "target": f"<= {RSS_BASE_BOUND_MB} + {RSS_PER_THREAD_BOUND_MB} x {threads} = {bound} MB",
            "met": biggest["preprocess_peak_rss_mb"] <= bound,
        }
    )
    return {
        "name": "data path",
        "config": cfg,
        "results": results,
        "rows": table,
        "load_average": [load_before, load_average()],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--rows", type=int, nargs="*")
    parser.add_argument("--rounds", type=int, help="interleaved rounds (default: 3, --quick 1)")
    args = parser.parse_args()
    result = bench(args.quick, args.rows, args.rounds)
    for row in result["rows"]:
        print(f"{row['figure']}: {row['value']}  (target {row.get('target', '-')})")


if __name__ == "__main__":
    main()
