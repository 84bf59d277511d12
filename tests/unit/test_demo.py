"""gauntlet.demo: scikit-learn's digits landed in S3 as daily raw partitions."""

from __future__ import annotations

import datetime as dt

import pandas as pd

from gauntlet import demo, layout, rawdata, storage

DAY = dt.date(2026, 11, 1)


def test_the_digits_frame_has_unique_text_ids_a_label_and_64_pixels() -> None:
    frame = demo.digits_frame()
    assert list(frame.columns) == ["row_id", "label", *(f"pixel_{i}" for i in range(64))]
    assert frame["row_id"].is_unique and frame["row_id"].iloc[0] == "digits-00000"
    assert set(frame["label"]) == set(range(10)) and frame.filter(like="pixel_").to_numpy().max() == 16


def test_seed_lands_every_row_once_over_consecutive_days(store: str) -> None:
    landed = demo.seed(store, "raw/digits", DAY, 3)
    assert [item["date"] for item in landed] == ["2026-11-01", "2026-11-02", "2026-11-03"]
    assert [item["uri"] for item in landed] == [
        layout.raw_partition_uri(store, "raw/digits", DAY + dt.timedelta(days=i)) for i in range(3)
    ]
    partitions = rawdata.list_partitions(store, "raw/digits")
    frames = [rawdata.read_partition(p.uri) for p in partitions]
    assert [len(f) for f in frames] == [item["rows"] for item in landed]
    ids = pd.concat(frames)["row_id"]
    assert ids.is_unique and len(ids) == len(demo.digits_frame())


def test_the_same_seed_lands_the_same_bytes_and_another_seed_shuffles(store: str) -> None:
    first = demo.seed(store, "raw/a", DAY, 2, seed=0)
    again = demo.seed(store, "raw/b", DAY, 2, seed=0)
    other = demo.seed(store, "raw/c", DAY, 2, seed=1)
    data = [storage.get_bytes(run[0]["uri"]) for run in (first, again, other)]
    assert data[0] == data[1] != data[2]


def test_a_csv_uri_gets_a_csv_file(store: str) -> None:
    uri = layout.raw_partition_uri(store, "raw/csv", DAY, "csv")
    demo.write_partition(uri, demo.digits_frame().head(3))
    assert storage.get_bytes(uri).startswith(b"row_id,label,pixel_0")
    assert rawdata.read_partition(uri, "row_id")["row_id"].tolist() == ["digits-00000", "digits-00001", "digits-00002"]
