"""Whether two results may be compared: one protocol version, one test set, one split.

A report's numbers mean something only under the protocol it was scored under (its split,
exclusions, metrics and budget) and on the rows it was scored on. Anything that puts two reports
side by side (the CLI, sweeps, dashboards) goes through `compare_reports` (or `why_not_comparable`),
which refuses reports from different protocol versions or different test sets; train and evaluate
refuse a model whose dataset was split otherwise (`split_difference`). Kept apart from
scoring.report (which plots), so the train step can use it without loading matplotlib.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from gauntlet.errors import NotComparable, ProtocolMismatch, TestSetMismatch
from gauntlet.hashing import sha256_bytes

if TYPE_CHECKING:
    from gauntlet.protocol import Protocol

SPLIT_FIELDS = ("id_column", "salt", "test_fraction", "dev_fraction")


def test_set_id(row_ids: Iterable[str]) -> str:
    """Identity of a test set: a hash of its row ids (order-free), the rows every model was scored on."""
    return sha256_bytes("\n".join(sorted(row_ids)).encode())[:16]


def test_set_of(report: dict[str, Any]) -> str:
    """The rows a report was scored on, in words: its test rows' hash, else its dataset version."""
    if report.get("test_set_id"):
        return f"test rows {report['test_set_id']}"
    return f"dataset version {report.get('dataset_version')}"


def _test_sets(a: dict[str, Any], b: dict[str, Any]) -> tuple[str, str] | None:
    """Like with like: both reports' test-row hashes, else both dataset versions; None if neither pair exists."""
    for field, kind in (("test_set_id", "test rows"), ("dataset_version", "dataset version")):
        if a.get(field) and b.get(field):
            return f"{kind} {a[field]}", f"{kind} {b[field]}"
    return None


def protocol_split(protocol: Protocol) -> dict[str, Any]:
    """What decides a row's split under a protocol, as a dataset manifest records it (`protocol_split`)."""
    return {field: getattr(protocol, field) for field in SPLIT_FIELDS}


def describe_split(split: Mapping[str, Any] | None) -> str:
    if not isinstance(split, Mapping):
        return "an unrecorded split"
    return (
        f"salt {split.get('salt')!r}, test_fraction {split.get('test_fraction')}, "
        f"dev_fraction {split.get('dev_fraction')}, id_column {split.get('id_column')!r}"
    )


def split_difference(recorded: Any, expected: Mapping[str, Any]) -> list[str]:
    """The split fields in which a dataset's recorded split differs from `expected` (all when unrecorded).

    Rows land in other splits when any of these differ: a model trained on such a dataset has seen
    rows that are test rows under the other split.
    """
    if not isinstance(recorded, Mapping):
        return list(SPLIT_FIELDS)
    return [field for field in SPLIT_FIELDS if recorded.get(field) != expected.get(field)]


def why_not_comparable(a: dict[str, Any], b: dict[str, Any]) -> str | None:
    """None when a and b were scored under one protocol on one test set; otherwise why not."""
    try:
        require_same_protocol(a, b)
    except NotComparable as error:
        return str(error)
    return None


def require_same_protocol(a: dict[str, Any], b: dict[str, Any]) -> str:
    """The shared protocol id of two reports scored on the same test set.

    Raises ProtocolMismatch or TestSetMismatch naming both reports and what differs.
    """
    pa, pb = a.get("protocol_id"), b.get("protocol_id")
    ka, kb = a.get("experiment_key"), b.get("experiment_key")
    if not pa or not pb:
        raise ProtocolMismatch("a report without a protocol_id cannot be compared with anything")
    if pa != pb:
        raise ProtocolMismatch(
            f"report for experiment {ka} was scored under protocol {pa} and report for "
            f"experiment {kb} under protocol {pb}; results under different protocol "
            f"versions are never compared: re-score both under one protocol first"
        )
    sets = _test_sets(a, b)
    if sets is None:
        raise TestSetMismatch(
            f"reports for experiments {ka} and {kb} do not both name their test set (test_set_id or "
            "dataset_version), so they cannot be compared"
        )
    if sets[0] != sets[1]:
        raise TestSetMismatch(
            f"report for experiment {ka} was scored on {sets[0]} and report for experiment {kb} on {sets[1]}; "
            "results on different test rows are never compared: evaluate both experiments on one dataset "
            "version first"
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
        "test_set": test_set_of(a),
        "a": a["experiment_key"],
        "b": b["experiment_key"],
        "test_rows": a["test_rows"],
        "metrics": metrics,
    }


def comparison_text(result: dict[str, Any]) -> str:
    """A Markdown table of a compare_reports result."""
    lines = [
        f"Protocol {result['protocol_id']}, {result.get('test_set', 'test set')} ({result['test_rows']} test rows): "
        f"a = {result['a']}, b = {result['b']}",
        "",
        "| metric | a | b | a - b |",
        "|---|---|---|---|",
    ]
    lines += [f"| {name} | {m['a']:.4f} | {m['b']:.4f} | {m['diff']:+.4f} |" for name, m in result["metrics"].items()]
    return "\n".join(lines)
