"""A Horovod rank is killed with SIGKILL in the middle of an epoch: the train step fails in bounded
time, leaves nothing a later step could mistake for a finished experiment, and its retry resumes
from the last S3 checkpoint to the same model an uninterrupted run with the same seeds produces.
"""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Callable
from pathlib import Path

import numpy as np
from testkit import ROOT, kill_frozen_rank, object_keys, run_cli

from gauntlet.contract import EXIT_FAILED

EPOCHS = 4
KILL_RANK, KILL_EPOCH, KILL_BATCH = 1, 3, 4
GLOO_TIMEOUT_S = 20
# Generous for a loaded CI machine; a hang would run into the Gloo timeout and far beyond.
KILL_TO_EXIT_LIMIT_S = 45
SETTINGS = ["--set", "model.kind=mlp", "--set", f"training.epochs={EPOCHS}"]


def _prepare_dataset(store: str, settings: list[str]) -> str:
    run_cli(store, *settings, "--run-id", "kill", "validate", "--start", "2026-11-07", "--end", "2026-11-08")
    _, outputs = run_cli(
        store, *settings, "--run-id", "kill", "preprocess", "--validation", f"{store}/runs/kill/validation/result.json"
    )
    return str(outputs["dataset_uri"])


def _parameters(model_uri: str) -> dict[str, np.ndarray]:
    from gauntlet import storage
    from gauntlet.training.model import load_bundle

    model = load_bundle(storage.get_bytes(model_uri))
    return {name: tensor.detach().numpy().copy() for name, tensor in model.state_dict().items()}


def test_rank_killed_mid_epoch_fails_fast_and_retry_resumes_to_the_same_model(
    seeded_store: str, tmp_path: Path, project_protocol: Callable[[str], Path]
) -> None:
    from gauntlet import storage

    store = seeded_store
    # A private copy of the protocol: its content hash is part of the experiment key, and the three
    # trainings below must agree on it even if the repository's file is edited meanwhile.
    protocol = project_protocol("kill")
    protocol.write_text((ROOT / "include/protocols/digits-v1.yaml").read_text())
    settings = [*SETTINGS, "--protocol", str(protocol)]
    dataset_uri = _prepare_dataset(store, settings)
    pidfile, marker = tmp_path / "rank.pid", tmp_path / "fired"
    fault_env = {
        "GAUNTLET_FAULT_STOP": f"{KILL_RANK}:{KILL_EPOCH}:{KILL_BATCH}",
        "GAUNTLET_FAULT_PIDFILE": str(pidfile),
        "GAUNTLET_FAULT_MARKER": str(marker),
        "GAUNTLET_GLOO_TIMEOUT_S": str(GLOO_TIMEOUT_S),
    }
    command = [
        sys.executable,
        "-m",
        "gauntlet",
        "--store",
        store,
        *settings,
        "--run-id",
        "kill",
        "train",
        "--dataset",
        dataset_uri,
    ]

    # Attempt 1: rank 1 freezes in epoch 3, batch 4 and reports its pid; we kill -9 that process.
    killed = kill_frozen_rank(command, {**os.environ, **fault_env}, pidfile, store, KILL_EPOCH, KILL_TO_EXIT_LIMIT_S)
    experiment, experiment_uri, curve_before = killed.experiment, killed.experiment_uri, killed.curve_before
    print(
        f"RELIABILITY kill -9 of rank {KILL_RANK} (pid {killed.pid}) in epoch {KILL_EPOCH}: "
        f"train step exited {killed.returncode} after {killed.kill_to_exit_s:.1f}s (Gloo timeout {GLOO_TIMEOUT_S}s)"
    )
    assert killed.returncode == EXIT_FAILED, (
        f"a dead rank is a retryable failure (exit 1), got {killed.returncode}:\n{killed.log}"
    )
    assert "horovodrun exited with" in killed.log
    assert killed.kill_to_exit_s < KILL_TO_EXIT_LIMIT_S

    # The failed attempt left checkpoints only: no record, model or worker summary a reader could take.
    left = {k.split("/", 2)[2] for k in object_keys(store, f"experiments/{experiment}/")}
    assert not left & {"RECORD.json", "model.pt", "worker.json"}, left
    assert {"checkpoints/latest.json", "checkpoints/epoch-0002.pt", "curve.jsonl"} <= left
    evaluate, _ = run_cli(store, *settings, "--run-id", "kill", "evaluate", "--experiment", experiment_uri, check=False)
    assert evaluate.returncode != 0 and "training did not finish" in evaluate.stderr
    assert not object_keys(store, "evaluations/") and not object_keys(store, "registry/")

    # Attempt 2 (Airflow's retry runs the same command): resumes at the killed epoch.
    _, retry = run_cli(
        store,
        *settings,
        "--run-id",
        "kill",
        "train",
        "--dataset",
        dataset_uri,
        env={k: v for k, v in fault_env.items() if k != "GAUNTLET_FAULT_STOP"},
    )
    assert retry["experiment_uri"] == experiment_uri and retry["cache_hit"] is False
    record = storage.get_json(f"{experiment_uri}/RECORD.json")
    assert record["resumed_from_epoch"] == KILL_EPOCH - 1
    assert [row["epoch"] for row in record["curve"]] == list(range(1, EPOCHS + 1))
    assert record["curve"][: KILL_EPOCH - 1] == curve_before, "the resumed curve continues the interrupted one"

    # Reference: the same experiment, uninterrupted, in a bucket of its own (same dataset, same seeds).
    reference_store = f"s3://gauntlet-ref-{uuid.uuid4().hex[:10]}"
    storage.ensure_bucket(reference_store[5:])
    _, reference = run_cli(reference_store, *settings, "train", "--dataset", dataset_uri)
    reference_record = storage.get_json(f"{reference['experiment_uri']}/RECORD.json")
    # Same data, params and seeds (the key also hashes the code, which may change between the runs).
    assert reference_record["params"] == record["params"]
    assert reference_record["dataset_version"] == record["dataset_version"]
    assert reference_record["resumed_from_epoch"] is None
    resumed, uninterrupted = _parameters(record["model_uri"]), _parameters(reference_record["model_uri"])
    assert resumed.keys() == uninterrupted.keys()
    worst = max(float(np.max(np.abs(resumed[name] - uninterrupted[name]))) for name in resumed)
    print(f"RELIABILITY resumed vs uninterrupted model: max |parameter difference| = {worst:.3g}")
    assert worst < 1e-5
    for mine, theirs in zip(record["curve"], reference_record["curve"], strict=True):
        assert abs(mine["dev_loss"] - theirs["dev_loss"]) < 1e-5
        assert mine["dev_error"] == theirs["dev_error"]
