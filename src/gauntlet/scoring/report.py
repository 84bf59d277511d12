"""Rendering a report: Markdown tables, the HTML page, and the PNGs an evaluation commits.

Pure presentation: nothing here changes a figure or a verdict, so the evaluation key does not hash
this module. The sweep's comparison page shares the table-to-HTML code with the evaluation page.
"""

from __future__ import annotations

import base64
import html
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from gauntlet import plots
from gauntlet.protocol import Protocol
from gauntlet.scoring import context, mistakes, predictions, shift
from gauntlet.scoring.diagnosis import sections_html, sections_markdown
from gauntlet.scoring.metrics import REGRESSION


def comparison_table(
    metrics: Mapping[str, Mapping[str, float]], names: Sequence[str], row_header: str = "model"
) -> str:
    """Markdown table: one row per model (or whatever `row_header` names), one column per metric."""
    header = f"| {row_header} | " + " | ".join(names) + " |"
    rule = "|---|" + "---|" * len(names)
    rows = [f"| {model} | " + " | ".join(f"{values[n]:.4f}" for n in names) + " |" for model, values in metrics.items()]
    return "\n".join([header, rule, *rows])


def interval_table(
    comparisons: Mapping[str, Mapping[str, Mapping[str, float]]], names: Sequence[str], confidence: float
) -> str:
    """Markdown table of paired-bootstrap differences: one row per comparison and metric."""
    header = f"| comparison | metric | difference | {confidence:.0%} CI |"
    rows = [header, "|---|---|---|---|"]
    for label, result in comparisons.items():
        for name in names:
            r = result[name]
            rows.append(f"| {label} | {name} | {r['diff']:+.4f} | [{r['low']:+.4f}, {r['high']:+.4f}] |")
    return "\n".join(rows)


def evaluation_tables(
    metrics: Mapping[str, Mapping[str, float]],
    comparisons: Mapping[str, Mapping[str, Mapping[str, float]]],
    names: Sequence[str],
    confidence: float,
    per_class: Sequence[Mapping[str, float | int]],
    slices: Mapping[str, Mapping[str, Mapping[str, Any]]],
    class_names: Sequence[str] = (),
) -> dict[str, str]:
    """The evaluation's Markdown tables by name: metrics, intervals, per-class (classification only:
    an empty `per_class` leaves it out), then one per slice column. Per-class rows are named by
    `class_names` (one per class index) when given, else by index."""
    tables = {
        "metrics": comparison_table(metrics, names),
        "intervals": interval_table(comparisons, names, confidence),
    }
    if per_class:
        tables["per_class"] = comparison_table(
            {
                str(class_names[int(r["class"])]) if class_names else str(r["class"]): {
                    k: float(v) for k, v in r.items() if k != "class"
                }
                for r in per_class
            },
            ["support", "precision", "recall", "error_rate"],
            row_header="class",
        )
    for column, groups in slices.items():
        tables[f"slice_{column}"] = comparison_table(
            {
                f"{column}={value} {model} (n={group['rows']})": values
                for value, group in groups.items()
                for model, values in group["metrics"].items()
            },
            names,
        )
    return tables


def table_html(markdown: str) -> str:
    """A Markdown table (as the functions above write it) as an HTML table, every cell escaped."""
    lines = [line for line in markdown.splitlines() if not line.startswith("|---")]
    cells = [[html.escape(c.strip()) for c in line.strip("|").split("|")] for line in lines]
    head = "".join(f"<th>{c}</th>" for c in cells[0])
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in cells[1:])
    return f"<table><tr>{head}</tr>{body}</table>"


def references_text(report: Mapping[str, Any]) -> str:
    """One line per reference the candidate was judged against: champion, baseline, anchor."""
    baseline = "ridge regression" if report.get("task") == REGRESSION else "logistic regression"
    lines = ["The candidate was judged against:", f"- baseline: the protocol's {baseline}"]
    if report["champion_version"] is None:
        lines.append("- champion: none yet")
    else:
        retrained = report["champion_retrained"]
        lines.append(
            f"- champion: v{report['champion_version']}"
            + (f", re-trained under this split as experiment {retrained['experiment_key']}" if retrained else "")
        )
    a = report["anchor"]
    if a["version"] is None:
        lines.append("- anchor: none yet (set when a model promoted under this protocol is champion)")
    else:
        lines.append(
            f"- anchor: v{a['version']}"
            + (" (the champion itself)" if a["is_champion"] else "")
            + (
                (f"; moved here from v{a['moved_from']}" if a["moved_from"] else "; set")
                + f" by this evaluation: {a['reason']}"
                if a["moved"]
                else ""
            )
        )
    if report["off_protocol"]:
        lines.append(f"- off-protocol: {report['off_protocol']}")
    return "\n".join(lines)


def evaluation_markdown(report: Mapping[str, Any]) -> str:
    """report.md: the verdict, the references and every table."""
    parts = [f"# Evaluation of {report['experiment_key']}", report["gate"]["reason"], *sections_markdown(report)]
    parts.append(references_text(report))
    parts += [*report["tables"].values(), *analysis_sections(report, markdown=True)]
    return "\n\n".join(parts) + "\n"


def analysis_sections(report: Mapping[str, Any], markdown: bool) -> list[str]:
    """The sections a report has beyond its tables (error analysis, domain shift, kept predictions)."""
    if markdown:
        found = [
            mistakes.markdown_section(report),
            shift.markdown_section(report),
            *context.markdown_sections(report),
            predictions.markdown_section(report),
        ]
    else:
        found = [
            mistakes.html_section(report),
            shift.html_section(report),
            *context.html_sections(report),
            predictions.html_section(report),
        ]
    return [section for section in found if section]


def evaluation_html(report: Mapping[str, Any]) -> str:
    """report.html: the verdict, the references, every table and the PNGs beside it."""
    images = "".join(
        f'<figure><a href="{name}"><img src="{name}" alt="{name}"></a><figcaption>{name}</figcaption></figure>'
        for name in report["plots"]
    )
    champion = (
        f"<p>Champion v{report['champion_version']} (registered under protocol "
        f"<code>{html.escape(str(report['champion_registered_protocol_id']))}</code>) was re-scored under "
        "this protocol.</p>"
        if report["champion_version"] is not None
        else ""
    )
    return (
        "<!doctype html><meta charset='utf-8'><title>gauntlet evaluation</title>"
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;margin:1em 0}"
        "td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}figure{display:inline-block}</style>"
        f"<h1>Evaluation of experiment {html.escape(report['experiment_key'])}</h1>"
        f"<p>Protocol <code>{html.escape(report['protocol_id'])}</code> ({html.escape(report['protocol_name'])}), "
        f"dataset <code>{html.escape(report['dataset_version'])}</code>, {report['test_rows']} test rows.</p>"
        + champion
        + f"<p><b>{html.escape(report['gate']['reason'])}</b></p>"
        + sections_html(report)  # bias / variance, and whether the test set is big enough
        + "<pre>"
        + html.escape(references_text(report))
        + "</pre>"
        + "".join(table_html(t) for t in report["tables"].values())
        + images
        + "".join(analysis_sections(report, markdown=False))
    )


def _dev_curve_point(row: Mapping[str, Any]) -> tuple[float, float]:
    """(step, dev error) of one learning-curve row; a regression run records its dev RMSE instead."""
    return row["step"], row["dev_error"] if "dev_error" in row else row["dev_rmse"]


def write_evaluation_figures(
    folder: Path,
    protocol: Protocol,
    records: Sequence[Mapping[str, Any]],
    y_true: np.ndarray,
    candidate: np.ndarray,
    class_names: Sequence[str],
    experiment_key: str,
) -> list[str]:
    """The evaluation's PNGs in `folder`: every experiment's learning curve under the protocol, then
    for classification the candidate's confusion matrix (ticks named by `class_names`) and reliability
    diagram, for regression its residual plot and predicted-vs-actual scatter. Returns their file
    names, sorted."""
    curves = {
        f"{r['key'][:8]} {r['params']['model']['kind']} lr={r['params']['lr']} ep={r['params']['epochs']}": [
            _dev_curve_point(row) for row in r["curve"]
        ]
        for r in records
    }
    regression = protocol.task == REGRESSION
    plots.learning_curves(
        curves,
        folder / "learning_curves.png",
        f"Learning curves, protocol {protocol.name} ({protocol.id[:8]})",
        ylabel="dev RMSE" if regression else "dev error",
    )
    title = f"Candidate {experiment_key[:8]}"
    if regression:
        plots.residual_plot(y_true, candidate, folder / "residuals.png", f"{title} residuals on the test set")
        plots.predicted_vs_actual(y_true, candidate, folder / "predicted_vs_actual.png", f"{title} on the test set")
    else:
        plots.confusion_matrix(
            y_true,
            candidate.argmax(axis=1),
            len(class_names),
            folder / "confusion_matrix.png",
            f"{title} on the test set",
            class_names=class_names,
        )
        plots.reliability_diagram(y_true, candidate, folder / "reliability.png", f"{title} calibration")
    return sorted(p.name for p in folder.glob("*.png"))


def write_evaluation_report(folder: Path, report: Mapping[str, Any]) -> None:
    """report.json, report.md and report.html in `folder`."""
    (folder / "report.json").write_text(json.dumps(report, indent=2, default=float))
    (folder / "report.md").write_text(evaluation_markdown(report))
    (folder / "report.html").write_text(evaluation_html(report))


def sweep_html(title: str, markdown: str, plot_png: bytes, notes: str = "") -> str:
    """The sweep's comparison page, self-contained: the plot is inlined, so one presigned link shows everything."""
    return (
        "<!doctype html><meta charset='utf-8'><title>gauntlet sweep</title><style>body{font-family:sans-serif;"
        "margin:2em}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px 8px}</style>"
        f"<h1>{html.escape(title)}</h1>{table_html(markdown)}"
        f"<pre>{html.escape(notes)}</pre>"
        f"<img alt='learning curves' src='data:image/png;base64,{base64.b64encode(plot_png).decode()}'>"
    )
