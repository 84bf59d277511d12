"""gauntlet.scoring.context: the report's drift and compute sections, from committed records only."""

from __future__ import annotations

from gauntlet.scoring import context

PREFLIGHT = {
    "estimate": {
        "parameters": 151306,
        "memory_per_rank": {"total_mb": 3.9},
        "wall_seconds": 11.6,
        "cost_usd": 0.000308,
        "epochs": 30,
        "workers": 2,
    },
    "actual": {"wall_seconds": 49.0, "cost_usd": 0.000506},
    "actual_over_estimate": {"wall_seconds": 4.224, "cost_usd": 1.643},
}
DRIFT = {
    "status": "drift",
    "line": "drift: 2 of 64 features at or above warn_psi 0.2: pixel_20 4.124, pixel_21 0.310",
    "drifted": {"pixel_21": 0.31, "pixel_20": 4.124},
    "plot_uri": "s3://b/runs/r/validation/drift.png",
}


def test_the_context_comes_from_the_record_and_the_manifest() -> None:
    assert context.report_context({"preflight": PREFLIGHT}, {"drift": DRIFT}) == {"drift": DRIFT, "compute": PREFLIGHT}
    # Records and manifests written before either existed give no sections, not an error.
    empty = context.report_context({}, {})
    assert empty == {"drift": None, "compute": None}
    assert context.html_sections(empty) == [] and context.markdown_sections(empty) == []


def test_sections_list_the_most_drifted_columns_first_and_the_compute_estimate_beside_the_actual() -> None:
    report = {"drift": DRIFT, "compute": PREFLIGHT}
    drift_md, compute_md = context.markdown_sections(report)
    assert drift_md.index("| pixel_20 | 4.124 |") < drift_md.index("| pixel_21 | 0.310 |")
    assert "Chart: s3://b/runs/r/validation/drift.png" in drift_md
    assert compute_md == (
        "## Compute\n\n151,306 parameters, about 3.9 MB per rank; estimated 11.6s and $0.000308 for 30 epochs "
        "on 2 ranks before training, took 49.0s and $0.000506 (actual / estimate 4.22)"
    )
    drift_html, compute_html = context.html_sections(report)
    assert drift_html.startswith("<h2>Drift of new data (measured by validate)</h2>")
    assert "<tr><td>pixel_20</td><td>4.124</td></tr>" in drift_html
    assert compute_html.startswith("<h2>Compute</h2>")
