"""Row-level quarantine: set a few bad rows aside instead of failing the whole night.

The expectation suite names, in meta.row_quarantine.expectations, the rules whose failures are
about single rows (a value out of range, a label outside the known classes). When a partition
breaks only such rules, on no more than dataset.quarantine_max_fraction of its rows, the
offending rows go to quarantine/<dataset>/<id>/ in S3 (with the reason for each row, committed
with a manifest) and the run continues on the clean rows. Rows are recorded by row id, the key
preprocess drops them by: positions and index labels depend on how a file was read. Any other failure (schema, types,
nulls, duplicate ids, unreadable files) still fails validation: those mean upstream is broken.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from gauntlet import layout, splits, storage
from gauntlet.hashing import content_hash
from gauntlet.logs import get_logger

log = get_logger("gauntlet.quarantine")


def row_rules(suite_spec: dict[str, Any]) -> set[str]:
    """Expectation types the suite allows to quarantine rows for (none unless it says so)."""
    return set((suite_spec.get("meta") or {}).get("row_quarantine", {}).get("expectations", []))


def offending_rows(failed: list[dict[str, Any]], rules: set[str]) -> dict[int, list[str]] | None:
    """Row position -> reasons, if every failure is a row-level rule that names its rows; else None.

    GX names rows by the frame's index labels; validate hands it frames indexed 0..n-1.
    """
    reasons: dict[int, list[str]] = {}
    for item in failed:
        rows = item.get("rows")
        if item["expectation"] not in rules or item.get("error") or not rows:
            return None
        for row in rows:
            reasons.setdefault(int(row), []).append(f"{item['expectation']} on column '{item['column']}'")
    return reasons


def quarantine_id(source_uri: str, etag: str, suite_id: str) -> str:
    """Same file bytes under the same suite quarantine the same rows: one place per (file, suite)."""
    return content_hash([source_uri, etag, suite_id])


def apply(
    store: str,
    dataset: str,
    suite_spec: dict[str, Any],
    suite_id: str,
    max_fraction: float,
    partition: dict[str, Any],
    frame: pd.DataFrame,
    failed: list[dict[str, Any]],
    id_column: str,
) -> dict[str, Any] | None:
    """Quarantine the partition's bad rows if the suite and the limit allow it.

    Returns the quarantine summary (the partition then counts as passed), or None (it failed; when
    only the limit was exceeded, a 'quarantine_limit' failure saying so is appended to `failed`).
    """
    reasons = offending_rows(failed, row_rules(suite_spec))
    if reasons is None:
        return None
    fraction = len(reasons) / max(len(frame), 1)
    if fraction > max_fraction:
        failed.append(
            {
                "expectation": "quarantine_limit",
                "column": None,
                "kwargs": {"max_fraction": max_fraction},
                "unexpected_count": len(reasons),
                "observed_value": round(fraction, 4),
                "examples": [],
                "error": f"{len(reasons)} of {len(frame)} rows ({fraction:.1%}) break row-level rules, more than "
                f"dataset.quarantine_max_fraction={max_fraction:g} allows",
            }
        )
        return None
    rows = sorted(reasons)
    bad = frame.iloc[rows].copy()
    ids = splits.canonical_ids(bad[id_column].tolist(), f"{partition['uri']}: column '{id_column}'")
    bad.insert(0, "_reason", ["; ".join(reasons[row]) for row in rows])
    bad.insert(0, "_row_index", rows)
    bad.insert(0, "_source_uri", partition["uri"])
    prefix = layout.quarantine_prefix(store, dataset, quarantine_id(partition["uri"], partition["etag"], suite_id))
    with storage.temp_dir() as tmp:
        # Offending values may break the column's type (that is why they are here): keep them as text.
        bad.astype(str).to_parquet(Path(tmp) / "rows.parquet", index=False)
        (Path(tmp) / "reasons.json").write_text(
            json.dumps({i: reasons[r] for i, r in zip(ids, rows, strict=True)}, indent=1)
        )
        storage.commit_directory(
            tmp,
            prefix,
            {"kind": "quarantine", "source": partition, "rows": len(rows), "of_rows": len(frame), "suite_id": suite_id},
        )
    log.warning(
        "quarantined %d of %d rows of %s (%.1f%%, limit %.1f%%) to %s",
        len(rows),
        len(frame),
        partition["uri"],
        100 * fraction,
        100 * max_fraction,
        prefix,
    )
    return {
        "uri": prefix,
        "count": len(rows),
        "rows": rows,  # positions in the file, for people; preprocess drops by row_ids
        "row_ids": ids,
        "reasons": sorted({reason for row in rows for reason in reasons[row]}),
    }
