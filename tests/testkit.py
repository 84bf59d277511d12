"""Helpers shared by the tests (fixtures live in conftest.py): run the CLI and Airflow as an
orchestrator would, and list what a store holds."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
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


@dataclass
class KilledRank:
    """A training attempt whose frozen rank was killed with SIGKILL, and what it left."""

    pid: int
    returncode: int
    log: str
    kill_to_exit_s: float
    experiment: str  # the experiment's folder name
    experiment_uri: str
    curve_before: list[dict[str, Any]]  # the curve checkpointed before the kill


def wait_for_file(path: Path, process: subprocess.Popen[str], timeout: float) -> str:
    """The text of `path` once a fault hook writes it; fails if the process ends first or it never comes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists():
            return path.read_text().strip()
        if process.poll() is not None:
            output = process.stdout.read() if process.stdout else ""
            raise AssertionError(f"training ended (exit {process.returncode}) before the fault point:\n{output}")
        time.sleep(0.2)
    raise AssertionError(f"{path} did not appear within {timeout}s")


def kill_frozen_rank(
    command: list[str], env: dict[str, str], pidfile: Path, store: str, kill_epoch: int, exit_within_s: float
) -> KilledRank:
    """Start `command` (a train step whose fault hook freezes a rank in `kill_epoch` and writes its pid to
    `pidfile`), check the last checkpoint is the epoch before, kill -9 that rank and wait for the step."""
    from gauntlet import storage

    attempt = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        pid = int(wait_for_file(pidfile, attempt, timeout=300))
        experiment = next(iter({k.split("/")[1] for k in object_keys(store, "experiments/")}))
        experiment_uri = f"{store}/experiments/{experiment}"
        latest = storage.get_json(f"{experiment_uri}/checkpoints/latest.json")
        assert latest["epoch"] == kill_epoch - 1, "the kill must land inside the epoch after the last checkpoint"
        curve_before = [json.loads(line) for line in storage.get_bytes(f"{experiment_uri}/curve.jsonl").splitlines()]
        os.kill(pid, signal.SIGKILL)
        killed_at = time.monotonic()
        log, _ = attempt.communicate(timeout=exit_within_s + 30)
        kill_to_exit = time.monotonic() - killed_at
    finally:
        if attempt.poll() is None:
            attempt.kill()
            attempt.wait()
    return KilledRank(pid, attempt.returncode, log, kill_to_exit, experiment, experiment_uri, curve_before)


def record_handmade_experiment(
    store: str,
    protocol: Any,
    dataset_uri: str,
    params: dict[str, Any],
    bundle: bytes,
    curve: list[dict[str, Any]],
    **fields: Any,
) -> str:
    """An experiment as train commits it (model bundle, then RECORD.json), for a model a test built by
    hand rather than trained; `fields` add to or override the record. Returns the experiment's URI."""
    import datetime as dt

    from gauntlet import layout, storage
    from gauntlet.hashing import content_hash, sha256_bytes

    manifest = storage.read_manifest(dataset_uri)
    parts = {"protocol": protocol.id, "dataset": manifest["version"], "params": params, "code": "handmade"}
    key = content_hash(parts)
    uri = layout.experiment_uri(store, key)
    storage.put_bytes(layout.model_uri(uri), bundle)
    record = {
        "key": key,
        "key_parts": parts,
        "uri": uri,
        "params": params,
        "dataset_uri": dataset_uri,
        "dataset_version": manifest["version"],
        "protocol_id": protocol.id,
        "code_version": "handmade",
        "model_uri": layout.model_uri(uri),
        "model_sha256": sha256_bytes(bundle),
        "curve": curve,
        "finished": dt.datetime.now(dt.UTC).isoformat(),
        **fields,
    }
    storage.put_json(layout.record_uri(uri), record)
    return uri
