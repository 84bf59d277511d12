"""gauntlet.scoring.shift: the newest day's test rows against the whole test set."""

from __future__ import annotations

import numpy as np
import pytest

from gauntlet.scoring import shift
from gauntlet.scoring.metrics import error_rate, rmse


def one_hot(predicted: np.ndarray, classes: int = 3) -> np.ndarray:
    return np.eye(classes)[predicted] * 0.8 + 0.2 / classes


def days(old: int, new: int) -> np.ndarray:
    return np.array(["2026-11-01"] * old + ["2026-11-03"] * new)


def test_a_newest_day_that_scores_worse_is_called_out() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, size=400)
    predicted = y.copy()
    old_wrong = rng.random(300) < 0.05  # few mistakes on the earlier days
    predicted[:300][old_wrong] = (y[:300][old_wrong] + 1) % 3
    newest_wrong = rng.random(100) < 0.4  # the newest day: 40 % wrong
    predicted[300:][newest_wrong] = (y[300:][newest_wrong] + 1) % 3
    p = one_hot(predicted)

    result = shift.newest_day_gap(y, p, days(300, 100), "error_rate", 1000, 0, 0.95)

    assert (result["newest_day"], result["newest_rows"], result["test_rows"]) == ("2026-11-03", 100, 400)
    assert result["newest"] == pytest.approx(error_rate(y[300:], p[300:]))
    assert result["all"] == pytest.approx(error_rate(y, p))
    assert result["diff"] == pytest.approx(result["newest"] - result["all"])
    assert 0 < result["low"] < result["diff"] < result["high"] and result["significant"] and result["worse"]
    assert shift.called_out(result) and result["newest_varies"]
    assert result["sentence"].startswith(f"the newest day's rows score {result['diff']:.4f} worse than the test set: ")
    assert "on the 100 rows of 2026-11-03 vs" in result["sentence"] and "95% CI" in result["sentence"]


def test_the_same_error_on_every_day_is_no_gap() -> None:
    rng = np.random.default_rng(1)
    y = rng.integers(0, 3, size=600)
    predicted = np.where(rng.random(600) < 0.1, (y + 1) % 3, y)
    result = shift.newest_day_gap(y, one_hot(predicted), days(450, 150), "error_rate", 1000, 0, 0.95)
    assert result["low"] < 0 < result["high"] and not result["significant"]
    assert result["sentence"].startswith("no significant gap between the newest day's rows and the test set")


def test_higher_is_better_metrics_and_regression_turn_the_direction() -> None:
    rng = np.random.default_rng(2)
    y = rng.normal(size=300)
    noise = np.where(np.arange(300) >= 200, 3.0, 0.3)  # the newest day's predictions are far worse
    predicted = (y + rng.normal(size=300) * noise).reshape(-1, 1)
    for metric in ("rmse", "r2"):
        result = shift.newest_day_gap(y, predicted, days(200, 100), metric, 500, 0, 0.9)
        assert result["significant"] and result["worse"], metric
        assert (result["diff"] > 0) == (metric == "rmse")
        if metric == "rmse":
            assert result["all"] == pytest.approx(rmse(y, predicted))


def test_too_few_newest_rows_say_so_instead_of_an_interval() -> None:
    y = np.array([0, 1] * 50)
    result = shift.newest_day_gap(y, one_hot(y, 2), days(90, 10), "error_rate", 1000, 0, 0.95)
    assert result["low"] is None and not result["significant"] and result["worse"] is None
    assert result["sentence"].startswith("the newest day (2026-11-03) has 10 test rows, fewer than 30: too few")


def test_a_test_set_of_one_day_has_nothing_to_compare() -> None:
    y = np.array([0, 1] * 40)
    result = shift.newest_day_gap(y, one_hot(y, 2), days(0, 80), "error_rate", 100, 0, 0.95)
    assert (
        result["sentence"] == "every test row is from 2026-11-03: no newest day to set against the rest of the test set"
    )


def test_a_newest_day_without_mistakes_claims_no_gap() -> None:
    # 0 of 66 wrong against 10 of 360: every resample gives the newest day 0, so the interval would
    # only show the other rows' spread and exclude 0 although 0/66 is no evidence of a better day.
    y = np.zeros(360, dtype=np.int64)
    predicted = y.copy()
    predicted[:10] = 1
    result = shift.newest_day_gap(y, one_hot(predicted, 2), days(294, 66), "error_rate", 1000, 0, 0.95)
    assert result["high"] < 0 and not result["newest_varies"] and not result["significant"]
    assert result["sentence"].startswith("no gap claimed: the newest day's rows score error_rate 0.0000 on every")


def test_the_sections_show_the_sentence_and_bold_a_worse_newest_day() -> None:
    found = {"sentence": "the newest day's rows score 0.1 worse <x>", "significant": True, "worse": True}
    assert shift.markdown_section({"domain_shift": found}).endswith("**the newest day's rows score 0.1 worse <x>**")
    assert "<b>the newest day&#x27;s rows score 0.1 worse &lt;x&gt;</b>" in shift.html_section({"domain_shift": found})
    better = {"sentence": "better", "significant": True, "worse": False}
    assert "<b>" not in shift.html_section({"domain_shift": better}) and not shift.called_out(better)
    assert shift.markdown_section({}) == shift.html_section({}) == ""
