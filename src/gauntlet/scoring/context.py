"""What the report says about its inputs and its cost, next to the verdict: the drift validate measured
in the data the candidate was trained on, and the training's compute preflight beside what it took.

Both come from committed records (the dataset manifest, the experiment record), never from a
particular night's run folder, so a report reused on a cache hit still says the same thing.
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from typing import Any

# Drifted columns listed in a report section (the drift table in S3 has every column).
SHOWN_COLUMNS = 10


def report_context(record: Mapping[str, Any], manifest: Mapping[str, Any]) -> dict[str, Any]:
    """The report's `drift` and `compute` entries (None where the record or manifest predates them)."""
    return {"drift": manifest.get("drift"), "compute": record.get("preflight")}


def compute_sentence(preflight: Mapping[str, Any]) -> str:
    estimate, actual = preflight["estimate"], preflight["actual"]
    ratio = preflight["actual_over_estimate"]["wall_seconds"]
    memory = estimate["memory_per_rank"]["total_mb"]
    return (
        f"{estimate['parameters']:,} parameters, about {memory:.1f} MB per rank; estimated "
        f"{estimate['wall_seconds']:.1f}s and ${estimate['cost_usd']:.6f} for {estimate['epochs']} epochs on "
        f"{estimate['workers']} ranks before training, took {actual['wall_seconds']:.1f}s and "
        f"${actual['cost_usd']:.6f}" + (f" (actual / estimate {ratio:.2f})" if ratio else "")
    )


def _drifted(drift: Mapping[str, Any]) -> list[tuple[str, float]]:
    return sorted(drift.get("drifted", {}).items(), key=lambda item: -item[1])[:SHOWN_COLUMNS]


def markdown_sections(report: Mapping[str, Any]) -> list[str]:
    found = []
    drift = report.get("drift")
    if drift:
        rows = "".join(f"| {name} | {psi:.3f} |\n" for name, psi in _drifted(drift))
        table = f"\n\n| column | PSI |\n|---|---|\n{rows}" if rows else ""
        plot = f"\n\nChart: {drift['plot_uri']}" if drift.get("plot_uri") else ""
        found.append(f"## Drift of new data (measured by validate)\n\n{drift['line']}{table}{plot}")
    if report.get("compute"):
        found.append(f"## Compute\n\n{compute_sentence(report['compute'])}")
    return found


def html_sections(report: Mapping[str, Any]) -> list[str]:
    found = []
    drift = report.get("drift")
    if drift:
        rows = "".join(f"<tr><td>{html.escape(name)}</td><td>{psi:.3f}</td></tr>" for name, psi in _drifted(drift))
        table = f"<table><tr><th>column</th><th>PSI</th></tr>{rows}</table>" if rows else ""
        plot = f"<p>Chart: <code>{html.escape(drift['plot_uri'])}</code></p>" if drift.get("plot_uri") else ""
        found.append(
            f"<h2>Drift of new data (measured by validate)</h2><p>{html.escape(drift['line'])}</p>{table}{plot}"
        )
    if report.get("compute"):
        found.append(f"<h2>Compute</h2><p>{html.escape(compute_sentence(report['compute']))}</p>")
    return found
