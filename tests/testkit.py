"""Helpers shared by the tests (fixtures live in conftest.py): run the CLI and Airflow as an
orchestrator would, and list what a store holds."""

from __future__ import annotations

import json
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
    conf: dict[str, Any] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run one DAG run through Airflow (`airflow dags test`, with `conf` as its params) against a
    store; return the process."""
    return subprocess.run(
        ["airflow", "dags", "test", *(["--conf", json.dumps(conf)] if conf else []), dag_id, logical_date],
        capture_output=True,
        text=True,
        env={**env, "GAUNTLET_STORE": store, **(extra_env or {})},
        timeout=timeout,
        cwd=ROOT,
    )


def synthetic_report(
    store: str, key: str, passed: bool, champion_version: int | None = None, reason: str | None = None
) -> str:
    """A RECORD.json and an evaluation report.json as train and evaluate write them (no training);
    returns the report's URI, for tests of registration."""
    import uuid

    from gauntlet import storage
    from gauntlet.hashing import sha256_bytes

    experiment = f"{store}/experiments/p/{key}"
    model_uri = f"{experiment}/model.pt"
    storage.put_bytes(model_uri, b"model bytes")
    record = {
        "key": key,
        "uri": experiment,
        "model_uri": model_uri,
        "model_sha256": sha256_bytes(b"model bytes"),
        "dataset_uri": f"{store}/datasets/d/v1",
        "dataset_version": "v1",
        "code_version": "c1",
        "protocol_id": "p",
        "params": {"lr": 0.01},
    }
    storage.put_json(f"{experiment}/RECORD.json", record)
    report = {
        "experiment_uri": experiment,
        "experiment_key": key,
        "gate": {"passed": passed, "reason": reason or f"gate {'passed' if passed else 'failed'}"},
        "metrics": {"candidate": {"error_rate": 0.1}},
        "champion_version": champion_version,
    }
    uri = f"{store}/evaluations/p/{key}/{uuid.uuid4().hex[:8]}/report.json"
    storage.put_json(uri, report)
    return uri
