"""The protocol's metrics, their calibration, per-class and per-slice tables.

Each metric is implemented once, on integer row weights of shape (resamples, rows): a bootstrap
resample is exactly the test set with each row weighted by how often it was drawn. The point
estimate is the same code with all weights 1, so estimate and bootstrap can't drift.

Every metric belongs to one task. Classification metrics take integer class indices and
probabilities of shape (rows, classes); regression metrics take float labels and predicted values
of shape (rows, 1). A binary metric (average_precision) scores class index 1 as the positive class.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

ECE_BINS = 15
LOG_LOSS_EPS = 1e-15

CLASSIFICATION = "classification"
REGRESSION = "regression"
TASKS = (CLASSIFICATION, REGRESSION)

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]
# Class indices (classification) or float values (regression): what a metric's labels hold.
Labels = NDArray[Any]


def check_inputs(y_true: ArrayLike, proba: ArrayLike, task: str = CLASSIFICATION) -> tuple[Labels, FloatArray]:
    """Labels and predictions checked for `task`, or ValueError saying what is malformed.

    classification: labels as int64 class indices, probabilities (rows, classes) as float64;
    regression: labels and predicted values (rows, 1) as float64.
    """
    if task == REGRESSION:
        return _check_regression(y_true, proba)
    if task != CLASSIFICATION:
        raise ValueError(f"unknown task {task!r} (known: {', '.join(TASKS)})")
    y = np.asarray(y_true)
    p = np.asarray(proba, dtype=np.float64)
    if y.ndim != 1:
        raise ValueError(f"y_true must be 1-D, got shape {y.shape}")
    if p.ndim != 2 or p.shape[0] != y.shape[0]:
        raise ValueError(f"proba must have shape ({y.shape[0]}, n_classes), got {p.shape}")
    if y.shape[0] == 0:
        raise ValueError("y_true is empty")
    if not np.issubdtype(y.dtype, np.integer) and not np.all(np.equal(np.mod(y, 1), 0)):
        raise ValueError("y_true must hold integer class labels")
    y = y.astype(np.int64)
    if y.min() < 0 or y.max() >= p.shape[1]:
        raise ValueError(f"y_true labels must be in [0, {p.shape[1] - 1}]")
    if not np.all(np.isfinite(p)):
        raise ValueError("proba contains non-finite values")
    return y, p


def _check_regression(y_true: ArrayLike, predicted: ArrayLike) -> tuple[FloatArray, FloatArray]:
    y = np.asarray(y_true, dtype=np.float64)
    p = np.asarray(predicted, dtype=np.float64)
    if y.ndim != 1:
        raise ValueError(f"y_true must be 1-D, got shape {y.shape}")
    if p.ndim == 1:  # one value per row is the same prediction as a (rows, 1) column
        p = p.reshape(-1, 1)
    if p.ndim != 2 or p.shape != (y.shape[0], 1):
        raise ValueError(f"regression predictions must have shape ({y.shape[0]}, 1), got {p.shape}")
    if y.shape[0] == 0:
        raise ValueError("y_true is empty")
    if not np.all(np.isfinite(y)):
        raise ValueError("y_true contains non-finite values")
    if not np.all(np.isfinite(p)):
        raise ValueError("predictions contain non-finite values")
    return y, p


def _weighted_mean(per_row: FloatArray, weights: FloatArray) -> FloatArray:
    return np.asarray((weights @ per_row) / weights.sum(axis=1), dtype=np.float64)


def _error_rate_w(y: IntArray, p: FloatArray, w: FloatArray) -> FloatArray:
    wrong = (p.argmax(axis=1) != y).astype(np.float64)
    return _weighted_mean(wrong, w)


def _log_loss_w(y: IntArray, p: FloatArray, w: FloatArray) -> FloatArray:
    p_true = np.clip(p[np.arange(y.shape[0]), y], LOG_LOSS_EPS, 1.0)
    return _weighted_mean(-np.log(p_true), w)


def _bin_index(confidence: FloatArray, n_bins: int) -> IntArray:
    # Equal-width bins [k/n, (k+1)/n); a confidence of exactly 1 goes in the last bin.
    inner_edges = np.linspace(0.0, 1.0, n_bins + 1)[1:-1]
    return np.searchsorted(inner_edges, confidence, side="right").astype(np.int64)


def _ece_w(y: IntArray, p: FloatArray, w: FloatArray, n_bins: int = ECE_BINS) -> FloatArray:
    confidence = p.max(axis=1)
    correct = (p.argmax(axis=1) == y).astype(np.float64)
    bins = _bin_index(confidence, n_bins)
    # sum_b |sum_{i in b} (correct_i - conf_i)| / N  ==  sum_b (n_b / N) |acc_b - conf_b|
    gap = np.zeros((y.shape[0], n_bins))
    gap[np.arange(y.shape[0]), bins] = correct - confidence
    return np.asarray(np.abs(w @ gap).sum(axis=1) / w.sum(axis=1), dtype=np.float64)


def _scored_classes(p: FloatArray) -> range:
    """The classes a ranking metric averages over: with two classes only the positive one (index 1),
    so binary ROC AUC is the positive class's AUC, as scikit-learn scores a binary problem."""
    return range(1, 2) if p.shape[1] == 2 else range(p.shape[1])


def _ranking_curves(
    y: IntArray, p: FloatArray, w: FloatArray, classes: range
) -> Iterator[tuple[FloatArray, FloatArray]]:
    """Per class in `classes` present in y: weighted cumulative (tp, fp) at each distinct score, descending.

    Only the last row of each run of tied scores is kept, which is how scikit-learn places
    thresholds, so ties are scored identically.
    """
    for k in classes:
        positive = y == k
        if not positive.any():
            continue
        order = np.argsort(-p[:, k], kind="mergesort")
        scores = p[order, k]
        ends = np.flatnonzero(np.r_[scores[1:] != scores[:-1], True])
        w_sorted = w[:, order]
        tp_all = np.cumsum(w_sorted * positive[order], axis=1)
        total = np.cumsum(w_sorted, axis=1)
        tp = tp_all[:, ends]
        yield tp, total[:, ends] - tp


def _ap_of_curve(tp: FloatArray, fp: FloatArray) -> tuple[FloatArray, FloatArray]:
    """(average precision, whether defined) per resample, from one class's ranking curve."""
    n_pos = tp[:, -1]
    predicted = tp + fp
    precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
    recall_step = np.diff(tp, axis=1, prepend=0.0)
    present = n_pos > 0  # a resample may draw no row of a rare class
    ap = np.divide((recall_step * precision).sum(axis=1), n_pos, out=np.zeros_like(n_pos), where=present)
    return ap, present.astype(np.float64)


def _macro_ap_w(y: IntArray, p: FloatArray, w: FloatArray) -> FloatArray:
    sums = np.zeros(w.shape[0])
    counts = np.zeros(w.shape[0])
    for tp, fp in _ranking_curves(y, p, w, range(p.shape[1])):
        ap, present = _ap_of_curve(tp, fp)
        sums += ap
        counts += present
    return np.divide(sums, counts, out=np.full_like(sums, np.nan), where=counts > 0)


def _average_precision_w(y: IntArray, p: FloatArray, w: FloatArray) -> FloatArray:
    if p.shape[1] != 2:
        raise ValueError(
            f"average_precision is for binary classification (2 classes), got {p.shape[1]} classes: "
            "use macro_average_precision"
        )
    out = np.full(w.shape[0], np.nan)
    for tp, fp in _ranking_curves(y, p, w, range(1, 2)):
        ap, present = _ap_of_curve(tp, fp)
        out = np.where(present > 0, ap, np.nan)  # no positive row drawn: undefined
    return out


def _roc_auc_w(y: IntArray, p: FloatArray, w: FloatArray) -> FloatArray:
    sums = np.zeros(w.shape[0])
    counts = np.zeros(w.shape[0])
    for tp, fp in _ranking_curves(y, p, w, _scored_classes(p)):
        n_pos, n_neg = tp[:, -1], fp[:, -1]
        fp_step = np.diff(fp, axis=1, prepend=0.0)
        tp_prev = np.concatenate([np.zeros((tp.shape[0], 1)), tp[:, :-1]], axis=1)
        # Trapezoids under the ROC curve, i.e. Mann-Whitney with ties counted as one half.
        area = (fp_step * (tp + tp_prev)).sum(axis=1) / 2.0
        defined = (n_pos > 0) & (n_neg > 0)
        auc = np.divide(area, n_pos * n_neg, out=np.zeros_like(area), where=defined)
        sums += auc
        counts += defined
    return np.divide(sums, counts, out=np.full_like(sums, np.nan), where=counts > 0)


def _squared_error_w(y: FloatArray, p: FloatArray, w: FloatArray) -> FloatArray:
    return _weighted_mean((p[:, 0] - y) ** 2, w)


def _rmse_w(y: FloatArray, p: FloatArray, w: FloatArray) -> FloatArray:
    return np.asarray(np.sqrt(_squared_error_w(y, p, w)), dtype=np.float64)


def _mae_w(y: FloatArray, p: FloatArray, w: FloatArray) -> FloatArray:
    return _weighted_mean(np.abs(p[:, 0] - y), w)


def _r2_w(y: FloatArray, p: FloatArray, w: FloatArray) -> FloatArray:
    total = w.sum(axis=1)
    residual = w @ (y - p[:, 0]) ** 2
    centred = y[None, :] - ((w @ y) / total)[:, None]  # deviations from each resample's own mean
    spread = (w * centred**2).sum(axis=1)
    # Labels all equal (a tiny slice, an unlucky resample): R² is undefined, not 0 or 1.
    unexplained = np.divide(residual, spread, out=np.full_like(spread, np.nan), where=spread > 0)
    return np.asarray(1.0 - unexplained, dtype=np.float64)


WeightedMetric = Callable[[Labels, FloatArray, FloatArray], FloatArray]
# name -> the metric on (labels, predictions, row weights (resamples, rows)): one value per row
# of weights. The paired bootstrap scores every resample at once through these.
WEIGHTED: dict[str, WeightedMetric] = {
    "error_rate": _error_rate_w,
    "macro_average_precision": _macro_ap_w,
    "average_precision": _average_precision_w,
    "roc_auc": _roc_auc_w,
    "log_loss": _log_loss_w,
    "ece": _ece_w,
    "rmse": _rmse_w,
    "mae": _mae_w,
    "r2": _r2_w,
}

# name -> the task whose labels and predictions it scores.
METRIC_TASK: dict[str, str] = {
    "error_rate": CLASSIFICATION,
    "macro_average_precision": CLASSIFICATION,
    "average_precision": CLASSIFICATION,
    "roc_auc": CLASSIFICATION,
    "log_loss": CLASSIFICATION,
    "ece": CLASSIFICATION,
    "rmse": REGRESSION,
    "mae": REGRESSION,
    "r2": REGRESSION,
}
# Metrics defined only for two classes.
BINARY_ONLY = frozenset({"average_precision"})


def task_of(names: Sequence[str]) -> str:
    """The one task the named metrics score (classification when none are named); ValueError if mixed."""
    for name in names:
        higher_is_better(name)
    tasks = sorted({METRIC_TASK[name] for name in names})
    if len(tasks) > 1:
        by_task = "; ".join(f"{t}: {', '.join(n for n in names if METRIC_TASK[n] == t)}" for t in tasks)
        raise ValueError(f"metrics of different tasks cannot be scored together ({by_task})")
    return tasks[0] if tasks else CLASSIFICATION


def metrics_for(task: str) -> list[str]:
    """The registered metrics of a task, in registration order."""
    return [name for name, t in METRIC_TASK.items() if t == task]


def _point(name: str, y_true: ArrayLike, proba: ArrayLike) -> float:
    y, p = check_inputs(y_true, proba, METRIC_TASK[name])
    return float(WEIGHTED[name](y, p, np.ones((1, y.shape[0])))[0])


def error_rate(y_true: ArrayLike, proba: ArrayLike) -> float:
    """Fraction of rows whose most probable class is not the label."""
    return _point("error_rate", y_true, proba)


def macro_average_precision(y_true: ArrayLike, proba: ArrayLike) -> float:
    """One-vs-rest average precision, averaged over the classes present in y_true."""
    return _point("macro_average_precision", y_true, proba)


def average_precision(y_true: ArrayLike, proba: ArrayLike) -> float:
    """Binary average precision of the positive class (index 1); ValueError unless there are 2 classes."""
    return _point("average_precision", y_true, proba)


def roc_auc(y_true: ArrayLike, proba: ArrayLike) -> float:
    """ROC AUC: of the positive class (index 1) for two classes, else macro one-vs-rest over the
    classes present in y_true."""
    return _point("roc_auc", y_true, proba)


def log_loss(y_true: ArrayLike, proba: ArrayLike) -> float:
    """Mean negative log probability of the true class, clipped at 1e-15."""
    return _point("log_loss", y_true, proba)


def ece(y_true: ArrayLike, proba: ArrayLike, n_bins: int = ECE_BINS) -> float:
    """Expected calibration error of the top-class confidence (for two classes max(p, 1 - p), so
    it does not depend on which class is called positive), equal-width bins."""
    y, p = check_inputs(y_true, proba)
    return float(_ece_w(y, p, np.ones((1, y.shape[0])), n_bins)[0])


def rmse(y_true: ArrayLike, predicted: ArrayLike) -> float:
    """Root mean squared error of predicted values (rows, 1) against float labels."""
    return _point("rmse", y_true, predicted)


def mae(y_true: ArrayLike, predicted: ArrayLike) -> float:
    """Mean absolute error of predicted values (rows, 1) against float labels."""
    return _point("mae", y_true, predicted)


def r2(y_true: ArrayLike, predicted: ArrayLike) -> float:
    """Coefficient of determination; NaN when every label is equal (undefined)."""
    return _point("r2", y_true, predicted)


MetricFn = Callable[[ArrayLike, ArrayLike], float]

# name -> (function(y_true, proba), higher_is_better)
METRICS: dict[str, tuple[MetricFn, bool]] = {
    "error_rate": (error_rate, False),
    "macro_average_precision": (macro_average_precision, True),
    "average_precision": (average_precision, True),
    "roc_auc": (roc_auc, True),
    "log_loss": (log_loss, False),
    "ece": (ece, False),
    "rmse": (rmse, False),
    "mae": (mae, False),
    "r2": (r2, True),
}


def higher_is_better(name: str) -> bool:
    """Direction of a registered metric."""
    if name not in METRICS:
        raise ValueError(f"unknown metric {name!r}")
    return METRICS[name][1]


def compute_metrics(y_true: ArrayLike, proba: ArrayLike, names: Sequence[str]) -> dict[str, float]:
    """The named metrics (all of one task) on the whole set."""
    task_of(names)
    return {name: METRICS[name][0](y_true, proba) for name in names}


@dataclass(frozen=True)
class CalibrationBins:
    """Per-bin counts, mean confidence and accuracy; empty bins hold NaN."""

    edges: FloatArray
    counts: IntArray
    confidence: FloatArray
    accuracy: FloatArray

    @property
    def ece(self) -> float:
        total = int(self.counts.sum())
        filled = self.counts > 0
        gaps = np.abs(self.accuracy[filled] - self.confidence[filled])
        return float((self.counts[filled] * gaps).sum() / total)


def calibration_bins(y_true: ArrayLike, proba: ArrayLike, n_bins: int = ECE_BINS) -> CalibrationBins:
    """Top-class confidence binned as in `ece`, for reliability diagrams."""
    y, p = check_inputs(y_true, proba)
    confidence = p.max(axis=1)
    correct = (p.argmax(axis=1) == y).astype(np.float64)
    bins = _bin_index(confidence, n_bins)
    counts = np.bincount(bins, minlength=n_bins).astype(np.int64)
    conf_sum = np.bincount(bins, weights=confidence, minlength=n_bins)
    correct_sum = np.bincount(bins, weights=correct, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_conf = np.where(counts > 0, conf_sum / counts, np.nan)
        accuracy = np.where(counts > 0, correct_sum / counts, np.nan)
    return CalibrationBins(np.linspace(0.0, 1.0, n_bins + 1), counts, mean_conf, accuracy)


def per_class_table(y_true: ArrayLike, proba: ArrayLike) -> list[dict[str, float | int]]:
    """One row per class: support, precision, recall, error rate (NaN where undefined)."""
    y, p = check_inputs(y_true, proba)
    predicted = p.argmax(axis=1)
    rows: list[dict[str, float | int]] = []
    for k in range(p.shape[1]):
        support = int((y == k).sum())
        n_predicted = int((predicted == k).sum())
        hits = int(((y == k) & (predicted == k)).sum())
        recall = hits / support if support else math.nan
        rows.append(
            {
                "class": k,
                "support": support,
                "precision": hits / n_predicted if n_predicted else math.nan,
                "recall": recall,
                "error_rate": 1.0 - recall if support else math.nan,
            }
        )
    return rows


def slice_metrics(
    y_true: ArrayLike,
    probas: Mapping[str, ArrayLike],
    groups: ArrayLike,
    names: Sequence[str],
) -> dict[str, dict[str, Any]]:
    """Each model's metrics within each slice (rows sharing a value of `groups`), by value.

    A metric that a small slice cannot define (e.g. ROC AUC with one class present) is NaN.
    """
    y = np.asarray(y_true)
    keys = np.asarray(groups).astype(str)
    if keys.shape != y.shape:
        raise ValueError(f"groups {keys.shape} and y_true {y.shape} differ in length")
    out: dict[str, dict[str, Any]] = {}
    for value in sorted(set(keys.tolist())):
        mask = keys == value
        out[value] = {
            "rows": int(mask.sum()),
            "metrics": {model: compute_metrics(y[mask], np.asarray(p)[mask], names) for model, p in probas.items()},
        }
    return out
