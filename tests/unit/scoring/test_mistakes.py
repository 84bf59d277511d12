"""gauntlet.scoring.mistakes: the candidate's most confident mistakes, confused pairs, residuals, gallery."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.image import imread

from gauntlet import layout, storage
from gauntlet.scoring import mistakes
from gauntlet.training.data import Split

NAMES = ["zero", "one", "two"]


def split(labels: np.ndarray, features: np.ndarray | None = None) -> Split:
    n = len(labels)
    ids = np.array([f"r{i}" for i in range(n)])
    frame = pd.DataFrame({"row_id": ids, "date": [f"2026-11-0{1 + i % 3}" for i in range(n)], "y": labels})
    return Split(ids, np.zeros((n, 4), np.float32) if features is None else features, labels, frame)


# Rows 1, 3, 4, 5 are wrong: 1 (p 0.9, one->two), 3 (0.6, zero->two), 4 (0.95, two->one), 5 (0.7, one->two).
LABELS = np.array([0, 1, 2, 0, 2, 1], dtype=np.int64)
PROBA = np.array(
    [[0.8, 0.1, 0.1], [0.05, 0.05, 0.9], [0.1, 0.1, 0.8], [0.2, 0.2, 0.6], [0.0, 0.95, 0.05], [0.1, 0.2, 0.7]]
)


def test_most_confident_mistakes_come_first_with_their_date_and_ledger_status() -> None:
    found = mistakes.most_confident_mistakes(split(LABELS), PROBA, NAMES, {"r1": "confirmed", "r2": "suspected"}, k=3)
    assert [m["row_id"] for m in found] == ["r4", "r1", "r5"]
    assert found[0] == {
        "row_id": "r4",
        "date": "2026-11-02",
        "label": "two",
        "prediction": "one",
        "probability": 0.95,
        "ledger": "",
    }
    assert found[1]["ledger"] == "confirmed" and found[1]["label"] == "one" and found[1]["prediction"] == "two"


def test_confused_pairs_count_wrong_rows_most_first() -> None:
    assert mistakes.confused_pairs(LABELS, PROBA, NAMES) == [
        {"label": "one", "prediction": "two", "rows": 2},
        {"label": "zero", "prediction": "two", "rows": 1},
        {"label": "two", "prediction": "one", "rows": 1},
    ]
    assert mistakes.confused_pairs(LABELS, np.eye(3)[LABELS]) == []  # no mistakes, no pairs


def test_regression_lists_the_largest_absolute_residuals() -> None:
    test = split(np.array([1.0, 5.0, -2.0, 0.0]))
    found = mistakes.largest_residuals(test, np.array([[1.5], [1.0], [3.0], [0.0]]), k=2)
    assert [(r["row_id"], r["residual"]) for r in found] == [("r2", -5.0), ("r1", 4.0)]


def test_ledger_marks_read_the_dataset_ledger(store: str) -> None:
    assert mistakes.ledger_marks(store, "toy") == {}
    entries = {"r1": {"status": "confirmed"}, "r7": {"status": "suspected"}}
    storage.put_json(layout.ledger_uri(store, "toy"), {"dataset": "toy", "entries": entries})
    assert mistakes.ledger_marks(store, "toy") == {"r1": "confirmed", "r7": "suspected"}


def test_image_rows_get_a_gallery_and_the_report_sections_show_everything(store: str, tmp_path: Path) -> None:
    features = np.arange(6 * 4, dtype=np.float32).reshape(6, 4)
    storage.put_json(layout.ledger_uri(store, "toy"), {"dataset": "toy", "entries": {"r4": {"status": "suspected"}}})
    record = {"key": "abcdef0123456789", "params": {"model": {"kind": "cnn", "image_shape": [2, 2]}}}
    section = mistakes.analyse(tmp_path, store, "toy", split(LABELS, features), PROBA, NAMES, "classification", record)

    assert section["gallery"] == "mistakes.png" and section["wrong_rows"] == 4 and section["test_rows"] == 6
    assert section["most_confident"][0]["ledger"] == "suspected"
    pixels = imread(tmp_path / "mistakes.png")
    assert pixels.shape[:2] == (310, 800)  # one row of four 2 x 2.5 inch cells (and the title) at 100 dpi
    assert len(np.unique(pixels.reshape(-1, pixels.shape[2]), axis=0)) > 20
    summary = mistakes.summary(section)
    assert summary.startswith("4 of 6 test rows wrong; most confident mistake: row r4 (two→one, p=0.95)")
    assert (
        "most confused: one→two (2 rows), zero→two (1 row)" in summary
        and "1 of the 4 listed are in the label-error ledger" in summary
    )

    markdown = mistakes.markdown_section({"mistakes": section})
    assert "| r4 | 2026-11-02 | two | one | 0.9500 | suspected |" in markdown
    assert "| one | two | 2 |" in markdown and "![most confident mistakes](mistakes.png)" in markdown
    page = mistakes.html_section({"mistakes": section})
    assert '<img src="mistakes.png"' in page and "<td>suspected</td>" in page
    assert mistakes.markdown_section({}) == mistakes.html_section({}) == ""


def test_rows_that_are_not_images_get_no_gallery(store: str, tmp_path: Path) -> None:
    record = {"key": "k", "params": {"model": {"kind": "mlp", "image_shape": []}}}
    section = mistakes.analyse(tmp_path, store, "toy", split(LABELS), PROBA, NAMES, "classification", record)
    assert section["gallery"] is None and not list(tmp_path.glob("*.png"))
    regression = mistakes.analyse(
        tmp_path, store, "toy", split(np.array([1.0, 2.0])), np.array([[0.0], [2.5]]), [], "regression", record
    )
    assert [r["row_id"] for r in regression["largest_residuals"]] == ["r0", "r1"]
    assert "| r0 | 2026-11-01 | 1 | 0 | +1 |" in mistakes.markdown_section({"mistakes": regression})
