"""gauntlet.profiling: a bounded, spread sample of a table's partitions, profiled per column."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from gauntlet import demo, layout, profiling
from gauntlet.errors import InitError

DAY = dt.date(2026, 11, 1)


def table(n: int = 60, start: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(start)
    return pd.DataFrame(
        {
            "patient": [f"P{i:05d}" for i in range(start, start + n)],
            "outcome": rng.choice(["healthy", "sick"], n),
            "region": rng.choice(["east", "west"], n),
            "age": rng.integers(18, 90, n),
            "bmi": np.where(np.arange(n) % 5 == 0, np.nan, rng.normal(25, 4, n).round(1)),
            "smoker": rng.random(n) < 0.3,
        }
    )


def land(store: str, prefix: str, days: int, rows: int = 60, fmt: str = "parquet") -> list[str]:
    uris = []
    for i in range(days):
        uri = layout.raw_partition_uri(store, prefix, DAY + dt.timedelta(days=i), fmt)
        demo.write_partition(uri, table(rows, start=i * rows))
        uris.append(uri)
    return uris


def test_spread_keeps_the_first_and_last_and_spaces_the_rest() -> None:
    items = [str(i) for i in range(10)]
    assert profiling.spread(items, 3) == ["0", "4", "9"]
    assert profiling.spread(items, 20) == items
    assert profiling.spread(items, 1) == ["9"]


def test_a_column_profile_counts_nan_as_missing_and_knows_whole_numbers(store: str) -> None:
    land(store, "raw/own", 2)
    profile = profiling.read_sample(layout.raw_root(store, "raw/own"), "patient")
    assert profile.rows == 120 and profile.names == ["patient", "outcome", "region", "age", "bmi", "smoker"]
    bmi, age = profile.column("bmi"), profile.column("age")
    assert bmi.kind == "numeric" and bmi.nulls == 24 and not bmi.integral and bmi.values is None
    assert age.kind == "numeric" and age.integral and age.nulls == 0 and 18 <= age.minimum <= age.maximum < 90
    assert profile.column("region").values == ("east", "west") and profile.column("region").kind == "text"
    assert profile.column("smoker").kind == "bool"
    assert profile.duplicates("patient") == (0, [])
    assert sum(profile.counts("outcome").values()) == 120


def test_the_row_budget_is_shared_over_partitions_from_first_to_last(store: str) -> None:
    uris = land(store, "raw/big", 5)
    profile = profiling.read_sample(layout.raw_root(store, "raw/big"), "patient", max_rows=50, max_files=3)
    assert profile.files == (uris[0], uris[2], uris[4]) and profile.files_total == 5
    assert profile.rows == 51 and profile.truncated  # ceil(50 / 3) rows from each file
    first_ids = {f"P{i:05d}" for i in range(60)}
    last_ids = {f"P{i:05d}" for i in range(240, 300)}
    ids = set(profile.table["patient"].to_pylist())
    assert ids & first_ids and ids & last_ids


def test_an_s3_prefix_lists_only_partition_files_like_rawdata(store: str) -> None:
    uris = land(store, "raw/own", 2)
    demo.write_partition(layout.raw_root(store, "raw/own") + "/README.parquet", table(3))
    demo.write_partition(layout.raw_root(store, "raw/own") + "/date=2026-11-09/notes.csv", table(3))
    assert profiling.data_files(layout.raw_root(store, "raw/own") + "/") == uris


def test_a_local_folder_or_file_is_read_and_a_csv_id_keeps_its_text(tmp_path: Path) -> None:
    frame = table(10)
    frame["patient"] = [f"{i:03d}" for i in range(10)]  # leading zeros: text, as validate reads them
    (tmp_path / "date=2026-11-01").mkdir()
    frame.to_csv(tmp_path / "date=2026-11-01" / "part-00000.csv", index=False)
    table(5, start=100).to_parquet(tmp_path / "extra.parquet", index=False)
    assert len(profiling.data_files(str(tmp_path))) == 2
    one = profiling.read_sample(str(tmp_path / "date=2026-11-01" / "part-00000.csv"), "patient")
    assert one.rows == 10 and one.column("patient").kind == "text"
    assert one.table["patient"].to_pylist()[:2] == ["000", "001"]


def test_no_data_and_differing_columns_are_refused_by_name(store: str, tmp_path: Path) -> None:
    with pytest.raises(InitError, match=r"no data under .*empty.*check the --from location"):
        profiling.data_files(str(tmp_path / "empty"))
    land(store, "raw/mixed", 1)
    other = table(5).drop(columns=["smoker"])
    demo.write_partition(layout.raw_partition_uri(store, "raw/mixed", DAY + dt.timedelta(days=1)), other)
    with pytest.raises(InitError, match=r"columns \['smoker'\].*every partition must have the same columns"):
        profiling.read_sample(layout.raw_root(store, "raw/mixed"), "patient")


def test_the_summary_gives_rows_types_nulls_and_class_balance(store: str) -> None:
    land(store, "raw/own", 1)
    profile = profiling.read_sample(layout.raw_root(store, "raw/own"), "patient")
    text = "\n".join(profiling.summary_lines(profile, "outcome"))
    assert "read 60 rows from 1 of 1 files" in text
    assert "  bmi: numeric, double, 12 nulls" in text and "  region: text" in text
    counts = profile.counts("outcome")
    assert f"label 'outcome': 'healthy' {counts['healthy']} ({counts['healthy'] / 60:.0%})" in text
