"""The production profile as the scale tests drive it: `PROFILE=production scripts/stack.sh up` on a
temporary AIRFLOW_HOME and free ports, a look at what the scheduler holds at once, and killing a
Celery worker the way a lost host goes (the worker and every process under it, at once)."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
from stack_support import ROOT, Stack, base_env, free_port

SCRIPT = ROOT / "scripts" / "stack.sh"
STORE = "s3://gauntlet-scale"
WORKERS = ("worker-1", "worker-2")


@dataclass
class ProductionStack:
    stack: Stack
    script_env: dict[str, str]
    fault_marker: Path  # while it exists the planned rank freeze stays disarmed
    fault_pidfile: Path
    figures: dict[str, Any] = field(default_factory=dict)

    @property
    def state(self) -> Path:
        return self.stack.home / "stack"

    def worker_pid(self, name: str) -> int:
        return int((self.state / f"{name}.pid").read_text())

    def log_bucket(self) -> str:
        return self.stack.env["AIRFLOW__LOGGING__REMOTE_BASE_LOG_FOLDER"]


@contextmanager
def production_stack(fault: str) -> Iterator[ProductionStack]:
    """The stack, with a rank freeze (`rank:epoch:batch`) planned for every training but disarmed.

    The home is a fresh folder under /tmp that others may traverse: as root, scripts/services.sh runs
    PostgreSQL as an unprivileged user, which must reach its data folder inside the home.
    """
    home = Path(tempfile.mkdtemp(prefix="gauntlet-production-", dir="/tmp"))
    home.chmod(0o711)
    password = os.urandom(6).hex()
    marker, pidfile = home / "fault.disarmed", home / "fault.pid"
    marker.touch()
    env = {
        **base_env(),
        "AIRFLOW_HOME": str(home),
        "PROFILE": "production",
        "GAUNTLET_API_PORT": str(free_port()),
        "GAUNTLET_S3_PORT": str(free_port()),
        "GAUNTLET_PG_PORT": str(free_port()),
        "GAUNTLET_REDIS_PORT": str(free_port()),
        "GAUNTLET_STORE": STORE,
        "GAUNTLET_ADMIN_PASSWORD": password,
        # A task whose worker vanished stops heartbeating; the scheduler fails it (and retries it) after
        # this many seconds instead of the default five minutes.
        "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "30",
        "GAUNTLET_FAULT_STOP": fault,
        "GAUNTLET_FAULT_PIDFILE": str(pidfile),
        "GAUNTLET_FAULT_MARKER": str(marker),
    }
    started = time.monotonic()
    up = subprocess.run([str(SCRIPT), "up"], capture_output=True, text=True, env=env, timeout=900)
    try:
        assert up.returncode == 0, f"stack up failed:\n{up.stdout[-3000:]}\n{up.stderr[-3000:]}"
        assert "CeleryExecutor" in up.stdout and "PostgreSQL:" in up.stdout, up.stdout
        stack = Stack.from_up(up.stdout, home, password, STORE)
        stack.login()
        running = ProductionStack(stack, env, marker, pidfile)
        running.figures["stack_up_s"] = round(time.monotonic() - started, 1)
        yield running
    finally:
        down = subprocess.run([str(SCRIPT), "down"], capture_output=True, text=True, env=env, timeout=300)
        print(down.stderr[-2000:])
        if pidfile.exists():  # a frozen rank a failed test left behind
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(pidfile.read_text()), signal.SIGKILL)
        shutil.rmtree(home, ignore_errors=True)


def kill_worker(pid: int) -> list[int]:
    """kill -9 a worker and every process under it (its task processes, the step, its ranks) at once,
    as when its host is lost. Returns the pids killed."""
    root = psutil.Process(pid)
    victims = [root, *root.children(recursive=True)]
    for process in victims:
        with contextlib.suppress(psutil.NoSuchProcess):
            process.send_signal(signal.SIGKILL)
    psutil.wait_procs(victims, timeout=30)
    return [p.pid for p in victims]


@dataclass
class Occupancy:
    """The most task instances and DAG runs the scheduler held running at once, sampled over REST."""

    max_tasks: int = 0
    max_runs: int = 0
    max_trainings: int = 0
    samples: int = 0

    def sample(self, stack: Stack) -> None:
        tasks = stack.ok("GET", "/dags/~/dagRuns/~/taskInstances", params={"state": "running", "limit": 100})
        runs = stack.ok("GET", "/dags/~/dagRuns", params={"state": "running", "limit": 100})
        trainings = [t for t in tasks["task_instances"] if t["task_id"].endswith("train")]
        self.max_tasks = max(self.max_tasks, int(tasks["total_entries"]))
        self.max_runs = max(self.max_runs, int(runs["total_entries"]))
        self.max_trainings = max(self.max_trainings, len(trainings))
        self.samples += 1


def wait_for_file(path: Path, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} did not appear in {timeout} s"
        time.sleep(1)
    return path.read_text()


def log_sources(text: str) -> list[str]:
    """The sources Airflow names in a log's "Log message source details" group."""
    match = re.search(r"::group::Log message source details\n(.*?)::endgroup::", text, re.S)
    return match.group(1).split() if match else []
