"""Comparing evaluation reports, only ever within one protocol version.

A report's numbers mean something only under the protocol it was scored under (its test rows,
exclusions, metrics and budget). Anything that puts two reports side by side (the CLI, sweeps,
dashboards) goes through `compare_reports`, which refuses reports from different protocol versions.
"""

from __future__ import annotations

from typing import Any


class ProtocolMismatch(ValueError):
    """Two results were scored under different protocol versions and must not be compared."""


def require_same_protocol(a: dict[str, Any], b: dict[str, Any]) -> str:
    """The shared protocol id of two reports, or ProtocolMismatch naming both."""
    pa, pb = a.get("protocol_id"), b.get("protocol_id")
    if not pa or not pb:
        raise ProtocolMismatch("a report without a protocol_id cannot be compared with anything")
    if pa != pb:
        raise ProtocolMismatch(
            f"report for experiment {a.get('experiment_key')} was scored under protocol {pa} and report for "
            f"experiment {b.get('experiment_key')} under protocol {pb}; results under different protocol "
            f"versions are never compared: re-score both under one protocol first"
        )
    return str(pa)


def compare_reports(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """Candidate metrics of report a minus those of report b, per metric both reports hold."""
    protocol_id = require_same_protocol(a, b)
    ma, mb = a["metrics"]["candidate"], b["metrics"]["candidate"]
    metrics = {
        name: {"a": float(ma[name]), "b": float(mb[name]), "diff": float(ma[name]) - float(mb[name])}
        for name in ma
        if name in mb
    }
    return {
        "protocol_id": protocol_id,
        "a": a["experiment_key"],
        "b": b["experiment_key"],
        "test_rows": a["test_rows"],
        "metrics": metrics,
    }


def comparison_text(result: dict[str, Any]) -> str:
    """A Markdown table of a compare_reports result."""
    lines = [
        f"Protocol {result['protocol_id']}, {result['test_rows']} test rows: a = {result['a']}, b = {result['b']}",
        "",
        "| metric | a | b | a - b |",
        "|---|---|---|---|",
    ]
    lines += [f"| {name} | {m['a']:.4f} | {m['b']:.4f} | {m['diff']:+.4f} |" for name, m in result["metrics"].items()]
    return "\n".join(lines)
