"""gauntlet.scoring.bootstrap: the paired bootstrap of metric differences."""

from __future__ import annotations

import numpy as np
import pytest

from gauntlet.scoring.bootstrap import paired_bootstrap


def _problem(n: int = 200, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    a = rng.dirichlet(np.ones(3), n)
    a[np.arange(n), y] += 1.0
    a /= a.sum(axis=1, keepdims=True)
    b = rng.dirichlet(np.ones(3), n)
    return y, a, b


def test_a_model_against_itself_differs_by_exactly_zero() -> None:
    y, a, _ = _problem()
    result = paired_bootstrap(y, a, a, ["error_rate", "log_loss"], resamples=50, seed=1, confidence=0.95)
    for row in result.values():
        assert row["diff"] == row["low"] == row["high"] == 0.0


def test_a_clearly_better_model_has_an_interval_below_zero_error() -> None:
    y, a, b = _problem()
    row = paired_bootstrap(y, a, b, ["error_rate"], resamples=200, seed=1, confidence=0.95)["error_rate"]
    assert row["a"] < row["b"] and row["low"] <= row["diff"] <= row["high"] < 0


def test_the_same_seed_gives_the_same_interval() -> None:
    y, a, b = _problem()
    first = paired_bootstrap(y, a, b, ["log_loss"], resamples=100, seed=7, confidence=0.9)
    assert paired_bootstrap(y, a, b, ["log_loss"], resamples=100, seed=7, confidence=0.9) == first


@pytest.mark.parametrize(("resamples", "confidence"), [(0, 0.95), (10, 1.0), (10, 0.0)])
def test_bad_settings_are_refused(resamples: int, confidence: float) -> None:
    y, a, b = _problem(20)
    with pytest.raises(ValueError):
        paired_bootstrap(y, a, b, ["error_rate"], resamples=resamples, seed=0, confidence=confidence)


def test_models_with_different_class_counts_are_refused() -> None:
    y, a, _ = _problem(20)
    with pytest.raises(ValueError, match="shape"):
        paired_bootstrap(y, a, np.hstack([a, np.zeros((20, 1))]), ["error_rate"], 10, 0, 0.95)


def _regression_pair(n: int = 200, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Labels, a close model (noise 1) and a loose one (noise 3), predicted values of shape (n, 1)."""
    rng = np.random.default_rng(seed)
    y = rng.normal(100.0, 20.0, n)
    return y, (y + rng.normal(0, 1.0, n))[:, None], (y + rng.normal(0, 3.0, n))[:, None]


def test_a_better_regressor_has_an_rmse_interval_below_zero_and_an_r2_interval_above() -> None:
    y, close, loose = _regression_pair()
    result = paired_bootstrap(y, close, loose, ["rmse", "mae", "r2"], resamples=1000, seed=0, confidence=0.95)
    assert result["rmse"]["a"] == pytest.approx(float(np.sqrt(np.mean((close[:, 0] - y) ** 2))))
    assert result["rmse"]["low"] <= result["rmse"]["diff"] <= result["rmse"]["high"] < 0
    assert result["mae"]["high"] < 0 and 0 < result["r2"]["low"] <= result["r2"]["diff"] <= result["r2"]["high"]
    again = paired_bootstrap(y, close, loose, ["rmse", "mae", "r2"], resamples=1000, seed=0, confidence=0.95)
    assert again == result


def test_regression_predictions_must_be_one_value_per_row() -> None:
    y, close, _ = _regression_pair(20)
    with pytest.raises(ValueError, match=r"shape \(20, 1\)"):
        paired_bootstrap(y, close, np.hstack([close, close]), ["rmse"], 10, 0, 0.95)
