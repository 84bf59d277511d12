"""gauntlet.scoring.report: the evaluation's tables and their HTML."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from gauntlet.protocol import load_protocol
from gauntlet.scoring import report


def test_comparison_table_has_a_row_per_model_and_a_column_per_metric() -> None:
    table = report.comparison_table({"candidate": {"error_rate": 0.1, "ece": 0.02}}, ["error_rate", "ece"])
    assert table.splitlines() == ["| model | error_rate | ece |", "|---|---|---|", "| candidate | 0.1000 | 0.0200 |"]


def test_interval_table_signs_differences_and_names_the_confidence() -> None:
    comparisons = {"vs champion": {"error_rate": {"diff": -0.01, "low": -0.02, "high": 0.001}}}
    table = report.interval_table(comparisons, ["error_rate"], 0.95)
    assert "95% CI" in table.splitlines()[0]
    assert "| vs champion | error_rate | -0.0100 | [-0.0200, +0.0010] |" in table


def test_table_html_escapes_every_cell() -> None:
    html = report.table_html(report.comparison_table({"<script>x</script>": {"m": 1.0}}, ["m"]))
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert html.startswith("<table><tr><th>model</th><th>m</th></tr>") and html.count("<tr>") == 2


def test_evaluation_tables_add_one_table_per_slice_column() -> None:
    slices = {"source": {"scan": {"rows": 5, "metrics": {"candidate": {"error_rate": 0.2}}}}}
    per_class = [{"class": 0, "support": 5, "precision": 1.0, "recall": 0.8, "error_rate": 0.2}]
    tables = report.evaluation_tables({"candidate": {"error_rate": 0.2}}, {}, ["error_rate"], 0.95, per_class, slices)
    assert list(tables) == ["metrics", "intervals", "per_class", "slice_source"]
    assert "source=scan candidate (n=5)" in tables["slice_source"]


def test_per_class_rows_are_named_by_the_dataset_classes() -> None:
    per_class = [
        {"class": 0, "support": 5, "precision": 1.0, "recall": 0.8, "error_rate": 0.2},
        {"class": 1, "support": 3, "precision": 0.5, "recall": 1.0, "error_rate": 0.0},
    ]
    metrics = {"candidate": {"error_rate": 0.2}}
    named = report.evaluation_tables(metrics, {}, ["error_rate"], 0.95, per_class, {}, ["healthy", "sick"])
    lines = named["per_class"].splitlines()
    assert lines[0] == "| class | support | precision | recall | error_rate |"
    assert lines[2].startswith("| healthy | 5.0000 |") and lines[3].startswith("| sick | 3.0000 |")
    assert (
        report.evaluation_tables(metrics, {}, ["error_rate"], 0.95, per_class, {})["per_class"]
        .splitlines()[2]
        .startswith("| 0 |")
    )


def test_a_regression_report_has_no_per_class_table_and_a_ridge_baseline() -> None:
    tables = report.evaluation_tables({"candidate": {"rmse": 3.0}}, {}, ["rmse"], 0.95, [], {})
    assert list(tables) == ["metrics", "intervals"]
    base = {"champion_version": None, "anchor": {"version": None}, "off_protocol": None}
    assert "- baseline: the protocol's ridge regression" in report.references_text({**base, "task": "regression"})
    assert "- baseline: the protocol's logistic regression" in report.references_text(base)


def test_regression_figures_are_residuals_and_predicted_vs_actual(
    tmp_path: Path, project_protocol: Callable[[str], Path]
) -> None:
    path = project_protocol("report-regression")
    path.write_text(
        "name: r\ntask: regression\nsplit: {id_column: id, salt: s, test_fraction: 0.2, dev_fraction: 0.1}\n"
        "training: {epochs: 2, seed: 0}\nmetrics: {primary: rmse}\n"
        "gate: {mode: superiority, confidence: 0.95, bootstrap_resamples: 1000, bootstrap_seed: 0}\n"
    )
    protocol = load_protocol(path)
    rng = np.random.default_rng(0)
    y = rng.normal(10.0, 3.0, 50)
    records = [
        {
            "key": "k" * 16,
            "params": {"model": {"kind": "mlp"}, "lr": 0.1, "epochs": 2},
            "curve": [{"step": 10, "dev_rmse": 3.0}, {"step": 20, "dev_rmse": 2.0}],  # what regression runs record
        }
    ]
    names = report.write_evaluation_figures(tmp_path, protocol, records, y, (y + 1)[:, None], [], "k" * 16)
    assert names == ["learning_curves.png", "predicted_vs_actual.png", "residuals.png"]
