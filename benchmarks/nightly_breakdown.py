"""The demo's nightly end to end on a running stack, and the share of it that is start-up, not work.

The run is benchmarks/stack_overhead.py's (one stack, one nightly through the REST API, the demo's
settings). Its trigger-to-end time is split into:

- Airflow: the run queued before it starts, the scheduler's gaps between tasks, the executor's
  queued-to-running gaps, and the run's end after its last task;
- task start: each task's duration less its step's own time (Airflow's task runner, the interpreter,
  `python -m gauntlet` and its imports);
- inside the steps, their module imports (timed apart, below) and for train the launch: the
  record's wall time less the epochs the worker timed (horovodrun, each rank's interpreter and
  `import torch, horovod.torch`, hvd.init, reading the dataset, writing the model);
- the work: the rest.

Import costs are timed apart, as interleaved rounds of fresh interpreters, each less a bare
`python -c pass`: the step CLI, each step's module on top of it, and a rank's torch + Horovod.

    python benchmarks/nightly_breakdown.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks import stack_overhead
from benchmarks.common import ROOT, interleaved, load_average, median

STEPS = stack_overhead.STEPS
IMPORTS = {
    "interpreter": "pass",
    "gauntlet CLI": "import gauntlet.cli",
    **{f"CLI + {s}": f"import gauntlet.cli, gauntlet.steps.{s}" for s in STEPS},
    "rank: torch + horovod": "import torch, horovod.torch",
}


def _timed(code: str) -> float:
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-c", code], check=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT / "src")}
    )
    return time.perf_counter() - started


def import_seconds(rounds: int) -> dict[str, list[float]]:
    """Each entry's fresh-interpreter time per round (interleaved), the bare interpreter included."""
    return interleaved({name: lambda code=code: _timed(code) for name, code in IMPORTS.items()}, rounds)


def breakdown(a: dict[str, Any], imports: dict[str, float]) -> dict[str, Any]:
    """Seconds of the trigger-to-end time by kind; `a` is stack_overhead.analyze's, `imports` medians."""
    bare = imports["interpreter"]
    cli = imports["gauntlet CLI"] - bare
    step_imports = {s: max(imports[f"CLI + {s}"] - imports["gauntlet CLI"], 0.0) for s in STEPS}
    epochs = sum(float(row["epoch_seconds"]) for row in a["worker_curve"])
    airflow = (
        a["trigger_to_end_seconds"]
        - a["wall_seconds"]  # trigger to the run's start (queued) and the REST poll's lag
        + sum(a["scheduler_gap_seconds"].values())
        + sum(a["executor_gap_seconds"].values())
        + a["run_end_lag_seconds"]
    )
    other_tasks = sum(v for k, v in a["task_seconds"].items() if k not in STEPS)
    task_start = sum(a["task_beyond_step_seconds"].values()) + other_tasks
    launch = a["train_wall_seconds"] - epochs
    parts = {
        "Airflow scheduling (queued, gaps between tasks, run end)": airflow,
        "task start (task runner, interpreter, CLI imports; the short non-step tasks)": task_start,
        "step module imports (inside the steps)": sum(step_imports.values()),
        "train launch (horovodrun, rank start and imports, hvd.init, data load, model write)": launch,
    }
    startup = sum(parts.values())
    work = a["trigger_to_end_seconds"] - startup
    return {
        "end_to_end_seconds": a["trigger_to_end_seconds"],
        "parts_seconds": parts,
        "startup_seconds": startup,
        "startup_share": startup / a["trigger_to_end_seconds"],
        "work_seconds": work,
        "train_epochs_seconds": epochs,
        "cli_import_seconds": cli,
        "step_import_seconds": step_imports,
        "rank_import_seconds": imports["rank: torch + horovod"] - bare,
    }


def rows(b: dict[str, Any], import_spread: dict[str, list[float]]) -> list[dict[str, Any]]:
    def secs(name: str) -> str:
        values = [v - bare for v, bare in zip(import_spread[name], import_spread["interpreter"], strict=True)]
        low, high = min(values), max(values)
        return f"{median(values):.2f}s" + (f" ({low:.2f}-{high:.2f})" if len(values) > 1 else "")

    return [
        {
            "figure": "nightly end to end on a running stack (REST trigger to run end, demo settings)",
            "value": f"{b['end_to_end_seconds']:.1f}s",
        },
        {
            "figure": "nightly: start-up share (Airflow scheduling, task start, imports, train launch) / end to end",
            "value": f"{b['startup_seconds']:.1f}s / {b['end_to_end_seconds']:.1f}s = {b['startup_share']:.2f}",
        },
        {
            "figure": "nightly: start-up by part",
            "value": "; ".join(f"{k} {v:.1f}s" for k, v in b["parts_seconds"].items()),
        },
        {
            "figure": "nightly: the work (steps less their imports and the train launch; train's epochs "
            f"{b['train_epochs_seconds']:.1f}s)",
            "value": f"{b['work_seconds']:.1f}s",
        },
        {
            "figure": "imports in a fresh interpreter, less `python -c pass` (median, range over rounds)",
            "value": "; ".join(f"{name} {secs(name)}" for name in IMPORTS if name != "interpreter"),
        },
    ]


def bench(quick: bool = False, keep: bool = False, airflow_env: dict[str, str] | None = None) -> dict[str, Any]:
    load_before = load_average()
    a = stack_overhead.night(quick, keep, airflow_env)
    spread = import_seconds(1 if quick else 3)
    b = breakdown(a, {k: median(v) for k, v in spread.items()})
    return {
        "name": "nightly breakdown",
        "breakdown": b,
        "import_seconds": spread,
        "load_average": [load_before, load_average()],
        "rows": rows(b, spread),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="2 epochs on 1 worker instead of the demo's settings")
    parser.add_argument("--keep", action="store_true", help="keep the stack's AIRFLOW_HOME (logs) after")
    parser.add_argument("--airflow-env", action="append", default=[], metavar="KEY=VALUE", help="extra settings")
    args = parser.parse_args()
    airflow_env = dict(item.split("=", 1) for item in args.airflow_env)
    result = bench(args.quick, args.keep, airflow_env)
    stack = stack_overhead.bench(args.quick, args.keep, airflow_env)  # the same night, its overhead rows
    print(f"load average {result['load_average'][0]} -> {result['load_average'][1]}")
    for row in stack["rows"] + result["rows"]:
        print(f"{row['figure']}: {row['value']}")
    print(json.dumps({"stack": stack["overhead"], "breakdown": result["breakdown"]}, indent=2))


if __name__ == "__main__":
    main()
