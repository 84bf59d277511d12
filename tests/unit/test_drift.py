"""gauntlet.drift: the PSI per column, the suite's thresholds, the bounded sample and the table."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from gauntlet import drift
from gauntlet.errors import BadInput

COLUMNS = drift.Columns("row_id", "label", "categorical", feature_prefix="x_")


def _frame(rows: int, seed: int, shift: float = 0.0, colour: str = "red") -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "row_id": [f"r{seed}-{i}" for i in range(rows)],
            "label": rng.integers(0, 3, rows),
            "x_num": rng.normal(shift, 1.0, rows),
            "x_colour": rng.choice(["red", "green", colour], rows),
            "date": "2026-11-01",
        }
    )


def test_psi_is_zero_for_equal_shares_and_grows_with_the_shift() -> None:
    shares = np.array([0.25, 0.25, 0.5])
    assert drift.psi(shares, shares) == 0.0
    near = drift.psi(shares, np.array([0.3, 0.2, 0.5]))
    assert 0 < near < drift.psi(shares, np.array([0.6, 0.1, 0.3]))
    # An empty reference bin counts as a tiny share: finite, and large.
    assert 1.0 < drift.psi(np.array([1.0, 0.0]), np.array([0.5, 0.5])) < 10.0


def test_numeric_bins_sit_at_reference_quantiles_with_nulls_apart() -> None:
    reference = np.arange(100, dtype=np.float64)
    new = np.array([5.0, 50.0, np.nan, 1000.0])
    labels, ref_counts, new_counts = drift.numeric_bins(reference, new, bins=4)
    assert labels == ["< 24.75", "[24.75, 49.5)", "[49.5, 74.25)", ">= 74.25", "<null>"]
    assert ref_counts.tolist() == [25, 25, 25, 25, 0] and new_counts.tolist() == [1, 0, 1, 1, 1]


def test_a_value_unseen_in_the_reference_gets_a_bin_and_scores() -> None:
    labels, ref_counts, new_counts = drift.categorical_bins(
        pd.Series(["a", "b", None, "a"]), pd.Series(["a", "c", "c", "c"])
    )
    assert labels == ["a", "b", "<null>", "<other>"]
    assert ref_counts.tolist() == [2, 1, 1, 0] and new_counts.tolist() == [1, 0, 0, 3]


def test_a_shifted_feature_is_named_and_an_unshifted_one_is_not() -> None:
    table = drift.compare(_frame(3000, 0), _frame(500, 1, shift=1.5), COLUMNS, drift.Settings())
    levels = {e["column"]: e["level"] for e in table["columns"]}
    assert levels == {"x_num": "warn", "x_colour": "ok", "label": "ok"}
    assert table["status"] == "drift" and table["line"].startswith("drift: 1 of 2 features and the label")
    assert "x_num" in table["line"] and table["columns"][0]["column"] == "x_num"


def test_a_new_category_and_the_fail_threshold_fail_naming_the_column() -> None:
    found = drift.Settings(warn_psi=0.1, fail_psi=0.5)
    table = drift.compare(_frame(3000, 0), _frame(500, 1, colour="blue"), COLUMNS, found)
    assert table["status"] == "failed" and [e["column"] for e in table["columns"] if e["level"] == "fail"] == [
        "x_colour"
    ]
    assert "x_colour" in table["line"] and "fail_psi 0.5" in table["line"]


def test_same_distribution_says_no_drift() -> None:
    table = drift.compare(_frame(3000, 0), _frame(500, 1), COLUMNS, drift.Settings())
    assert table["status"] == "no drift" and table["line"].startswith("no drift: largest PSI")


def test_settings_come_from_the_suite_meta_and_refuse_what_cannot_be_used() -> None:
    assert drift.settings({"meta": {}}, "s.json") == drift.Settings(suite="s.json")
    found = drift.settings({"meta": {"drift": {"warn_psi": 0.1, "fail_psi": 0.4, "bins": 5}}}, "s.json")
    assert (found.warn_psi, found.fail_psi, found.bins, found.level(0.2), found.level(0.4)) == (
        0.1,
        0.4,
        5,
        "warn",
        "fail",
    )
    with pytest.raises(BadInput, match=r"s\.json: meta\.drift\.warn_psi must be a positive number"):
        drift.settings({"meta": {"drift": {"warn_psi": "high"}}}, "s.json")
    with pytest.raises(BadInput, match=r"unknown key\(s\) warn"):
        drift.settings({"meta": {"drift": {"warn": 0.1}}}, "s.json")


def test_the_sample_is_bounded_and_uniform_over_every_batch() -> None:
    pool = drift._Pool(500, np.random.default_rng(0))
    values = pd.DataFrame({"x": np.arange(50_000)})
    for start in range(0, 50_000, 4_000):
        part = values.iloc[start : start + 4_000]
        pool.add(len(part), lambda keep, part=part: part.iloc[keep])
        assert sum(len(k) for _, k in pool.parts) <= 1_000
    sample = pool.frame()["x"]
    assert len(sample) == 500 and sample.is_unique and pool.rows == 50_000
    # Every stretch of the input is represented (a head-only sample would fail this).
    assert 20_000 < sample.mean() < 30_000 and (sample > 45_000).sum() > 20


def test_feature_columns_follow_the_dataset_rule() -> None:
    names = ["row_id", "label", "x_a", "x_b", "other", "date"]
    assert COLUMNS.feature_names(names) == ["x_a", "x_b"]
    assert drift.Columns("row_id", "label", "categorical").feature_names(names) == ["x_a", "x_b", "other"]
    listed = drift.Columns("row_id", "label", "categorical", features=("x_b", "other"))
    assert listed.watched(names) == ["x_b", "other", "label"]


def test_a_small_night_of_unchanged_data_is_not_called_drift() -> None:
    # 25 new rows of the reference's own distribution score PSI well above 0.2 from noise alone.
    reference, night = _frame(3000, 0), _frame(25, 1)
    noisy = drift.compare(reference, night, COLUMNS, drift.Settings())
    assert noisy["status"] == "drift"
    watch = drift.Watch(drift.Settings(), COLUMNS, None)
    watch.add_frame(reference, new=False)
    watch.add_frame(night, new=True)
    table = watch.measure()
    assert table["status"] == "not measured" and table["columns"] == []
    assert table["line"] == (
        "not measured: 25 new rows, fewer than meta.drift.min_rows 200 (too few to tell drift from noise)"
    )
    assert drift.settings({"meta": {"drift": {"min_rows": 20}}}, "s.json").min_rows == 20
    watch = drift.Watch(drift.settings({"meta": {"drift": {"min_rows": 20}}}, "s.json"), COLUMNS, None)
    watch.add_frame(reference, new=False)
    watch.add_frame(night, new=True)
    assert watch.measure()["status"] == "drift"
