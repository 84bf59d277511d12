"""Raw partitions: where upstream lands them, which ones a run reads, and how to parse them.

Partitions live at <store>/<raw_prefix>/date=YYYY-MM-DD/part-*.{parquet,csv}. A run with data
interval [start, end) validates the partitions *in* the interval (the new data) and trains on the
snapshot of every partition dated before `end`, so a backfilled night sees exactly what it saw.
"""

from __future__ import annotations

import datetime as dt
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from gauntlet import layout, storage
from gauntlet.errors import RawDataError

_DATE_DIR = re.compile(r"/date=([^/]*)/")
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_PANDAS_INDEX = re.compile(r"__index_level_\d+__")


@dataclass(frozen=True)
class Partition:
    uri: str
    date: dt.date
    etag: str
    size: int

    def as_dict(self) -> dict[str, object]:
        return {"uri": self.uri, "date": self.date.isoformat(), "etag": self.etag, "size": self.size}


def list_partitions(store: str, raw_prefix: str) -> list[Partition]:
    found = []
    for obj in storage.list_objects(layout.raw_root(store, raw_prefix) + "/"):
        match = _DATE_DIR.search(obj["key"] if obj["key"].startswith("/") else "/" + obj["key"])
        name = obj["key"].rsplit("/", 1)[-1]
        if not match or not name.startswith("part-") or not name.endswith((".parquet", ".csv")):
            continue
        found.append(Partition(obj["uri"], _partition_date(obj["uri"], match.group(1)), obj["etag"], obj["size"]))
    return sorted(found, key=lambda p: (p.date, p.uri))


def _partition_date(uri: str, text: str) -> dt.date:
    """A data file under a date= directory that is no calendar date belongs to no run: refuse it
    loudly rather than skip it, or its rows would silently never be trained on."""
    try:
        if _ISO_DATE.fullmatch(text):
            return dt.date.fromisoformat(text)
    except ValueError:
        pass
    raise RawDataError(f"{uri}: rule partition_date: directory 'date={text}' is not a valid YYYY-MM-DD date")


def select(partitions: list[Partition], start: dt.date | None, end: dt.date) -> list[Partition]:
    """Partitions dated in [start, end); start None means 'from the beginning' (the snapshot)."""
    return [p for p in partitions if (start is None or p.date >= start) and p.date < end]


def read_partition(uri: str, id_column: str | None = None) -> pd.DataFrame:
    return parse_partition(uri, storage.get_bytes(uri), id_column)


def _data_columns(schema: pa.Schema) -> list[str]:
    """The file's columns less the unnamed index pandas may store (`__index_level_0__`).

    A frame filtered before to_parquet keeps its index labels; the rows are the file's rows, in
    order, so every reader numbers them 0..n-1 and sees the same columns (a named index is data).
    """
    return [name for name in schema.names if not _PANDAS_INDEX.fullmatch(name)]


def parse_partition(uri: str, data: bytes, id_column: str | None = None) -> pd.DataFrame:
    """The partition as a frame indexed 0..n-1 by file position; `id_column` (a CSV's) is read as
    text, so an id such as 007 keeps its leading zeros (see gauntlet.splits)."""
    if not data:
        raise RawDataError(f"{uri}: file is empty")
    try:
        if uri.endswith(".parquet"):
            table = pq.read_table(pa.BufferReader(data))
            # ignore_metadata: no stored index, and the dtypes the vectorised checks model.
            return table.select(_data_columns(table.schema)).to_pandas(ignore_metadata=True)
        return pd.read_csv(io.BytesIO(data), encoding="utf-8", dtype={id_column: str} if id_column else None)
    except (pa.ArrowInvalid, OSError) as error:
        raise RawDataError(f"{uri}: not a readable Parquet file ({error})") from error
    except UnicodeDecodeError as error:
        # The parser decodes in chunks, so its offset is not the file's: decode the whole to locate it.
        try:
            data.decode("utf-8")
            offset = error.start
        except UnicodeDecodeError as whole:
            offset = whole.start
        raise RawDataError(f"{uri}: rule utf8_text: {_locate_bytes(data, offset)} is not valid UTF-8") from error
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as error:
        raise RawDataError(f"{uri}: not a readable UTF-8 CSV file ({error})") from error


def iter_batches(
    uri: str, source: bytes | Path, batch_rows: int = 262_144, id_column: str | None = None
) -> Iterator[pa.RecordBatch]:
    """A partition as Arrow record batches, for steps that stream instead of holding a whole table.

    `source` is the object's bytes or a local copy of it. Parquet is decoded one batch at a time
    (memory: one batch, plus the bytes when given bytes); a CSV is parsed by parse_partition, so it
    reports the same errors and reads `id_column` as text. Read errors raise RawDataError.
    """
    size = len(source) if isinstance(source, bytes) else source.stat().st_size
    if not size:
        raise RawDataError(f"{uri}: file is empty")
    if not uri.endswith(".parquet"):
        data = source if isinstance(source, bytes) else source.read_bytes()
        frame = parse_partition(uri, data, id_column)
        yield from pa.Table.from_pandas(frame, preserve_index=False).to_batches(batch_rows)
        return
    try:
        reader = pq.ParquetFile(pa.BufferReader(source) if isinstance(source, bytes) else source)
        yield from reader.iter_batches(batch_size=batch_rows, columns=_data_columns(reader.schema_arrow))
    except (pa.ArrowInvalid, OSError) as error:
        raise RawDataError(f"{uri}: not a readable Parquet file ({error})") from error


def _locate_bytes(data: bytes, offset: int) -> str:
    """'line L, column 'name'' of a byte offset in a CSV file, so the error names the column."""
    line_start = data.rfind(b"\n", 0, offset) + 1
    line = data[:offset].count(b"\n") + 1
    header = data.split(b"\n", 1)[0].decode("utf-8", errors="replace").strip().split(",")
    field = data[line_start:offset].count(b",")
    column = header[field] if field < len(header) else f"#{field}"
    return f"line {line}, column '{column}'"
