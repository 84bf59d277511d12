"""The promotion gate: the protocol's rule applied to paired-bootstrap results, in one sentence.

The candidate is judged against each reference it is given (champion, baseline, the protocol's
anchor); `decide` says whether it may become champion and why, with the figures behind it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from gauntlet.protocol import Protocol
from gauntlet.scoring.metrics import higher_is_better
from gauntlet.scoring.power import Inconclusive, inconclusive


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
    # Set when the primary rule failed only because the test set is too small to decide it.
    inconclusive: Inconclusive | None = None

    @property
    def only_inconclusive(self) -> bool:
        """Failed on an undecidable primary rule alone (every guard held)."""
        return self.inconclusive is not None and all(g["passed"] for g in self.guards.values())


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


def _judge(
    protocol: Protocol,
    result: Mapping[str, Mapping[str, float]],
    name: str,
    with_guards: bool,
    test_rows: int | None = None,
) -> _Verdict:
    """The primary rule (and, with_guards, the guards) against one reference; with `test_rows`, a failure
    the test set is too small to decide is marked inconclusive."""
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
    undecided = inconclusive(protocol, row, test_rows, name) if test_rows and not primary_ok else None
    details = {
        "metric": primary,
        "higher_is_better": higher,
        "passed": primary_ok,
        **{k: float(v) for k, v in row.items()},
        **({"inconclusive": undecided.as_dict()} if undecided else {}),
    }
    return _Verdict(name, primary_ok and not regressions, text, details, guard_details, undecided)


def decide(
    protocol: Protocol,
    vs_champion: Mapping[str, Mapping[str, float]] | None,
    vs_baseline: Mapping[str, Mapping[str, float]] | None,
    champion_name: str = "champion",
    baseline_name: str = "baseline",
    vs_anchor: Mapping[str, Mapping[str, float]] | None = None,
    anchor_name: str = "anchor",
    off_protocol: str | None = None,
    test_rows: int | None = None,
) -> GateDecision:
    """Apply the protocol's gate to paired_bootstrap results (a = candidate, b = reference).

    The candidate must pass against every reference it is given: the champion, the baseline and
    the protocol's anchor (the best model promoted under this protocol, re-scored on the same rows).
    Each is judged by the protocol's rule on the primary metric (under non-inferiority, within the
    margin), so a margin is spent once per protocol, not once per night. Guards are judged against
    the champion and the anchor, or against the baseline when there is no champion: the baseline is
    a floor for the primary metric, not a calibration reference. An empty or None vs_baseline is
    not judged. `off_protocol` (why the run broke the protocol's budget) fails the gate whatever
    the figures: such a run is kept and reported, never promoted. Given `test_rows` (the rows
    compared), a failure that the test set is too small to decide says so: "inconclusive: the test set
    is too small to show a difference of <margin> (<N> rows; about <M> needed)"; it still fails.
    """
    if vs_champion is None and not vs_baseline:
        raise ValueError("the gate needs a comparison with the champion or the baseline")
    verdicts: list[_Verdict] = []
    if vs_baseline:
        verdicts.append(_judge(protocol, vs_baseline, baseline_name, vs_champion is None, test_rows))
    if vs_anchor is not None:
        verdicts.append(_judge(protocol, vs_anchor, anchor_name, True, test_rows))
    if vs_champion is not None:
        verdicts.append(_judge(protocol, vs_champion, champion_name, True, test_rows))
    # The main target (the champion, else the baseline) is listed last; its figures are `primary`.
    target = verdicts[-1]
    failing = [v for v in verdicts if not v.passed]
    passed = not failing and off_protocol is None
    if not failing:
        reason = "; ".join(v.text for v in verdicts) + "."
    else:
        holds = [v.name for v in verdicts if v.passed]
        reason = "; ".join(v.text for v in failing) + "."
        reason += _undecided_text(failing)
        if holds:
            reason += f" It passes against {' and '.join(holds)}."
    if off_protocol is not None:
        reason = f"Failed: {off_protocol}; it is kept and reported but never promoted. Against the references: {reason}"
    elif failing and all(v.only_inconclusive for v in failing):
        # Not a loss: more test rows could decide it either way. Still not promoted.
        clause = _largest_need(failing).text
        reason = f"{clause[0].upper()}{clause[1:]}: {reason}"
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
    undecided = [v for v in failing if v.inconclusive is not None]
    if undecided:
        details["inconclusive"] = _largest_need(undecided).as_dict()
    return GateDecision(passed=passed, reason=reason, details=details)


def _largest_need(verdicts: Sequence[_Verdict]) -> Inconclusive:
    """The undecided comparison that needs the most rows: the one that says how big the test set must be."""
    found = [v.inconclusive for v in verdicts if v.inconclusive is not None]
    return max(found, key=lambda u: u.needed)


def _undecided_text(failing: Sequence[_Verdict]) -> str:
    """For a failure that also has clear losses: which undecided comparisons more rows could still turn."""
    if all(v.only_inconclusive for v in failing):
        return ""  # the whole verdict leads with it instead
    return "".join(f" Against {v.name} it is {v.inconclusive.text}." for v in failing if v.inconclusive)
