"""Run every benchmark and write artifacts/bench/results.json and results.md (with date and machine).

    python benchmarks/run_all.py [--quick] [--only horovod data incremental pipeline stack nightly gpu]
        [--out artifacts/bench]

--quick is the small configuration CI runs so the benchmarks cannot rot (a few minutes in all);
without it the figures are the README's. The running-stack benchmarks (stack, nightly: one
`scripts/stack.sh up` and one nightly they share) are left out of --quick: starting a stack costs
more than the rest of the quick run, and tests/stack covers the stack itself. --only re-runs some benchmarks and keeps the others'
last figures from results.json. On a machine without a GPU the GPU benchmark runs its tiny CPU
fallback. A benchmark that fails is recorded with its error and the runner exits non-zero.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks import data_path, gpu_train, horovod_scaling, incremental, nightly_breakdown, pipeline, stack_overhead
from benchmarks.common import ROOT, load_average, machine, markdown_table, now, write_results

BENCHMARKS: dict[str, Callable[[bool], dict[str, Any]]] = {
    "horovod": horovod_scaling.bench,
    "data": data_path.bench,
    "incremental": incremental.bench,
    "pipeline": pipeline.bench,
    "stack": stack_overhead.bench,
    "nightly": nightly_breakdown.bench,
    "gpu": gpu_train.bench,
}
NOT_QUICK = {"stack", "nightly"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--only", nargs="*", choices=sorted(BENCHMARKS), default=None)
    parser.add_argument("--out", default=str(ROOT / "artifacts" / "bench"))
    args = parser.parse_args(argv)
    out = Path(args.out)
    previous: dict[str, Any] = {}
    if args.only and (out / "results.json").exists():
        previous = {b["key"]: b for b in json.loads((out / "results.json").read_text())["benchmarks"]}
    results: dict[str, Any] = {
        "date": now(),
        "quick": args.quick,
        "machine": machine(),
        "load_average_start": load_average(),
        "benchmarks": [],
    }
    failed = False
    for key, bench in BENCHMARKS.items():
        if (args.only and key not in args.only) or (args.quick and key in NOT_QUICK):
            if key in previous:
                results["benchmarks"].append(previous[key])
            continue
        started, load_before = time.perf_counter(), load_average()
        print(f"bench: {key} ...", flush=True)
        try:
            result = bench(args.quick)
        except Exception as error:  # one broken benchmark must not hide the others' figures
            failed = True
            traceback.print_exc()
            result = {
                "name": key,
                "error": str(error)[-2000:],
                "rows": [{"figure": "error", "value": str(error).splitlines()[0][:200], "met": False}],
            }
        result.setdefault("load_average", [load_before, load_average()])
        result.update(key=key, seconds=round(time.perf_counter() - started, 1), date=now())
        results["benchmarks"].append(result)
        for row in result["rows"]:
            print(
                f"  {row['figure']}: {row['value']}" + (f"  (target {row['target']})" if row.get("target") else ""),
                flush=True,
            )
    results["load_average_end"] = load_average()
    json_path, md_path = write_results(results, out)
    print(markdown_table(results))
    print(f"bench: wrote {json_path} and {md_path}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
