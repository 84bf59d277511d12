"""gauntlet.scoring.report: the evaluation's tables and their HTML."""

from __future__ import annotations

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
