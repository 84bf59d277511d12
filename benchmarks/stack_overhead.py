"""Orchestration overhead on a running stack: the nightly triggered through the REST API.

`scripts/stack.sh up` on a throwaway AIRFLOW_HOME and free ports (as tests/stack/conftest.py does):
scheduler, dag-processor, triggerer and API server already running, the demo partitions seeded.
The nightly is triggered with the demo's own settings (POST /api/v2/dags/gauntlet_nightly/dagRuns,
no conf) and its task instances are read back through the same API. The figure is the DAG run's
wall time (its start to its end, as the scheduler recorded them) over the sum of its task instances'
durations; beside it, where the rest goes: the scheduler's gap from one task's end to the next one's
queueing, the executor's from queued to running, and per task its duration less its step's own
time (`step_seconds` in the step's XCom: interpreter, imports, Airflow's task runner).

    python benchmarks/stack_overhead.py [--quick] [--keep]
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import re
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

if __package__ in (None, ""):
    import sys

    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.common import ROOT, load_average

NIGHTLY = "gauntlet_nightly"
STEPS = ("validate", "preprocess", "train", "evaluate", "register")
STORE = "s3://gauntlet-bench"
NEVER_SOON = "0 2 29 2 *"  # 29 February: no tick between the DAG's start_date and 2028
QUICK_CONF = {"epochs": 2, "workers": 1}  # a short night: the overhead is the same, the work small


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class StackClient:
    """The REST API v2 of a running stack, with a token from its simple auth manager."""

    url: str
    env: dict[str, str]
    session: requests.Session = field(default_factory=requests.Session)

    def login(self, user: str, password: str) -> None:
        response = requests.post(f"{self.url}/auth/token", json={"username": user, "password": password}, timeout=30)
        response.raise_for_status()
        self.session.headers["Authorization"] = f"Bearer {response.json()['access_token']}"

    def ok(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.session.request(method, f"{self.url}/api/v2{path}", timeout=60, **kwargs)
        if not response.ok:
            raise RuntimeError(f"{method} {path}: {response.status_code} {response.text[:1000]}")
        return response.json()

    def wait_for_dag(self, dag_id: str, timeout: float = 300) -> None:
        deadline = time.monotonic() + timeout
        while self.session.get(f"{self.url}/api/v2/dags/{dag_id}", timeout=60).status_code != 200:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{dag_id} was not parsed in {timeout} s (see the stack's dag-processor.log)")
            time.sleep(2)


def _base_env() -> dict[str, str]:
    """This process's environment without settings that would point the stack elsewhere."""
    drop = re.compile(r"^(AIRFLOW_HOME|AIRFLOW__.*|AWS_.*|GAUNTLET_.*)$")
    return {k: v for k, v in os.environ.items() if not drop.match(k)}


def _read_env_file(path: Path) -> dict[str, str]:
    out = subprocess.run(["bash", "-c", f"set -a; source '{path}'; env -0"], capture_output=True, check=True)
    return dict(item.split("=", 1) for item in out.stdout.decode().split("\0") if "=" in item)


@contextlib.contextmanager
def running_stack(keep: bool = False, airflow_env: dict[str, str] | None = None) -> Iterator[StackClient]:
    """`scripts/stack.sh up` on a temporary AIRFLOW_HOME and free ports; `down` after. `airflow_env`
    adds settings stack.sh leaves alone (e.g. AIRFLOW__SCHEDULER__* to try) to every process."""
    home = tempfile.mkdtemp(prefix="bench-stack-")
    password = uuid.uuid4().hex[:12]
    env = {
        **_base_env(),
        "AIRFLOW_HOME": home,
        "GAUNTLET_API_PORT": str(free_port()),
        "GAUNTLET_S3_PORT": str(free_port()),
        "GAUNTLET_STORE": STORE,
        "GAUNTLET_ADMIN_PASSWORD": password,
        # No scheduled night in the way: unpausing the DAG would create one for the latest cron tick
        # (catchup=False), and max_active_runs=1 would hold the triggered run back until it ends.
        "GAUNTLET_NIGHTLY_CRON": NEVER_SOON,
        **(airflow_env or {}),
    }
    script = str(ROOT / "scripts" / "stack.sh")
    try:
        up = subprocess.run([script, "up"], capture_output=True, text=True, env=env, timeout=600, check=False)
        url = re.search(r"Airflow UI:\s+(\S+)", up.stdout)
        if up.returncode != 0 or not url:
            raise RuntimeError(f"scripts/stack.sh up failed:\n{up.stdout[-3000:]}\n{up.stderr[-3000:]}")
        client = StackClient(url.group(1), _read_env_file(Path(home) / "stack" / "stack.env"))
        client.login("admin", password)
        yield client
    finally:
        subprocess.run([script, "down"], capture_output=True, text=True, env=env, timeout=180, check=False)
        if not keep:
            subprocess.run(["rm", "-rf", home], check=False)


def _utc(text: str | None) -> dt.datetime | None:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")) if text else None


def trigger_nightly(client: StackClient, conf: dict[str, Any], timeout: float = 1800) -> dict[str, Any]:
    """Trigger the nightly, wait for its end, and return the run, its task instances and step XComs."""
    client.wait_for_dag(NIGHTLY)
    client.ok("PATCH", f"/dags/{NIGHTLY}", json={"is_paused": False})
    triggered = time.time()
    run_id = client.ok("POST", f"/dags/{NIGHTLY}/dagRuns", json={"logical_date": None, "conf": conf})["dag_run_id"]
    deadline = time.monotonic() + timeout
    while (run := client.ok("GET", f"/dags/{NIGHTLY}/dagRuns/{run_id}"))["state"] not in ("success", "failed"):
        if time.monotonic() > deadline:
            raise RuntimeError(f"{NIGHTLY} {run_id} still {run['state']} after {timeout} s")
        time.sleep(1)
    ended = time.time()
    tis = client.ok("GET", f"/dags/{NIGHTLY}/dagRuns/{run_id}/taskInstances", params={"limit": 100})
    outputs = {}
    for step in STEPS:
        entry = client.ok(
            "GET",
            f"/dags/{NIGHTLY}/dagRuns/{run_id}/taskInstances/{step}/xcomEntries/return_value",
            params={"deserialize": "true"},
        )
        value = entry["value"]
        outputs[step] = json.loads(value) if isinstance(value, str) else value
    if run["state"] != "success":
        states = {ti["task_id"]: ti["state"] for ti in tis["task_instances"]}
        raise RuntimeError(f"{NIGHTLY} {run_id} ended {run['state']}: {states}")
    return {
        "run": run,
        "task_instances": tis["task_instances"],
        "outputs": outputs,
        "trigger_to_end_seconds": ended - triggered,
    }


def analyze(night: dict[str, Any]) -> dict[str, Any]:
    """The run's wall over its task instances' durations, and what the difference is made of."""
    run = night["run"]
    ran = sorted(
        (ti for ti in night["task_instances"] if ti["start_date"] and ti["end_date"]),
        key=lambda ti: _utc(ti["start_date"]),  # type: ignore[arg-type,return-value]
    )
    wall = (_utc(run["end_date"]) - _utc(run["start_date"])).total_seconds()  # type: ignore[operator]
    durations = {ti["task_id"]: float(ti["duration"]) for ti in ran}
    steps = {s: float(night["outputs"][s]["step_seconds"]) for s in STEPS}
    # Before each task: the scheduler's part (the previous task's end, or the run's start, to this one's
    # queueing) and the executor's (queued to running: a LocalExecutor worker picking it up).
    scheduler_gaps, executor_gaps = {}, {}
    previous_end = _utc(run["start_date"])
    for ti in ran:
        queued, started = _utc(ti["queued_when"]) or _utc(ti["start_date"]), _utc(ti["start_date"])
        assert queued is not None and started is not None and previous_end is not None
        scheduler_gaps[ti["task_id"]] = (queued - previous_end).total_seconds()
        executor_gaps[ti["task_id"]] = (started - queued).total_seconds()
        previous_end = _utc(ti["end_date"])
    assert previous_end is not None
    tail = (_utc(run["end_date"]) - previous_end).total_seconds()  # type: ignore[operator]
    return {
        "run_id": run["dag_run_id"],
        "wall_seconds": wall,
        "trigger_to_end_seconds": night["trigger_to_end_seconds"],
        "queued_seconds": (_utc(run["start_date"]) - _utc(run["queued_at"])).total_seconds(),  # type: ignore[operator]
        "task_seconds": durations,
        "step_seconds": steps,
        "task_beyond_step_seconds": {s: durations[s] - steps[s] for s in STEPS if s in durations},
        "scheduler_gap_seconds": scheduler_gaps,
        "executor_gap_seconds": executor_gaps,
        "run_end_lag_seconds": tail,
        "ratio": wall / sum(durations.values()),
        "ratio_to_steps": wall / sum(steps.values()),
        "train_wall_seconds": float(night["outputs"]["train"]["wall_seconds"]),
        "experiment_uri": night["outputs"]["train"]["experiment_uri"],
    }


def _fmt(values: dict[str, float]) -> str:
    return ", ".join(f"{k} {v:.1f}s" for k, v in values.items())


def rows(a: dict[str, Any]) -> list[dict[str, Any]]:
    total = sum(a["task_seconds"].values())
    return [
        {
            "figure": "stack: DAG run wall (start to end) / sum of task instance durations, nightly via REST on a "
            f"running stack ({_fmt(a['task_seconds'])})",
            "value": f"{a['wall_seconds']:.1f}s / {total:.1f}s = {a['ratio']:.2f}",
            "target": "<= 1.2",
            "met": a["ratio"] <= 1.2,
        },
        {
            "figure": "stack: DAG run wall / sum of the steps' own times",
            "value": f"{a['wall_seconds']:.1f}s / {sum(a['step_seconds'].values()):.1f}s = {a['ratio_to_steps']:.2f}",
        },
        {
            "figure": "stack: scheduler gap before each task (previous end to queued)",
            "value": _fmt(a["scheduler_gap_seconds"]) + f"; last task end to run end {a['run_end_lag_seconds']:.1f}s",
        },
        {
            "figure": "stack: executor gap before each task (queued to running)",
            "value": _fmt(a["executor_gap_seconds"]),
        },
        {
            "figure": "stack: per task, task duration - step time (interpreter, imports, task runner)",
            "value": _fmt(a["task_beyond_step_seconds"]),
        },
    ]


def _worker_report(client: StackClient, experiment_uri: str) -> dict[str, Any]:
    """The train step's worker report (its curve's epoch seconds are the training itself), from the stack's S3."""
    script = (
        "import json, sys\nfrom gauntlet import layout, storage\n"
        "print(json.dumps(storage.get_json(layout.worker_report_uri(sys.argv[1]))))"
    )
    python = client.env["PATH"].split(":")[0] + "/python"
    done = subprocess.run(
        [python, "-c", script, experiment_uri],
        env=client.env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    report: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return report


_NIGHTS: dict[bool, dict[str, Any]] = {}


def night(quick: bool = False, keep: bool = False, airflow_env: dict[str, str] | None = None) -> dict[str, Any]:
    """One nightly on a fresh stack, analysed; kept for this process so that the nightly breakdown
    (benchmarks/nightly_breakdown.py) reads the same run instead of starting a second stack."""
    if quick not in _NIGHTS:
        load_before = load_average()
        with running_stack(keep, airflow_env) as client:
            a = analyze(trigger_nightly(client, QUICK_CONF if quick else {}))
            a["worker_curve"] = _worker_report(client, a["experiment_uri"])["curve"]
        a["load_average"] = [load_before, load_average()]
        _NIGHTS[quick] = a
    return _NIGHTS[quick]


def bench(quick: bool = False, keep: bool = False, airflow_env: dict[str, str] | None = None) -> dict[str, Any]:
    a = night(quick, keep, airflow_env)
    return {
        "name": "stack overhead",
        "config": {
            "conf": QUICK_CONF if quick else "the demo's (protocol epochs, 2 workers)",
            "airflow_env": airflow_env or {},
        },
        "overhead": {k: v for k, v in a.items() if k != "worker_curve"},
        "load_average": a["load_average"],
        "rows": rows(a),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="2 epochs on 1 worker instead of the demo's settings")
    parser.add_argument("--keep", action="store_true", help="keep the stack's AIRFLOW_HOME (logs) after")
    parser.add_argument("--airflow-env", action="append", default=[], metavar="KEY=VALUE", help="extra settings")
    args = parser.parse_args()
    result = bench(args.quick, args.keep, dict(item.split("=", 1) for item in args.airflow_env))
    print(f"load average {result['load_average'][0]} -> {result['load_average'][1]}")
    for row in result["rows"]:
        print(f"{row['figure']}: {row['value']}  (target {row.get('target', '-')})")
    print(json.dumps(result["overhead"], indent=2))


if __name__ == "__main__":
    main()
