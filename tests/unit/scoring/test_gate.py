"""gauntlet.scoring.gate: the promotion decision and its one sentence."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from testkit import ROOT

from gauntlet.protocol import Protocol, load_protocol
from gauntlet.scoring.gate import decide


@pytest.fixture(scope="module")
def protocol() -> Protocol:
    return load_protocol(ROOT / "include" / "protocols" / "digits-superiority.yaml")


def _comparison(protocol: Protocol, diff: float, low: float, high: float) -> dict[str, dict[str, float]]:
    rows: dict[str, dict[str, float]] = {m: {"diff": 0.0, "low": 0.0, "high": 0.0} for m in protocol.guards}
    return {**rows, protocol.primary_metric: {"diff": diff, "low": low, "high": high}}


def test_a_clear_improvement_passes_with_a_superiority_sentence(protocol: Protocol) -> None:
    better = _comparison(protocol, -0.03, -0.05, -0.01)
    decision = decide(protocol, better, better, champion_name="champion v2")
    assert decision.passed and decision.reason.startswith("Passed: ")
    assert f"{protocol.primary_metric} improved by 0.030" in decision.reason and "over champion v2" in decision.reason
    assert decision.details["target"] == "champion v2"


def test_failing_against_the_champion_names_what_still_holds(protocol: Protocol) -> None:
    decision = decide(protocol, _comparison(protocol, -0.01, -0.03, 0.01), _comparison(protocol, -0.1, -0.2, -0.05))
    assert not decision.passed and decision.reason.startswith("Failed: ")
    assert "does not exclude zero" in decision.reason and decision.reason.endswith("It passes against baseline.")
    assert decision.details["references"]["baseline"]["passed"] is True


def test_an_off_protocol_run_fails_whatever_the_figures(protocol: Protocol) -> None:
    better = _comparison(protocol, -0.03, -0.05, -0.01)
    decision = decide(protocol, better, better, off_protocol="it trained 3 epochs past the budget")
    assert not decision.passed
    assert decision.reason.startswith("Failed: it trained 3 epochs past the budget; it is kept and reported")


def test_the_anchor_is_judged_too(protocol: Protocol) -> None:
    better = _comparison(protocol, -0.03, -0.05, -0.01)
    decision = decide(protocol, better, {}, vs_anchor=_comparison(protocol, 0.02, 0.01, 0.03), anchor_name="anchor v1")
    assert not decision.passed and "vs anchor v1" in decision.reason and "regression" in decision.reason
    assert decision.details["anchor"] == "anchor v1"


def test_a_gate_with_nothing_to_compare_is_an_error(protocol: Protocol) -> None:
    with pytest.raises(ValueError, match="champion or the baseline"):
        decide(protocol, None, {})


def test_non_inferiority_speaks_of_its_margin(protocol: Protocol) -> None:
    from dataclasses import replace

    non_inf: Any = replace(protocol, gate_mode="non_inferiority", margin=0.02)
    decision = decide(non_inf, _comparison(non_inf, 0.005, -0.005, 0.015), None)
    assert decision.passed and "within the non-inferiority margin of 0.020" in decision.reason


def test_the_gate_decides_a_regression_pair_on_rmse_in_both_modes(
    project_protocol: Callable[[str], Path],
) -> None:
    from dataclasses import replace

    import numpy as np

    from gauntlet.scoring.bootstrap import paired_bootstrap

    path = project_protocol("regression-gate")
    path.write_text(
        "name: regression-gate\ntask: regression\n"
        "split: {id_column: row_id, salt: s, test_fraction: 0.2, dev_fraction: 0.1}\n"
        "training: {epochs: 5, seed: 0}\n"
        "metrics: {primary: rmse, guards: {r2: 0.01}, report: [rmse, mae, r2]}\n"
        "gate: {mode: superiority, confidence: 0.95, bootstrap_resamples: 1000, bootstrap_seed: 0}\n"
    )
    protocol = load_protocol(path)
    rng = np.random.default_rng(0)
    y = rng.normal(100.0, 20.0, 300)
    close, loose = (y + rng.normal(0, 1.0, 300))[:, None], (y + rng.normal(0, 3.0, 300))[:, None]

    def judge(proto: Protocol, candidate: np.ndarray, reference: np.ndarray) -> Any:
        result = paired_bootstrap(y, candidate, reference, proto.metric_names, 1000, 0, proto.confidence)
        return decide(proto, None, result)

    better = judge(protocol, close, loose)
    assert (
        better.passed and better.reason.startswith("Passed: rmse improved by") and "no guard regressed" in better.reason
    )
    assert not better.details["primary"]["higher_is_better"]
    worse = judge(protocol, loose, close)
    assert not worse.passed and "which shows a regression" in worse.reason and "guard r2 regressed" in worse.reason
    # Non-inferiority: a loose model within a generous margin (raw units) passes; within a tight one not.
    generous: Any = replace(protocol, gate_mode="non_inferiority", margin=5.0, guards={})
    tight: Any = replace(protocol, gate_mode="non_inferiority", margin=0.5, guards={})
    assert judge(generous, loose, close).passed and not judge(tight, loose, close).passed
