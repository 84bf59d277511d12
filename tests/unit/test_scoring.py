"""gauntlet.scoring: which of its modules the evaluation key follows, and the report's shared table code."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from gauntlet.hashing import DATASET_CODE, EVALUATE_CODE, code_version
from gauntlet.scoring import report

PACKAGE = Path(__file__).resolve().parents[2] / "src" / "gauntlet"


@pytest.mark.parametrize(
    ("module", "rescored"),
    [
        ("scoring/metrics.py", True),
        ("scoring/bootstrap.py", True),
        ("scoring/gate.py", True),
        ("scoring/references.py", True),
        ("steps/evaluate.py", True),
        ("scoring/report.py", False),
        ("scoring/compare.py", False),
    ],
)
def test_the_evaluation_key_follows_what_shapes_a_score_and_no_dataset_follows_scoring(
    tmp_path: Path, module: str, rescored: bool
) -> None:
    package = tmp_path / "gauntlet"
    shutil.copytree(PACKAGE, package, ignore=shutil.ignore_patterns("__pycache__"))
    evaluation, dataset = code_version(EVALUATE_CODE, root=package), code_version(DATASET_CODE, root=package)
    with (package / module).open("a") as handle:
        handle.write("\n# an edit\n")
    assert (code_version(EVALUATE_CODE, root=package) != evaluation) is rescored
    assert code_version(DATASET_CODE, root=package) == dataset


def test_one_table_code_renders_the_evaluation_and_the_sweep_pages() -> None:
    table = report.comparison_table({"<model>": {"error_rate": 0.25}}, ["error_rate"])
    html = report.table_html(table)
    assert (
        html
        == "<table><tr><th>model</th><th>error_rate</th></tr><tr><td>&lt;model&gt;</td><td>0.2500</td></tr></table>"
    )
    assert html in report.sweep_html("sweep", table, b"png")
