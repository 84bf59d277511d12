"""gauntlet.rawdata: where raw partitions live, which ones a run reads, and how a file is parsed."""

from __future__ import annotations

import datetime as dt
import io

import pandas as pd
import pytest

from gauntlet import layout, rawdata, storage
from gauntlet.errors import RawDataError

PREFIX = "raw/events"
CSV = "s3://b/raw/e/date=2026-11-01/part-00000.csv"
PARQUET = "s3://b/raw/e/date=2026-11-01/part-00000.parquet"


def _parquet(frame: pd.DataFrame) -> bytes:
    buffer = io.BytesIO()
    frame.to_parquet(buffer)
    return buffer.getvalue()


def test_partitions_are_the_part_files_under_date_directories_in_date_order(store: str) -> None:
    for day in (3, 1, 2):
        storage.put_bytes(layout.raw_partition_uri(store, PREFIX, dt.date(2026, 11, day), "csv"), b"row_id\n1\n")
    root = layout.raw_root(store, PREFIX)
    storage.put_bytes(f"{root}/date=2026-11-01/_SUCCESS", b"")
    storage.put_bytes(f"{root}/date=2026-11-01/notes.txt", b"x")
    storage.put_bytes(f"{root}/README.csv", b"x")
    found = rawdata.list_partitions(store, PREFIX)
    assert [p.date.day for p in found] == [1, 2, 3]
    assert found[0].as_dict() == {"uri": found[0].uri, "date": "2026-11-01", "etag": found[0].etag, "size": 9}
    assert rawdata.select(found, dt.date(2026, 11, 2), dt.date(2026, 11, 3)) == [found[1]]  # [start, end)
    assert rawdata.select(found, None, dt.date(2026, 11, 3)) == found[:2]  # the snapshot before `end`


def test_a_date_directory_that_is_no_calendar_date_is_refused_not_skipped(store: str) -> None:
    storage.put_bytes(f"{layout.raw_root(store, PREFIX)}/date=2026-02-30/part-00000.csv", b"row_id\n1\n")
    with pytest.raises(RawDataError, match=r"date=2026-02-30.*YYYY-MM-DD"):
        rawdata.list_partitions(store, PREFIX)


def test_a_csv_id_column_is_read_as_text_so_leading_zeros_survive() -> None:
    data = b"row_id,label\n007,1\n010,2\n"
    assert rawdata.parse_partition(CSV, data, "row_id")["row_id"].tolist() == ["007", "010"]
    assert rawdata.parse_partition(CSV, data)["row_id"].tolist() == [7, 10]  # what the id would become
    batches = list(rawdata.iter_batches(CSV, data, id_column="row_id"))
    assert batches[0].column("row_id").to_pylist() == ["007", "010"]  # the streamed path agrees


def test_parquet_written_from_a_filtered_frame_reads_back_indexed_from_zero() -> None:
    frame = pd.DataFrame({"row_id": ["a", "b", "c"], "x": [1, 2, 3]}).iloc[[0, 2]]
    parsed = rawdata.parse_partition(PARQUET, _parquet(frame))
    assert list(parsed.columns) == ["row_id", "x"] and parsed.index.tolist() == [0, 1]
    batches = list(rawdata.iter_batches(PARQUET, _parquet(frame), batch_rows=1))
    assert [b.num_rows for b in batches] == [1, 1] and batches[0].schema.names == ["row_id", "x"]


@pytest.mark.parametrize(
    ("uri", "data", "message"),
    [
        (CSV, b"", "file is empty"),
        (CSV, "row_id,name\n1,ok\n2,caf\u00e9\n".encode("latin-1"), r"line 3, column 'name' is not valid UTF-8"),
        (PARQUET, b"not parquet at all", "not a readable Parquet file"),
    ],
)
def test_unreadable_files_are_bad_input_naming_the_file(uri: str, data: bytes, message: str) -> None:
    with pytest.raises(RawDataError, match=message) as caught:
        rawdata.parse_partition(uri, data)
    assert str(caught.value).startswith(uri)
