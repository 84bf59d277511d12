"""The paired bootstrap: a confidence interval for metric(a) - metric(b) on the same test rows.

Both models are scored on the same resamples, so the interval reflects the difference between
them, not the noise of the test set each would see alone.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import numpy as np
from numpy.typing import ArrayLike

from gauntlet.scoring.metrics import METRICS, WEIGHTED, FloatArray, IntArray, check_inputs, task_of

# Bound the (resamples x rows) work matrices so large test sets don't exhaust memory.
_BOOTSTRAP_CELLS_PER_CHUNK = 2_000_000


def resample_chunks(n_rows: int, resamples: int, seed: int) -> Iterator[IntArray]:
    """The rows drawn for each of `resamples` resamples, in chunks of bounded size.

    The chunk size depends only on n_rows, so a given seed always draws the same resamples.
    """
    rng = np.random.default_rng(seed)
    chunk = max(1, _BOOTSTRAP_CELLS_PER_CHUNK // n_rows)
    done = 0
    while done < resamples:
        size = min(chunk, resamples - done)
        yield rng.integers(0, n_rows, size=(size, n_rows))
        done += size


def weights_from_indices(indices: IntArray, n_rows: int) -> FloatArray:
    """Each resample as row weights: how often each row was drawn (the metrics' weighted form)."""
    n_resamples = indices.shape[0]
    flat = (indices + np.arange(n_resamples)[:, None] * n_rows).ravel()
    counts = np.bincount(flat, minlength=n_resamples * n_rows)
    return counts.reshape(n_resamples, n_rows).astype(np.float64)


def bootstrap_metric_samples(
    y_true: ArrayLike, proba: ArrayLike, names: Sequence[str], indices: ArrayLike
) -> dict[str, FloatArray]:
    """Each named metric on each resample; row r of `indices` lists the rows drawn for it.

    Classification: probabilities (rows, classes); regression: predicted values (rows, 1).
    """
    y, p = check_inputs(y_true, proba, task_of(names))
    idx = np.asarray(indices, dtype=np.int64)
    if idx.ndim != 2 or idx.size == 0 or idx.min() < 0 or idx.max() >= y.shape[0]:
        raise ValueError("indices must be a non-empty 2-D array of row numbers")
    weights = weights_from_indices(idx, y.shape[0])
    out: dict[str, FloatArray] = {}
    for name in names:
        if name in WEIGHTED:
            out[name] = WEIGHTED[name](y, p, weights)
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
    """Percentile interval for metric(a) - metric(b), resampling the same rows for both.

    `proba_a`/`proba_b` are probabilities (rows, classes) or, for regression metrics, values (rows, 1).
    """
    task = task_of(names)
    y, pa = check_inputs(y_true, proba_a, task)
    _, pb = check_inputs(y, proba_b, task)
    if pa.shape != pb.shape:
        raise ValueError(f"proba_a {pa.shape} and proba_b {pb.shape} differ in shape")
    if resamples < 1:
        raise ValueError("resamples must be >= 1")
    if not 0.0 < confidence < 1.0:
        raise ValueError("confidence must be in (0, 1)")
    names = list(dict.fromkeys(names))
    diffs: dict[str, list[FloatArray]] = {name: [] for name in names}
    for indices in resample_chunks(y.shape[0], resamples, seed):
        a = bootstrap_metric_samples(y, pa, names, indices)
        b = bootstrap_metric_samples(y, pb, names, indices)
        for name in names:
            diffs[name].append(a[name] - b[name])

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
