"""gauntlet.scoring.metrics: known values on a tiny example, directions and input checks; regression and
binary metrics against scikit-learn."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn import metrics as skm

from gauntlet.scoring import metrics
from gauntlet.scoring.bootstrap import bootstrap_metric_samples

Y = np.array([0, 1, 1, 0])
PROBA = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.7, 0.3]])


def test_error_rate_and_log_loss_on_a_tiny_example() -> None:
    assert metrics.error_rate(Y, PROBA) == pytest.approx(0.25)
    expected = -(math.log(0.9) + math.log(0.8) + math.log(0.4) + math.log(0.7)) / 4
    assert metrics.log_loss(Y, PROBA) == pytest.approx(expected)


def test_a_perfect_ranking_has_auc_and_average_precision_one() -> None:
    proba = np.array([[0.9, 0.1], [0.2, 0.8], [0.4, 0.6], [0.7, 0.3]])
    assert metrics.roc_auc(Y, proba) == pytest.approx(1.0)
    assert metrics.macro_average_precision(Y, proba) == pytest.approx(1.0)


def test_compute_metrics_returns_the_named_ones_and_refuses_unknown_names() -> None:
    values = metrics.compute_metrics(Y, PROBA, ["error_rate", "log_loss"])
    assert set(values) == {"error_rate", "log_loss"}
    with pytest.raises((KeyError, ValueError)):
        metrics.compute_metrics(Y, PROBA, ["accuracy_typo"])


def test_directions() -> None:
    assert not metrics.higher_is_better("error_rate") and not metrics.higher_is_better("ece")
    assert metrics.higher_is_better("roc_auc") and metrics.higher_is_better("macro_average_precision")


@pytest.mark.parametrize(
    ("y", "proba"),
    [
        (np.array([0, 1]), np.array([[0.5, 0.5]])),  # row counts differ
        (np.array([0, 2]), np.array([[0.5, 0.5], [0.5, 0.5]])),  # a label with no column
        (np.array([0, 1]), np.array([[0.5, 0.5], [np.nan, 0.5]])),  # not a probability
    ],
)
def test_bad_inputs_are_refused(y: np.ndarray, proba: np.ndarray) -> None:
    with pytest.raises(ValueError):
        metrics.check_inputs(y, proba)


# --------------------------------------------------------------------------------------------
# Regression: float labels, one predicted value per row
# --------------------------------------------------------------------------------------------


def _regression(n: int = 300, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.normal(50.0, 10.0, n)
    return y, (y + rng.normal(2.0, 5.0, n)).reshape(-1, 1)


def test_regression_metrics_match_scikit_learn() -> None:
    y, predicted = _regression()
    assert metrics.rmse(y, predicted) == pytest.approx(math.sqrt(skm.mean_squared_error(y, predicted[:, 0])), 1e-12)
    assert metrics.mae(y, predicted) == pytest.approx(skm.mean_absolute_error(y, predicted[:, 0]), 1e-12)
    assert metrics.r2(y, predicted) == pytest.approx(skm.r2_score(y, predicted[:, 0]), 1e-12)
    assert metrics.compute_metrics(y, predicted, ["rmse", "mae", "r2"]) == {
        "rmse": metrics.rmse(y, predicted),
        "mae": metrics.mae(y, predicted),
        "r2": metrics.r2(y, predicted),
    }


def test_regression_metrics_on_resamples_match_scikit_learn_on_the_drawn_rows() -> None:
    # The bootstrap weights rows by how often they were drawn: the same figure as scoring the drawn rows.
    y, predicted = _regression(120, seed=3)
    indices = np.random.default_rng(4).integers(0, 120, (6, 120))
    samples = bootstrap_metric_samples(y, predicted, ["rmse", "mae", "r2"], indices)
    for r, rows in enumerate(indices):
        drawn_y, drawn_p = y[rows], predicted[rows, 0]
        assert samples["rmse"][r] == pytest.approx(math.sqrt(skm.mean_squared_error(drawn_y, drawn_p)), 1e-10)
        assert samples["mae"][r] == pytest.approx(skm.mean_absolute_error(drawn_y, drawn_p), 1e-10)
        assert samples["r2"][r] == pytest.approx(skm.r2_score(drawn_y, drawn_p), 1e-10)


def test_regression_directions_and_undefined_r2() -> None:
    assert not metrics.higher_is_better("rmse") and not metrics.higher_is_better("mae")
    assert metrics.higher_is_better("r2") and metrics.higher_is_better("average_precision")
    # Every label equal: R² has no spread to explain (NaN, not a made-up 0 or 1); RMSE is still defined.
    assert math.isnan(metrics.r2([3.0, 3.0, 3.0], [[3.0], [2.0], [4.0]]))
    assert metrics.rmse([3.0, 3.0], [3.0, 5.0]) == pytest.approx(math.sqrt(2.0))  # (rows,) is one value per row


@pytest.mark.parametrize(
    ("y", "predicted", "expected"),
    [
        ([1.0, 2.0], [[1.0, 0.0], [2.0, 0.0]], "shape"),  # class probabilities, not values
        ([1.0, np.nan], [[1.0], [2.0]], "y_true"),
        ([1.0, 2.0], [[1.0], [np.inf]], "non-finite"),
    ],
)
def test_bad_regression_inputs_are_refused(y: list[float], predicted: list[list[float]], expected: str) -> None:
    with pytest.raises(ValueError, match=expected):
        metrics.rmse(y, predicted)


def test_metrics_of_two_tasks_are_not_scored_together() -> None:
    y, predicted = _regression(10)
    with pytest.raises(ValueError, match=r"classification: error_rate; regression: rmse"):
        metrics.compute_metrics(y, predicted, ["rmse", "error_rate"])
    assert metrics.task_of(["rmse", "r2"]) == "regression" and metrics.task_of(["ece"]) == "classification"
    assert metrics.metrics_for("regression") == ["rmse", "mae", "r2"]


# --------------------------------------------------------------------------------------------
# Binary classification: class index 1 is the positive class
# --------------------------------------------------------------------------------------------


def _binary(n: int = 400, seed: int = 0, decimals: int | None = 1) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    score = np.clip(0.35 * y + rng.random(n) * 0.65, 0.0, 1.0)
    if decimals is not None:
        score = np.round(score, decimals)  # ties, scored as scikit-learn scores them
    return y, np.column_stack([1.0 - score, score])


@pytest.mark.parametrize("decimals", [None, 1])
def test_binary_average_precision_and_auc_match_scikit_learn_on_the_positive_class(decimals: int | None) -> None:
    y, proba = _binary(decimals=decimals)
    assert metrics.average_precision(y, proba) == pytest.approx(skm.average_precision_score(y, proba[:, 1]), 1e-12)
    assert metrics.roc_auc(y, proba) == pytest.approx(skm.roc_auc_score(y, proba[:, 1]), 1e-12)
    assert 0.6 < metrics.average_precision(y, proba) < 0.95  # neither trivial nor hopeless


def test_binary_auc_is_the_positive_class_auc_even_when_rows_do_not_sum_to_one() -> None:
    # Averaging both one-vs-rest AUCs (the multiclass rule) scores class 0's column too; for two
    # classes only the positive class's scores rank the rows.
    y = np.array([0, 0, 1, 1])
    proba = np.array([[0.9, 0.2], [0.1, 0.4], [0.8, 0.6], [0.3, 0.7]])
    assert metrics.roc_auc(y, proba) == pytest.approx(skm.roc_auc_score(y, proba[:, 1])) == 1.0


def test_binary_average_precision_resamples_match_scikit_learn_and_skip_draws_without_positives() -> None:
    y, proba = _binary(60, seed=5)
    indices = np.random.default_rng(6).integers(0, 60, (5, 60))
    indices[0] = np.flatnonzero(y == 0)[0]  # one resample draws a single negative row, 60 times
    ap = bootstrap_metric_samples(y, proba, ["average_precision"], indices)["average_precision"]
    assert math.isnan(ap[0])
    for r in range(1, 5):
        rows = indices[r]
        assert ap[r] == pytest.approx(skm.average_precision_score(y[rows], proba[rows, 1]), 1e-10)


def test_average_precision_needs_two_classes() -> None:
    y = np.array([0, 1, 2])
    with pytest.raises(ValueError, match=r"binary.*macro_average_precision"):
        metrics.average_precision(y, np.full((3, 3), 1 / 3))


def test_binary_ece_is_the_top_class_calibration_gap() -> None:
    # Top-class confidence is max(p, 1 - p). Ten rows at 0.9 for class 1, nine of them right: gap 0.
    # Ten rows at 0.6 for class 1, four of them right: gap 0.2. ECE = (10 * 0 + 10 * 0.2) / 20.
    y = np.array([1] * 9 + [0] + [0] * 6 + [1] * 4)
    proba = np.array([[0.1, 0.9]] * 10 + [[0.4, 0.6]] * 10)
    assert metrics.ece(y, proba) == pytest.approx(0.1, abs=1e-12)
    # Which class is called positive does not matter to top-class calibration.
    assert metrics.ece(1 - y, proba[:, ::-1]) == pytest.approx(0.1, abs=1e-12)
