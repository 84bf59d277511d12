"""gauntlet.demo: scikit-learn's digits, wine and diabetes landed in S3 as daily raw partitions."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from gauntlet import demo, layout, rawdata, storage
from gauntlet.errors import BadInput

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


def test_wine_has_text_ids_and_its_cultivar_names_as_the_label() -> None:
    frame = demo.dataset_frame("wine")
    assert list(frame.columns[:3]) == ["row_id", "cultivar", "alcohol"] and len(frame) == 178
    assert frame["row_id"].is_unique and frame["row_id"].iloc[1] == "wine-00001"
    assert sorted(set(frame["cultivar"])) == ["class_0", "class_1", "class_2"]
    assert "od280/od315_of_diluted_wines" in frame.columns  # names as the source gives them, no common prefix


def test_diabetes_is_in_its_original_units_with_a_numeric_score() -> None:
    frame = demo.dataset_frame("diabetes")
    assert list(frame.columns[:3]) == ["row_id", "progression", "age"] and len(frame) == 442
    assert frame["row_id"].iloc[0] == "diabetes-00000" and frame["progression"].dtype == "float64"
    assert frame["age"].min() >= 19 and set(frame["sex"]) == {1.0, 2.0}  # not scikit-learn's scaled copy


def test_seed_lands_another_table_and_refuses_an_unknown_one(store: str) -> None:
    landed = demo.seed(store, "raw/wine", DAY, 3, dataset="wine")
    frames = [rawdata.read_partition(p.uri) for p in rawdata.list_partitions(store, "raw/wine")]
    assert [len(f) for f in frames] == [item["rows"] for item in landed]
    assert pd.concat(frames)["row_id"].str.startswith("wine-").all() and sum(map(len, frames)) == 178
    with pytest.raises(BadInput, match=r"unknown demo dataset 'iris' \(known: digits, wine, diabetes\)"):
        demo.seed(store, "raw/iris", DAY, 3, dataset="iris")
