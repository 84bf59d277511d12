"""Benchmarks 4 and 5: the orchestration overhead of a whole DAG run, and the cost of a cache hit.

4. `airflow dags test gauntlet_nightly` on the demo data and configuration (a throwaway
   AIRFLOW_HOME, the embedded S3 server). The DAG run's wall time is read from Airflow's metadata DB
   (its first task's start to its last task's end), divided by the sum of the five steps' own time
   (each step's `step_seconds`, kept in runs/<run_id>/steps/<step>.json). Beside it: the same less
   `dags test` starting its in-process execution API, each task's cost beyond its step, and the
   whole `dags test` command with its own start-up.
5. The same experiment trained twice through the CLI (`python -m gauntlet train`): the second is a
   cache hit, and its whole command (interpreter start included) is compared with the first.

    python benchmarks/pipeline.py [--quick]
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.common import BIN, ROOT, fresh_store, load_average, s3_server
from gauntlet.contract import parse_outputs

LOGICAL_DATE = "2026-11-08T02:00:00+00:00"
STEPS = ("validate", "preprocess", "train", "evaluate", "register")


def _env(extra: dict[str, str] | None = None) -> dict[str, str]:
    return {
        **os.environ,
        "GAUNTLET_HOME": str(ROOT),
        "PYTHONPATH": str(ROOT / "src"),
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        **(extra or {}),
    }


def _seed(store: str) -> None:
    from gauntlet import demo

    demo.seed(store, "raw/digits", dt.date(2026, 11, 1), 7)


def overhead(epochs: int | None) -> dict[str, Any]:
    from gauntlet import layout, storage

    store = fresh_store("dag")
    _seed(store)
    with tempfile.TemporaryDirectory(prefix="bench-airflow-") as home:
        env = _env(
            {
                "AIRFLOW_HOME": home,
                "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
                "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
                "GAUNTLET_STORE": store,
            }
        )
        subprocess.run([str(BIN / "airflow"), "db", "migrate"], env=env, check=True, capture_output=True, timeout=600)
        command = [str(BIN / "airflow"), "dags", "test", "gauntlet_nightly", LOGICAL_DATE]
        if epochs:
            command += ["--conf", json.dumps({"epochs": epochs})]
        started = time.perf_counter()
        done = subprocess.run(command, env=env, capture_output=True, text=True, cwd=ROOT, timeout=1800, check=False)
        command_wall = time.perf_counter() - started
        run_wall, tasks, first_start = _recorded_times(os.path.join(home, "airflow.db"))
    if done.returncode != 0:
        raise RuntimeError(f"airflow dags test exited {done.returncode}:\n{done.stdout[-3000:]}{done.stderr[-3000:]}")
    runs = [
        run
        for o in storage.list_objects(layout.runs_root(store) + "/")
        if (run := layout.run_of_step_outputs(store, o["uri"], "validate"))
    ]
    steps = {s: storage.get_json(layout.step_outputs_uri(store, runs[0], s))["step_seconds"] for s in STEPS}
    warmup = _execution_api_start_seconds(done.stdout + done.stderr, first_start)
    return {
        "execution_api_start_seconds": warmup,
        "wall_seconds": run_wall,
        "command_seconds": command_wall,
        "task_seconds": tasks,
        # What a task costs beyond its step: starting `python -m gauntlet`, Airflow's task runner.
        "task_overhead_seconds": {s: tasks[s] - steps[s] for s in STEPS if s in tasks},
        "step_seconds": steps,
        "ratio": run_wall / sum(steps.values()),
    }


def _execution_api_start_seconds(log: str, first_task_start: dt.datetime) -> float | None:
    """How long `dags test` took to start its in-process execution API: from the first task's start
    (as recorded) to the API's own "Task started" line for it. A running API server pays this once,
    at its own start, not in a DAG run."""
    for line in log.splitlines():
        if "Task started" in line:
            with contextlib.suppress(ValueError):
                return (_utc(line.split(" ", 1)[0]) - first_task_start).total_seconds()
    return None


def _utc(text: str) -> dt.datetime:
    stamp = dt.datetime.fromisoformat(text)
    return stamp if stamp.tzinfo else stamp.replace(tzinfo=dt.UTC)


def _recorded_times(db_path: str) -> tuple[float, dict[str, float], dt.datetime]:
    """The DAG run's wall seconds (its first task's start to its last task's end) and each task's,
    as Airflow recorded them in its metadata DB, and the first task's start. (`dags test` dates the
    run's own start_date at the logical date, so the tasks bound the run.)"""
    with contextlib.closing(sqlite3.connect(db_path)) as db:
        rows = db.execute(
            "SELECT task_id, start_date, end_date FROM task_instance WHERE dag_id = 'gauntlet_nightly'"
            " AND start_date IS NOT NULL AND end_date IS NOT NULL"
        ).fetchall()
    tasks = {task: (_utc(t1) - _utc(t0)).total_seconds() for task, t0, t1 in rows}
    first = min(_utc(t0) for _, t0, _ in rows)
    return (max(_utc(t1) for _, _, t1 in rows) - first).total_seconds(), tasks, first


def _cli(store: str, *args: str) -> tuple[float, dict[str, Any]]:
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "gauntlet", "--store", store, *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=_env(),
        timeout=1800,
        check=False,
    )
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"{args} exited {done.returncode}:\n{done.stdout[-2000:]}{done.stderr[-3000:]}")
    outputs = parse_outputs(done.stdout) or {}
    return seconds, outputs


def cache(epochs: int | None) -> dict[str, Any]:
    store = fresh_store("cache")
    _seed(store)
    sets = ["--set", f"training.epochs={epochs}"] if epochs else []
    _, validated = _cli(store, "--run-id", "bench", *sets, "validate", "--start", "2026-11-01", "--end", "2026-11-08")
    _, dataset = _cli(store, *sets, "preprocess", "--validation", validated["result_uri"])
    first, trained = _cli(store, *sets, "train", "--dataset", dataset["dataset_uri"])
    again, hit = _cli(store, *sets, "train", "--dataset", dataset["dataset_uri"])
    if trained["cache_hit"] or not hit["cache_hit"]:
        raise RuntimeError(f"expected a miss then a hit, got {trained['cache_hit']} then {hit['cache_hit']}")
    return {
        "first_seconds": first,
        "rerun_seconds": again,
        "ratio": again / first,
        "rerun_step_seconds": hit["step_seconds"],
    }


def bench(quick: bool = False) -> dict[str, Any]:
    load_before = load_average()
    epochs = 2 if quick else None  # None: the protocol's budget, i.e. the demo configuration
    with s3_server():
        dag = overhead(epochs)
        hit = cache(epochs)
    steps = ", ".join(f"{k} {v:.1f}s" for k, v in dag["step_seconds"].items())
    total = sum(dag["step_seconds"].values())
    rows: list[dict[str, Any]] = [
        {
            "figure": f"DAG run wall (first task start to last task end) / sum of step times ({steps})",
            "value": f"{dag['wall_seconds']:.1f}s / {total:.1f}s = {dag['ratio']:.2f}",
            "target": "<= 1.2",
            "met": dag["ratio"] <= 1.2,
        }
    ]
    warmup = dag["execution_api_start_seconds"]
    if warmup is not None:
        rows.append(
            {
                "figure": "the same, less `dags test` starting its in-process execution API on the first task "
                f"({warmup:.1f}s)",
                "value": f"{dag['wall_seconds'] - warmup:.1f}s / {total:.1f}s = {(dag['wall_seconds'] - warmup) / total:.2f}",
            }
        )
    rows += [
        {
            "figure": "per task, task time - step time (interpreter and imports, task runner)",
            "value": ", ".join(f"{k} {v:.1f}s" for k, v in dag["task_overhead_seconds"].items()),
        },
        {
            "figure": "whole `airflow dags test` command (its start-up and DB work included) / sum of step times",
            "value": f"{dag['command_seconds']:.1f}s / {total:.1f}s = {dag['command_seconds'] / total:.2f}",
        },
        {
            "figure": "re-run of an unchanged experiment (cache hit) / first run, whole `gauntlet train` command",
            "value": f"{hit['rerun_seconds']:.1f}s / {hit['first_seconds']:.1f}s = {hit['ratio']:.3f}",
            "target": "<= 0.1",
            "met": hit["ratio"] <= 0.1,
        },
    ]
    return {
        "name": "pipeline",
        "config": {"epochs": epochs or "protocol (demo)"},
        "overhead": dag,
        "cache": hit,
        "load_average": [load_before, load_average()],
        "rows": rows,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    result = bench(parser.parse_args().quick)
    for row in result["rows"]:
        print(f"{row['figure']}: {row['value']}  (target {row.get('target', '-')})")


if __name__ == "__main__":
    main()
