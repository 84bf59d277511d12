"""A client for the local stack as users reach it: REST API v2 with a token from the simple auth
manager, the `airflow` CLI with the stack's environment, the `gauntlet` CLI against its S3 server."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parents[2]
TERMINAL = {"success", "failed"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def read_env_file(path: Path) -> dict[str, str]:
    """The environment stack.env sets, as bash computes it."""
    out = subprocess.run(["bash", "-c", f"set -a; source '{path}'; env -0"], capture_output=True, check=True)
    return dict(item.split("=", 1) for item in out.stdout.decode().split("\0") if "=" in item)


@dataclass
class Stack:
    url: str
    user: str
    password: str
    env: dict[str, str]
    store: str
    home: Path
    session: requests.Session = field(default_factory=requests.Session)

    def login(self) -> None:
        response = requests.post(
            f"{self.url}/auth/token", json={"username": self.user, "password": self.password}, timeout=30
        )
        response.raise_for_status()
        self.session.headers["Authorization"] = f"Bearer {response.json()['access_token']}"

    def api(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        return self.session.request(method, f"{self.url}/api/v2{path}", timeout=60, **kwargs)

    def ok(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.api(method, path, **kwargs)
        assert response.ok, f"{method} {path}: {response.status_code} {response.text[:1000]}"
        return response.json()

    def xcom(self, dag_id: str, run_id: str, task_id: str, map_index: int = -1) -> Any:
        """A task's return value (the step's outputs), as the REST API serves it."""
        entry = self.ok(
            "GET",
            f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/return_value",
            params={"map_index": map_index, "deserialize": "true"},
        )
        value = entry["value"]
        return json.loads(value) if isinstance(value, str) else value

    @classmethod
    def from_up(cls, up_stdout: str, home: Path, password: str, store: str) -> Stack:
        """The stack `scripts/stack.sh up` printed (its UI address), with the environment it wrote."""
        url = re.search(r"Airflow UI:\s+(\S+)", up_stdout)
        assert url, up_stdout
        return cls(
            url=url.group(1),
            user="admin",
            password=password,
            env=read_env_file(home / "stack" / "stack.env"),
            store=store,
            home=home,
        )

    def wait_for_dag(self, dag_id: str, timeout: float = 180) -> None:
        deadline = time.monotonic() + timeout
        while self.api("GET", f"/dags/{dag_id}").status_code != 200:
            assert time.monotonic() < deadline, f"{dag_id} was not parsed in {timeout} s"
            time.sleep(2)

    def unpause(self, dag_id: str) -> None:
        self.wait_for_dag(dag_id)
        self.ok("PATCH", f"/dags/{dag_id}", json={"is_paused": False})

    def runs(self, dag_id: str) -> list[dict[str, Any]]:
        return list(self.ok("GET", f"/dags/{dag_id}/dagRuns", params={"limit": 100})["dag_runs"])

    def wait_for_run(self, dag_id: str, run_id: str, timeout: float = 900) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            run = self.ok("GET", f"/dags/{dag_id}/dagRuns/{run_id}")
            if run["state"] in TERMINAL:
                return dict(run)
            assert time.monotonic() < deadline, f"{dag_id} {run_id} still {run['state']} after {timeout} s"
            time.sleep(3)

    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        return list(
            self.ok("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances", params={"limit": 200})["task_instances"]
        )

    def task_log(self, dag_id: str, run_id: str, task_id: str, try_number: int, map_index: int = -1) -> str:
        """The task's log as plain lines (the API returns structured records; each has an `event`)."""
        body = self.ok(
            "GET",
            f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/logs/{try_number}",
            params={"full_content": "true", "map_index": map_index},
            headers={"Accept": "application/json"},
        )
        content = body["content"]
        if isinstance(content, str):
            return content
        return "\n".join(str(item.get("event", "")) if isinstance(item, dict) else str(item) for item in content)

    def airflow(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        # The local stack's metadata DB is SQLite: a CLI write can lose the lock to the scheduler.
        # The failed transaction rolled back, so running the command again is safe.
        for attempt in range(4):
            done = subprocess.run(
                ["airflow", *args], capture_output=True, text=True, env=self.env, cwd=ROOT, timeout=timeout
            )
            if done.returncode == 0 or "database is locked" not in done.stderr or attempt == 3:
                return done
            time.sleep(2 + 3 * attempt)
        raise AssertionError("unreachable")

    def open_backfills(self, dag_id: str) -> set[int]:
        backfills = self.ok("GET", "/backfills", params={"dag_id": dag_id})["backfills"]
        return {b["id"] for b in backfills if b["completed_at"] is None}

    def create_backfill(self, dag_id: str, *args: str) -> subprocess.CompletedProcess[str]:
        """`airflow backfill create --dag-id dag_id *args`, retried when SQLite's lock is lost.

        Unlike other writes, a failed attempt is not rolled back whole: the CLI commits the backfill
        before creating its runs, so a lock error leaves an open backfill without runs, and the retry
        would be refused ("only one running backfill per Dag"). That leftover is cancelled first.
        """
        for attempt in range(4):
            before = self.open_backfills(dag_id)
            done = subprocess.run(
                ["airflow", "backfill", "create", "--dag-id", dag_id, *args],
                capture_output=True,
                text=True,
                env=self.env,
                cwd=ROOT,
                timeout=300,
            )
            if done.returncode == 0 or "database is locked" not in done.stderr or attempt == 3:
                return done
            for leftover in self.open_backfills(dag_id) - before:
                self.ok("PUT", f"/backfills/{leftover}/cancel")
            time.sleep(2 + 3 * attempt)
        raise AssertionError("unreachable")

    def gauntlet(self, *args: str) -> dict[str, Any]:
        from gauntlet.contract import parse_outputs

        process = subprocess.run(
            [self.env["PATH"].split(":")[0] + "/python", "-m", "gauntlet", "--store", self.store, *args],
            capture_output=True,
            text=True,
            env=self.env,
            cwd=ROOT,
            timeout=300,
        )
        assert process.returncode == 0, process.stderr[-2000:]
        outputs = parse_outputs(process.stdout)
        assert outputs is not None, f"gauntlet {' '.join(args)} printed no outputs line:\n{process.stdout[-2000:]}"
        return outputs


def base_env() -> dict[str, str]:
    """The caller's environment without settings another fixture may have pointed elsewhere."""
    drop = re.compile(r"^(AIRFLOW_HOME|AIRFLOW__.*|AWS_.*|GAUNTLET_.*)$")
    return {k: v for k, v in os.environ.items() if not drop.match(k)}
