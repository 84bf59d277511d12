"""The demo trained through the train step under both engines, `training.backend: horovod` (the
default) and `ddp` (torchrun, DistributedDataParallel): the same model, the same record apart from
the engine it names, and a ddp run whose rank is killed mid-epoch fails fast and resumes from its S3
checkpoint to the model an uninterrupted ddp run trains.
"""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pipeline_support import MLP, build_dataset, log_of, new_store, seed
from testkit import ROOT, kill_frozen_rank, object_keys, run_cli

from gauntlet.contract import EXIT_FAILED

EPOCHS = 3
DDP = ["--set", "training.backend=ddp"]
KILL_RANK, KILL_EPOCH, KILL_BATCH = 1, 2, 4
GLOO_TIMEOUT_S = 20
KILL_TO_EXIT_LIMIT_S = 45  # generous for a loaded CI machine; a hang would run to the Gloo timeout and beyond


@dataclass(frozen=True)
class Demo:
    store: str
    dataset_uri: str
    settings: list[str]  # model, epochs and a private copy of the demo's protocol


@pytest.fixture(scope="module")
def demo(s3_endpoint: str) -> Iterator[Demo]:
    """The demo's digits, validated and preprocessed once, with a small MLP and a short budget."""
    # A private copy of the protocol: its content hash is part of the experiment key, and the runs
    # below must agree on it even if the repository's file is edited meanwhile.
    protocol = ROOT / "include" / "protocols" / f"test-backends-{uuid.uuid4().hex[:8]}.yaml"
    protocol.write_text((ROOT / "include/protocols/digits-v1.yaml").read_text())
    settings = [*MLP, "--set", f"training.epochs={EPOCHS}", "--protocol", str(protocol)]
    try:
        store = new_store()
        seed(store)
        yield Demo(store, build_dataset(store, *settings, run_id="backends"), settings)
    finally:
        protocol.unlink(missing_ok=True)


@pytest.fixture(scope="module")
def ddp_run(demo: Demo) -> tuple[dict[str, Any], str]:
    """An uninterrupted ddp training of the demo: its record and the step's log."""
    from gauntlet import storage

    process, outputs = run_cli(demo.store, *demo.settings, *DDP, "train", "--dataset", demo.dataset_uri)
    return storage.get_json(f"{outputs['experiment_uri']}/RECORD.json"), log_of(process)


def _parameters(model_uri: str) -> dict[str, np.ndarray]:
    from gauntlet import storage
    from gauntlet.training.model import load_bundle

    model = load_bundle(storage.get_bytes(model_uri))
    return {name: tensor.detach().numpy().copy() for name, tensor in model.state_dict().items()}


def _largest_difference(mine: dict[str, np.ndarray], theirs: dict[str, np.ndarray]) -> float:
    assert mine.keys() == theirs.keys()
    return max(float(np.max(np.abs(mine[name] - theirs[name]))) for name in mine)


def test_horovod_and_ddp_train_the_demo_to_the_same_model(demo: Demo, ddp_run: tuple[dict[str, Any], str]) -> None:
    from gauntlet import storage

    ddp, ddp_log = ddp_run
    process, outputs = run_cli(demo.store, *demo.settings, "train", "--dataset", demo.dataset_uri)
    horovod = storage.get_json(f"{outputs['experiment_uri']}/RECORD.json")
    horovod_log = log_of(process)

    # Each engine's own launcher, the same per-epoch lines and plan (2 ranks, lr scaled by 2).
    assert "launching: " in ddp_log and "torchrun --standalone" in ddp_log
    assert "horovodrun -np 2" in horovod_log
    for log in (ddp_log, horovod_log):
        assert "2 ranks x batch 32 = global batch 64, lr 0.02" in log
        for epoch in range(1, EPOCHS + 1):
            assert f"epoch {epoch}/{EPOCHS} train_loss=" in log

    # The key names the engine, and only that tells the two experiments apart.
    assert (ddp["backend"], horovod["backend"]) == ("ddp", "horovod")
    assert ddp["key"] != horovod["key"]
    assert ddp["key_parts"] == {**horovod["key_parts"], "params": {**horovod["key_parts"]["params"], "backend": "ddp"}}
    assert "differs only in: params.backend (None vs 'ddp')" in horovod_log
    assert set(ddp) == set(horovod) and ddp["hardware"]["world_size"] == horovod["hardware"]["world_size"] == 2

    # The same model: same batches per rank, scaled learning rate and averaged gradients.
    worst = _largest_difference(_parameters(ddp["model_uri"]), _parameters(horovod["model_uri"]))
    dev = abs(ddp["final"]["dev_error"] - horovod["final"]["dev_error"])
    print(
        f"BACKENDS demo, 2 ranks x {EPOCHS} epochs: max |parameter difference| {worst:.3g}, "
        f"dev error {ddp['final']['dev_error']:.4f} (ddp) vs {horovod['final']['dev_error']:.4f} (horovod); "
        f"wall {ddp['wall_seconds']:.1f}s vs {horovod['wall_seconds']:.1f}s"
    )
    assert dev <= 0.02
    assert worst < 1e-4
    assert [row["epoch"] for row in ddp["curve"]] == [row["epoch"] for row in horovod["curve"]]


def test_a_ddp_rank_killed_mid_epoch_fails_fast_and_its_retry_resumes_to_the_same_model(
    demo: Demo, ddp_run: tuple[dict[str, Any], str], tmp_path: Path
) -> None:
    from gauntlet import storage

    store = new_store()  # the same experiment as `ddp_run`, trained again in a bucket of its own
    pidfile, marker = tmp_path / "rank.pid", tmp_path / "fired"
    fault_env = {
        "GAUNTLET_FAULT_STOP": f"{KILL_RANK}:{KILL_EPOCH}:{KILL_BATCH}",
        "GAUNTLET_FAULT_PIDFILE": str(pidfile),
        "GAUNTLET_FAULT_MARKER": str(marker),
        "GAUNTLET_GLOO_TIMEOUT_S": str(GLOO_TIMEOUT_S),
    }
    command = [sys.executable, "-m", "gauntlet", "--store", store, *demo.settings, *DDP]
    command += ["train", "--dataset", demo.dataset_uri]

    # Attempt 1: rank 1 freezes in epoch 2, batch 4 and reports its pid; we kill -9 that process.
    killed = kill_frozen_rank(command, {**os.environ, **fault_env}, pidfile, store, KILL_EPOCH, KILL_TO_EXIT_LIMIT_S)
    experiment, experiment_uri, curve_before = killed.experiment, killed.experiment_uri, killed.curve_before
    print(
        f"BACKENDS ddp: kill -9 of rank {KILL_RANK} in epoch {KILL_EPOCH}: exit {killed.returncode} "
        f"after {killed.kill_to_exit_s:.1f}s"
    )
    assert killed.returncode == EXIT_FAILED, f"a dead rank is a retryable failure (exit 1):\n{killed.log}"
    assert "torchrun exited with" in killed.log
    assert killed.kill_to_exit_s < KILL_TO_EXIT_LIMIT_S
    left = {k.split("/", 2)[2] for k in object_keys(store, f"experiments/{experiment}/")}
    assert not left & {"RECORD.json", "model.pt", "worker.json"}, left

    # Attempt 2 (the orchestrator's retry runs the same command): resumes at the killed epoch.
    _, retry = run_cli(
        store,
        *demo.settings,
        *DDP,
        "train",
        "--dataset",
        demo.dataset_uri,
        env={k: v for k, v in fault_env.items() if k != "GAUNTLET_FAULT_STOP"},
    )
    assert retry["experiment_uri"] == experiment_uri and retry["cache_hit"] is False
    record = storage.get_json(f"{experiment_uri}/RECORD.json")
    assert record["resumed_from_epoch"] == KILL_EPOCH - 1 and record["backend"] == "ddp"
    assert [row["epoch"] for row in record["curve"]] == list(range(1, EPOCHS + 1))
    assert record["curve"][: KILL_EPOCH - 1] == curve_before, "the resumed curve continues the interrupted one"

    # The same model as the uninterrupted ddp run of the same experiment.
    uninterrupted, _ = ddp_run
    assert uninterrupted["key"] == record["key"] and uninterrupted["resumed_from_epoch"] is None
    worst = _largest_difference(_parameters(record["model_uri"]), _parameters(uninterrupted["model_uri"]))
    print(f"BACKENDS ddp resumed vs uninterrupted: max |parameter difference| {worst:.3g}")
    assert worst < 1e-5
    for mine, theirs in zip(record["curve"], uninterrupted["curve"], strict=True):
        assert abs(mine["dev_loss"] - theirs["dev_loss"]) < 1e-5
        assert mine["dev_error"] == theirs["dev_error"]
