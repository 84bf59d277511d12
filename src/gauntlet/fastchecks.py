"""Vectorised expectation checks: the GX suite's rules evaluated on Arrow batches, streamed.

Great Expectations costs tens of seconds per run whatever the row count (one pandas pass and one
result object per expectation, plus Data Docs), so on large snapshots validate can use this engine
instead (dataset.validation: vectorised). The rules still come from the suite JSON in include/;
this module only knows how to evaluate the expectation types below on Arrow data, one record
batch at a time, so memory stays at one batch plus the id column (for uniqueness).

It answers one question: does the snapshot pass every rule? It is conservative: any rule it
cannot evaluate exactly (an unknown type or argument, a dtype it cannot map the way pandas
would) counts as "not passed", and validate then runs the GX suite itself, whose result (failed
expectations with examples, row-level quarantine, Data Docs) is the evidence of record.

snapshot_failures holds the rules that span files (a row id is unique across the snapshot and has
one label); both engines call it, so they agree on it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from gauntlet import splits
from gauntlet.errors import RowIdError

# Expectation type -> the kwargs this engine evaluates exactly; anything else means "ask GX".
SUPPORTED: dict[str, set[str]] = {
    "expect_table_row_count_to_be_between": {"min_value", "max_value"},
    "expect_table_columns_to_match_set": {"column_set", "exact_match"},
    "expect_column_values_to_not_be_null": {"column"},
    "expect_column_values_to_be_in_type_list": {"column", "type_list"},
    "expect_column_values_to_be_between": {"column", "min_value", "max_value"},
    "expect_column_values_to_be_unique": {"column"},
    "expect_column_values_to_be_in_set": {"column", "value_set"},
}


def unsupported(suite_spec: dict[str, Any]) -> list[str]:
    """The suite's expectations this engine cannot evaluate (empty: it can run the whole suite)."""
    return [
        e["type"]
        for e in suite_spec["expectations"]
        if e["type"] not in SUPPORTED or set(e.get("kwargs", {})) - SUPPORTED[e["type"]]
    ]


@dataclass
class _Column:
    nulls: int = 0
    minimum: Any = None
    maximum: Any = None
    values: set[Any] = field(default_factory=set)  # distinct values, kept only for in_set columns
    dtypes: set[str] = field(default_factory=set)  # pandas dtype names per partition


@dataclass
class Keys:
    """One partition's row ids and labels, as read (any Arrow types), for the snapshot's rules."""

    uri: str
    ids: list[pa.Array] = field(default_factory=list)
    labels: list[pa.Array] = field(default_factory=list)


# validate hands GX text columns as object dtype, which GX's type rule checks value by value:
# Python str values match these type names (GX's native_type_type_map).
TEXT = "str"
_TEXT_TYPE_NAMES = {"str", "string_types"}


def _pandas_dtype(arrow_type: pa.DataType, has_nulls: bool) -> str | None:
    """The dtype name pandas would give this column (what GX's type rule sees); None if unsure."""
    if pa.types.is_integer(arrow_type):
        return "float64" if has_nulls else np.dtype(arrow_type.to_pandas_dtype()).name
    if pa.types.is_floating(arrow_type) or pa.types.is_boolean(arrow_type):
        return np.dtype(arrow_type.to_pandas_dtype()).name
    if pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type):
        return TEXT
    return None  # dates, binary, ...: columns this engine does not model


def _types_ok(dtypes: set[str], type_list: list[str]) -> bool:
    names = {str(t).lower() for t in type_list}
    return all((d == TEXT and bool(names & _TEXT_TYPE_NAMES)) or (d != TEXT and d in type_list) for d in dtypes)


class SuiteChecker:
    """Feed it each partition's record batches (start_partition, then add), then call verdict().

    With an id column, verdict() also applies the snapshot's rules (snapshot_failures).
    """

    def __init__(
        self, suite_spec: dict[str, Any], id_column: str | None = None, label_column: str | None = None
    ) -> None:
        self.expectations = suite_spec["expectations"]
        self.id_column, self.label_column = id_column, label_column
        self.keys: list[Keys] = []
        self.columns: dict[str, _Column] = {}
        self.in_set = {
            e["kwargs"]["column"] for e in self.expectations if e["type"] == "expect_column_values_to_be_in_set"
        }
        self.unique = {
            e["kwargs"]["column"] for e in self.expectations if e["type"] == "expect_column_values_to_be_unique"
        }
        self.id_chunks: dict[str, list[pa.Array]] = {c: [] for c in self.unique}
        self.partitions: list[dict[str, Any]] = []  # {"uri", "rows", "columns", "schema", "nulls"}
        self.rows = 0

    def start_partition(self, uri: str) -> None:
        self.partitions.append({"uri": uri, "rows": 0, "columns": None, "types": {}, "nulls": {}})
        self.keys.append(Keys(uri))

    def add(self, batch: pa.RecordBatch) -> None:
        part = self.partitions[-1]
        part["rows"] += batch.num_rows
        self.rows += batch.num_rows
        if part["columns"] is None:
            part["columns"] = list(batch.schema.names)
            part["types"] = {f.name: f.type for f in batch.schema}
        for name, array in zip(batch.schema.names, batch.columns, strict=True):
            col = self.columns.setdefault(name, _Column())
            nulls = array.null_count
            if pa.types.is_floating(array.type):
                nulls += int(pc.sum(pc.is_nan(array)).as_py() or 0)  # GX (pandas) counts NaN as missing
            col.nulls += nulls
            part["nulls"][name] = part["nulls"].get(name, 0) + array.null_count
            if pa.types.is_integer(array.type) or pa.types.is_floating(array.type):
                bounds = pc.min_max(array).as_py()
                if bounds["min"] is not None:
                    col.minimum = bounds["min"] if col.minimum is None else min(col.minimum, bounds["min"])
                    col.maximum = bounds["max"] if col.maximum is None else max(col.maximum, bounds["max"])
            if name in self.in_set:
                col.values.update(v for v in pc.unique(array.drop_null()).to_pylist())
            if name in self.unique:
                self.id_chunks[name].append(array)
            if name == self.id_column:
                self.keys[-1].ids.append(array)
            elif name == self.label_column:
                self.keys[-1].labels.append(array)

    def verdict(self) -> tuple[bool, list[str]]:
        """(passed, what failed); rules are evaluated per partition where GX's table rules would be."""
        for part in self.partitions:
            for name, arrow_type in part["types"].items():
                dtype = _pandas_dtype(arrow_type, part["nulls"].get(name, 0) > 0)
                self.columns[name].dtypes.add(dtype or "unknown")
        problems = [p for e in self.expectations for p in self._check(e)]
        if self.id_column:
            problems += [f["error"] for f in snapshot_failures(self.keys, self.id_column, self.label_column)]
        return not problems, problems

    def _check(self, e: dict[str, Any]) -> Iterable[str]:
        kind, kw = e["type"], e.get("kwargs", {})
        if kind not in SUPPORTED or set(kw) - SUPPORTED[kind]:
            yield f"{kind}: not evaluated by the vectorised engine"
            return
        if kind == "expect_table_row_count_to_be_between":
            for part in self.partitions:
                low, high = kw.get("min_value"), kw.get("max_value")
                if (low is not None and part["rows"] < low) or (high is not None and part["rows"] > high):
                    yield f"{kind} on {part['uri']}: {part['rows']} rows"
            return
        if kind == "expect_table_columns_to_match_set":
            expected = set(kw["column_set"])
            for part in self.partitions:
                found = set(part["columns"] or [])
                if (found != expected) if kw.get("exact_match", True) else not expected <= found:
                    yield f"{kind} on {part['uri']}: columns {sorted(found ^ expected)} differ"
            return
        column = kw["column"]
        col = self.columns.get(column)
        if col is None:
            yield f"{kind}: column {column!r} is missing"
        elif kind == "expect_column_values_to_not_be_null" and col.nulls:
            yield f"{kind} on {column!r}: {col.nulls} missing values"
        elif kind == "expect_column_values_to_be_in_type_list" and not _types_ok(col.dtypes, kw["type_list"]):
            yield f"{kind} on {column!r}: dtype {sorted(col.dtypes)}"
        elif (
            kind == "expect_column_values_to_be_between"
            and col.minimum is not None
            and (
                (kw.get("min_value") is not None and col.minimum < kw["min_value"])
                or (kw.get("max_value") is not None and col.maximum > kw["max_value"])
            )
        ):
            yield f"{kind} on {column!r}: observed [{col.minimum}, {col.maximum}]"
        elif kind == "expect_column_values_to_be_between" and col.minimum is None and col.dtypes - {"float64"}:
            yield f"{kind} on {column!r}: not a numeric column"
        elif kind == "expect_column_values_to_be_in_set" and not col.values <= set(kw["value_set"]):
            yield f"{kind} on {column!r}: values {sorted(col.values - set(kw['value_set']), key=str)[:5]}"
        elif kind == "expect_column_values_to_be_unique" and column == self.id_column:
            # Within each file here; across files by canonical text in snapshot_failures, as validate does.
            for keys in self.keys:
                if keys.ids and _has_duplicates(pa.chunked_array(keys.ids)):
                    yield f"{kind} on {column!r}: duplicate values in {keys.uri}"
        elif kind == "expect_column_values_to_be_unique" and len({c.type for c in self.id_chunks[column]}) > 1:
            yield f"{kind} on {column!r}: types differ between partitions"  # GX compares them apart
        elif kind == "expect_column_values_to_be_unique" and _has_duplicates(pa.chunked_array(self.id_chunks[column])):
            yield f"{kind} on {column!r}: duplicate values"


def _has_duplicates(values: pa.ChunkedArray) -> bool:
    valid = len(values) - values.null_count
    return bool(pc.count_distinct(values, mode="only_valid").as_py() != valid)


def snapshot_failures(parts: list[Keys], id_column: str, label_column: str | None) -> list[dict[str, Any]]:
    """The rules no single file can answer: a row id names one row in the whole snapshot (the frozen
    split is keyed by it), so it has one label. Failures in validate's result format, naming files.

    Ids are compared by their canonical text (gauntlet.splits): 7 in one file and "7" in another are
    one row. A partition whose ids have no canonical text is left to the suite's type and null rules.
    """
    texts: dict[int, pa.Array] = {}
    for index, part in enumerate(parts):
        try:
            if part.ids:
                texts[index] = splits.canonical_id_array(pa.chunked_array(part.ids), part.uri)
        except (RowIdError, pa.ArrowInvalid):  # bad types, or types differing between batches
            continue
    if len(texts) < 2:
        return []
    table = pa.table(
        {
            "id": pa.chunked_array(list(texts.values()), pa.string()),
            "part": pa.chunked_array([pa.array(np.full(len(t), i, dtype=np.int32)) for i, t in texts.items()]),
        }
    )
    spread = table.group_by("id").aggregate([("part", "count_distinct")])
    shared = spread.filter(pc.greater(spread["part_count_distinct"], 1))["id"].combine_chunks()
    if not len(shared):
        return []
    # Only the shared ids' rows are gathered in Python: id -> [(file, label), ...].
    where: dict[str, list[tuple[str, Any]]] = {}
    for index, text in texts.items():
        part, mask = parts[index], pc.is_in(text, value_set=shared)
        labels = pa.chunked_array(part.labels).combine_chunks().filter(mask).to_pylist() if part.labels else None
        for i, row_id in enumerate(text.filter(mask).to_pylist()):
            where.setdefault(row_id, []).append((part.uri, labels[i] if labels is not None else None))
    return _shared_id_failures(where, id_column, label_column)


def _shared_id_failures(
    where: dict[str, list[tuple[str, Any]]], id_column: str, label_column: str | None
) -> list[dict[str, Any]]:
    def files(row_id: str) -> str:
        return " and ".join(dict.fromkeys(uri for uri, _ in where[row_id]))

    def labelled(row_id: str) -> str:
        return ", ".join(f"{label!r} in {uri}" for uri, label in where[row_id])

    ids = sorted(where)
    failures = [
        _failure(
            "expect_column_values_to_be_unique",
            id_column,
            ids,
            f"{len(ids)} row ids appear in more than one partition of the snapshot, e.g. "
            + "; ".join(f"{row_id!r} in {files(row_id)}" for row_id in ids[:_SHOWN])
            + ": a row id must name one row (the frozen split is keyed by it); remove the re-landed rows upstream",
        )
    ]
    conflicting = [r for r in ids if len({repr(label) for _, label in where[r]}) > 1]
    if label_column and conflicting:
        failures.append(
            _failure(
                "one_label_per_id",
                label_column,
                conflicting,
                f"{len(conflicting)} of them carry different labels, e.g. "
                + "; ".join(f"{row_id!r}: {labelled(row_id)}" for row_id in conflicting[:_SHOWN]),
            )
        )
    return failures


_SHOWN = 3


def _failure(expectation: str, column: str, ids: list[str], error: str) -> dict[str, Any]:
    return {
        "expectation": expectation,
        "column": column,
        "kwargs": {"scope": "snapshot"},
        "unexpected_count": len(ids),
        "observed_value": None,
        "examples": ids[:5],
        "error": error,
    }
