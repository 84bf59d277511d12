"""gauntlet.encoding: feature selection, the fit on train rows and encode_frame for every input kind."""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
import yaml
from testkit import ROOT

from gauntlet import config, encoding
from gauntlet.errors import BadInput, DataConfigMismatch

DIGITS = yaml.safe_load((ROOT / config.DEFAULT_CONFIG).read_text())


def _dataset(**changes: Any) -> config.DatasetConfig:
    raw = copy.deepcopy(DIGITS)
    del raw["dataset"]["feature_prefix"]
    raw["dataset"].update(changes)
    return config.config_from_dict(raw).dataset


COLUMNS = ["row_id", "date", "age", "label", "region", "visit_day", "bmi"]


def test_features_by_list_prefix_or_everything_but_id_label_exclude_and_date() -> None:
    assert encoding.select_features(COLUMNS, _dataset(features=["bmi", "age"]), "f") == ["bmi", "age"]
    assert encoding.select_features(["pixel_1", "row_id", "pixel_0"], _dataset(feature_prefix="pixel_"), "f") == [
        "pixel_1",
        "pixel_0",
    ]
    assert encoding.select_features(COLUMNS, _dataset(exclude=["visit_day"]), "f") == ["age", "region", "bmi"]
    with pytest.raises(DataConfigMismatch, match=r"f: dataset\.features lists \['weight'\]"):
        encoding.select_features(COLUMNS, _dataset(features=["age", "weight"]), "f")
    with pytest.raises(DataConfigMismatch, match=r"no feature columns start with dataset\.feature_prefix 'px'"):
        encoding.select_features(COLUMNS, _dataset(feature_prefix="px"), "f")


def test_column_kinds_come_from_the_arrow_type_and_dataset_categorical() -> None:
    ds = _dataset(categorical=["code"])
    assert encoding.column_kind("age", pa.float64(), ds, "f") == encoding.NUMERIC
    assert encoding.column_kind("code", pa.int64(), ds, "f") == encoding.CATEGORICAL
    assert encoding.column_kind("region", pa.string(), ds, "f") == encoding.CATEGORICAL
    assert encoding.column_kind("smoker", pa.bool_(), ds, "f") == encoding.CATEGORICAL
    with pytest.raises(DataConfigMismatch, match=r"'seen' has type timestamp.*dataset\.exclude"):
        encoding.column_kind("seen", pa.timestamp("s"), ds, "f")


def test_label_index_matches_labels_to_classes_by_text_and_names_a_stranger() -> None:
    assert encoding.label_index(pa.array(["b", "a", "b"]), ["a", "b"]).tolist() == [1, 0, 1]
    assert encoding.label_index(pa.array([3, 1]), [1, 3]).tolist() == [1, 0]
    assert encoding.label_index(pa.array([1.0, 0.0]), [0, 1]).tolist() == [1, 0]
    assert encoding.label_index(pa.array([True, False]), [0, 1]).tolist() == [1, 0]
    assert encoding.label_index(pd.Series(["1", "0"]), [0, 1]).tolist() == [1, 0]
    assert encoding.label_index(pa.array([9, 0], pa.int8()), list(range(10))).dtype == np.int64
    with pytest.raises(
        DataConfigMismatch, match=r"y\.csv: label value\(s\) \['maybe'\] are not among dataset\.classes"
    ):
        encoding.label_index(pa.array(["yes", "maybe"]), ["no", "yes"], "y.csv")
    with pytest.raises(DataConfigMismatch, match=r"\['10'\].*\[0, 1, 2"):
        encoding.label_index(pa.array([10, 1]), list(range(10)))
    with pytest.raises(DataConfigMismatch, match="1 missing labels"):
        encoding.label_index(pa.array(["a", None]), ["a", "b"])


def test_a_regression_label_must_be_numeric() -> None:
    assert encoding.regression_target(pa.array([1, 2])).dtype == np.float64
    with pytest.raises(DataConfigMismatch, match="regression but the label holds text values"):
        encoding.regression_target(pa.array(["1.5", "x"]))


def test_moments_over_the_values_present_match_standard_scaler_per_column() -> None:
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(0)
    x = rng.normal(3, 2, size=(999, 4)).astype(np.float32)
    x[rng.random(999) < 0.3, 1] = np.nan  # a column with nulls: its own count
    x[:, 2] = 7.0  # constant: scale 1
    x[:, 3] = np.nan  # no values at all: mean 0, scale 1
    moments = encoding.Moments(4)
    for chunk in np.array_split(x, 5):
        moments.add([encoding.numeric_column(pa.array(c), "x") for c in chunk.T])
    scaler = StandardScaler().fit(x[:, :3])  # sklearn ignores NaN when fitting, column by column
    assert moments.n.tolist() == [999, int((~np.isnan(x[:, 1])).sum()), 999, 0]
    np.testing.assert_allclose(moments.mean[:3], scaler.mean_, rtol=1e-9)
    np.testing.assert_allclose(moments.scale()[:3], scaler.scale_, rtol=1e-9)
    assert moments.mean[3] == 0 and moments.scale()[3] == 1


def _fit(ds: config.DatasetConfig, train: pd.DataFrame, inputs: list[tuple[str, str]]) -> dict[str, Any]:
    table = pa.Table.from_pandas(train, preserve_index=False)
    numeric = encoding.Moments(len(encoding.numeric_inputs(inputs)))
    numeric.add([encoding.numeric_column(table.column(n), n) for n in encoding.numeric_inputs(inputs)])
    categories = encoding.CategoryCounts(len(encoding.categorical_inputs(inputs)))
    categories.add([encoding.category_text(table.column(n)) for n in encoding.categorical_inputs(inputs)])
    medians = {"age": float(train["age"].median())}
    return encoding.fit_preprocessor(ds, inputs, numeric, categories, len(train), medians, None)


TRAIN = pd.DataFrame(
    {
        "age": [30.0, None, 50.0, 41.0],
        "region": ["west", "east", None, "west"],
        "code": [2, 1, 2, 2],  # numeric-typed, listed in dataset.categorical
    }
)
INPUTS = [("age", "numeric"), ("region", "categorical"), ("code", "categorical")]


def test_one_hot_encoding_with_imputation_and_an_unknown_bucket() -> None:
    from sklearn.preprocessing import StandardScaler

    pre = _fit(_dataset(categorical=["code"]), TRAIN, INPUTS)
    assert pre["features"] == [
        "age",
        "region=east",
        "region=west",
        "region=<unknown>",
        "code=1",
        "code=2",
        "code=<unknown>",
    ]
    assert pre["inputs"][0] == {"name": "age", "kind": "numeric", "impute": 41.0}  # the train median
    assert pre["inputs"][1]["categories"] == ["east", "west"]  # sorted, nulls are not a category
    encoded = encoding.encode_frame(TRAIN, pre)
    assert encoded.dtype == np.float32 and encoded.shape == (4, 7)
    assert encoded[1].tolist() == [41.0, 1, 0, 0, 1, 0, 0]
    assert encoded[2].tolist() == [50.0, 0, 0, 1, 0, 1, 0]  # a null category: the unknown bucket
    # mean/scale are StandardScaler's on the encoded train rows (numeric columns over values present).
    scaler = StandardScaler().fit(encoded[:, 1:])
    np.testing.assert_allclose(pre["mean"][1:], scaler.mean_)
    np.testing.assert_allclose(pre["scale"][1:], scaler.scale_)
    np.testing.assert_allclose(pre["mean"][0], 40.333333, rtol=1e-6)
    # Raw rows: an unseen category, a missing number, a code as float or text, and other dtypes.
    raw = pd.DataFrame({"code": [1.0, None], "region": ["north", "east"], "age": [None, 20]})
    assert encoding.encode_frame(raw, pre).tolist() == [[41.0, 0, 0, 1, 1, 0, 0], [20.0, 1, 0, 0, 0, 0, 1]]


def test_ordinal_encoding_codes_categories_and_unknown_as_minus_one() -> None:
    pre = _fit(_dataset(categorical=["code"], categorical_encoding="ordinal", imputation="zero"), TRAIN, INPUTS)
    assert pre["features"] == ["age", "region", "code"] and pre["inputs"][0]["impute"] == 0.0
    encoded = encoding.encode_frame(TRAIN, pre)
    assert encoded[:, 1].tolist() == [1, 0, -1, 1] and encoded[:, 2].tolist() == [1, 0, 1, 1]
    np.testing.assert_allclose(pre["mean"][1:], encoded[:, 1:].mean(axis=0), rtol=1e-6)
    np.testing.assert_allclose(pre["scale"][1:], encoded[:, 1:].std(axis=0), rtol=1e-6)


def test_encode_frame_refuses_a_missing_column_or_text_in_a_numeric_one() -> None:
    pre = _fit(_dataset(categorical=["code"]), TRAIN, INPUTS)
    with pytest.raises(BadInput, match="no column 'region'"):
        encoding.encode_frame(TRAIN.drop(columns=["region"]), pre)
    with pytest.raises(BadInput, match="column 'age' holds values that are not numbers"):
        encoding.encode_frame(TRAIN.assign(age=["x", "1", "2", "3"]), pre)


def test_one_hot_refuses_a_column_with_too_many_categories() -> None:
    many = pd.DataFrame({"name": [f"n{i}" for i in range(encoding.MAX_ONE_HOT_CATEGORIES + 1)]})
    with pytest.raises(DataConfigMismatch, match=r"'name' has 1001 categories.*categorical_encoding: ordinal"):
        table = pa.Table.from_pandas(many)
        counts = encoding.CategoryCounts(1)
        counts.add([table.column("name")])
        encoding.fit_preprocessor(
            _dataset(), [("name", "categorical")], encoding.Moments(0), counts, len(many), {}, None
        )
