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
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

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


def _pandas_dtype(arrow_type: pa.DataType, has_nulls: bool) -> str | None:
    """The dtype name pandas would give this column (what GX's type rule sees); None if unsure."""
    if pa.types.is_integer(arrow_type):
        return "float64" if has_nulls else np.dtype(arrow_type.to_pandas_dtype()).name
    if pa.types.is_floating(arrow_type) or pa.types.is_boolean(arrow_type):
        return np.dtype(arrow_type.to_pandas_dtype()).name
    return None  # strings, dates, ...: object columns GX checks value by value


class SuiteChecker:
    """Feed it each partition's record batches (start_partition, then add), then call verdict()."""

    def __init__(self, suite_spec: dict[str, Any]) -> None:
        self.expectations = suite_spec["expectations"]
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

    def verdict(self) -> tuple[bool, list[str]]:
        """(passed, what failed); rules are evaluated per partition where GX's table rules would be."""
        for part in self.partitions:
            for name, arrow_type in part["types"].items():
                dtype = _pandas_dtype(arrow_type, part["nulls"].get(name, 0) > 0)
                self.columns[name].dtypes.add(dtype or "unknown")
        problems = [p for e in self.expectations for p in self._check(e)]
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
        elif kind == "expect_column_values_to_be_in_type_list" and not col.dtypes <= set(kw["type_list"]):
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
        elif kind == "expect_column_values_to_be_unique" and len({c.type for c in self.id_chunks[column]}) > 1:
            yield f"{kind} on {column!r}: types differ between partitions"  # GX compares them apart
        elif kind == "expect_column_values_to_be_unique":
            ids = pa.chunked_array(self.id_chunks[column])
            valid = len(ids) - ids.null_count
            if pc.count_distinct(ids, mode="only_valid").as_py() != valid:
                yield f"{kind} on {column!r}: duplicate values"
