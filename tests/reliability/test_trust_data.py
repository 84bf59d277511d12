"""The data the frozen split is built on: ids unique across the snapshot, quarantine by row id, and
a row's split a function of its id's canonical text, whatever the file format.

Each test lands small partitions built from the demo digits in a fresh bucket of the S3 server
and runs the steps as the pipeline does (validate's written result, preprocess's dataset).
"""

from __future__ import annotations

import datetime as dt
import io
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
import yaml
from corpus import frames, parquet

from gauntlet import errors, storage
from gauntlet.config import PipelineConfig, load_config, resolve
from gauntlet.errors import ProtocolError, RowIdError
from gauntlet.protocol import Protocol, load_protocol, protocol_from_bytes
from gauntlet.splits import assign_splits, canonical_id, canonical_id_array, split_of
from gauntlet.steps import preprocess, validate

GOOD, OTHER = frames()
DAY1, DAY2, END = dt.date(2026, 11, 7), dt.date(2026, 11, 8), dt.date(2026, 11, 9)
PROTOCOL = load_protocol(resolve("include/protocols/digits-v1.yaml"))


def _config(prefix: str, engine: str = "gx") -> PipelineConfig:
    return load_config(
        resolve("include/configs/digits.yaml"), [f"dataset.raw_prefix={prefix}", f"dataset.validation={engine}"]
    )


def _land(store: str, prefix: str, day: dt.date, data: bytes, suffix: str = "parquet") -> str:
    uri = f"{store}/{prefix}/date={day.isoformat()}/part-00000.{suffix}"
    storage.put_bytes(uri, data)
    return uri


def _dataset_rows(dataset_uri: str) -> pd.DataFrame:
    with storage.temp_dir() as tmp:
        storage.fetch_committed(dataset_uri, tmp)
        parts = [
            pd.read_parquet(path).assign(split=split)
            for split in ("train", "dev", "test")
            for path in sorted(Path(tmp, split).glob("*.parquet"))
        ]
    return pd.concat(parts, ignore_index=True)


# --------------------------------------------------------------------------------------------
# Row ids are unique across the snapshot, in both engines, in the result validate writes
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("engine", ["gx", "vectorised"])
def test_an_id_landed_again_on_a_later_day_fails_the_run(store: str, engine: str) -> None:
    """Day 2 re-lands three of day 1's ids with other labels, and has one quarantinable outlier, so
    the snapshot fails together and each file is judged alone: each file passes its own rules,
    the snapshot must not."""
    prefix = f"raw/relanded-{engine}"
    first = _land(store, prefix, DAY1, parquet(GOOD))
    relanded = OTHER.copy()
    relanded.loc[:2, "row_id"] = GOOD.loc[:2, "row_id"]
    relanded.loc[:2, "label"] = (GOOD.loc[:2, "label"] + 1) % 10
    relanded.loc[50, "pixel_10"] = 1_000  # a row-level failure: quarantined, not failed
    second = _land(store, prefix, DAY2, parquet(relanded))

    with pytest.raises(errors.ValidationFailed) as failure:
        validate.run(_config(prefix, engine), store, DAY2, END, f"relanded-{engine}")

    message = str(failure.value)
    shared = GOOD.loc[0, "row_id"]
    assert "expect_column_values_to_be_unique" in message and "one_label_per_id" in message
    assert first in message and second in message and repr(shared) in message
    result = storage.get_json(f"{store}/runs/relanded-{engine}/validation/result.json")
    assert result["verdict"] == "failed"
    assert all(p["success"] for p in result["partitions"])  # each file alone passes
    [unique, labels] = result["snapshot"]["failed"]
    assert unique["unexpected_count"] == 3 and unique["examples"] == sorted(GOOD.loc[:2, "row_id"])
    assert labels["column"] == "label" and labels["unexpected_count"] == 3


def test_an_integer_id_and_its_text_are_one_row(store: str) -> None:
    """7 in a Parquet int column and "7" in a CSV are the same row of the split: a duplicate."""
    prefix = "raw/int-and-text"
    numbered = GOOD.iloc[:20].assign(row_id=np.arange(20, dtype=np.int64))
    _land(store, prefix, DAY1, parquet(numbered))
    texts = OTHER.iloc[:20].assign(row_id=[str(i) for i in range(19, 39)])
    _land(store, prefix, DAY2, texts.to_csv(index=False).encode(), "csv")
    with pytest.raises(
        errors.ValidationFailed, match=r"1 row ids appear in more than one partition of the snapshot, e\.g\. '19' in "
    ):
        validate.run(_config(prefix), store, DAY2, END, "int-and-text")


# --------------------------------------------------------------------------------------------
# Quarantine removes the rows it names
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "keep",
    [
        pytest.param(lambda f: f.index % 2 == 0, id="range-index-metadata"),  # stored as RangeIndex(step=2)
        pytest.param(lambda f: ~f.index.isin([1, 4, 5, 9, 30]), id="stored-index-column"),  # __index_level_0__
    ],
)
def test_quarantine_drops_the_bad_row_of_a_file_written_from_a_filtered_frame(store: str, keep: Any) -> None:
    prefix = "raw/filtered"
    _land(store, prefix, DAY1, parquet(GOOD))
    filtered = OTHER[keep(OTHER)].copy()  # the index keeps the labels of the unfiltered frame
    bad_id = filtered["row_id"].iloc[7]
    filtered.loc[filtered.index[7], "pixel_10"] = 1_000
    buffer = io.BytesIO()
    filtered.to_parquet(buffer)  # index preserved, as pandas does by default
    _land(store, prefix, DAY2, buffer.getvalue())
    config = _config(prefix)

    outputs = validate.run(config, store, DAY2, END, "filtered")
    result = storage.get_json(outputs["result_uri"])
    [held] = [p["quarantine"] for p in result["partitions"] if "quarantine" in p]
    assert held["count"] == 1
    rows = _dataset_rows(preprocess.run(config, PROTOCOL, store, outputs["result_uri"])["dataset_uri"])
    assert bad_id not in set(rows["row_id"]), "the quarantined row reached the dataset"
    assert sorted(rows["row_id"]) == sorted({*GOOD["row_id"], *filtered["row_id"]} - {bad_id})
    assert held["row_ids"] == [bad_id] and held["rows"] == [7]  # 7th row of the file, whatever its index label


# --------------------------------------------------------------------------------------------
# A row's split is a function of its id's canonical text
# --------------------------------------------------------------------------------------------


def test_canonical_id_text() -> None:
    assert canonical_id("007") == "007"
    assert canonical_id(7) == canonical_id(np.int64(7)) == "7"
    assert canonical_id(np.int64(2**53 + 1)) == "9007199254740993"
    for bad in (7.0, True, None, np.float64(3)):
        with pytest.raises(RowIdError, match="row ids must be text or integers"):
            canonical_id(bad)
    assert canonical_id_array(pa.array([2**53 + 1, 7]), "f").to_pylist() == ["9007199254740993", "7"]
    assert canonical_id_array(pa.array(["007"]), "f").to_pylist() == ["007"]
    with pytest.raises(RowIdError, match=r"s3://b/x.parquet: column 'row_id'.*double.*strings"):
        canonical_id_array(pa.array([1.0, 2.0]), "s3://b/x.parquet: column 'row_id'")
    with pytest.raises(RowIdError, match=r"1 missing row ids \(rows \[1\]"):
        canonical_id_array(pa.array(["a", None]), "f")
    assert isinstance(RowIdError("x"), errors.BadInput)  # exit 2, never retried
    assert list(assign_splits([7, "7"], PROTOCOL)) == [split_of("7", PROTOCOL)] * 2


def test_split_follows_the_id_text_in_csv_and_parquet(store: str) -> None:
    """CSV ids 0007.. stay text (leading zeros kept); Parquet int ids above 2^53 hash as their exact
    decimal: every dataset row sits in split_of(its id's text)."""
    prefix = "raw/id-text"
    zeros = GOOD.assign(row_id=[f"{i:04d}" for i in range(len(GOOD))])
    _land(store, prefix, DAY1, zeros.to_csv(index=False).encode(), "csv")
    big = OTHER.assign(row_id=np.arange(2**53 + 1, 2**53 + 1 + len(OTHER), dtype=np.int64))
    _land(store, prefix, DAY2, parquet(big))
    for engine in ("gx", "vectorised"):
        config = _config(prefix, engine)
        outputs = validate.run(config, store, DAY2, END, f"id-text-{engine}")
        result = storage.get_json(outputs["result_uri"])
        assert result["verdict"] == "passed" and result["engine"]["engine"] == engine
    rows = _dataset_rows(preprocess.run(config, PROTOCOL, store, outputs["result_uri"])["dataset_uri"])
    expected = {*zeros["row_id"], *(str(int(i)) for i in big["row_id"])}
    assert set(rows["row_id"]) == expected and len(rows) == len(expected)
    assert "0007" in expected and str(2**53 + 1) in expected
    assert (rows["split"] == [split_of(r, PROTOCOL) for r in rows["row_id"]]).all()


@pytest.mark.parametrize("engine", ["gx", "vectorised"])
def test_float_ids_fail_validation_naming_the_column(store: str, engine: str) -> None:
    prefix = f"raw/float-ids-{engine}"
    _land(store, prefix, DAY1, parquet(GOOD))
    floats = OTHER.assign(row_id=np.arange(len(OTHER), dtype=np.float64) + 1000)
    bad = _land(store, prefix, DAY2, parquet(floats))
    with pytest.raises(errors.ValidationFailed) as failure:
        validate.run(_config(prefix, engine), store, DAY2, END, f"float-ids-{engine}")
    message = str(failure.value)
    assert f"{bad}: expect_column_values_to_be_in_type_list on column 'row_id'" in message


def test_preprocess_refuses_float_ids_naming_file_and_column(store: str) -> None:
    """Whatever a suite says, preprocess never hashes a float's text as an id."""
    prefix = "raw/float-preprocess"
    uri = _land(store, prefix, DAY1, parquet(GOOD.assign(row_id=np.arange(len(GOOD), dtype=np.float64))))
    validation = {
        "verdict": "passed",
        "partitions": [{"uri": uri, "date": DAY1.isoformat(), "etag": storage.get_object(uri)[1]}],
    }
    result_uri = f"{store}/runs/float/validation/result.json"
    storage.put_json(result_uri, validation)
    with pytest.raises(RowIdError, match=f"{uri}: column 'row_id'.*double"):
        preprocess.run(_config(prefix), PROTOCOL, store, result_uri)
    assert not list(storage.list_objects(f"{store}/datasets/"))


def test_preprocess_keys_the_split_by_the_protocols_id_column(store: str) -> None:
    config = load_config(resolve("include/configs/digits.yaml"), ["dataset.id_column=label"])
    with pytest.raises(errors.BadInput, match=r"dataset\.id_column is 'label' but the protocol .* 'row_id'"):
        preprocess.run(config, PROTOCOL, store, f"{store}/runs/none/validation/result.json")


def test_excluded_row_ids_must_be_quoted_and_survive_a_yaml_round_trip() -> None:
    raw = yaml.safe_load(resolve("include/protocols/digits-v1.yaml").read_text())
    with pytest.raises(ProtocolError, match="excluded_row_ids entries must be quoted strings, got 8"):
        protocol_from_bytes(yaml.safe_dump(raw).encode() + b"excluded_row_ids: [010]\n")
    quoted = protocol_from_bytes(yaml.safe_dump(raw).encode() + b"excluded_row_ids: ['010', '7']\n")
    assert quoted.excluded_row_ids == ("010", "7")
    # ledger confirm writes the protocol with yaml.safe_dump: a numeric-looking id stays text.
    again = protocol_from_bytes(yaml.safe_dump({**raw, "excluded_row_ids": ["010", "7"]}).encode())
    assert again.excluded_row_ids == ("010", "7") and again.id == Protocol.from_dict(quoted.raw).id


# --------------------------------------------------------------------------------------------
# Inputs a retry cannot fix fail, and say so
# --------------------------------------------------------------------------------------------


def test_a_snapshot_without_partitions_fails_naming_the_prefix(store: str) -> None:
    """A mistyped prefix lists nothing: a failure, not a quiet skip, even for a scheduled night."""
    _land(store, "raw/digits", DAY1, parquet(GOOD))
    for require_new in (False, True):
        with pytest.raises(errors.BadInput, match=f"no raw partitions under {store}/raw/digtis/ dated before"):
            validate.run(_config("raw/digtis"), store, DAY2, END, "typo", require_new=require_new)
    # An empty interval over a non-empty snapshot is still a skip.
    with pytest.raises(errors.NoNewData):
        validate.run(_config("raw/digits"), store, DAY2, END, "quiet", require_new=True)


def test_a_file_changed_since_validation_is_bad_input(store: str) -> None:
    prefix = "raw/changed"
    uri = _land(store, prefix, DAY1, parquet(GOOD))
    config = _config(prefix)
    outputs = validate.run(config, store, DAY1, DAY2, "changed")
    storage.put_bytes(uri, parquet(GOOD.iloc[:-1]))
    with pytest.raises(errors.BadInput, match=f"{uri} changed since it was validated"):
        preprocess.run(config, PROTOCOL, store, outputs["result_uri"])
