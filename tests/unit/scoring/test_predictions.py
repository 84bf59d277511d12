"""gauntlet.scoring.predictions: every model's test predictions as Parquet, and back to metric inputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from gauntlet.scoring import predictions
from gauntlet.scoring.metrics import compute_metrics
from gauntlet.training.data import Split


def split(labels: np.ndarray) -> Split:
    ids = np.array([f"r{i}" for i in range(len(labels))])
    dates = np.where(np.arange(len(labels)) < 3, "2026-11-01", "2026-11-02")
    frame = pd.DataFrame({"row_id": ids, "date": dates, "y": labels})
    return Split(ids, np.zeros((len(labels), 2), dtype=np.float32), labels, frame)


def test_one_row_per_test_row_and_model_with_class_names_and_probabilities(tmp_path: Path) -> None:
    test = split(np.array([0, 1, 2, 1, 0], dtype=np.int64))
    rng = np.random.default_rng(0)
    probas = {name: rng.dirichlet(np.ones(3), size=5) for name in ("candidate", "baseline")}
    note = predictions.write_predictions(tmp_path, "s3://b/evaluations/e", test, probas, ["cat", "dog", "eel"], "c")

    frame = pd.read_parquet(tmp_path / "predictions.parquet")
    assert list(frame.columns) == ["row_id", "date", "label", "model", "prediction", "p_cat", "p_dog", "p_eel"]
    assert len(frame) == 10 and note["rows"] == 10 and note["models"] == ["candidate", "baseline"]
    assert note["uri"] == "s3://b/evaluations/e/predictions.parquet" and note["bytes"] > 0
    first = frame.iloc[0]
    assert (first["row_id"], first["date"], first["label"], first["model"]) == ("r0", "2026-11-01", "cat", "candidate")
    assert first["prediction"] == ["cat", "dog", "eel"][int(probas["candidate"][0].argmax())]
    for model, p in probas.items():
        labels, back = predictions.model_arrays(frame, model)
        assert np.array_equal(labels, test.labels) and np.array_equal(back, p)  # float64 as scored: exact
        names = ["error_rate", "log_loss", "macro_average_precision"]
        assert compute_metrics(labels, back, names) == compute_metrics(test.labels, p, names)


def test_regression_keeps_values(tmp_path: Path) -> None:
    test = split(np.array([1.5, 2.0, -3.0, 4.25], dtype=np.float64))
    values = np.array([[1.0], [2.5], [-2.0], [4.0]])
    predictions.write_predictions(tmp_path, "s3://b/e", test, {"candidate": values}, [], "regression")
    frame = pd.read_parquet(tmp_path / "predictions.parquet")
    assert list(frame.columns) == ["row_id", "date", "label", "model", "prediction"]
    labels, back = predictions.model_arrays(frame, "candidate", "regression")
    assert np.array_equal(labels, test.labels) and np.array_equal(back, values)
    with pytest.raises(ValueError, match=r"no predictions of model 'champion v1'.*candidate"):
        predictions.model_arrays(frame, "champion v1", "regression")


def test_the_report_sections_name_the_file() -> None:
    note = {"file": "predictions.parquet", "rows": 20, "models": ["candidate", "baseline"], "bytes": 4096}
    assert "`predictions.parquet` (20 rows, 4 KiB)" in predictions.markdown_section({"predictions": note})
    assert '<a href="predictions.parquet">' in predictions.html_section({"predictions": note})
    assert predictions.markdown_section({}) == predictions.html_section({}) == ""
