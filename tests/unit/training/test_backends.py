"""training.backends: `training.backend: ddp` trains the worker's recipe under torchrun and
DistributedDataParallel, with the same batches, learning-rate scaling and record as Horovod; only a
non-default engine enters the experiment key; the torchrun launch stays on loopback."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from gauntlet import layout, storage
from gauntlet.config import load_config, resolve
from gauntlet.errors import BadInput, ConfigError
from gauntlet.protocol import load_protocol
from gauntlet.steps import train
from gauntlet.training import backends
from gauntlet.training.model import read_bundle

CONFIG = "include/configs/digits.yaml"
# A 2-rank classification run on the toy dataset: 400 rows, batch 32 a rank, momentum and weight
# decay (so the broadcast optimizer state and the scaled learning rate matter), a cosine schedule.
PARAMS = {
    "model": {"kind": "mlp", "hidden": [16]},
    "epochs": 3,
    "patience": None,
    "seed": 5,
    "batch_size": 32,
    "lr": 0.05,
    "momentum": 0.9,
    "weight_decay": 0.0005,
    "workers": 2,
    "threads_per_worker": 1,
    "schedule": "cosine",
}


def _params(backend: str) -> dict[str, Any]:
    return {**PARAMS, **({"backend": backend} if backend != backends.HOROVOD else {})}


def test_the_backend_is_a_training_key_horovod_by_default_and_checked() -> None:
    assert load_config(resolve(CONFIG)).training.backend == "horovod"
    assert load_config(resolve(CONFIG), ["training.backend=ddp"]).training.backend == "ddp"
    with pytest.raises(ConfigError, match=r"training\.backend 'mpi' is unknown \(known: horovod, ddp\)"):
        load_config(resolve(CONFIG), ["training.backend=mpi"])
    with pytest.raises(ValueError, match=r"training\.backend 'mpi' is unknown"):
        backends.start("mpi")


def test_only_a_non_default_backend_enters_the_params_and_so_the_experiment_key() -> None:
    """A Horovod run's params (the key's training part) are what they were before there was a
    choice; a ddp run names its engine, so the two never share a cached experiment."""
    config = load_config(resolve(CONFIG))
    protocol = load_protocol(resolve(config.protocol))
    horovod = train.training_params(config, protocol)
    explicit = train.training_params(load_config(resolve(CONFIG), ["training.backend=horovod"]), protocol)
    ddp = train.training_params(load_config(resolve(CONFIG), ["training.backend=ddp"]), protocol)
    assert "backend" not in horovod and explicit == horovod
    assert ddp == {**horovod, "backend": "ddp"}
    assert set(horovod) == {
        "model",
        "epochs",
        "patience",
        "seed",
        "batch_size",
        "lr",
        "momentum",
        "weight_decay",
        "workers",
        "threads_per_worker",
        "schedule",
    }


def test_the_torchrun_command_is_a_standalone_loopback_launch_of_the_worker() -> None:
    command = train.torchrun_command(3, ["--dataset", "s3://b/d", "--params", "{}"], "/tmp/logs")
    joined = " ".join(command)
    assert command[0].endswith("torchrun")
    assert "--standalone --local-addr 127.0.0.1 --nproc-per-node 3 --max-restarts 0" in joined
    assert command[command.index("-m") + 1] == "gauntlet.training.worker" and command[-2:] == ["--params", "{}"]


def test_a_ddp_run_refuses_an_mpijob_hostfile(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GAUNTLET_HOROVOD_HOSTFILE", "/etc/mpi/hostfile")
    with pytest.raises(BadInput, match=r"training\.backend ddp starts its ranks on this host only"):
        train._require_launchable("ddp")
    train._require_launchable("horovod")


def test_a_ddp_worker_needs_no_horovod() -> None:
    """Horovod is imported by its backend only: the maintained engine runs without a Horovod build."""
    code = "import sys, gauntlet.training.worker; print(sorted(m for m in sys.modules if m.startswith('horovod')))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def _train(store: str, dataset: str, backend: str) -> tuple[dict[str, Any], dict[str, np.ndarray], str]:
    """The train step's own launch for `backend`, 2 ranks: (worker report, parameters, streamed log)."""
    experiment = layout.experiment_uri(store, uuid.uuid4().hex)
    args = ["--dataset", dataset, "--experiment", experiment, "--params", json.dumps(_params(backend))]
    train.launch(backend, 2, args)
    model, _ = read_bundle(storage.get_bytes(layout.model_uri(experiment)))
    parameters = {name: tensor.detach().numpy().copy() for name, tensor in model.state_dict().items()}
    return storage.get_json(layout.worker_report_uri(experiment)), parameters, experiment


def test_ddp_and_horovod_train_the_same_model_on_two_ranks(
    store: str, capfd: pytest.CaptureFixture[str], toy_dataset: str
) -> None:
    horovod, horovod_weights, _ = _train(store, toy_dataset, "horovod")
    capfd.readouterr()
    ddp, ddp_weights, _ = _train(store, toy_dataset, "ddp")
    streamed = capfd.readouterr().out

    # The per-epoch lines stream from rank 0 as under Horovod.
    for epoch in (1, 2, 3):
        assert f"epoch {epoch}/3 train_loss=" in streamed
    assert "(2 ranks x batch 32 = global batch 64, lr 0.1, fp32, rows host), DDP, CPU/Gloo" in streamed

    # The same report, naming its engine; both ranks ended with identical weights.
    assert set(ddp) == set(horovod)
    assert (ddp["backend"], horovod["backend"], ddp["world_size"]) == ("ddp", "horovod", 2)
    assert len(set(ddp["rank_parameter_digests"])) == 1
    assert [row["step"] for row in ddp["curve"]] == [row["step"] for row in horovod["curve"]]

    # The same initial weights, batches, scaled rate and averaged gradients give the same model. The
    # engines may add the ranks' gradients in other orders (and Horovod scales after the sum, DDP
    # before it), which moves the last bits only; with two ranks both are exact. A phantom first
    # step (weight decay applied once before training) would move weights by ~1e-4.
    worst = max(float(np.max(np.abs(ddp_weights[k] - horovod_weights[k]))) for k in horovod_weights)
    print(f"BACKENDS max |parameter difference| ddp vs horovod, 2 ranks x 3 epochs: {worst:.3g}")
    assert worst < 1e-6
    for mine, theirs in zip(ddp["curve"], horovod["curve"], strict=True):
        assert mine["train_loss"] == pytest.approx(theirs["train_loss"], abs=1e-6)
        assert mine["dev_error"] == pytest.approx(theirs["dev_error"], abs=1e-6)


@pytest.fixture
def toy_dataset(store: str) -> str:
    """A committed two-class dataset as preprocess writes it: 400 train and 80 dev rows, 3 features."""
    rng = np.random.default_rng(7)
    x = (rng.normal(size=(480, 3)) * [1.0, 10.0, 0.1]).astype(np.float32)
    y = (x[:, 0] - 0.02 * x[:, 1] + 5.0 * x[:, 2] > 0).astype(np.int64)
    names = ["age", "dose", "ratio"]
    local = Path(tempfile.mkdtemp())
    for split, rows in (("train", slice(0, 400)), ("dev", slice(400, 480))):
        frame = pd.DataFrame({"row_id": [f"P{i:05d}" for i in range(480)][rows], "date": "2026-11-01"})
        frame["target"] = y[rows]
        for j, name in enumerate(names):
            frame[name] = x[rows, j]
        (local / split).mkdir()
        frame.to_parquet(local / split / "part-00000.parquet", index=False)
    inputs = [{"name": n, "kind": "numeric", "impute": 0.0} for n in names]
    preprocessor = {
        "kind": "tabular",
        "task": "classification",
        "classes": ["no", "yes"],
        "inputs": inputs,
        "features": names,
        "mean": x[:400].mean(axis=0).tolist(),
        "scale": x[:400].std(axis=0).tolist(),
    }
    (local / "preprocessor.json").write_text(json.dumps(preprocessor))
    schema = {"id": "row_id", "label": "target", "task": "classification", "classes": ["no", "yes"]}
    uri = layout.dataset_prefix(store, "toy-backends", uuid.uuid4().hex[:12])
    schema = {**schema, "features": names, "encoded_features": names}
    storage.commit_directory(local, uri, {"version": uri.rsplit("/", 1)[-1], "schema": schema})
    shutil.rmtree(local)
    return uri
