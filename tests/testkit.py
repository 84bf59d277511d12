"""Helpers shared by the tests (fixtures live in conftest.py): run the CLI and Airflow as an
orchestrator would, and list what a store holds."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def object_keys(store: str, prefix: str = "") -> set[str]:
    from gauntlet import storage

    return {o["key"] for o in storage.list_objects(storage.join(store, prefix) if prefix else store + "/")}


def run_cli(
    store: str, *args: str, check: bool = True, env: dict[str, str] | None = None, timeout: float = 600
) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    """Run `python -m gauntlet --store STORE ARGS...` as the orchestrator would; return (process, outputs)."""
    command = [sys.executable, "-m", "gauntlet", "--store", store, *args]
    process = subprocess.run(
        command, capture_output=True, text=True, cwd=ROOT, timeout=timeout, env={**os.environ, **(env or {})}
    )
    if check and process.returncode != 0:
        raise AssertionError(
            f"{' '.join(args)} exited {process.returncode}:\n{process.stdout[-3000:]}\n{process.stderr[-3000:]}"
        )
    from gauntlet.contract import parse_outputs

    return process, parse_outputs(process.stdout) or {}


def airflow_dags_test(
    env: dict[str, str],
    dag_id: str,
    logical_date: str,
    store: str,
    extra_env: dict[str, str] | None = None,
    timeout: float = 900,
) -> subprocess.CompletedProcess[str]:
    """Run one DAG run through Airflow (`airflow dags test`) against a store; return the process."""
    return subprocess.run(
        ["airflow", "dags", "test", dag_id, logical_date],
        capture_output=True,
        text=True,
        env={**env, "GAUNTLET_STORE": store, **(extra_env or {})},
        timeout=timeout,
        cwd=ROOT,
    )
