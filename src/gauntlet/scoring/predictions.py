"""Every scored model's predictions on the frozen test rows, kept as Parquet beside the report.

One row per (test row, model): `row_id`, `date`, `label`, `model` (the report's model label), `prediction`,
then for classification one `p_<class>` column per class, in class-index order. Labels and predictions
are class names (as the report shows them) for classification and float values for regression. A later
analysis reads this file instead of scoring the models again; `model_arrays` turns one model's rows back
into the labels and predictions the metrics take, so a metric recomputed from the file equals the report's.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from gauntlet import layout
from gauntlet.scoring.metrics import CLASSIFICATION, REGRESSION
from gauntlet.training.data import Split

PROBABILITY_PREFIX = "p_"


def predictions_frame(
    test: Split, probas: Mapping[str, np.ndarray], class_names: Sequence[str], task: str
) -> pd.DataFrame:
    """The long table described above, models in the order of `probas`."""
    dates = test.frame["date"].astype(str).to_numpy()
    frames = []
    for model, predicted in probas.items():
        p = np.asarray(predicted, dtype=np.float64)
        columns: dict[str, Any] = {"row_id": test.ids.astype(str), "date": dates}
        if task == REGRESSION:
            columns |= {"label": test.labels.astype(np.float64), "model": model, "prediction": p.reshape(-1)}
        else:
            names = np.array([str(c) for c in class_names]) if class_names else np.arange(p.shape[1]).astype(str)
            columns |= {"label": names[test.labels], "model": model, "prediction": names[p.argmax(axis=1)]}
            # float64 as scored, so metrics recomputed from the file match the report's to the last digit.
            columns |= {f"{PROBABILITY_PREFIX}{name}": p[:, k] for k, name in enumerate(names)}
        frames.append(pd.DataFrame(columns))
    return pd.concat(frames, ignore_index=True)


def write_predictions(
    folder: Path,
    evaluation: str,
    test: Split,
    probas: Mapping[str, np.ndarray],
    class_names: Sequence[str],
    task: str,
) -> dict[str, Any]:
    """predictions.parquet in the report folder (committed with it); the report's note on it."""
    frame = predictions_frame(test, probas, class_names, task)
    path = folder / layout.PREDICTIONS_NAME
    frame.to_parquet(path, index=False, compression="zstd")
    return {
        "file": path.name,
        "uri": layout.predictions_uri(evaluation),
        "rows": len(frame),
        "models": list(probas),
        "columns": list(frame.columns),
        "bytes": path.stat().st_size,
    }


def model_arrays(frame: pd.DataFrame, model: str, task: str = CLASSIFICATION) -> tuple[np.ndarray, np.ndarray]:
    """(labels, predictions) of one model's rows, as the metrics take them: class indices and
    probabilities (rows, classes) in the order of the `p_` columns, or float values and (rows, 1)."""
    rows = frame[frame["model"] == model]
    if rows.empty:
        raise ValueError(f"no predictions of model {model!r} (models: {', '.join(frame['model'].unique())})")
    if task == REGRESSION:
        return rows["label"].to_numpy(np.float64), rows[["prediction"]].to_numpy(np.float64)
    columns = [c for c in frame.columns if c.startswith(PROBABILITY_PREFIX)]
    index = {c[len(PROBABILITY_PREFIX) :]: k for k, c in enumerate(columns)}
    labels = np.array([index[str(v)] for v in rows["label"]], dtype=np.int64)
    return labels, rows[columns].to_numpy(np.float64)


def markdown_section(report: Mapping[str, Any]) -> str:
    """One line naming the file, or "" for a report without one."""
    kept = report.get("predictions")
    if not kept:
        return ""
    return (
        f"Predictions of {', '.join(kept['models'])} on the test rows: `{kept['file']}` "
        f"({kept['rows']} rows, {kept['bytes'] / 1024:.0f} KiB)."
    )


def html_section(report: Mapping[str, Any]) -> str:
    """The same line with a link to the file, or "" for a report without one."""
    kept = report.get("predictions")
    if not kept:
        return ""
    name = html.escape(kept["file"])
    return (
        f"<h2>Predictions</h2><p>{html.escape(', '.join(kept['models']))} on the test rows: "
        f'<a href="{name}">{name}</a> ({kept["rows"]} rows, {kept["bytes"] / 1024:.0f} KiB).</p>'
    )
