"""Profile a bounded sample of a table's raw partitions: what `gauntlet init` decides from.

The sample is read with the same parser validate uses (rawdata.iter_batches), so the types seen
here are the types the expectation suite will meet. Partitions are visited spread over their dates
(first, last, then in between) with an even share of the row budget each, so one huge early file
does not stand for the whole table. Only Arrow batches up to the budget are kept in memory.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from gauntlet import rawdata, storage
from gauntlet.errors import InitError

MAX_ROWS = 50_000  # rows read in all
MAX_FILES = 20  # partitions visited
MAX_VALUES = 50  # distinct values kept per column (enough for value sets and class lists)
_DATA_FILE = re.compile(r"\.(parquet|csv)$")


@dataclass(frozen=True)
class ColumnProfile:
    """One column of the sample. `kind` is numeric | text | bool | other (types the suite cannot check)."""

    name: str
    kind: str
    arrow_type: str
    nulls: int
    distinct: int
    values: tuple[Any, ...] | None  # sorted distinct non-null values; None when more than MAX_VALUES
    minimum: float | None = None
    maximum: float | None = None
    mean: float | None = None
    std: float | None = None
    integral: bool = False  # every non-null value is a whole number (integer type, or a float like 3.0)


@dataclass(frozen=True)
class Profile:
    source: str
    files: tuple[str, ...]  # the files read
    files_total: int  # data files found
    rows: int
    truncated: bool  # the row budget ended the sample before the data did
    columns: tuple[ColumnProfile, ...]
    table: pa.Table = field(repr=False)

    def column(self, name: str) -> ColumnProfile:
        for column in self.columns:
            if column.name == name:
                return column
        raise KeyError(name)

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    def counts(self, name: str) -> dict[Any, int]:
        """Non-null value -> rows, for a label's class balance."""
        counted = pc.value_counts(self.table[name].drop_null()).to_pylist()
        return {item["values"]: int(item["counts"]) for item in counted}

    def duplicates(self, name: str, shown: int = 3) -> tuple[int, list[Any]]:
        """(how many values occur more than once, a few of them)."""
        counted = pc.value_counts(self.table[name].drop_null())
        repeated = counted.filter(pc.greater(counted.field("counts"), 1)).field("values").to_pylist()
        return len(repeated), sorted(repeated, key=str)[:shown]


# --- finding the files ---------------------------------------------------------------------------


def data_files(source: str) -> list[str]:
    """The data files under `source`: an s3:// prefix (partitions date=YYYY-MM-DD/part-*, as rawdata
    lists them), a local folder (every .parquet/.csv below it) or one local file; sorted by path,
    which for date= folders is date order."""
    if source.startswith("s3://"):
        found = [
            o["uri"]
            for o in storage.list_objects(source.rstrip("/") + "/")
            if "/date=" in "/" + o["key"]
            and o["key"].rsplit("/", 1)[-1].startswith("part-")
            and _DATA_FILE.search(o["key"])
        ]
        where = "date=YYYY-MM-DD/part-*.parquet or .csv"
    else:
        path = Path(source)
        if path.is_file():
            found = [str(path)] if _DATA_FILE.search(path.name) else []
        else:
            found = (
                [str(p) for p in path.rglob("*") if p.is_file() and _DATA_FILE.search(p.name)] if path.is_dir() else []
            )
        where = ".parquet or .csv files"
    if not found:
        raise InitError(f"no data under {source} (looked for {where}): check the --from location")
    return sorted(found)


def spread(items: list[str], k: int) -> list[str]:
    """k items spread evenly over the list, first and last included, in list order."""
    if len(items) <= k:
        return list(items)
    picks = sorted({round(i * (len(items) - 1) / (k - 1)) for i in range(k)}) if k > 1 else [len(items) - 1]
    return [items[i] for i in picks]


def _batches(uri: str, id_column: str) -> Iterator[pa.RecordBatch]:
    source: bytes | Path = storage.get_bytes(uri) if uri.startswith("s3://") else Path(uri)
    yield from rawdata.iter_batches(uri, source, batch_rows=8192, id_column=id_column)


def read_sample(source: str, id_column: str, max_rows: int = MAX_ROWS, max_files: int = MAX_FILES) -> Profile:
    """Read up to max_rows rows from up to max_files partitions and profile them."""
    everything = data_files(source)
    files = spread(everything, max_files)
    share = math.ceil(max_rows / len(files))
    tables: list[pa.Table] = []
    truncated = len(files) < len(everything)
    first_columns: list[str] | None = None
    for uri in files:
        taken = 0
        for batch in _batches(uri, id_column):
            if first_columns is None:
                first_columns = list(batch.schema.names)
            elif set(batch.schema.names) != set(first_columns):
                raise InitError(
                    f"{uri} has columns {sorted(set(batch.schema.names) ^ set(first_columns))} that "
                    f"{files[0]} has not (or the reverse): every partition must have the same columns"
                )
            batch = batch.slice(0, share - taken)
            tables.append(pa.Table.from_batches([batch]).select(first_columns))
            taken += batch.num_rows
            if taken >= share:
                truncated = True
                break
    table = pa.concat_tables(tables, promote_options="permissive") if tables else pa.table({})
    if not table.num_rows:
        raise InitError(f"the data under {source} has no rows")
    columns = tuple(profile_column(name, table[name]) for name in table.column_names)
    return Profile(source, tuple(files), len(everything), table.num_rows, truncated, columns, table)


# --- one column ----------------------------------------------------------------------------------


def column_kind(arrow_type: pa.DataType) -> str:
    if pa.types.is_integer(arrow_type) or pa.types.is_floating(arrow_type):
        return "numeric"
    if pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type):
        return "text"
    if pa.types.is_boolean(arrow_type):
        return "bool"
    return "other"


def profile_column(name: str, values: pa.ChunkedArray) -> ColumnProfile:
    kind = column_kind(values.type)
    nulls = values.null_count
    if pa.types.is_floating(values.type):
        nulls += int(pc.sum(pc.is_nan(values)).as_py() or 0)  # pandas, and so GX, counts NaN as missing
        values = pc.if_else(pc.is_nan(values), None, values)
    valid = values.drop_null()
    distinct = int(pc.count_distinct(valid).as_py()) if kind != "other" else 0
    kept = tuple(sorted(pc.unique(valid).to_pylist())) if kind != "other" and distinct <= MAX_VALUES else None
    if kind != "numeric" or not len(valid):
        return ColumnProfile(name, kind, str(values.type), nulls, distinct, kept)
    bounds = pc.min_max(valid).as_py()
    numbers = valid.cast(pa.float64())
    integral = pa.types.is_integer(values.type) or bool(pc.all(pc.equal(pc.floor(numbers), numbers)).as_py())
    return ColumnProfile(
        name,
        kind,
        str(values.type),
        nulls,
        distinct,
        kept,
        minimum=bounds["min"],
        maximum=bounds["max"],
        mean=float(pc.mean(numbers).as_py()),
        std=float(pc.stddev(numbers).as_py() or 0.0),
        integral=integral,
    )


def summary_lines(profile: Profile, label: str | None) -> list[str]:
    """The short profile init prints: rows, files, then a line per column."""
    more = " (a sample: the row or file budget ended it)" if profile.truncated else ""
    lines = [
        f"read {profile.rows} rows from {len(profile.files)} of {profile.files_total} files under {profile.source}{more}",
        f"{len(profile.columns)} columns:",
    ]
    for c in profile.columns:
        facts = [c.kind, c.arrow_type, f"{c.nulls} nulls" if c.nulls else "no nulls", f"{c.distinct} distinct"]
        if c.minimum is not None:
            facts.append(f"range [{c.minimum:g}, {c.maximum:g}]")
        lines.append(f"  {c.name}: " + ", ".join(facts))
    counts = profile.counts(label) if label else {}
    if 0 < len(counts) <= MAX_VALUES:
        balance = ", ".join(f"{value!r} {n} ({n / profile.rows:.0%})" for value, n in sorted(counts.items(), key=str))
        lines.append(f"label {label!r}: {balance}")
    return lines
