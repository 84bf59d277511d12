"""Bias / variance diagnosis: training, dev and test error side by side, and what to do next.

The candidate's training and dev error come from its experiment record (the last epoch of its
curve, in the record's `curve_metric`); its test error and the baseline's are scored here on the
frozen test rows, in the same metric (error_rate for classification, rmse for regression). Three
gaps, each against a threshold from the protocol's optional `diagnosis` section, name the finding:

- avoidable bias: training error - reference level > bias_gap -> a bigger model or longer training;
- variance: dev error - training error > variance_gap -> more data or regularisation;
- dev-set overfitting: test error - dev error > dev_test_gap -> refresh the dev set;
- none of them: healthy.

Defaults: classification judges against a reference of 0 with gaps of 0.02 (absolute error rate);
regression has no natural reference (bias is judged only when `reference_error` is given) and its
gaps default to a tenth of the baseline's test RMSE, so they follow the label's units.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from gauntlet import plots
from gauntlet.protocol import Protocol
from gauntlet.scoring import power
from gauntlet.scoring.metrics import METRICS, REGRESSION, Labels

CHART_NAME = "bias_variance.png"
BARS = {"training": "train", "dev": "dev", "test": "test", "baseline test": "baseline_test"}  # chart label -> error
CLASSIFICATION_GAP = 0.02
REGRESSION_RELATIVE_GAP = 0.10  # of the baseline's test RMSE
GAPS = ("bias_gap", "variance_gap", "dev_test_gap")
FINDINGS = {"bias_gap": "high avoidable bias", "variance_gap": "high variance", "dev_test_gap": "dev-set overfitting"}
ADVICE = {
    "high avoidable bias": "try a bigger model or train longer",
    "high variance": "get more training data or regularise",
    "dev-set overfitting": "refresh the dev set (it has been tuned against)",
}


def error_metric(task: str) -> str:
    """The error the diagnosis compares: what the training curve records for the task."""
    return "rmse" if task == REGRESSION else "error_rate"


def thresholds(protocol: Protocol, baseline_error: float) -> dict[str, Any]:
    """Reference level and gaps: the protocol's `diagnosis` section, defaults for what it leaves out."""
    given = protocol.diagnosis
    regression = protocol.task == REGRESSION
    default_gap = REGRESSION_RELATIVE_GAP * baseline_error if regression else CLASSIFICATION_GAP
    settings: dict[str, Any] = {gap: given.get(gap, default_gap) for gap in GAPS}
    settings["reference_error"] = given.get("reference_error", None if regression else 0.0)
    settings["defaults"] = sorted(k for k in (*GAPS, "reference_error") if k not in given)
    if regression:
        settings["default_gap_rule"] = f"{REGRESSION_RELATIVE_GAP:g} x the baseline's test rmse"
    return settings


def recorded_errors(record: Mapping[str, Any], metric: str) -> tuple[float | None, float | None]:
    """The run's training and dev error at its last epoch, in `metric`; None where the record lacks them
    (a record that names another curve metric, or one written without curves)."""
    if record.get("curve_metric", metric) != metric:
        return None, None
    curve = record.get("curve") or [{}]
    final = record.get("final") or curve[-1]
    train, dev = final.get("train_error"), final.get("dev_error")
    return (None if train is None else float(train)), (None if dev is None else float(dev))


def _difference(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a - b


def diagnose(
    protocol: Protocol, record: Mapping[str, Any], y_true: Labels, candidate: Any, baseline: Any
) -> dict[str, Any]:
    """The diagnosis of one run: its errors, the gaps, the findings and one sentence with the numbers."""
    metric = error_metric(protocol.task)
    score = METRICS[metric][0]
    train, dev = recorded_errors(record, metric)
    test, baseline_test = float(score(y_true, candidate)), float(score(y_true, baseline))
    errors = {"train": train, "dev": dev, "test": test, "baseline_test": baseline_test}
    settings = thresholds(protocol, baseline_test)
    reference = settings["reference_error"]
    gaps = {
        "bias_gap": _difference(train, reference),
        "variance_gap": _difference(dev, train),
        "dev_test_gap": _difference(test, dev),
    }
    findings = [FINDINGS[key] for key in GAPS if (gap := gaps[key]) is not None and gap > settings[key]]
    result = {
        "metric": metric,
        "errors": errors,
        "reference_error": reference,
        "gaps": gaps,
        "thresholds": settings,
        "findings": findings or ["healthy"],
        "advice": [ADVICE[f] for f in findings],
        "chart": CHART_NAME,
    }
    result["sentence"] = sentence(result)
    return result


def _fmt(value: float | None, metric: str) -> str:
    if value is None:
        return "not recorded"
    return f"{value:.4g}" if metric == "rmse" else f"{value:.4f}"


def sentence(diagnosis: Mapping[str, Any]) -> str:
    """The diagnosis in words, each gap with the threshold it was judged by."""
    metric, e, gaps, limits = (diagnosis[k] for k in ("metric", "errors", "gaps", "thresholds"))

    def f(value: float | None) -> str:
        return _fmt(value, metric)

    def gap(key: str, what: str, than: str) -> str:
        value = gaps[key]
        if value is None:
            if key == "bias_gap" and e["train"] is not None:
                why = "no reference level is set (diagnosis.reference_error)"
            else:
                why = f"the run's {metric} curve is not recorded"
            return f"{FINDINGS[key]} not judged: {why}"
        side = "above" if value >= 0 else "below"
        verdict = "over" if value > limits[key] else "within"
        return f"{what} is {f(abs(value))} {side} {than} ({verdict} {key} {f(limits[key])})"

    parts = [
        gap("bias_gap", f"training {metric} {f(e['train'])}", f"the reference level {f(diagnosis['reference_error'])}"),
        gap("variance_gap", f"dev {metric} {f(e['dev'])}", f"training {f(e['train'])}"),
        gap("dev_test_gap", f"test {metric} {f(e['test'])}", f"dev {f(e['dev'])}"),
    ]
    findings = diagnosis["findings"]
    head = "healthy" if findings == ["healthy"] else "; ".join(f"{name} ({ADVICE[name]})" for name in findings)
    source = "defaults" if set(limits["defaults"]) >= {*GAPS} else "the protocol's diagnosis section"
    if limits.get("default_gap_rule") and set(GAPS) & set(limits["defaults"]):
        source += f", default gap {limits['default_gap_rule']}"
    text = "; ".join(parts)
    return (
        f"Diagnosis: {head}. {text[0].upper()}{text[1:]}" + f"; the baseline's test {metric} is {f(e['baseline_test'])}"
        f" (thresholds from {source})."
    )


def write_chart(folder: Path, diagnosis: Mapping[str, Any], experiment_key: str) -> Path:
    """The bar chart of training, dev, test and baseline error with the reference level."""
    e, metric = diagnosis["errors"], diagnosis["metric"]
    return plots.bias_variance(
        {label: math.nan if e[key] is None else e[key] for label, key in BARS.items()},
        folder / CHART_NAME,
        f"Candidate {experiment_key[:8]}: {', '.join(diagnosis['findings'])}",
        ylabel=metric,
        reference=diagnosis["reference_error"],
    )


def _rows(diagnosis: Mapping[str, Any]) -> list[tuple[str, str]]:
    e, metric = diagnosis["errors"], diagnosis["metric"]
    reference = diagnosis["reference_error"]
    return [
        ("reference level", "" if reference is None else _fmt(reference, metric)),
        (f"training {metric}", _fmt(e["train"], metric)),
        (f"dev {metric}", _fmt(e["dev"], metric)),
        (f"test {metric}", _fmt(e["test"], metric)),
        (f"baseline test {metric}", _fmt(e["baseline_test"], metric)),
    ]


def section_markdown(report: Mapping[str, Any]) -> str:
    """The report's bias / variance section (empty for reports without one)."""
    diagnosis = report.get("diagnosis")
    if not diagnosis:
        return ""
    table = ["| error | value |", "|---|---|", *(f"| {name} | {value} |" for name, value in _rows(diagnosis))]
    return "## Bias / variance\n\n" + diagnosis["sentence"] + "\n\n" + "\n".join(table) + f"\n\n![]({CHART_NAME})"


def section_html(report: Mapping[str, Any]) -> str:
    diagnosis = report.get("diagnosis")
    if not diagnosis:
        return ""
    rows = "".join(f"<tr><td>{html.escape(n)}</td><td>{html.escape(v)}</td></tr>" for n, v in _rows(diagnosis))
    return (
        '<section id="bias-variance"><h2>Bias / variance</h2>'
        f"<p>{html.escape(diagnosis['sentence'])}</p><table><tr><th>error</th><th>value</th></tr>{rows}</table>"
        f'<img src="{CHART_NAME}" alt="bias / variance bar chart"></section>'
    )


def sections_markdown(report: Mapping[str, Any]) -> list[str]:
    """Bias / variance, then whether the test set is big enough: the Markdown sections present."""
    return [s for s in (section_markdown(report), power.section_markdown(report)) if s]


def sections_html(report: Mapping[str, Any]) -> str:
    return section_html(report) + power.section_html(report)
