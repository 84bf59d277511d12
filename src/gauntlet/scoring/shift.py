"""Domain-shift check: the candidate's primary metric on the newest day's test rows against all test rows.

The test set is frozen across nights while new days arrive; if the newest day's rows score clearly worse
than the test set as a whole, the data the model will meet next may no longer look like what it was
judged on. The interval is a paired bootstrap: each resample of the test rows gives the metric on all
its rows and on its rows of the newest day, through the metrics' row-weight form (the newest day's rows
are the resample's weights times a 0/1 mask), so both figures move together and only the gap is measured.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from gauntlet.logs import get_logger
from gauntlet.protocol import Protocol
from gauntlet.scoring.bootstrap import resample_chunks, weights_from_indices
from gauntlet.scoring.metrics import METRIC_TASK, METRICS, WEIGHTED, check_inputs, higher_is_better

MIN_ROWS = 30  # fewer newest-day rows than this give an interval too wide to say anything
log = get_logger("gauntlet.evaluate")


def newest_day_gap(
    labels: np.ndarray,
    predictions: np.ndarray,
    dates: np.ndarray,
    metric: str,
    resamples: int,
    seed: int,
    confidence: float,
    min_rows: int = MIN_ROWS,
) -> dict[str, Any]:
    """The check's figures: newest day, its rows, the metric on them and on all rows, their difference
    (newest - all) with its interval (None with fewer than `min_rows` newest-day rows), whether the
    interval excludes 0, whether the newest day is worse, and the sentence that says so."""
    y, p = check_inputs(labels, predictions, METRIC_TASK[metric])
    days = np.asarray(dates).astype(str)
    newest = max(days.tolist())
    mask = days == newest
    fn = METRICS[metric][0]
    result: dict[str, Any] = {
        "metric": metric,
        "newest_day": newest,
        "newest_rows": int(mask.sum()),
        "test_rows": int(y.shape[0]),
        "newest": fn(y[mask], p[mask]),
        "all": fn(y, p),
        "confidence": confidence,
        "low": None,
        "high": None,
        "significant": False,
        "worse": None,
    }
    result["diff"] = result["newest"] - result["all"]
    enough = min_rows <= result["newest_rows"] < result["test_rows"]
    if enough and math.isfinite(result["diff"]):
        low, high, varies = _interval(y, p, mask, metric, resamples, seed, confidence)
        # A newest day whose rows all score alike (no mistakes among them, say) scores the same on every
        # resample: the interval then only reflects the other rows, and cannot show a gap.
        result |= {
            "low": low,
            "high": high,
            "newest_varies": varies,
            "significant": bool(varies and (low > 0 or high < 0)),
        }
        lower_better = not higher_is_better(metric)
        result["worse"] = bool(result["diff"] > 0) if lower_better else bool(result["diff"] < 0)
    result["sentence"] = sentence(result, min_rows)
    return result


def _interval(
    y: np.ndarray, p: np.ndarray, mask: np.ndarray, metric: str, resamples: int, seed: int, confidence: float
) -> tuple[float, float, bool]:
    """Percentile interval of metric(newest-day rows) - metric(all rows) over paired resamples, and
    whether the newest day's figure varied across them."""
    n_rows = y.shape[0]
    weighted, keep = WEIGHTED[metric], mask.astype(np.float64)
    diffs: list[np.ndarray] = []
    varies = False
    for indices in resample_chunks(n_rows, resamples, seed):  # the paired bootstrap's draws
        weights = weights_from_indices(indices, n_rows)
        drew_newest = (weights @ keep) > 0  # a resample without a newest-day row has no figure for it
        with np.errstate(invalid="ignore", divide="ignore"):
            on_newest = weighted(y, p, weights[drew_newest] * keep)
            gap = on_newest - weighted(y, p, weights[drew_newest])
        finite = on_newest[np.isfinite(on_newest)]
        varies = varies or bool(finite.size and np.ptp(finite) > 0)
        diffs.append(gap)
    samples = np.concatenate(diffs)
    samples = samples[np.isfinite(samples)]
    if not samples.size:
        return math.nan, math.nan, varies
    alpha = 1.0 - confidence
    low, high = np.quantile(samples, [alpha / 2, 1 - alpha / 2])
    return float(low), float(high), varies


def sentence(result: Mapping[str, Any], min_rows: int = MIN_ROWS) -> str:
    """What the check found, with the figures behind it."""
    metric, day, n_new, n_all = result["metric"], result["newest_day"], result["newest_rows"], result["test_rows"]
    if n_new == n_all:
        return f"every test row is from {day}: no newest day to set against the rest of the test set"
    if not math.isfinite(result["newest"]):
        return f"{metric} is undefined on the {n_new} test rows of the newest day ({day}): no domain-shift check"
    figures = (
        f"{metric} {result['newest']:.4f} on the {n_new} rows of {day} vs {result['all']:.4f} on all {n_all} test rows"
    )
    if result["low"] is None:
        return (
            f"the newest day ({day}) has {n_new} test rows, fewer than {min_rows}: too few for a confidence "
            f"interval ({figures})"
        )
    interval = (
        f"difference {result['diff']:+.4f}, {result['confidence']:.0%} CI [{result['low']:+.4f}, {result['high']:+.4f}]"
    )
    if not result.get("newest_varies", True):
        return (
            f"no gap claimed: the newest day's rows score {metric} {result['newest']:.4f} on every resample (its "
            f"rows all score alike), so the interval reflects only the rest of the test set ({figures}; {interval})"
        )
    if not result["significant"]:
        return f"no significant gap between the newest day's rows and the test set: {figures} ({interval}, includes 0)"
    direction = "worse" if result["worse"] else "better"
    out = f"the newest day's rows score {abs(result['diff']):.4f} {direction} than the test set: {figures} ({interval})"
    if result["worse"]:
        out += "; the newest data may not look like the data the model was judged on"
    return out


def called_out(result: Mapping[str, Any]) -> bool:
    """Whether the newest day's rows score significantly worse than the test set."""
    return bool(result["significant"] and result["worse"])


def check(protocol: Protocol, labels: np.ndarray, predictions: np.ndarray, dates: np.ndarray) -> dict[str, Any]:
    """The check under the protocol's primary metric and bootstrap settings; logs its sentence
    (a warning when the newest day is significantly worse)."""
    result = newest_day_gap(
        labels,
        predictions,
        dates,
        protocol.primary_metric,
        protocol.bootstrap_resamples,
        protocol.bootstrap_seed,
        protocol.confidence,
    )
    if called_out(result):
        log.warning("domain shift: %s", result["sentence"])
    else:
        log.info("domain shift: %s", result["sentence"])
    return result


def markdown_section(report: Mapping[str, Any]) -> str:
    """## Domain shift: the sentence (in bold when it calls out a worse newest day); "" without the check."""
    result = report.get("domain_shift")
    if not result:
        return ""
    text = f"**{result['sentence']}**" if called_out(result) else result["sentence"]
    return f"## Domain shift (newest day vs the test set)\n\n{text}"


def html_section(report: Mapping[str, Any]) -> str:
    """The same section as HTML."""
    result = report.get("domain_shift")
    if not result:
        return ""
    text = html.escape(result["sentence"])
    return (
        "<h2>Domain shift (newest day vs the test set)</h2><p>"
        + (f"<b>{text}</b>" if called_out(result) else text)
        + "</p>"
    )
