"""gauntlet.datacheck: the dataset config against the raw partitions, each mismatch named by key, column and file."""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

from gauntlet import datacheck, layout, rawdata, storage
from gauntlet.config import PipelineConfig, config_from_dict, load_config, resolve
from gauntlet.errors import BadInput, DataConfigMismatch, ValidationFailed
from gauntlet.steps import validate

PREFIX = "raw/clinic"


def frame(rows: int = 40, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    age = rng.normal(50, 10, rows)
    age[::7] = np.nan
    return pd.DataFrame(
        {
            "row_id": [f"P{seed}{i:03d}" for i in range(rows)],
            "age": age,
            "region": rng.choice(["north", "south"], rows),
            "outcome": rng.choice(["benign", "malignant"], rows),
            "bmi": rng.normal(25, 3, rows),
        }
    )


def land(store: str, frames: list[pd.DataFrame], fmt: str = "parquet") -> list[rawdata.Partition]:
    for day, data in enumerate(frames, start=1):
        body = data.to_csv(index=False).encode() if fmt == "csv" else data.to_parquet(index=False)
        storage.put_bytes(layout.raw_partition_uri(store, PREFIX, dt.date(2026, 3, day), fmt), body)
    return rawdata.list_partitions(store, PREFIX)


def table_config(**dataset: Any) -> PipelineConfig:
    raw = yaml.safe_load(resolve("include/configs/digits.yaml").read_text())
    raw["dataset"] = {
        "name": "clinic",
        "raw_prefix": PREFIX,
        "expectation_suite": "include/expectations/digits.json",
        "id_column": "row_id",
        "label_column": "outcome",
        "classes": ["benign", "malignant"],
        **dataset,
    }
    raw["dataset"] = {key: value for key, value in raw["dataset"].items() if value is not None}
    return config_from_dict(raw)


def problems(config: PipelineConfig, partitions: list[rawdata.Partition]) -> str:
    with pytest.raises(DataConfigMismatch) as caught:
        datacheck.check(config, partitions)
    assert isinstance(caught.value, ValidationFailed) and isinstance(caught.value, BadInput)  # exit 2, no retry
    return str(caught.value)


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_a_config_that_matches_the_data_passes(store: str, fmt: str) -> None:
    partitions = land(store, [frame(seed=1), frame(seed=2)], fmt)
    datacheck.check(table_config(), partitions)
    datacheck.check(table_config(features=["bmi", "region"], categorical=["region"]), partitions)


def test_configured_columns_that_no_partition_has_are_named_with_their_key(store: str) -> None:
    partitions = land(store, [frame(seed=1), frame(seed=2).drop(columns=["bmi"])])
    text = problems(table_config(features=["age", "bmi", "weight"]), partitions)
    assert f"dataset.features 'weight' is not a column of any of the 2 partitions (e.g. {partitions[0].uri}" in text
    # One partition lacks 'bmi', the other has it: the suite's column rule reports that.
    assert "dataset.features 'bmi'" not in text
    text = problems(table_config(id_column="patient", label_column="diagnosis", exclude=["notes"]), partitions[:1])
    for key, column in (("id_column", "patient"), ("label_column", "diagnosis"), ("exclude", "notes")):
        assert f"dataset.{key} '{column}' is not a column of any of the 1 partitions" in text
    text = problems(table_config(feature_prefix="px_"), partitions[:1])
    assert "no feature columns start with dataset.feature_prefix 'px_'" in text
    text = problems(table_config(categorical=["age"], exclude=["age"]), partitions[:1])
    assert "dataset.categorical names 'age', which every column but dataset.exclude does not select" in text


def test_labels_outside_dataset_classes_beyond_the_quarantine_allowance_are_named(store: str) -> None:
    partitions = land(store, [frame(seed=1)])
    text = problems(table_config(classes=["benign", "cancer"]), partitions)
    assert f"{partitions[0].uri}: column 'outcome' (dataset.label_column): " in text
    assert (
        "labels are not among dataset.classes ['benign', 'cancer'] (e.g. ['malignant']; quarantine may set aside 0)"
        in text
    )
    text = problems(table_config(task="regression", classes=None), partitions)
    assert "dataset.task is regression but the label holds text values" in text
    # Two stray labels in 40 rows are the suite's to set aside when quarantine allows 5%.
    stray = frame(seed=3)
    stray.loc[[4, 9], "outcome"] = "unknown"
    datacheck.check(table_config(quarantine_max_fraction=0.05), land(store, [stray]))


def test_text_where_numbers_are_expected_is_named(store: str) -> None:
    typo = frame(seed=2)
    typo["bmi"] = typo["bmi"].map(str)
    typo.loc[3, "bmi"] = "n/a"  # one stray entry turns the column of a CSV, or this Parquet one, into text
    partitions = land(store, [typo])
    text = problems(table_config(), partitions)
    assert (
        f"{partitions[0].uri}: feature column 'bmi' (every column but dataset.exclude) is text, yet 39 of its 40"
        in text
    )
    assert "e.g. ['n/a'] are not" in text and "dataset.categorical" in text
    # Listed as categorical, the column is text by choice.
    datacheck.check(table_config(categorical=["bmi"]), partitions)
    # Text in one partition and numbers in another: a type fault of the data, for the suite to report.
    datacheck.check(table_config(), land(store, [typo, frame(seed=4)]))


def test_validate_fails_on_a_config_mismatch_before_the_suite(seeded_store: str) -> None:
    config = load_config(resolve("include/configs/digits.yaml"), ["dataset.classes=[0, 1, 2, 3, 4, 5, 6, 7, 8]"])
    # The digits suite allows the labels 0-9 (its in-set rule): a class the config lacks is the config's mistake.
    with pytest.raises(
        DataConfigMismatch, match=r"the suite digits_raw allows label values \[9\] that dataset\.classes"
    ):
        validate.run(config, seeded_store, dt.date(2026, 11, 1), dt.date(2026, 11, 8), "mismatch")
    assert not storage.exists(layout.validation_result_uri(seeded_store, "mismatch"))  # nothing for preprocess


def test_labels_the_suite_judges_are_left_to_it_and_the_classes_are_checked_against_its_set(store: str) -> None:
    suite = {
        "name": "clinic_raw",
        "expectations": [
            {
                "type": "expect_column_values_to_be_in_set",
                "kwargs": {"column": "outcome", "value_set": ["benign", "malignant"]},
            }
        ],
    }
    bad = frame(seed=5)
    bad.loc[:20, "outcome"] = "unknown"  # far beyond quarantine: the suite reports it, with examples
    partitions = land(store, [bad])
    datacheck.check(table_config(), partitions, suite)
    with pytest.raises(DataConfigMismatch) as caught:
        datacheck.check(table_config(classes=["benign", "cancer"]), partitions, suite)
    assert str(caught.value).endswith(
        "column 'outcome' (dataset.label_column): the suite clinic_raw allows label values ['malignant'] that "
        "dataset.classes ['benign', 'cancer'] does not list: add them to dataset.classes, or narrow the suite"
    )
