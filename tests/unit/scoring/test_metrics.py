"""gauntlet.scoring.metrics: known values on a tiny example, directions and input checks."""

from __future__ import annotations

import math

import numpy as np
import pytest

from gauntlet.scoring import metrics

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
