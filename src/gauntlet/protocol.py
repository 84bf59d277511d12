"""The fixed comparison protocol: splits, metrics, the paired bootstrap and the promotion gate.

Every model is scored under one protocol file. Its content hash is the protocol id, so results
from different protocol versions are never compared. This module is pure computation: callers
fetch protocol bytes (from disk or S3) and pass them in.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from numpy.typing import ArrayLike, NDArray

from gauntlet.hashing import content_hash

SPLITS = ("train", "dev", "test")
GATE_MODES = ("superiority", "non_inferiority")
MIN_BOOTSTRAP_RESAMPLES = 1000
ECE_BINS = 15
LOG_LOSS_EPS = 1e-15

# Bound the (resamples x rows) work matrices so large test sets don't exhaust memory.
_BOOTSTRAP_CELLS_PER_CHUNK = 2_000_000

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]


# --------------------------------------------------------------------------------------------
# Protocol file
# --------------------------------------------------------------------------------------------


class ProtocolError(ValueError):
    """A protocol file that is malformed; the message names the offending field."""


@dataclass(frozen=True)
class Protocol:
    """A parsed, validated protocol file. `raw` is the parsed YAML; its hash is the id."""

    name: str
    description: str
    id_column: str
    salt: str
    test_fraction: float
    dev_fraction: float
    epochs: int
    seed: int
    primary_metric: str
    guards: dict[str, float] = field(hash=False)
    report_metrics: tuple[str, ...]
    gate_mode: str
    margin: float
    confidence: float
    bootstrap_resamples: int
    bootstrap_seed: int
    baseline: dict[str, Any] = field(hash=False)
    excluded_row_ids: tuple[str, ...]
    raw: dict[str, Any] = field(hash=False, repr=False)
    # Early stopping instead of a fixed budget: stop once dev error has not improved for this many
    # epochs; `epochs` is then the cap (until_plateau.max_epochs). None means the fixed budget.
    patience: int | None = None
    # Test-frame columns (e.g. the raw partition `date`) whose values get their own metric table.
    slices: tuple[str, ...] = ()

    @property
    def id(self) -> str:
        """Content hash of the parsed file: any edit gives a new protocol version."""
        return content_hash(self.raw)

    @property
    def metric_names(self) -> tuple[str, ...]:
        """Primary, guard and report metrics, each once, in that order."""
        names = [self.primary_metric, *self.guards, *self.report_metrics]
        return tuple(dict.fromkeys(names))

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> Protocol:
        """Validate a parsed protocol; raises ProtocolError (a ValueError) naming the bad field."""
        return _parse_protocol(raw)


def load_protocol(path: str | Path) -> Protocol:
    """Read and validate a protocol YAML file from local disk."""
    data = Path(path).read_bytes()
    try:
        return protocol_from_bytes(data)
    except ProtocolError as exc:
        raise ProtocolError(f"{path}: {exc}") from exc


def protocol_from_bytes(data: bytes) -> Protocol:
    """Parse and validate protocol YAML given as bytes (e.g. an object body read by the caller)."""
    try:
        raw = yaml.safe_load(data.decode("utf-8"))
    except (UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ProtocolError(f"protocol is not valid UTF-8 YAML: {exc}") from exc
    return Protocol.from_dict(raw)


_TOP_LEVEL_KEYS = {
    "name",
    "description",
    "split",
    "training",
    "metrics",
    "gate",
    "baseline",
    "excluded_row_ids",
    "slices",
}
_SECTION_KEYS = {
    "split": {"id_column", "salt", "test_fraction", "dev_fraction"},
    "training": {"epochs", "seed", "until_plateau"},
    "metrics": {"primary", "guards", "report"},
    "gate": {"mode", "margin", "confidence", "bootstrap_resamples", "bootstrap_seed"},
}


def _parse_protocol(raw: Any) -> Protocol:
    if not isinstance(raw, Mapping):
        raise ProtocolError("protocol must be a YAML mapping at the top level")
    # Unknown keys are rejected because a misspelt key would otherwise silently fall back.
    _reject_unknown(raw, _TOP_LEVEL_KEYS, "")
    sections = {}
    for section, allowed in _SECTION_KEYS.items():
        value = raw.get(section)
        if not isinstance(value, Mapping):
            raise ProtocolError(f"{section} must be a mapping")
        _reject_unknown(value, allowed, f"{section}.")
        sections[section] = value
    split, training, metrics, gate = (sections[s] for s in ("split", "training", "metrics", "gate"))

    name = _nonempty_str(raw.get("name"), "name")
    description = raw.get("description", "")
    if description is None:
        description = ""
    if not isinstance(description, str):
        raise ProtocolError("description must be a string")

    test_fraction = _number(split.get("test_fraction"), "split.test_fraction")
    dev_fraction = _number(split.get("dev_fraction"), "split.dev_fraction")
    for key, value in (
        ("test_fraction", test_fraction),
        ("dev_fraction", dev_fraction),
    ):
        if not 0.0 < value < 1.0:
            raise ProtocolError(f"split.{key} must be in (0, 1), got {value}")
    if test_fraction + dev_fraction >= 1.0:
        raise ProtocolError(
            "split.test_fraction + split.dev_fraction must be < 1 to leave training rows, "
            f"got {test_fraction} + {dev_fraction}"
        )

    epochs, patience = _epoch_budget(training)
    seed = _integer(training.get("seed"), "training.seed", minimum=0)

    primary = _metric_name(metrics.get("primary"), "metrics.primary")
    guards_raw = metrics.get("guards") or {}
    if not isinstance(guards_raw, Mapping):
        raise ProtocolError("metrics.guards must be a mapping of metric name to tolerance")
    guards: dict[str, float] = {}
    for metric, tolerance in guards_raw.items():
        _metric_name(metric, "metrics.guards")
        value = _number(tolerance, f"metrics.guards.{metric}")
        if value < 0:
            raise ProtocolError(f"metrics.guards.{metric} tolerance must be >= 0, got {value}")
        guards[metric] = value
    report_raw = metrics.get("report")
    if report_raw is None:
        report_raw = [primary, *guards]
    if not isinstance(report_raw, list) or not report_raw:
        raise ProtocolError("metrics.report must be a non-empty list of metric names")
    report = tuple(_metric_name(m, "metrics.report") for m in report_raw)

    mode = gate.get("mode")
    if mode not in GATE_MODES:
        raise ProtocolError(f"gate.mode must be one of {', '.join(GATE_MODES)}, got {mode!r}")
    margin = _number(gate.get("margin", 0.0), "gate.margin")
    if margin < 0:
        raise ProtocolError(f"gate.margin must be >= 0, got {margin}")
    if mode == "superiority" and margin != 0:
        # A margin under superiority would be silently ignored; make the intent explicit.
        raise ProtocolError(f"gate.margin must be 0 when gate.mode is superiority, got {margin}")
    confidence = _number(gate.get("confidence"), "gate.confidence")
    if not 0.0 < confidence < 1.0:
        raise ProtocolError(f"gate.confidence must be in (0, 1), got {confidence}")
    resamples = _integer(
        gate.get("bootstrap_resamples"),
        "gate.bootstrap_resamples",
        minimum=MIN_BOOTSTRAP_RESAMPLES,
    )
    bootstrap_seed = _integer(gate.get("bootstrap_seed"), "gate.bootstrap_seed", minimum=0)

    baseline = raw.get("baseline") or {}
    if not isinstance(baseline, Mapping):
        raise ProtocolError("baseline must be a mapping")

    excluded_raw = raw.get("excluded_row_ids") or []
    if not isinstance(excluded_raw, list):
        raise ProtocolError("excluded_row_ids must be a list")
    excluded: list[str] = []
    for item in excluded_raw:
        # Row ids are text. YAML reads an unquoted 010 as the integer 8 and 1e3 as a float: taking
        # either as an id would exclude the wrong row, so only quoted (string) entries are accepted.
        if not isinstance(item, str):
            raise ProtocolError(
                f"excluded_row_ids entries must be quoted strings, got {item!r} ({type(item).__name__}): "
                "write each id in quotes as it appears in the data (YAML reads an unquoted 010 as 8)"
            )
        excluded.append(item)

    slices_raw = raw.get("slices") or []
    if not isinstance(slices_raw, list):
        raise ProtocolError("slices must be a list of test-set column names")
    slices = tuple(_nonempty_str(column, "slices") for column in slices_raw)

    return Protocol(
        name=name,
        description=description,
        id_column=_nonempty_str(split.get("id_column"), "split.id_column"),
        salt=_nonempty_str(split.get("salt"), "split.salt"),
        test_fraction=test_fraction,
        dev_fraction=dev_fraction,
        epochs=epochs,
        seed=seed,
        primary_metric=primary,
        guards=guards,
        report_metrics=report,
        gate_mode=mode,
        margin=margin,
        confidence=confidence,
        bootstrap_resamples=resamples,
        bootstrap_seed=bootstrap_seed,
        baseline=dict(baseline),
        excluded_row_ids=tuple(excluded),
        raw=copy.deepcopy(dict(raw)),
        patience=patience,
        slices=slices,
    )


def _epoch_budget(training: Mapping[str, Any]) -> tuple[int, int | None]:
    """(epoch cap, patience): a fixed `epochs` budget, or `until_plateau` {patience, max_epochs}."""
    plateau = training.get("until_plateau")
    if plateau is None:
        return _integer(training.get("epochs"), "training.epochs", minimum=1), None
    if "epochs" in training:
        # Two budgets would leave a reader guessing which one applied.
        raise ProtocolError("give either training.epochs or training.until_plateau, not both")
    if not isinstance(plateau, Mapping):
        raise ProtocolError("training.until_plateau must be a mapping with patience and max_epochs")
    _reject_unknown(plateau, {"patience", "max_epochs"}, "training.until_plateau.")
    patience = _integer(plateau.get("patience"), "training.until_plateau.patience", minimum=1)
    max_epochs = _integer(plateau.get("max_epochs"), "training.until_plateau.max_epochs", minimum=1)
    return max_epochs, patience


def plateaued(dev_errors: Sequence[float], patience: int) -> bool:
    """True once the best dev error so far is `patience` or more epochs old.

    Only a strictly lower error counts as an improvement, so a flat curve stops after `patience`.
    """
    if not dev_errors:
        return False
    best = int(np.argmin(np.asarray(dev_errors, dtype=np.float64)))  # first occurrence of the minimum
    return len(dev_errors) - 1 - best >= patience


def _reject_unknown(mapping: Mapping[Any, Any], allowed: set[str], prefix: str) -> None:
    unknown = sorted(str(k) for k in mapping if k not in allowed)
    if unknown:
        names = ", ".join(prefix + k for k in unknown)
        raise ProtocolError(f"unknown field(s): {names} (allowed: {', '.join(sorted(allowed))})")


def _nonempty_str(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise ProtocolError(f"{where} must be a non-empty string, got {value!r}")
    return value


def _number(value: Any, where: str) -> float:
    # bool is an int subclass; `true` in YAML is never a sensible number here.
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ProtocolError(f"{where} must be a number, got {value!r}")
    if not math.isfinite(value):
        raise ProtocolError(f"{where} must be finite, got {value!r}")
    return float(value)


def _integer(value: Any, where: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ProtocolError(f"{where} must be an integer, got {value!r}")
    if value < minimum:
        raise ProtocolError(f"{where} must be >= {minimum}, got {value}")
    return value


def _metric_name(value: Any, where: str) -> str:
    if value not in METRICS:
        raise ProtocolError(f"{where}: unknown metric {value!r} (known: {', '.join(sorted(METRICS))})")
    return str(value)


# --------------------------------------------------------------------------------------------
# Splits
# --------------------------------------------------------------------------------------------


# A row's split is gauntlet.splits.split_of(row_id, protocol): the salt and fractions above decide
# it, from the id's canonical text; the hashing lives there so every reader of ids shares it.


# --------------------------------------------------------------------------------------------
# Metrics
# --------------------------------------------------------------------------------------------
#
# Each metric is implemented once, on integer row weights of shape (resamples, rows): a
# bootstrap resample is exactly the test set with each row weighted by how often it was drawn.
# The point estimate is the same code with all weights 1, so estimate and bootstrap can't drift.


def _check_inputs(y_true: ArrayLike, proba: ArrayLike) -> tuple[IntArray, FloatArray]:
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


def _ranking_curves(y: IntArray, p: FloatArray, w: FloatArray) -> Iterator[tuple[FloatArray, FloatArray]]:
    """Per class present in y: weighted cumulative (tp, fp) at each distinct score, descending.

    Only the last row of each run of tied scores is kept, which is how scikit-learn places
    thresholds, so ties are scored identically.
    """
    for k in range(p.shape[1]):
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


def _macro_ap_w(y: IntArray, p: FloatArray, w: FloatArray) -> FloatArray:
    sums = np.zeros(w.shape[0])
    counts = np.zeros(w.shape[0])
    for tp, fp in _ranking_curves(y, p, w):
        n_pos = tp[:, -1]
        predicted = tp + fp
        precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
        recall_step = np.diff(tp, axis=1, prepend=0.0)
        present = n_pos > 0  # a resample may draw no row of a rare class
        ap = np.divide(
            (recall_step * precision).sum(axis=1),
            n_pos,
            out=np.zeros_like(n_pos),
            where=present,
        )
        sums += ap
        counts += present
    return np.divide(sums, counts, out=np.full_like(sums, np.nan), where=counts > 0)


def _roc_auc_w(y: IntArray, p: FloatArray, w: FloatArray) -> FloatArray:
    sums = np.zeros(w.shape[0])
    counts = np.zeros(w.shape[0])
    for tp, fp in _ranking_curves(y, p, w):
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


_Weighted = Callable[[IntArray, FloatArray, FloatArray], FloatArray]
_WEIGHTED: dict[str, _Weighted] = {
    "error_rate": _error_rate_w,
    "macro_average_precision": _macro_ap_w,
    "roc_auc": _roc_auc_w,
    "log_loss": _log_loss_w,
    "ece": _ece_w,
}


def _point(name: str, y_true: ArrayLike, proba: ArrayLike) -> float:
    y, p = _check_inputs(y_true, proba)
    return float(_WEIGHTED[name](y, p, np.ones((1, y.shape[0])))[0])


def error_rate(y_true: ArrayLike, proba: ArrayLike) -> float:
    """Fraction of rows whose most probable class is not the label."""
    return _point("error_rate", y_true, proba)


def macro_average_precision(y_true: ArrayLike, proba: ArrayLike) -> float:
    """One-vs-rest average precision, averaged over the classes present in y_true."""
    return _point("macro_average_precision", y_true, proba)


def roc_auc(y_true: ArrayLike, proba: ArrayLike) -> float:
    """Macro one-vs-rest ROC AUC; classes absent from y_true are skipped."""
    return _point("roc_auc", y_true, proba)


def log_loss(y_true: ArrayLike, proba: ArrayLike) -> float:
    """Mean negative log probability of the true class, clipped at 1e-15."""
    return _point("log_loss", y_true, proba)


def ece(y_true: ArrayLike, proba: ArrayLike, n_bins: int = ECE_BINS) -> float:
    """Expected calibration error of the top-class confidence, equal-width bins."""
    y, p = _check_inputs(y_true, proba)
    return float(_ece_w(y, p, np.ones((1, y.shape[0])), n_bins)[0])


MetricFn = Callable[[ArrayLike, ArrayLike], float]

# name -> (function(y_true, proba), higher_is_better)
METRICS: dict[str, tuple[MetricFn, bool]] = {
    "error_rate": (error_rate, False),
    "macro_average_precision": (macro_average_precision, True),
    "roc_auc": (roc_auc, True),
    "log_loss": (log_loss, False),
    "ece": (ece, False),
}


def higher_is_better(name: str) -> bool:
    """Direction of a registered metric."""
    if name not in METRICS:
        raise ValueError(f"unknown metric {name!r}")
    return METRICS[name][1]


def compute_metrics(y_true: ArrayLike, proba: ArrayLike, names: Sequence[str]) -> dict[str, float]:
    """The named metrics on the whole set."""
    for name in names:
        higher_is_better(name)
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
    y, p = _check_inputs(y_true, proba)
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
    y, p = _check_inputs(y_true, proba)
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


# --------------------------------------------------------------------------------------------
# Paired bootstrap
# --------------------------------------------------------------------------------------------


def _weights_from_indices(indices: IntArray, n_rows: int) -> FloatArray:
    n_resamples = indices.shape[0]
    flat = (indices + np.arange(n_resamples)[:, None] * n_rows).ravel()
    counts = np.bincount(flat, minlength=n_resamples * n_rows)
    return counts.reshape(n_resamples, n_rows).astype(np.float64)


def bootstrap_metric_samples(
    y_true: ArrayLike, proba: ArrayLike, names: Sequence[str], indices: ArrayLike
) -> dict[str, FloatArray]:
    """Each named metric on each resample; row r of `indices` lists the rows drawn for it."""
    y, p = _check_inputs(y_true, proba)
    idx = np.asarray(indices, dtype=np.int64)
    if idx.ndim != 2 or idx.size == 0 or idx.min() < 0 or idx.max() >= y.shape[0]:
        raise ValueError("indices must be a non-empty 2-D array of row numbers")
    weights = _weights_from_indices(idx, y.shape[0])
    out: dict[str, FloatArray] = {}
    for name in names:
        higher_is_better(name)
        if name in _WEIGHTED:
            out[name] = _WEIGHTED[name](y, p, weights)
        else:  # a registered metric without a weighted form: evaluate resample by resample
            fn = METRICS[name][0]
            out[name] = np.array([fn(y[row], p[row]) for row in idx], dtype=np.float64)
    return out


def paired_bootstrap(
    y_true: ArrayLike,
    proba_a: ArrayLike,
    proba_b: ArrayLike,
    names: Sequence[str],
    resamples: int,
    seed: int,
    confidence: float,
) -> dict[str, dict[str, float]]:
    """Percentile interval for metric(a) - metric(b), resampling the same rows for both."""
    y, pa = _check_inputs(y_true, proba_a)
    _, pb = _check_inputs(y, proba_b)
    if pa.shape != pb.shape:
        raise ValueError(f"proba_a {pa.shape} and proba_b {pb.shape} differ in shape")
    if resamples < 1:
        raise ValueError("resamples must be >= 1")
    if not 0.0 < confidence < 1.0:
        raise ValueError("confidence must be in (0, 1)")
    names = list(dict.fromkeys(names))
    n_rows = y.shape[0]
    rng = np.random.default_rng(seed)
    # Chunk size depends only on n_rows, so a given seed always draws the same resamples.
    chunk = max(1, _BOOTSTRAP_CELLS_PER_CHUNK // n_rows)
    diffs: dict[str, list[FloatArray]] = {name: [] for name in names}
    done = 0
    while done < resamples:
        size = min(chunk, resamples - done)
        indices = rng.integers(0, n_rows, size=(size, n_rows))
        a = bootstrap_metric_samples(y, pa, names, indices)
        b = bootstrap_metric_samples(y, pb, names, indices)
        for name in names:
            diffs[name].append(a[name] - b[name])
        done += size

    alpha = 1.0 - confidence
    result: dict[str, dict[str, float]] = {}
    for name in names:
        point_a = METRICS[name][0](y, pa)
        point_b = METRICS[name][0](y, pb)
        samples = np.concatenate(diffs[name])
        samples = samples[np.isfinite(samples)]
        if samples.size:
            low, high = np.quantile(samples, [alpha / 2, 1 - alpha / 2])
        else:
            low = high = math.nan
        result[name] = {
            "a": point_a,
            "b": point_b,
            "diff": point_a - point_b,
            "low": float(low),
            "high": float(high),
        }
    return result


# --------------------------------------------------------------------------------------------
# Gate
# --------------------------------------------------------------------------------------------


@dataclass
class GateDecision:
    """Whether a candidate is promoted, one sentence saying why, and the figures behind it."""

    passed: bool
    reason: str
    details: dict[str, Any]


@dataclass(frozen=True)
class _Verdict:
    """The protocol's rule applied to one comparison (candidate - one reference)."""

    name: str
    passed: bool
    text: str
    primary: dict[str, Any]
    guards: dict[str, dict[str, Any]]


def _decimals(*values: float) -> int:
    finite = [abs(v) for v in values if math.isfinite(v) and v != 0]
    largest = max(finite, default=1.0)
    # Small differences (e.g. AUC near 1) would otherwise print as 0.000.
    return 3 if largest >= 0.01 else 4 if largest >= 0.001 else 5


def _confidence_label(confidence: float) -> str:
    return f"{round(confidence * 100, 2):g}% CI"


def _require_results(result: Mapping[str, Mapping[str, float]], name: str, metrics: Sequence[str]) -> None:
    for metric in metrics:
        if metric not in result:
            raise ValueError(f"comparison with {name} has no result for {metric!r}")
        missing = {"diff", "low", "high"} - set(result[metric])
        if missing:
            raise ValueError(f"result for {metric!r} lacks {', '.join(sorted(missing))}")


def _primary_text(protocol: Protocol, row: Mapping[str, float], name: str, ok: bool) -> str:
    primary = protocol.primary_metric
    diff, low, high = float(row["diff"]), float(row["low"]), float(row["high"])
    higher = higher_is_better(primary)
    d = _decimals(diff, low, high, protocol.margin)
    ci = f"{_confidence_label(protocol.confidence)} {low:.{d}f} to {high:.{d}f}"
    if protocol.gate_mode == "non_inferiority":
        bound = "lower" if higher else "upper"
        within = "within" if ok else "whose " + bound + " bound is not within"
        return (
            f"{primary} change vs {name} is {diff:.{d}f} ({ci}), {within} the "
            f"non-inferiority margin of {protocol.margin:.{d}f}"
        )
    if ok:
        return f"{primary} improved by {abs(diff):.{d}f} ({ci}) over {name}"
    worst_gain, best_gain = (low, high) if higher else (-high, -low)
    if not math.isfinite(worst_gain) or not math.isfinite(best_gain):
        why = "which could not be estimated"
    elif best_gain < 0:
        why = "which shows a regression"
    else:
        why = "which does not exclude zero"
    return f"{primary} change vs {name} is {diff:.{d}f} ({ci}), {why}"


def _judge(protocol: Protocol, result: Mapping[str, Mapping[str, float]], name: str, with_guards: bool) -> _Verdict:
    """The primary rule (and, with_guards, the guards) against one reference."""
    primary = protocol.primary_metric
    guards = protocol.guards if with_guards else {}
    _require_results(result, name, [primary, *guards])
    row = result[primary]
    higher = higher_is_better(primary)
    # Express the interval as "improvement", so one rule covers both metric directions.
    worst_gain = float(row["low"]) if higher else -float(row["high"])
    threshold = -protocol.margin if protocol.gate_mode == "non_inferiority" else 0.0
    primary_ok = bool(worst_gain > threshold)  # NaN fails
    text = _primary_text(protocol, row, name, primary_ok)

    guard_details: dict[str, dict[str, Any]] = {}
    regressions: list[str] = []
    for metric, tolerance in guards.items():
        guard_diff = float(result[metric]["diff"])
        regression = guard_diff if not higher_is_better(metric) else -guard_diff
        ok = bool(regression <= tolerance)  # NaN fails
        guard_details[metric] = {"diff": guard_diff, "regression": regression, "tolerance": tolerance, "passed": ok}
        if not ok:
            g = _decimals(regression, tolerance)
            regressions.append(f"{metric} regressed by {regression:.{g}f} (tolerance {tolerance:.{g}f})")
    if regressions:
        noun = "guard" if len(regressions) == 1 else "guards"
        text += f"{', but' if primary_ok else ', and'} {noun} {' and '.join(regressions)}"
    elif guards and primary_ok:
        # The non-inferiority text already ends in a clause, hence the comma there.
        text += f"{' and' if protocol.gate_mode == 'superiority' else ', and'} no guard regressed"
    details = {
        "metric": primary,
        "higher_is_better": higher,
        "passed": primary_ok,
        **{k: float(v) for k, v in row.items()},
    }
    return _Verdict(name, primary_ok and not regressions, text, details, guard_details)


def decide(
    protocol: Protocol,
    vs_champion: Mapping[str, Mapping[str, float]] | None,
    vs_baseline: Mapping[str, Mapping[str, float]] | None,
    champion_name: str = "champion",
    baseline_name: str = "baseline",
    vs_anchor: Mapping[str, Mapping[str, float]] | None = None,
    anchor_name: str = "anchor",
    off_protocol: str | None = None,
) -> GateDecision:
    """Apply the protocol's gate to paired_bootstrap results (a = candidate, b = reference).

    The candidate must pass against every reference it is given: the champion, the baseline and
    the protocol's anchor (the best model promoted under this protocol, re-scored on the same rows).
    Each is judged by the protocol's rule on the primary metric (under non-inferiority, within the
    margin), so a margin is spent once per protocol, not once per night. Guards are judged against
    the champion and the anchor, or against the baseline when there is no champion: the baseline is
    a floor for the primary metric, not a calibration reference. An empty or None vs_baseline is
    not judged. `off_protocol` (why the run broke the protocol's budget) fails the gate whatever
    the figures: such a run is kept and reported, never promoted.
    """
    if vs_champion is None and not vs_baseline:
        raise ValueError("the gate needs a comparison with the champion or the baseline")
    verdicts: list[_Verdict] = []
    if vs_baseline:
        verdicts.append(_judge(protocol, vs_baseline, baseline_name, with_guards=vs_champion is None))
    if vs_anchor is not None:
        verdicts.append(_judge(protocol, vs_anchor, anchor_name, with_guards=True))
    if vs_champion is not None:
        verdicts.append(_judge(protocol, vs_champion, champion_name, with_guards=True))
    # The main target (the champion, else the baseline) is listed last; its figures are `primary`.
    target = verdicts[-1]
    failing = [v for v in verdicts if not v.passed]
    passed = not failing and off_protocol is None
    if not failing:
        reason = "; ".join(v.text for v in verdicts) + "."
    else:
        holds = [v.name for v in verdicts if v.passed]
        reason = "; ".join(v.text for v in failing) + "."
        if holds:
            reason += f" It passes against {' and '.join(holds)}."
    if off_protocol is not None:
        reason = f"Failed: {off_protocol}; it is kept and reported but never promoted. Against the references: {reason}"
    else:
        reason = ("Passed: " if passed else "Failed: ") + reason

    details: dict[str, Any] = {
        "target": target.name,
        "mode": protocol.gate_mode,
        "margin": protocol.margin,
        "confidence": protocol.confidence,
        "protocol_id": protocol.id,
        "primary": target.primary,
        "guards": target.guards,
        "references": {
            v.name: {"passed": v.passed, "primary": v.primary, "guards": v.guards, "text": v.text} for v in verdicts
        },
        "off_protocol": off_protocol,
    }
    if vs_champion is not None and vs_baseline and protocol.primary_metric in vs_baseline:
        details["vs_baseline"] = {k: float(v) for k, v in vs_baseline[protocol.primary_metric].items()}
    if vs_anchor is not None:
        details["anchor"] = anchor_name
    return GateDecision(passed=passed, reason=reason, details=details)


def off_protocol_reason(params: Mapping[str, Any], protocol: Protocol) -> str | None:
    """Why a run's training params break the protocol's fixed budget, or None when they keep it.

    The protocol fixes the epoch budget; a run that overrides it is kept and reported, never promoted.
    """
    epochs = params.get("epochs")
    if epochs != protocol.epochs:
        return (
            f"the run is off-protocol: it trained with an epoch budget of {epochs}, and protocol "
            f"{protocol.name} ({protocol.id}) fixes {protocol.epochs}"
        )
    return None
