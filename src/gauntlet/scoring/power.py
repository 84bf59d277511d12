"""Is the test set big enough? The smallest difference it resolves, and the rows a margin would need.

The paired-bootstrap interval for candidate - reference on N test rows has a half-width h: the
smallest difference in the primary metric the test set resolves at the protocol's confidence. The
half-width shrinks as 1/sqrt(N), so resolving a difference d takes about N * (h / d)^2 rows. When
the gate fails only because the interval straddles its threshold and is wider than the difference
it has to show, the result is inconclusive, not a verdict on the model.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from gauntlet.scoring.metrics import higher_is_better

if TYPE_CHECKING:
    from gauntlet.protocol import Protocol


def half_width(row: Mapping[str, float]) -> float:
    """Half the width of a bootstrap interval (`low`, `high`); NaN when it could not be estimated."""
    return (float(row["high"]) - float(row["low"])) / 2


def rows_needed(rows: int, width: float, difference: float) -> int | None:
    """About how many rows bring the half-width `width` (on `rows` rows) down to `difference`."""
    if difference <= 0 or not math.isfinite(width) or not math.isfinite(difference):
        return None
    return max(rows, math.ceil(rows * (width / difference) ** 2))


def difference_to_show(protocol: Protocol, row: Mapping[str, float]) -> float:
    """The difference the gate must resolve: the margin under non-inferiority; under superiority the
    observed gain (nothing to show when the candidate is not better)."""
    if protocol.gate_mode == "non_inferiority":
        return protocol.margin
    diff = float(row["diff"])
    gain = diff if higher_is_better(protocol.primary_metric) else -diff
    return max(gain, 0.0) if math.isfinite(gain) else 0.0


def decimals(*values: float) -> int:
    """Decimals that keep small figures readable (the gate's own rule)."""
    finite = [abs(v) for v in values if math.isfinite(v) and v != 0]
    largest = max(finite, default=1.0)
    return 3 if largest >= 0.01 else 4 if largest >= 0.001 else 5


@dataclass(frozen=True)
class Inconclusive:
    """A primary-metric failure that more test rows could turn either way."""

    reference: str
    metric: str
    difference: float
    rows: int
    needed: int
    half_width: float

    @property
    def text(self) -> str:
        d = decimals(self.difference)
        return (
            f"inconclusive: the test set is too small to show a difference of {self.difference:.{d}f} in "
            f"{self.metric} ({self.rows} rows; about {self.needed} needed)"
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "reference": self.reference,
            "metric": self.metric,
            "difference": self.difference,
            "rows": self.rows,
            "rows_needed": self.needed,
            "half_width": self.half_width,
            "text": self.text,
        }


def inconclusive(protocol: Protocol, row: Mapping[str, float], rows: int, reference: str) -> Inconclusive | None:
    """Why the primary rule against `reference` cannot be decided on `rows` rows, or None when it can.

    Inconclusive means: the rule failed, the interval straddles the rule's threshold (so it is not a
    clear loss), and its half-width exceeds the difference the gate must show.
    """
    low, high = float(row["low"]), float(row["high"])
    if not (math.isfinite(low) and math.isfinite(high)) or rows < 1:
        return None
    worst_gain, best_gain = (low, high) if higher_is_better(protocol.primary_metric) else (-high, -low)
    threshold = -protocol.margin if protocol.gate_mode == "non_inferiority" else 0.0
    if worst_gain > threshold or best_gain <= threshold:
        return None  # passed, or the whole interval lies on the losing side
    difference, width = difference_to_show(protocol, row), half_width(row)
    needed = rows_needed(rows, width, difference)
    if needed is None or width <= difference:
        return None
    return Inconclusive(reference, protocol.primary_metric, difference, rows, needed, width)


def resolution(
    protocol: Protocol, comparisons: Mapping[str, Mapping[str, Mapping[str, float]]], rows: int, target: str
) -> dict[str, Any]:
    """What the test set can resolve in the primary metric, per reference, with one sentence for `target`
    (the gate's main reference: the champion, else the baseline)."""
    metric = protocol.primary_metric
    references: dict[str, dict[str, Any]] = {}
    for name, result in comparisons.items():
        row = result[metric]
        width, difference = half_width(row), difference_to_show(protocol, row)
        needed = rows_needed(rows, width, difference)
        references[name] = {
            "half_width": width,
            "difference_to_show": difference,
            "resolves_it": bool(math.isfinite(width) and difference > 0 and width <= difference),
            "rows_needed": needed,
        }
    return {
        "metric": metric,
        "rows": rows,
        "confidence": protocol.confidence,
        "mode": protocol.gate_mode,
        "margin": protocol.margin,
        "target": target,
        "references": references,
        "sentence": _sentence(protocol, rows, target, references.get(target)),
    }


def _sentence(protocol: Protocol, rows: int, target: str, figures: Mapping[str, Any] | None) -> str:
    if figures is None or not math.isfinite(figures["half_width"]):
        return f"The resolution of the {rows} test rows could not be estimated (no finite interval vs {target})."
    width, difference, needed = figures["half_width"], figures["difference_to_show"], figures["rows_needed"]
    d = decimals(width, difference)
    text = (
        f"With {rows} test rows the smallest difference in {protocol.primary_metric} this test set resolves at "
        f"{protocol.confidence:.0%} confidence is about ±{width:.{d}f} (half the interval of candidate - {target})"
    )
    what = (
        f"the gate's margin of {difference:.{d}f}"
        if protocol.gate_mode == "non_inferiority"
        else f"the observed gain of {difference:.{d}f}"
    )
    if difference <= 0:
        return text + "."
    if figures["resolves_it"]:
        return f"{text}: enough to resolve {what}."
    return f"{text}, wider than {what}: about {needed} test rows would resolve it."


def section_markdown(report: Mapping[str, Any]) -> str:
    """The report's "Is the test set big enough?" section (empty for reports without it)."""
    power = report.get("test_set_power")
    if not power:
        return ""
    return "## Is the test set big enough?\n\n" + power["sentence"] + "\n\n" + _table(power)


def section_html(report: Mapping[str, Any]) -> str:
    power = report.get("test_set_power")
    if not power:
        return ""
    rows = "".join(
        f"<tr><td>{html.escape(name)}</td><td>±{r['half_width']:.4f}</td><td>{r['difference_to_show']:.4f}</td>"
        f"<td>{'yes' if r['resolves_it'] else 'no'}</td><td>{r['rows_needed'] or ''}</td></tr>"
        for name, r in power["references"].items()
    )
    return (
        '<section id="test-set-size"><h2>Is the test set big enough?</h2>'
        f"<p>{html.escape(power['sentence'])}</p><table><tr><th>candidate - reference</th>"
        f"<th>resolves ({power['confidence']:.0%})</th><th>difference to show</th><th>enough rows</th>"
        f"<th>rows needed</th></tr>{rows}</table></section>"
    )


def _table(power: Mapping[str, Any]) -> str:
    lines = [
        f"| candidate - reference | resolves ({power['confidence']:.0%}) | difference to show | enough rows | rows needed |",
        "|---|---|---|---|---|",
    ]
    for name, r in power["references"].items():
        lines.append(
            f"| {name} | ±{r['half_width']:.4f} | {r['difference_to_show']:.4f} | "
            f"{'yes' if r['resolves_it'] else 'no'} | {r['rows_needed'] or ''} |"
        )
    return "\n".join(lines)
