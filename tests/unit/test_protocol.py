"""Tests for gauntlet.protocol: protocol files, splits, metrics, the bootstrap and the gate."""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from sklearn import metrics as skm
from sklearn.preprocessing import label_binarize

from gauntlet.hashing import content_hash
from gauntlet.protocol import Protocol, load_protocol, protocol_from_bytes
from gauntlet.scoring.bootstrap import bootstrap_metric_samples, paired_bootstrap
from gauntlet.scoring.gate import decide
from gauntlet.scoring.metrics import (
    METRICS,
    calibration_bins,
    compute_metrics,
    ece,
    error_rate,
    higher_is_better,
    log_loss,
    macro_average_precision,
    per_class_table,
    roc_auc,
)
from gauntlet.splits import assign_splits, split_of

PROTOCOL_PATH = Path(__file__).resolve().parents[2] / "include" / "protocols" / "digits-superiority.yaml"
ALL_METRICS = ["error_rate", "macro_average_precision", "roc_auc", "log_loss", "ece"]


@pytest.fixture(scope="module")
def raw() -> dict[str, Any]:
    loaded = yaml.safe_load(PROTOCOL_PATH.read_text())
    assert isinstance(loaded, dict)
    return loaded


@pytest.fixture(scope="module")
def protocol() -> Protocol:
    return load_protocol(PROTOCOL_PATH)


def random_problem(n: int, k: int, seed: int, decimals: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Labels and Dirichlet probabilities; rounding the probabilities creates ties."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    proba = rng.dirichlet(np.ones(k), n)
    proba[np.arange(n), y] += rng.uniform(0, 1, n)  # some signal, so metrics are not all ~chance
    proba /= proba.sum(axis=1, keepdims=True)
    if decimals is not None:
        proba = np.round(proba, decimals) + 1e-6
        proba /= proba.sum(axis=1, keepdims=True)
    return y, proba


def model_output(
    y: np.ndarray,
    k: int,
    accuracy: float,
    rng: np.random.Generator,
    confidence: float = 0.7,
) -> np.ndarray:
    """Probabilities of a model that is right with probability `accuracy`, independently per row."""
    n = y.shape[0]
    right = rng.random(n) < accuracy
    wrong_class = (y + rng.integers(1, k, n)) % k
    predicted = np.where(right, y, wrong_class)
    proba = np.full((n, k), (1.0 - confidence) / (k - 1))
    proba[np.arange(n), predicted] = confidence
    return proba


# --------------------------------------------------------------------------------------------
# Protocol file
# --------------------------------------------------------------------------------------------


def test_loads_the_digits_protocol(protocol: Protocol, raw: dict[str, Any]) -> None:
    assert protocol.name == "digits"
    assert protocol.id_column == "row_id"
    assert protocol.salt == "gauntlet-digits-v1"
    assert protocol.test_fraction == pytest.approx(0.2)
    assert protocol.dev_fraction == pytest.approx(0.1)
    assert (protocol.epochs, protocol.seed) == (30, 0)
    assert protocol.primary_metric == "error_rate"
    assert protocol.guards == {"log_loss": 0.05, "ece": 0.03}
    assert protocol.report_metrics == tuple(ALL_METRICS)
    assert protocol.gate_mode == "superiority"
    assert protocol.confidence == pytest.approx(0.95)
    assert protocol.bootstrap_resamples == 1000
    assert protocol.baseline["kind"] == "logistic_regression"
    assert protocol.excluded_row_ids == ()
    assert protocol.raw == raw
    assert protocol.id == content_hash(raw)
    assert len(protocol.id) == 16 and int(protocol.id, 16) >= 0
    assert set(protocol.metric_names) == set(ALL_METRICS)
    assert protocol.metric_names[0] == "error_rate"


def test_protocol_is_frozen_and_hashable(protocol: Protocol) -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        protocol.salt = "other"  # type: ignore[misc]
    assert hash(protocol) == hash(load_protocol(PROTOCOL_PATH))


def test_id_follows_content_not_formatting(protocol: Protocol, raw: dict[str, Any]) -> None:
    # Same content without the comments: same protocol.
    assert protocol_from_bytes(yaml.safe_dump(raw).encode()).id == protocol.id
    edited = copy.deepcopy(raw)
    edited["excluded_row_ids"] = ["row-17"]
    changed = Protocol.from_dict(edited)
    assert changed.id != protocol.id
    assert changed.excluded_row_ids == ("row-17",)
    # The parsed copy is private: mutating the caller's dict afterwards can't move the id.
    edited["excluded_row_ids"].append("row-18")
    assert changed.id == Protocol.from_dict({**raw, "excluded_row_ids": ["row-17"]}).id


def _mutate(raw: dict[str, Any], dotted: str, value: Any) -> dict[str, Any]:
    data = copy.deepcopy(raw)
    *parents, leaf = dotted.split(".")
    node = data
    for key in parents:
        node = node[key]
    if value is _DELETE:
        del node[leaf]
    else:
        node[leaf] = value
    return data


_DELETE = object()


@pytest.mark.parametrize(
    ("dotted", "value", "expected"),
    [
        ("gate.mode", "bayesian", "gate.mode"),
        ("gate.mode", _DELETE, "gate.mode"),
        ("split.test_fraction", 1.5, "split.test_fraction"),
        ("split.test_fraction", 0, "split.test_fraction"),
        ("split.dev_fraction", -0.1, "split.dev_fraction"),
        ("split.dev_fraction", 0.8, "split.dev_fraction"),
        ("split.test_fraction", "0.2", "split.test_fraction"),
        ("split.salt", _DELETE, "split.salt"),
        ("split.salt", "", "split.salt"),
        ("metrics.primary", "accuracy", "metrics.primary"),
        ("metrics.guards", {"brier": 0.1}, "metrics.guards"),
        ("metrics.guards", {"log_loss": -0.1}, "metrics.guards.log_loss"),
        ("metrics.report", ["error_rate", "f1"], "metrics.report"),
        ("gate.bootstrap_resamples", 999, "gate.bootstrap_resamples"),
        ("gate.bootstrap_resamples", 1000.5, "gate.bootstrap_resamples"),
        ("gate.confidence", 1.0, "gate.confidence"),
        ("gate.margin", 0.01, "gate.margin"),
        ("gate.bootstrap_seed", True, "gate.bootstrap_seed"),
        ("training.epochs", 0, "training.epochs"),
        ("split.test_fracton", 0.2, "split.test_fracton"),
        ("excluded_row_ids", "row-1", "excluded_row_ids"),
        ("gate", None, "gate"),
    ],
)
def test_rejects_bad_fields(raw: dict[str, Any], dotted: str, value: Any, expected: str) -> None:
    with pytest.raises(ValueError, match=expected.replace(".", r"\.")):
        Protocol.from_dict(_mutate(raw, dotted, value))


REGRESSION_METRICS = {"primary": "rmse", "guards": {"r2": 0.02}, "report": ["rmse", "mae", "r2"]}


def _regression(raw: dict[str, Any], **sections: Any) -> dict[str, Any]:
    """The digits protocol as a regression protocol: task, regression metrics, a ridge baseline."""
    data = {**copy.deepcopy(raw), "task": "regression", "metrics": REGRESSION_METRICS, "baseline": {"kind": "ridge"}}
    return {**data, **sections}


def test_a_regression_protocol_file_loads_with_its_task_metrics_and_ridge_baseline(
    raw: dict[str, Any], project_protocol: Callable[[str], Path]
) -> None:
    path = project_protocol("regression")
    path.write_text(yaml.safe_dump(_regression(raw, baseline={"kind": "ridge", "alpha": 0.5})))
    loaded = load_protocol(path)
    assert loaded.task == "regression" and loaded.primary_metric == "rmse"
    assert loaded.metric_names == ("rmse", "r2", "mae")
    assert loaded.baseline == {"kind": "ridge", "alpha": 0.5}
    # Without a baseline section a regression protocol gets the ridge baseline and its default alpha.
    assert Protocol.from_dict({**_regression(raw), "baseline": None}).baseline == {"kind": "ridge", "alpha": 1.0}


def test_the_task_defaults_to_classification_and_keeps_the_digits_id(protocol: Protocol, raw: dict[str, Any]) -> None:
    assert protocol.task == "classification" and protocol.id == content_hash(raw)
    assert protocol.baseline == {"kind": "logistic_regression", "C": 1.0, "max_iter": 500}


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"task": "ranking"}, "task must be one of classification, regression, got 'ranking'"),
        # Metrics of the other task are named, and the fix is given.
        (
            {"metrics": REGRESSION_METRICS},
            r"metrics rmse, r2, mae are not classification metrics.*set the top-level task",
        ),
        (
            {"metrics": {"primary": "error_rate", "report": ["error_rate", "mae"]}},
            "metrics mae are not classification metrics",
        ),
        ({"baseline": {"kind": "ridge"}}, "baseline.kind ridge is a regression baseline.*use baseline.kind logistic"),
        ({"baseline": {"kind": "forest"}}, "baseline.kind must be one of logistic_regression, ridge"),
        ({"baseline": {"kind": "logistic_regression", "alpha": 1.0}}, r"unknown field\(s\): baseline.alpha"),
        ({"baseline": {"C": 0}}, "baseline.C must be > 0"),
        ({"baseline": {"max_iter": 0}}, "baseline.max_iter must be >= 1"),
    ],
)
def test_a_classification_protocol_refuses_what_belongs_to_regression(
    raw: dict[str, Any], change: dict[str, Any], expected: str
) -> None:
    with pytest.raises(ValueError, match=expected):
        Protocol.from_dict({**copy.deepcopy(raw), **change})


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"metrics": {"primary": "rmse", "guards": {"ece": 0.1}}}, "metrics ece are not regression metrics"),
        ({"baseline": {"kind": "logistic_regression"}}, "baseline.kind logistic_regression is a classification"),
        ({"baseline": {"kind": "ridge", "alpha": -1}}, "baseline.alpha must be >= 0"),
        ({"baseline": {"kind": "ridge", "C": 1.0}}, r"baseline\.C"),
    ],
)
def test_a_regression_protocol_refuses_what_belongs_to_classification(
    raw: dict[str, Any], change: dict[str, Any], expected: str
) -> None:
    with pytest.raises(ValueError, match=expected):
        Protocol.from_dict(_regression(raw, **change))


def test_non_inferiority_accepts_a_margin(raw: dict[str, Any]) -> None:
    data = _mutate(_mutate(raw, "gate.mode", "non_inferiority"), "gate.margin", 0.01)
    proto = Protocol.from_dict(data)
    assert (proto.gate_mode, proto.margin) == ("non_inferiority", 0.01)


def test_load_protocol_names_file_and_field(tmp_path: Path, raw: dict[str, Any]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(_mutate(raw, "gate.mode", "vibes")))
    with pytest.raises(ValueError) as info:
        load_protocol(bad)
    assert "bad.yaml" in str(info.value) and "gate.mode" in str(info.value)

    broken = tmp_path / "broken.yaml"
    broken.write_text("name: [unclosed\n")
    with pytest.raises(ValueError, match="YAML"):
        load_protocol(broken)
    with pytest.raises(ValueError, match="mapping"):
        protocol_from_bytes(b"- just\n- a list\n")


# --------------------------------------------------------------------------------------------
# Splits
# --------------------------------------------------------------------------------------------


def test_split_fractions_match_the_protocol(protocol: Protocol) -> None:
    ids = [f"row-{i}" for i in range(20_000)]
    splits = assign_splits(ids, protocol)
    assert splits.shape == (20_000,)
    # Binomial sd is ~0.003 for test and ~0.002 for dev at n=20k; these bounds are ~4 sd.
    assert np.mean(splits == "test") == pytest.approx(0.20, abs=0.012)
    assert np.mean(splits == "dev") == pytest.approx(0.10, abs=0.009)
    assert set(np.unique(splits)) == {"train", "dev", "test"}


def test_split_is_frozen_as_data_grows(protocol: Protocol) -> None:
    ids = [f"row-{i}" for i in range(1000)]
    before = assign_splits(ids, protocol)
    grown = ids + [f"new-{i}" for i in range(5000)]
    rng = np.random.default_rng(0)
    order = rng.permutation(len(grown))
    after = assign_splits([grown[i] for i in order], protocol)
    position = {grown[i]: j for j, i in enumerate(order)}
    assert [after[position[r]] for r in ids] == list(before)
    assert [split_of(r, protocol) for r in ids] == list(before)


def test_split_formula_is_pinned(protocol: Protocol) -> None:
    # Changing the formula would silently reshuffle every test set; these values pin it.
    expected = {
        "row-0": "test",
        "row-2": "train",
        "row-3": "test",
        "row-16": "dev",
        "row-20": "dev",
        "row-9": "train",
    }
    assert {r: split_of(r, protocol) for r in expected} == expected
    for i in range(200):
        row = f"r{i}"
        digest = hashlib.sha256(f"{protocol.salt}:{row}".encode()).hexdigest()
        u = int(digest[:16], 16) / 2**64
        want = "test" if u < 0.2 else "dev" if u < 0.3 else "train"
        assert split_of(row, protocol) == want


def test_salt_changes_the_assignment(raw: dict[str, Any], protocol: Protocol) -> None:
    other = Protocol.from_dict(_mutate(raw, "split.salt", "another-salt"))
    ids = [str(i) for i in range(2000)]
    agreement = np.mean(assign_splits(ids, protocol) == assign_splits(ids, other))
    # Independent assignments agree with probability .2^2 + .1^2 + .7^2 = 0.54.
    assert 0.45 < agreement < 0.63


# --------------------------------------------------------------------------------------------
# Metrics
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("decimals", [None, 1])
def test_metrics_match_sklearn(decimals: int | None) -> None:
    k = 10
    y, proba = random_problem(500, k, seed=1, decimals=decimals)
    y_bin = label_binarize(y, classes=list(range(k)))
    assert error_rate(y, proba) == pytest.approx(1 - skm.accuracy_score(y, proba.argmax(1)))
    assert macro_average_precision(y, proba) == pytest.approx(
        skm.average_precision_score(y_bin, proba, average="macro"), abs=1e-12
    )
    assert roc_auc(y, proba) == pytest.approx(
        skm.roc_auc_score(y, proba, multi_class="ovr", average="macro"), abs=1e-12
    )
    assert log_loss(y, proba) == pytest.approx(skm.log_loss(y, proba, labels=list(range(k))), abs=1e-12)
    assert 0.1 < error_rate(y, proba) < 0.8  # the data is neither trivial nor hopeless


def test_ranking_metrics_skip_absent_classes() -> None:
    k = 5
    y, proba = random_problem(300, k, seed=2)
    y = np.where(y == 3, 0, y)  # class 3 never occurs
    present = [c for c in range(k) if c != 3]
    ap = np.mean([skm.average_precision_score(y == c, proba[:, c]) for c in present])
    auc = np.mean([skm.roc_auc_score(y == c, proba[:, c]) for c in present])
    assert macro_average_precision(y, proba) == pytest.approx(ap, abs=1e-12)
    assert roc_auc(y, proba) == pytest.approx(auc, abs=1e-12)
    assert np.isfinite(log_loss(y, proba))


def test_log_loss_clips_zero_probabilities() -> None:
    proba = np.array([[1.0, 0.0], [0.5, 0.5]])
    assert log_loss([1, 0], proba) == pytest.approx((-np.log(1e-15) - np.log(0.5)) / 2)


def test_ece_matches_a_reference_loop() -> None:
    y, proba = random_problem(2000, 4, seed=3)
    conf, pred = proba.max(1), proba.argmax(1)
    total = 0.0
    for b in range(15):
        lo, hi = b / 15, (b + 1) / 15
        mask = (conf >= lo) & ((conf < hi) if b < 14 else (conf <= hi))
        if mask.any():
            total += mask.mean() * abs((pred[mask] == y[mask]).mean() - conf[mask].mean())
    assert ece(y, proba) == pytest.approx(total, abs=1e-12)
    assert calibration_bins(y, proba).ece == pytest.approx(total, abs=1e-12)


def test_ece_zero_when_calibrated_and_large_when_overconfident() -> None:
    # Confidence 0.6 / 0.8 / 0.95 in three groups, each right exactly that often.
    rows_y, rows_p = [], []
    for confidence, n in ((0.6, 500), (0.8, 500), (0.95, 1000)):
        n_right = round(confidence * n)
        for i in range(n):
            rows_p.append([confidence, 1 - confidence])
            rows_y.append(0 if i < n_right else 1)
    y, proba = np.array(rows_y), np.array(rows_p)
    assert ece(y, proba) == pytest.approx(0.0, abs=1e-9)

    # Sampling labels from the predicted distribution is calibrated up to noise.
    rng = np.random.default_rng(4)
    p = rng.dirichlet(np.ones(3) * 0.5, 20_000)
    sampled = (rng.random(20_000)[:, None] > np.cumsum(p, axis=1)).sum(axis=1)
    assert ece(sampled, p) < 0.02

    # 99% confident, right half the time.
    over = np.tile([0.99, 0.01], (1000, 1))
    y_half = np.repeat([0, 1], 500)
    assert ece(y_half, over) == pytest.approx(0.49, abs=1e-9)


def test_per_class_table_matches_sklearn() -> None:
    y, proba = random_problem(400, 6, seed=5)
    precision, recall, _, support = skm.precision_recall_fscore_support(
        y, proba.argmax(1), labels=list(range(6)), zero_division=0
    )
    table = per_class_table(y, proba)
    assert [r["class"] for r in table] == list(range(6))
    assert [r["support"] for r in table] == list(support)
    assert [r["precision"] for r in table] == pytest.approx(precision)
    assert [r["recall"] for r in table] == pytest.approx(recall)
    assert [r["error_rate"] for r in table] == pytest.approx(1 - recall)


def test_registry_and_compute_metrics() -> None:
    assert set(METRICS) == {*ALL_METRICS, "average_precision", "rmse", "mae", "r2"}
    assert {n for n in METRICS if higher_is_better(n)} == {
        "macro_average_precision",
        "average_precision",
        "roc_auc",
        "r2",
    }
    y, proba = random_problem(200, 3, seed=6)
    values = compute_metrics(y, proba, ALL_METRICS)
    assert values == {n: METRICS[n][0](y, proba) for n in ALL_METRICS}
    with pytest.raises(ValueError, match="accuracy"):
        compute_metrics(y, proba, ["accuracy"])
    with pytest.raises(ValueError, match="labels"):
        error_rate([0, 5], proba[:2])


# --------------------------------------------------------------------------------------------
# Paired bootstrap
# --------------------------------------------------------------------------------------------


def test_resample_metrics_equal_metrics_on_resampled_rows() -> None:
    k = 6
    y, proba = random_problem(120, k, seed=7, decimals=1)  # ties in every class
    y[:2] = 5
    y[y == 5] = 0
    y[:2] = 5  # a rare class that many resamples miss entirely
    rng = np.random.default_rng(8)
    indices = rng.integers(0, len(y), size=(25, len(y)))
    samples = bootstrap_metric_samples(y, proba, ALL_METRICS, indices)
    for r, rows in enumerate(indices):
        direct = compute_metrics(y[rows], proba[rows], ALL_METRICS)
        for name in ALL_METRICS:
            assert samples[name][r] == pytest.approx(direct[name], abs=1e-12), name


def test_bootstrap_points_and_determinism() -> None:
    y, pa = random_problem(300, 5, seed=9)
    _, pb = random_problem(300, 5, seed=10)
    pb = 0.5 * pb + 0.5 * pa
    first = paired_bootstrap(y, pa, pb, ALL_METRICS, 1000, seed=3, confidence=0.9)
    again = paired_bootstrap(y, pa, pb, ALL_METRICS, 1000, seed=3, confidence=0.9)
    other_seed = paired_bootstrap(y, pa, pb, ALL_METRICS, 1000, seed=4, confidence=0.9)
    assert first == again
    assert first != other_seed
    a, b = compute_metrics(y, pa, ALL_METRICS), compute_metrics(y, pb, ALL_METRICS)
    for name in ALL_METRICS:
        row = first[name]
        assert set(row) == {"a", "b", "diff", "low", "high"}
        assert row["a"] == pytest.approx(a[name])
        assert row["b"] == pytest.approx(b[name])
        assert row["diff"] == pytest.approx(a[name] - b[name])
        assert row["low"] < row["high"]

    same = paired_bootstrap(y, pa, pa, ALL_METRICS, 1000, seed=0, confidence=0.95)
    # Paired resampling: identical models differ by exactly zero on every resample.
    assert all(same[n]["low"] == same[n]["high"] == 0.0 for n in ALL_METRICS)


def test_bootstrap_interval_shrinks_with_more_rows() -> None:
    rng = np.random.default_rng(11)
    widths = {}
    for n in (100, 1600):
        y = rng.integers(0, 10, n)
        pa, pb = model_output(y, 10, 0.9, rng), model_output(y, 10, 0.8, rng)
        row = paired_bootstrap(y, pa, pb, ["error_rate"], 1000, seed=0, confidence=0.95)
        widths[n] = row["error_rate"]["high"] - row["error_rate"]["low"]
    # Width scales as 1/sqrt(n): 16x the rows should give about a quarter of the width.
    assert widths[1600] < 0.4 * widths[100]


def test_bootstrap_interval_covers_the_true_difference() -> None:
    rng = np.random.default_rng(12)
    true_diff = (1 - 0.9) - (1 - 0.8)
    covered = 0
    reps = 50
    for rep in range(reps):
        y = rng.integers(0, 10, 400)
        pa, pb = model_output(y, 10, 0.9, rng), model_output(y, 10, 0.8, rng)
        row = paired_bootstrap(y, pa, pb, ["error_rate"], 1000, seed=rep, confidence=0.95)
        covered += row["error_rate"]["low"] <= true_diff <= row["error_rate"]["high"]
    # Nominal 95%: expect ~47 of 50; 43 or fewer would happen by chance well under 1% of the time.
    assert covered >= 44


def test_bootstrap_is_fast_enough() -> None:
    y, pa = random_problem(400, 10, seed=13)
    _, pb = random_problem(400, 10, seed=14)
    start = time.perf_counter()
    paired_bootstrap(y, pa, pb, ALL_METRICS, 1000, seed=0, confidence=0.95)
    # ~0.5 s on a laptop-class CPU; scikit-learn per resample would take ~20 s.
    assert time.perf_counter() - start < 10.0


# --------------------------------------------------------------------------------------------
# Gate
# --------------------------------------------------------------------------------------------


def _bootstrap(
    protocol: Protocol, y: np.ndarray, candidate: np.ndarray, reference: np.ndarray
) -> dict[str, dict[str, float]]:
    return paired_bootstrap(
        y,
        candidate,
        reference,
        protocol.metric_names,
        protocol.bootstrap_resamples,
        protocol.bootstrap_seed,
        protocol.confidence,
    )


def test_gate_passes_a_clear_improvement(protocol: Protocol) -> None:
    rng = np.random.default_rng(20)
    y = rng.integers(0, 10, 400)
    candidate = model_output(y, 10, 0.95, rng, confidence=0.9)
    champion = model_output(y, 10, 0.80, rng, confidence=0.75)
    baseline = model_output(y, 10, 0.70, rng, confidence=0.7)
    decision = decide(
        protocol,
        _bootstrap(protocol, y, candidate, champion),
        _bootstrap(protocol, y, candidate, baseline),
        champion_name="champion v3",
    )
    assert decision.passed, decision.reason
    assert decision.reason.startswith("Passed: error_rate improved by ")
    assert "over champion v3 and no guard regressed." in decision.reason
    assert "95% CI -0." in decision.reason
    assert decision.details["target"] == "champion v3"
    assert decision.details["primary"]["high"] < 0
    assert decision.details["protocol_id"] == protocol.id
    assert "vs_baseline" in decision.details


def test_gate_fails_noise_level_differences(protocol: Protocol) -> None:
    rng = np.random.default_rng(21)
    y = rng.integers(0, 10, 400)
    candidate = model_output(y, 10, 0.85, rng, confidence=0.85)
    champion = model_output(y, 10, 0.85, rng, confidence=0.85)
    decision = decide(protocol, _bootstrap(protocol, y, candidate, champion), {})
    assert not decision.passed
    assert not decision.details["primary"]["passed"]
    assert decision.details["primary"]["low"] < 0 < decision.details["primary"]["high"]
    assert decision.reason.startswith("Failed: error_rate change vs champion is ")
    assert "which does not exclude zero" in decision.reason
    assert decision.reason.count(".") >= 3  # figures are in the sentence


def test_gate_fails_a_guard_regression(protocol: Protocol) -> None:
    rng = np.random.default_rng(22)
    y = rng.integers(0, 10, 400)
    # More accurate, but certain of every answer: wrong rows cost ~35 nats of log loss each.
    candidate = model_output(y, 10, 0.93, rng, confidence=1 - 1e-15)
    baseline = model_output(y, 10, 0.80, rng, confidence=0.80)
    decision = decide(protocol, None, _bootstrap(protocol, y, candidate, baseline))
    assert not decision.passed
    assert decision.details["target"] == "baseline"
    assert decision.details["primary"]["passed"]
    assert not decision.details["guards"]["log_loss"]["passed"]
    assert "improved by" in decision.reason and "over baseline, but guard" in decision.reason
    assert "log_loss regressed by" in decision.reason and "tolerance 0.050" in decision.reason


def _row(diff: float, low: float, high: float) -> dict[str, float]:
    return {"a": 0.0, "b": 0.0, "diff": diff, "low": low, "high": high}


def test_gate_rules_on_synthetic_intervals(protocol: Protocol, raw: dict[str, Any]) -> None:
    ok_guards = {"log_loss": _row(0.01, -0.02, 0.04), "ece": _row(0.0, -0.01, 0.01)}

    def judge(proto: Protocol, primary: dict[str, float], **guards: dict[str, float]) -> Any:
        comparison = {**ok_guards, **guards, proto.primary_metric: primary}
        return decide(proto, comparison, comparison, champion_name="champion v3")

    assert judge(protocol, _row(-0.03, -0.05, -0.01)).passed
    assert not judge(protocol, _row(-0.03, -0.05, 0.001)).passed
    worse = judge(protocol, _row(0.03, 0.01, 0.05))
    assert not worse.passed and worse.reason.endswith("which shows a regression.")
    # A guard exactly at its tolerance passes; just beyond it fails.
    assert judge(protocol, _row(-0.03, -0.05, -0.01), ece=_row(0.03, 0.0, 0.06)).passed
    both = judge(
        protocol,
        _row(0.0, -0.02, 0.02),
        ece=_row(0.031, 0.0, 0.06),
        log_loss=_row(0.2, 0.1, 0.3),
    )
    assert not both.passed
    assert "does not exclude zero, and guards log_loss regressed by 0.200" in both.reason
    assert both.reason.count("Failed") == 1 and both.reason.endswith(".")

    nan = judge(protocol, _row(float("nan"), float("nan"), float("nan")))
    assert not nan.passed

    non_inf = Protocol.from_dict(_mutate(_mutate(raw, "gate.mode", "non_inferiority"), "gate.margin", 0.02))
    slightly_worse = judge(non_inf, _row(0.005, -0.005, 0.015))
    assert slightly_worse.passed
    assert "within the non-inferiority margin of 0.020, and no guard regressed." in (slightly_worse.reason)
    too_uncertain = judge(non_inf, _row(0.005, -0.005, 0.025))
    assert not too_uncertain.passed and "upper bound is not within" in too_uncertain.reason

    # Higher-is-better primary: the interval's lower end must clear zero.
    ap_proto = Protocol.from_dict(_mutate(raw, "metrics.primary", "macro_average_precision"))
    assert judge(ap_proto, _row(0.02, 0.005, 0.04)).passed
    assert not judge(ap_proto, _row(-0.02, -0.04, -0.005)).passed
    # ...and a higher-is-better guard regresses when it goes down.
    auc_guard = Protocol.from_dict(_mutate(raw, "metrics.guards", {"roc_auc": 0.01}))
    assert judge(auc_guard, _row(-0.03, -0.05, -0.01), roc_auc=_row(0.05, 0.0, 0.1)).passed
    assert not judge(auc_guard, _row(-0.03, -0.05, -0.01), roc_auc=_row(-0.02, -0.04, 0.0)).passed


def test_gate_requires_the_metrics_it_judges(protocol: Protocol) -> None:
    with pytest.raises(ValueError, match="log_loss"):
        decide(protocol, None, {"error_rate": _row(-0.1, -0.2, -0.05)})
