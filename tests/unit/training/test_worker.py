"""training.worker: its imports are in the experiment key, its arguments, no Horovod at import, and
one rank under horovodrun trains the dataset's task into a bundle that predicts in the label's terms
(in fp32, or under bf16 autocast), reporting its precision and the share of step time spent waiting
for input."""

from __future__ import annotations

import json
import tempfile
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from gauntlet import layout, storage
from gauntlet.hashing import TRAINING_CODE
from gauntlet.training import worker
from gauntlet.training.model import predict, read_bundle


def test_every_training_module_the_worker_imports_is_in_the_experiment_key() -> None:
    """Editing any module that shapes a trained model must change the experiment key."""
    import ast

    source = Path(worker.__file__).read_text()
    imported = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.module == "gauntlet.training":
            imported |= {f"training/{alias.name}.py" for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("gauntlet.training."):
            imported.add(node.module.replace("gauntlet.", "").replace(".", "/") + ".py")
    # topology only names where ranks ran (the record keeps it; the same math on other hosts is the
    # same experiment), so it is the one import that may stay out of the key.
    reporting_only = {"training/topology.py"}
    assert imported and imported - reporting_only <= set(TRAINING_CODE) - {"training/worker.py"}
    assert "training/worker.py" in TRAINING_CODE


def test_the_worker_takes_dataset_experiment_and_params() -> None:
    args = worker.parse_args(["--dataset", "s3://b/d", "--experiment", "s3://b/e", "--params", '{"epochs": 1}'])
    assert (args.dataset, args.experiment, args.params) == ("s3://b/d", "s3://b/e", '{"epochs": 1}')
    with pytest.raises(SystemExit):
        worker.parse_args(["--dataset", "s3://b/d", "--experiment", "s3://b/e"])


def test_importing_the_worker_starts_no_horovod() -> None:
    """horovodrun's ranks call init; a process that only imports the module (hashing, tests) must not."""
    import horovod.torch as hvd

    assert not hvd.is_initialized()


def _commit_toy_dataset(store: str, task: str, classes: list[Any]) -> tuple[str, np.ndarray, np.ndarray]:
    """A committed dataset as preprocess writes it (three numeric features on different scales,
    string ids), for a target in the hundreds or for named classes. Returns (uri, dev x, dev y)."""
    rng = np.random.default_rng(7)
    x = rng.normal(size=(480, 3)) * [1.0, 10.0, 0.1] + [0.0, 50.0, 1.0]
    signal = x[:, 0] - 0.2 * (x[:, 1] - 50.0) + 5.0 * (x[:, 2] - 1.0)
    y = 150.0 + 60.0 * signal + rng.normal(scale=3.0, size=len(x)) if task == "regression" else signal > 0
    names = ["age", "dose", "ratio"]
    local = Path(tempfile.mkdtemp())
    for split, rows in (("train", slice(0, 400)), ("dev", slice(400, 480))):
        frame = pd.DataFrame({"row_id": [f"P{i:05d}" for i in range(len(x))][rows], "date": "2026-11-01"})
        frame["target"] = y[rows].astype(np.float64) if task == "regression" else y[rows].astype(np.int64)
        for j, name in enumerate(names):
            frame[name] = x[rows, j].astype(np.float32)
        (local / split).mkdir()
        frame.to_parquet(local / split / "part-00000.parquet", index=False)
    train_x, train_y = x[:400].astype(np.float32), y[:400].astype(np.float64)
    preprocessor = {
        "kind": "tabular",
        "task": task,
        "classes": classes,
        "inputs": [
            {"name": n, "kind": "numeric", "impute": float(np.median(train_x[:, j]))} for j, n in enumerate(names)
        ],
        "features": names,
        "mean": train_x.mean(axis=0).tolist(),
        "scale": train_x.std(axis=0).tolist(),
        **({"target": {"mean": train_y.mean(), "scale": train_y.std()}} if task == "regression" else {}),
    }
    (local / "preprocessor.json").write_text(json.dumps(preprocessor))
    schema = {"id": "row_id", "label": "target", "task": task, "classes": classes, "features": names}
    uri = layout.dataset_prefix(store, f"toy-{task}", uuid.uuid4().hex[:12])
    storage.commit_directory(
        local, uri, {"version": uri.rsplit("/", 1)[-1], "schema": {**schema, "encoded_features": names}}
    )
    return uri, x[400:].astype(np.float32), y[400:]


PARAMS = {
    "model": {"kind": "mlp", "hidden": [16]},
    "epochs": 12,
    "patience": None,
    "seed": 3,
    "batch_size": 32,
    "lr": 0.05,
    "momentum": 0.9,
    "weight_decay": 0.0,
    "workers": 1,
    "threads_per_worker": 1,
    "schedule": "cosine",
}


def _train_one_rank(store: str, dataset: str, **changes: Any) -> tuple[dict[str, Any], bytes]:
    """The train step's own launch: horovodrun, one rank of the worker; returns its report and model."""
    from gauntlet.steps.train import run_horovod

    experiment = layout.experiment_uri(store, uuid.uuid4().hex)
    params = json.dumps({**PARAMS, **changes})
    run_horovod(1, ["--dataset", dataset, "--experiment", experiment, "--params", params])
    return storage.get_json(layout.worker_report_uri(experiment)), storage.get_bytes(layout.model_uri(experiment))


def test_the_worker_trains_a_regression_whose_bundle_predicts_in_the_labels_units(store: str) -> None:
    dataset, dev_x, dev_y = _commit_toy_dataset(store, "regression", [])
    report, bundle = _train_one_rank(store, dataset)
    assert (report["task"], report["curve_metric"], report["epochs_run"]) == ("regression", "rmse", 12)
    last = report["curve"][-1]
    # The curve metric is the RMSE in the label's units, under its own name and the shared keys.
    assert last["dev_rmse"] == last["dev_error"] and last["train_rmse"] == last["train_error"]
    assert report["curve"][0]["dev_rmse"] > last["dev_rmse"]

    model, spec = read_bundle(bundle)
    assert (spec["task"], spec["classes"]) == ("regression", [])
    values = predict(model, dev_x, "regression")
    assert values.shape == (len(dev_y), 1)
    rmse = float(np.sqrt(np.mean((values[:, 0] - dev_y) ** 2)))
    assert rmse < 0.25 * dev_y.std(), (rmse, dev_y.std())  # raw scale: the label's spread is ~100
    assert rmse == pytest.approx(last["dev_rmse"], rel=1e-4)
    # fp32 by default; a CPU rank indexes its rows where they are, a GPU rank holds them (they fit),
    # and either times its wait for them.
    assert report["precision"] == "fp32"
    assert report["input"]["placement"] == {"cpu": "host", "cuda": "resident"}[report["device"]]
    assert all(0 < row["input_seconds"] < row["step_seconds"] for row in report["curve"])
    assert 0 < report["input"]["wait_fraction"] < 1


def test_the_worker_keeps_classification_error_rates_and_the_class_names_under_bf16(store: str) -> None:
    dataset, dev_x, dev_y = _commit_toy_dataset(store, "classification", ["no", "yes"])
    report, bundle = _train_one_rank(store, dataset, precision="bf16")
    assert (report["task"], report["curve_metric"], report["precision"]) == ("classification", "error_rate", "bf16")
    last = report["curve"][-1]
    assert "dev_rmse" not in last and 0.0 <= last["dev_error"] < 0.2
    model, spec = read_bundle(bundle)
    assert (spec["task"], spec["classes"], spec["n_classes"]) == ("classification", ["no", "yes"], 2)
    proba = predict(model, dev_x, "classification")
    assert proba.shape == (len(dev_y), 2)
    assert float(np.mean(proba.argmax(axis=1) != dev_y)) == pytest.approx(last["dev_error"])
