"""steps.evaluate: what keys an evaluation, why an earlier one is not reused, and whole evaluations of a
regression and a binary table with named classes."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
from testkit import record_handmade_experiment

from gauntlet import layout, registry, storage
from gauntlet.errors import ProtocolMismatch
from gauntlet.protocol import Protocol, load_protocol
from gauntlet.scoring.compare import protocol_split
from gauntlet.scoring.metrics import compute_metrics
from gauntlet.scoring.predictions import model_arrays
from gauntlet.steps import evaluate, register
from gauntlet.training.data import load_preprocessor, load_split
from gauntlet.training.model import build_model, bundle_bytes, bundle_spec


def test_the_evaluation_key_names_its_code_and_numeric_libraries() -> None:
    parts = evaluate.evaluation_key_parts()
    assert set(parts) == {"evaluate_code", "scikit-learn", "numpy"} and parts["numpy"] == np.__version__
    assert parts == evaluate.evaluation_key_parts()  # stable within one installation


def test_no_earlier_evaluation_means_no_explanation(store: str) -> None:
    assert evaluate.explain_evaluation_miss(f"{store}/evaluations/p/k/against", evaluate.evaluation_key_parts()) is None


def test_a_miss_names_what_changed_since_the_nearest_earlier_evaluation(store: str) -> None:
    against = f"{store}/evaluations/p/k/against"
    parts = evaluate.evaluation_key_parts()
    storage.put_json(f"{against}/old/report.json", {"evaluation_key_parts": {**parts, "numpy": "1.0.0"}})
    storage.put_json(
        f"{against}/older/report.json", {"evaluation_key_parts": {**parts, "numpy": "0.9", "scikit-learn": "0.1"}}
    )
    assert (
        evaluate.explain_evaluation_miss(against, parts)
        == f"an earlier evaluation differs in: numpy 1.0.0 -> {parts['numpy']}"
    )
    storage.put_json(f"{store}/evaluations/p/k2/against/x/report.json", {"outputs": {}})
    assert "predates evaluation keys" in (
        evaluate.explain_evaluation_miss(f"{store}/evaluations/p/k2/against", parts) or ""
    )


# --------------------------------------------------------------------------------------------
# Whole evaluations on a small synthetic table: a committed dataset and a one-layer model in the
# project's bundle (fitted here in closed form), without preprocess or a Horovod run.
# --------------------------------------------------------------------------------------------

REGRESSION_PROTOCOL = """\
name: toy-regression
description: A regression protocol for a two-feature table.
task: regression
split: {id_column: row_id, salt: toy-v1, test_fraction: 0.2, dev_fraction: 0.1}
training: {epochs: 5, seed: 0}
metrics: {primary: rmse, guards: {r2: 0.05}, report: [rmse, mae, r2]}
gate: {mode: non_inferiority, margin: 0.5, confidence: 0.95, bootstrap_resamples: 1000, bootstrap_seed: 0}
baseline: {kind: ridge, alpha: 1.0}
slices: [date]
excluded_row_ids: []
"""
BINARY_PROTOCOL = """\
name: toy-binary
split: {id_column: row_id, salt: toy-v1, test_fraction: 0.2, dev_fraction: 0.1}
training: {epochs: 5, seed: 0}
metrics: {primary: error_rate, report: [error_rate, average_precision, roc_auc, log_loss, ece]}
gate: {mode: superiority, confidence: 0.95, bootstrap_resamples: 1000, bootstrap_seed: 0}
slices: [date]
"""
CLASSES = ["healthy", "sick"]


@pytest.fixture
def regression_protocol(project_protocol: Callable[[str], Path]) -> Protocol:
    path = project_protocol("regression")
    path.write_text(REGRESSION_PROTOCOL)
    return load_protocol(path)


@pytest.fixture
def binary_protocol(project_protocol: Callable[[str], Path]) -> Protocol:
    path = project_protocol("binary")
    path.write_text(BINARY_PROTOCOL)
    return load_protocol(path)


def toy_table(task: str, rows: int = 300, seed: int = 0) -> pd.DataFrame:
    """Two numeric features; a noisy linear value (regression) or its sign as a class index."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, 2)).astype(np.float32)
    value = 3.0 * x[:, 0] - 2.0 * x[:, 1] + 10.0 + rng.normal(scale=1.0, size=rows)
    label = value if task == "regression" else (value + rng.normal(scale=2.0, size=rows) > 10.0).astype(np.int64)
    return pd.DataFrame(
        {
            "row_id": [f"r{i:04d}" for i in range(rows)],
            "date": np.where(np.arange(rows) % 2 == 0, "2026-11-01", "2026-11-02"),
            "y": label,
            "x1": x[:, 0],
            "x2": x[:, 1],
        }
    )


def toy_dataset(store: str, protocol: Protocol, task: str, tmp: Path) -> str:
    """A committed dataset as preprocess writes it: train/ and test/ parquet, preprocessor.json, manifest."""
    table = toy_table(task)
    train, test = table.iloc[:200], table.iloc[200:]
    features = train[["x1", "x2"]].to_numpy(dtype=np.float64)
    classes: list[str] = [] if task == "regression" else CLASSES
    preprocessor: dict[str, Any] = {
        "kind": "tabular",
        "task": task,
        "classes": classes,
        "inputs": [{"name": n, "kind": "numeric", "impute": 0.0} for n in ("x1", "x2")],
        "features": ["x1", "x2"],
        "mean": features.mean(axis=0).tolist(),
        "scale": features.std(axis=0).tolist(),
    }
    if task == "regression":
        preprocessor["target"] = {"mean": float(train["y"].mean()), "scale": float(train["y"].std())}
    folder = tmp / "dataset"
    for split, frame in (("train", train), ("test", test)):
        (folder / split).mkdir(parents=True)
        frame.to_parquet(folder / split / "part-00000.parquet", index=False)
    (folder / "preprocessor.json").write_text(json.dumps(preprocessor))
    uri = layout.dataset_prefix(store, "toy", f"{task}-v1")
    schema = {"id": "row_id", "label": "y", "task": task, "classes": classes, "features": ["x1", "x2"]}
    meta = {"kind": "dataset", "dataset": "toy", "version": f"{task}-v1", "schema": schema}
    storage.commit_directory(folder, uri, {**meta, "protocol_split": protocol_split(protocol)})
    return uri


def toy_experiment(store: str, protocol: Protocol, dataset_uri: str, tmp: Path) -> str:
    """An experiment whose model is a linear layer fitted on the train rows (least squares for
    regression, logistic regression for classification), recorded as train records one."""
    from sklearn.linear_model import LinearRegression, LogisticRegression

    train, manifest = load_split(dataset_uri, "train", tmp / "fit")
    pre = load_preprocessor(dataset_uri)
    task, classes = manifest["schema"]["task"], manifest["schema"]["classes"]
    x = (train.features - np.array(pre["mean"])) / np.array(pre["scale"])
    spec = {"kind": "mlp", "hidden": [], "channels": [], "image_shape": []}
    model = build_model(spec, pre, len(classes), task)
    if task == "regression":
        target = (train.labels - pre["target"]["mean"]) / pre["target"]["scale"]
        fit: Any = LinearRegression().fit(x, target)
        weights, bias = fit.coef_.reshape(1, -1), np.atleast_1d(fit.intercept_)
    else:  # two logits whose softmax is the fitted logistic model
        fit = LogisticRegression().fit(x, train.labels)
        weights = np.vstack([np.zeros_like(fit.coef_), fit.coef_])
        bias = np.array([0.0, fit.intercept_[0]])
    with torch.no_grad():
        model[1].weight.copy_(torch.tensor(weights, dtype=torch.float32))
        model[1].bias.copy_(torch.tensor(bias, dtype=torch.float32))
    data = bundle_bytes(model, bundle_spec(spec, pre, task, classes))
    params = {"model": spec, "epochs": protocol.epochs, "lr": 0.1}
    curve = [{"step": 200, "dev_error": 1.5}, {"step": 400, "dev_error": 1.2}]
    return record_handmade_experiment(store, protocol, dataset_uri, params, data, curve, off_protocol_reason=None)


def test_a_regression_evaluation_scores_values_against_a_ridge_baseline(
    store: str, regression_protocol: Protocol, tmp_path: Path
) -> None:
    dataset = toy_dataset(store, regression_protocol, "regression", tmp_path)
    experiment = toy_experiment(store, regression_protocol, dataset, tmp_path)

    outputs = evaluate.run(regression_protocol, store, experiment, "toy")

    report = storage.get_json(outputs["report_uri"])
    assert report["task"] == "regression" and report["classes"] == []
    assert set(report["metrics"]) == {"candidate", "baseline"}
    test = toy_table("regression").iloc[200:]
    candidate = report["metrics"]["candidate"]
    # The candidate is the least-squares line, the baseline a ridge on the same features: both fit the
    # noise level (1.0) and neither is far from the other.
    assert set(candidate) == {"rmse", "mae", "r2"} and 0.7 < candidate["rmse"] < 1.3
    assert 0.8 < candidate["r2"] <= 1.0 and candidate["mae"] < candidate["rmse"]
    assert report["metrics"]["baseline"]["rmse"] == pytest.approx(candidate["rmse"], abs=0.1)
    interval = report["comparisons"]["candidate - baseline"]["rmse"]
    assert interval["low"] <= interval["diff"] <= interval["high"] and report["gate"]["passed"]
    assert "rmse change vs baseline" in report["gate"]["reason"]
    assert set(report["slices"]["date"]) == {"2026-11-01", "2026-11-02"}
    assert sorted(report["plots"]) == ["learning_curves.png", "predicted_vs_actual.png", "residuals.png"]
    markdown = storage.get_bytes(outputs["report_uri"].replace("report.json", "report.md")).decode()
    assert "per_class" not in report["tables"] and "- baseline: the protocol's ridge regression" in markdown
    # No label errors in regression: nothing is written to the ledger.
    assert report["suspected_label_errors"] is None and report["ledger_uri"] is None
    assert not storage.exists(layout.ledger_uri(store, "toy"))
    assert report["test_rows"] == len(test)


def test_a_binary_evaluation_names_its_classes_and_scores_average_precision(
    store: str, binary_protocol: Protocol, tmp_path: Path
) -> None:
    dataset = toy_dataset(store, binary_protocol, "classification", tmp_path)
    experiment = toy_experiment(store, binary_protocol, dataset, tmp_path)

    report_uri = evaluate.run(binary_protocol, store, experiment, "toy")["report_uri"]
    report = storage.get_json(report_uri)

    assert report["task"] == "classification" and report["classes"] == CLASSES
    candidate = report["metrics"]["candidate"]
    assert 0.5 < candidate["average_precision"] <= 1.0 and 0.5 < candidate["roc_auc"] <= 1.0
    per_class = report["tables"]["per_class"].splitlines()
    assert per_class[0].startswith("| class |") and [row.split("|")[1].strip() for row in per_class[2:]] == CLASSES
    assert {"confusion_matrix.png", "reliability.png"} <= set(report["plots"])
    # `registry show` prints the version record: it names the classes the model predicts, in output order.
    registered = register.run(store, "toy", report_uri, "run-1", force=True)
    version = registry.get_version(layout.registry_root(store, "toy"), registered["version"])
    assert (version["task"], version["classes"]) == ("classification", CLASSES)


def test_evaluate_refuses_a_dataset_of_the_other_task(
    store: str, regression_protocol: Protocol, binary_protocol: Protocol, tmp_path: Path
) -> None:
    classification = toy_dataset(store, binary_protocol, "classification", tmp_path / "c")
    with pytest.raises(ProtocolMismatch, match=r"classification dataset .* scores regression.*task: classification"):
        evaluate.require_fitting_dataset(regression_protocol, classification, storage.read_manifest(classification))
    regression = toy_dataset(store, regression_protocol, "regression", tmp_path / "r")
    with pytest.raises(ProtocolMismatch, match="regression dataset"):
        evaluate.require_fitting_dataset(binary_protocol, regression, storage.read_manifest(regression))
    # Through run: refused before anything is scored or written.
    experiment = toy_experiment(store, binary_protocol, regression, tmp_path / "r")
    with pytest.raises(ProtocolMismatch):
        evaluate.run(binary_protocol, store, experiment, "toy")
    assert not any(o["key"].startswith("evaluations/") for o in storage.list_objects(store + "/"))


def test_average_precision_is_refused_for_more_than_two_classes(binary_protocol: Protocol) -> None:
    manifest = {"schema": {"task": "classification", "classes": ["a", "b", "c"]}}
    with pytest.raises(ProtocolMismatch, match=r"average_precision.*3 classes.*macro_average_precision"):
        evaluate.require_fitting_dataset(binary_protocol, "s3://b/datasets/d/v1", manifest)
    evaluate.require_fitting_dataset(binary_protocol, "s3://b/datasets/d/v1", {"schema": {"classes": [0, 1]}})


def test_class_names_come_from_the_manifest_as_text() -> None:
    assert evaluate.class_names({"schema": {"classes": [0, 1, 2]}}) == ["0", "1", "2"]
    assert evaluate.class_names({"schema": {"classes": ["no", "yes"]}}) == ["no", "yes"]
    assert evaluate.class_names({"schema": {"task": "regression", "classes": []}}) == []


@pytest.mark.parametrize("task", ["classification", "regression"])
def test_an_evaluation_keeps_predictions_reads_its_mistakes_and_checks_the_newest_day(
    store: str, binary_protocol: Protocol, regression_protocol: Protocol, task: str, tmp_path: Path
) -> None:
    protocol = regression_protocol if task == "regression" else binary_protocol
    experiment = toy_experiment(store, protocol, toy_dataset(store, protocol, task, tmp_path), tmp_path)

    outputs = evaluate.run(protocol, store, experiment, "toy")
    report = storage.get_json(outputs["report_uri"])
    prefix = outputs["report_uri"].rsplit("/", 1)[0]

    # Predictions: committed with the report (sha256-checked against its manifest), and enough to recompute it.
    kept = report["predictions"]
    assert kept["uri"] == layout.predictions_uri(prefix) and kept["models"] == ["candidate", "baseline"]
    frame = pd.read_parquet(io.BytesIO(storage.read_committed_file(prefix, "predictions.parquet")))
    assert len(frame) == kept["rows"] == 2 * report["test_rows"] and set(frame["date"]) == {"2026-11-01", "2026-11-02"}
    for model in kept["models"]:
        labels, predicted = model_arrays(frame, model, task)
        assert compute_metrics(labels, predicted, list(report["metrics"][model])) == report["metrics"][model]

    # Error analysis: the candidate's worst rows, each a real test row with its date.
    section = report["mistakes"]
    rows = section["largest_residuals"] if task == "regression" else section["most_confident"]
    assert rows and set(frame["row_id"]) >= {r["row_id"] for r in rows}
    if task == "classification":
        candidate = frame[frame["model"] == "candidate"]
        wrong = candidate[candidate["label"] != candidate["prediction"]]
        assert section["wrong_rows"] == len(wrong) == round(report["metrics"]["candidate"]["error_rate"] * 100)
        top = wrong.loc[wrong[["p_healthy", "p_sick"]].max(axis=1).idxmax()]
        assert (rows[0]["row_id"], rows[0]["date"], rows[0]["label"]) == (top["row_id"], top["date"], top["label"])
        assert section["confused_pairs"] and section["gallery"] is None  # two features are no image

    # The newest day (2026-11-02, half the 100 test rows) against all of them, with an interval.
    shift = report["domain_shift"]
    assert (shift["newest_day"], shift["newest_rows"], shift["test_rows"]) == ("2026-11-02", 50, 100)
    assert shift["metric"] == protocol.primary_metric and shift["low"] <= shift["diff"] <= shift["high"]
    assert shift["all"] == pytest.approx(report["metrics"]["candidate"][protocol.primary_metric])
    assert shift["newest"] == pytest.approx(
        report["slices"]["date"]["2026-11-02"]["metrics"]["candidate"][shift["metric"]]
    )
    markdown = storage.get_bytes(prefix + "/report.md").decode()
    page = storage.get_bytes(outputs["report_html_uri"]).decode()
    assert "## Error analysis" in markdown and shift["sentence"] in markdown and "predictions.parquet" in markdown
    assert "<h2>Error analysis</h2>" in page and "<h2>Domain shift" in page and '<a href="predictions.parquet">' in page
