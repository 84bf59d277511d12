"""gauntlet.scoring.power: what a test set can resolve, and a gate failure it cannot decide called inconclusive."""

from __future__ import annotations

import numpy as np
import pytest
from testkit import ROOT

from gauntlet.protocol import Protocol, load_protocol
from gauntlet.scoring import power
from gauntlet.scoring.bootstrap import paired_bootstrap
from gauntlet.scoring.gate import decide
from gauntlet.scoring.report import evaluation_html


@pytest.fixture(scope="module")
def digits() -> Protocol:
    """Non-inferiority with a 0.01 margin on error_rate, guards log_loss and ece."""
    return load_protocol(ROOT / "include" / "protocols" / "digits-v1.yaml")


@pytest.fixture(scope="module")
def superiority() -> Protocol:
    return load_protocol(ROOT / "include" / "protocols" / "digits-superiority.yaml")


def _row(diff: float, low: float, high: float) -> dict[str, float]:
    return {"a": 0.0, "b": 0.0, "diff": diff, "low": low, "high": high}


def _comparison(protocol: Protocol, diff: float, low: float, high: float) -> dict[str, dict[str, float]]:
    rows = {m: _row(0.0, 0.0, 0.0) for m in protocol.metric_names}
    return {**rows, protocol.primary_metric: _row(diff, low, high)}


def test_rows_needed_scale_with_the_square_of_the_half_width() -> None:
    assert power.half_width(_row(0.0, -0.025, 0.025)) == pytest.approx(0.025)
    assert power.rows_needed(150, 0.025, 0.01) == 938  # 150 * 2.5^2 = 937.5, rounded up
    assert power.rows_needed(150, 0.005, 0.01) == 150  # already enough
    assert power.rows_needed(150, 0.02, 0.0) is None  # nothing to show


def test_a_wide_interval_straddling_the_margin_is_inconclusive(digits: Protocol) -> None:
    # The demo's CNN against the baseline: -0.014 with a CI of +-0.025 around a 0.01 margin.
    undecided = power.inconclusive(digits, _row(-0.014, -0.039, 0.011), 150, "baseline")
    assert undecided is not None
    assert undecided.text == (
        "inconclusive: the test set is too small to show a difference of 0.010 in error_rate (150 rows; about 938 needed)"
    )


def test_a_clear_loss_a_pass_and_a_narrow_miss_are_not_inconclusive(digits: Protocol) -> None:
    assert power.inconclusive(digits, _row(0.05, 0.02, 0.08), 150, "baseline") is None  # all beyond the margin
    assert power.inconclusive(digits, _row(-0.01, -0.03, 0.005), 150, "baseline") is None  # within: passed
    # Fails, but narrower than the margin: the test set resolves the margin and the candidate misses it.
    assert power.inconclusive(digits, _row(0.006, 0.003, 0.012), 150, "baseline") is None


def test_superiority_must_show_the_observed_gain(superiority: Protocol) -> None:
    undecided = power.inconclusive(superiority, _row(-0.01, -0.03, 0.01), 200, "champion")
    assert undecided is not None and undecided.difference == pytest.approx(0.01) and undecided.needed == 800
    # A candidate that is worse has no gain to show: that is a failure, not a question of rows.
    assert power.inconclusive(superiority, _row(0.005, -0.01, 0.02), 200, "champion") is None


def test_the_gate_says_inconclusive_instead_of_a_bare_failed(digits: Protocol) -> None:
    vs_baseline = _comparison(digits, -0.014, -0.039, 0.011)
    decision = decide(digits, None, vs_baseline, test_rows=150)
    assert not decision.passed
    assert decision.reason.startswith(
        "Inconclusive: the test set is too small to show a difference of 0.010 in error_rate "
        "(150 rows; about 938 needed): error_rate change vs baseline is -0.014"
    )
    assert decision.details["inconclusive"]["rows_needed"] == 938
    assert decision.details["references"]["baseline"]["primary"]["inconclusive"]["reference"] == "baseline"
    # Without the row count (callers that predate it) the sentence is as before.
    assert decide(digits, None, vs_baseline).reason.startswith("Failed: error_rate change vs baseline")


def test_a_clear_loss_beside_an_undecided_comparison_still_says_failed(digits: Protocol) -> None:
    undecided = _comparison(digits, -0.014, -0.039, 0.011)
    lost = _comparison(digits, 0.05, 0.03, 0.07)
    decision = decide(digits, undecided, lost, champion_name="champion v3", test_rows=150)
    assert decision.reason.startswith("Failed: error_rate change vs baseline is 0.050")
    assert "Against champion v3 it is inconclusive: the test set is too small" in decision.reason
    # A guard that regressed is a loss too, whatever the width of the primary interval.
    guarded = _comparison(digits, -0.014, -0.039, 0.011)
    guarded["ece"] = _row(0.2, 0.1, 0.3)
    assert decide(digits, None, guarded, test_rows=150).reason.startswith("Failed: ")


def _labels_and_predictions(rows: int, wrong: list[int]) -> np.ndarray:
    """One-hot-ish probabilities over 10 classes that miss exactly the rows in `wrong` (label = row % 10)."""
    labels = np.arange(rows) % 10
    predicted = labels.copy()
    predicted[wrong] = (labels[wrong] + 1) % 10
    proba = np.full((rows, 10), 0.1 / 9)
    proba[np.arange(rows), predicted] = 0.9
    return proba


def test_the_demo_gap_on_150_rows_is_inconclusive_and_on_3000_it_passes(digits: Protocol) -> None:
    # Candidate error 0.027, baseline 0.04, as on the demo: real bootstrap intervals on 150 and 20 x 150 rows.
    def verdict(copies: int) -> tuple[str, bool]:
        rows = 150 * copies
        candidate_wrong = [i for c in range(copies) for i in (150 * c + k for k in (3, 17, 40, 77))]
        baseline_wrong = [i for c in range(copies) for i in (150 * c + k for k in (3, 21, 55, 90, 101, 133))]
        labels = np.arange(rows) % 10
        candidate = _labels_and_predictions(rows, candidate_wrong)
        baseline = _labels_and_predictions(rows, baseline_wrong)
        names = list(digits.metric_names)
        result = paired_bootstrap(labels, candidate, baseline, names, 1000, 0, digits.confidence)
        decision = decide(digits, None, result, test_rows=rows)
        return decision.reason, decision.passed

    small, small_passed = verdict(1)
    assert not small_passed and small.startswith("Inconclusive: the test set is too small to show a difference")
    assert "(150 rows; about " in small
    large, large_passed = verdict(20)
    assert large_passed and large.startswith("Passed: "), large


def test_the_report_states_the_resolution_and_the_inconclusive_verdict(digits: Protocol) -> None:
    comparisons = {"baseline": _comparison(digits, -0.014, -0.039, 0.011)}
    resolution = power.resolution(digits, comparisons, 150, "baseline")
    assert resolution["sentence"] == (
        "With 150 test rows the smallest difference in error_rate this test set resolves at 95% confidence is "
        "about ±0.025 (half the interval of candidate - baseline), wider than the gate's margin of 0.010: "
        "about 938 test rows would resolve it."
    )
    assert resolution["references"]["baseline"]["resolves_it"] is False
    decision = decide(digits, None, comparisons["baseline"], test_rows=150)
    report = {
        "experiment_key": "k" * 16,
        "protocol_id": digits.id,
        "protocol_name": digits.name,
        "dataset_version": "v1",
        "test_rows": 150,
        "champion_version": None,
        "champion_retrained": None,
        "anchor": {"version": None},
        "off_protocol": None,
        "gate": {"passed": decision.passed, "reason": decision.reason},
        "test_set_power": resolution,
        "tables": {},
        "plots": [],
    }
    page = evaluation_html(report)
    assert '<section id="test-set-size"><h2>Is the test set big enough?</h2>' in page
    assert "about 938 test rows would resolve it" in page and "<b>Inconclusive: the test set is too small" in page
