"""gauntlet.scaffold: what `gauntlet init` decides from a profiled sample, and the three files it writes."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
import yaml

from gauntlet import demo, layout, profiling, scaffold
from gauntlet.config import config_from_dict
from gauntlet.errors import InitError
from gauntlet.protocol import protocol_from_bytes

STORE = "s3://bucket"
REPO = Path(__file__).resolve().parents[2]


def profile_of(frame: pd.DataFrame, source: str = "s3://bucket/raw/own") -> profiling.Profile:
    table = pa.Table.from_pandas(frame, preserve_index=False)
    columns = tuple(profiling.profile_column(name, table[name]) for name in table.column_names)
    return profiling.Profile(
        source, (source + "/date=2026-11-01/part-00000.parquet",), 1, len(frame), False, columns, table
    )


def own(n: int = 80) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame(
        {
            "patient": [f"P{i:05d}" for i in range(n)],
            "outcome": rng.choice(["sick", "healthy"], n),
            "region": rng.choice(["east", "west", "north"], n),
            "age": rng.integers(18, 90, n),
            "bmi": np.where(np.arange(n) % 4 == 0, np.nan, rng.normal(25, 4, n).round(1)),
            "smoker": rng.random(n) < 0.3,
            "note": [f"text {i}" for i in range(n)],
            "date": ["2026-11-01"] * n,
        }
    )


def plan_of(frame: pd.DataFrame, label: str = "outcome", task: str | None = None) -> scaffold.Plan:
    return scaffold.plan(profile_of(frame), "own", "patient", label, task, STORE)


# --- refusals --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("id_column", "label", "message"),
    [
        ("pid", "outcome", r"--id column 'pid' is not in the data; its columns are: patient, outcome, region"),
        ("patient", "y", r"--label column 'y' is not in the data; its columns are: patient, outcome"),
        ("patient", "patient", r"--id and --label both name 'patient'"),
    ],
)
def test_an_unknown_id_or_label_column_is_refused_listing_the_columns(id_column: str, label: str, message: str) -> None:
    with pytest.raises(InitError, match=message):
        scaffold.plan(profile_of(own()), "own", id_column, label, None, STORE)


def test_repeated_ids_are_refused_with_examples() -> None:
    frame = own()
    frame.loc[5, "patient"] = frame.loc[3, "patient"] = "P00001"
    with pytest.raises(InitError, match=r"'patient' is not unique: 1 values occur more than once .* e.g. 'P00001'"):
        plan_of(frame)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"outcome": "sick"}, r"label column 'outcome' has one value \('sick'\) in the 80 sampled rows"),
        ({"patient": 1.5}, r"id column 'patient' is double: row ids must be text or integers"),
    ],
)
def test_a_one_valued_label_or_a_float_id_is_refused(change: dict[str, object], message: str) -> None:
    frame = own()
    for column, value in change.items():
        frame[column] = [value + i if isinstance(value, float) else value for i in range(len(frame))]
    with pytest.raises(InitError, match=message):
        plan_of(frame)


def test_missing_labels_and_fractional_class_labels_are_refused() -> None:
    frame = own()
    frame["outcome"] = frame["outcome"].where(np.arange(len(frame)) != 7, None)
    with pytest.raises(InitError, match=r"label column 'outcome' has 1 missing values in the sample"):
        plan_of(frame)
    frame["outcome"] = (np.arange(len(frame)) % 3) / 2  # 0, 0.5, 1
    with pytest.raises(InitError, match=r"fractional values such as .*use --task regression"):
        plan_of(frame, task="classification")
    frame["outcome"] = "a"
    frame.loc[0, "outcome"] = "b"
    with pytest.raises(InitError, match=r"'outcome' is text: regression needs numbers"):
        plan_of(frame, task="regression")


def test_a_bad_dataset_name_is_refused() -> None:
    with pytest.raises(InitError, match=r"dataset name 'My Data' must be lower-case letters"):
        scaffold.check_name("My Data")


# --- decisions -------------------------------------------------------------------------------------


def test_features_are_every_column_but_id_label_and_date_and_text_or_bool_is_categorical() -> None:
    plan = plan_of(own())
    assert plan.task == "classification" and plan.classes == ("healthy", "sick")
    assert plan.features == ("region", "age", "bmi", "smoker")
    assert plan.categorical == ("region", "smoker")
    assert set(plan.left_out) == {"note", "date"} and "too many categories" in plan.left_out["note"]
    assert plan.raw_prefix == "raw/own"
    assert any(line.startswith("task: classification (2 distinct text label values") for line in plan.decisions)


def test_the_task_follows_the_label_unless_given() -> None:
    frame = own()
    frame["grade"] = np.arange(len(frame)) % 3  # whole numbers, few values: classes 0, 1, 2
    frame["score"] = np.linspace(0, 10, len(frame))  # a quantity
    graded = scaffold.plan(profile_of(frame), "own", "patient", "grade", None, STORE)
    assert graded.task == "classification" and graded.classes == (0, 1, 2)
    scored = scaffold.plan(profile_of(frame), "own", "patient", "score", None, STORE)
    assert scored.task == "regression" and scored.classes == ()
    assert scaffold.plan(profile_of(frame), "own", "patient", "grade", "regression", STORE).task == "regression"


def test_a_source_outside_the_store_gets_raw_name_and_a_note() -> None:
    assert scaffold.raw_prefix_for("own", "s3://bucket/landing/own/", STORE) == ("landing/own", None)
    prefix, note = scaffold.raw_prefix_for("own", "/data/own", STORE)
    assert prefix == "raw/own" and note is not None and "s3://bucket/raw/own/date=YYYY-MM-DD/" in note


def test_epochs_aim_at_a_few_hundred_steps_within_bounds() -> None:
    assert scaffold.epochs_for(178, False)[0] == 100  # 2 steps per epoch
    assert scaffold.epochs_for(442, False)[0] == 80  # 5 steps per epoch
    assert scaffold.epochs_for(50_000, False)[0] == 30
    assert scaffold.epochs_for(500, True)[0] == 30  # a truncated sample: the data is larger


# --- the suite -------------------------------------------------------------------------------------


def test_the_suite_checks_columns_types_nulls_ids_labels_ranges_and_value_sets() -> None:
    frame = own()
    profile = profile_of(frame)
    spec = scaffold.suite(profile, scaffold.plan(profile, "own", "patient", "outcome", None, STORE))
    rules = {(e["type"], e["kwargs"].get("column")): e for e in spec["expectations"]}
    assert all(e["meta"]["why"] for e in spec["expectations"])
    assert rules[("expect_table_columns_to_match_set", None)]["kwargs"] == {
        "column_set": list(frame.columns),
        "exact_match": True,
    }
    assert ("expect_column_values_to_be_unique", "patient") in rules
    assert rules[("expect_column_values_to_be_in_set", "outcome")]["kwargs"]["value_set"] == ["healthy", "sick"]
    assert rules[("expect_column_values_to_be_in_set", "region")]["kwargs"]["value_set"] == ["east", "north", "west"]
    assert ("expect_column_values_to_be_in_set", "note") not in rules  # 80 distinct values: no value set
    assert ("expect_column_values_to_not_be_null", "age") in rules
    assert ("expect_column_values_to_not_be_null", "bmi") not in rules  # nulls were seen
    assert rules[("expect_column_values_to_be_in_type_list", "smoker")]["kwargs"]["type_list"] == ["bool"]
    age = rules[("expect_column_values_to_be_between", "age")]["kwargs"]
    low, high = frame["age"].min(), frame["age"].max()
    assert age["min_value"] < low and age["max_value"] > high
    assert isinstance(age["min_value"], int) and isinstance(age["max_value"], int)
    assert spec["meta"]["row_quarantine"]["expectations"] == [
        "expect_column_values_to_be_in_set",
        "expect_column_values_to_be_between",
    ]


def test_ranges_widen_by_the_stated_slack_and_stay_non_negative() -> None:
    column = profiling.ColumnProfile("x", "numeric", "double", 0, 10, None, minimum=1.0, maximum=5.0)
    assert scaffold.widened(column) == (0.0, 6.0, False)  # 1 - 0.25 * 4 = 0, 5 + 1 = 6
    positive = profiling.ColumnProfile("x", "numeric", "double", 0, 10, None, minimum=0.5, maximum=4.5)
    assert scaffold.widened(positive) == (0.0, 5.5, True)  # 0.5 - 1 < 0, yet no value was negative
    negative = profiling.ColumnProfile("x", "numeric", "double", 0, 10, None, minimum=-2.0, maximum=2.0)
    assert scaffold.widened(negative) == (-3.0, 3.0, False)
    small = profiling.ColumnProfile("x", "numeric", "double", 0, 10, None, minimum=0.13, maximum=0.66)
    assert scaffold.widened(small) == (0.0, 0.793, True)  # rounded outward to 3 digits of the span


# --- the config and protocol texts ----------------------------------------------------------------


def test_the_config_loads_with_the_decided_keys_and_names_its_files() -> None:
    plan = plan_of(own())
    raw = yaml.safe_load(scaffold.config_text(plan, profile_of(own())))
    dataset = raw["dataset"]
    assert dataset["features"] == ["region", "age", "bmi", "smoker"]
    assert dataset["categorical"] == ["region", "smoker"] and dataset["classes"] == ["healthy", "sick"]
    assert dataset["expectation_suite"] == "include/expectations/own.json"
    assert raw["protocol"] == "include/protocols/own-v1.yaml" and raw["model"]["name"] == "own-classifier"
    config = config_from_dict(raw)
    assert config.dataset.task == "classification" and config.dataset.label_column == "outcome"


@pytest.mark.parametrize(
    ("label", "primary", "report", "baseline"),
    [
        (
            "outcome",
            "error_rate",
            ["error_rate", "average_precision", "roc_auc", "log_loss", "ece"],
            "logistic_regression",
        ),
        (
            "grade",
            "error_rate",
            ["error_rate", "macro_average_precision", "roc_auc", "log_loss", "ece"],
            "logistic_regression",
        ),
        ("score", "rmse", ["rmse", "mae", "r2"], "ridge"),
    ],
)
def test_the_protocol_has_the_metrics_and_baseline_of_the_task(
    label: str, primary: str, report: list[str], baseline: str
) -> None:
    frame = own()
    frame["grade"] = np.arange(len(frame)) % 3
    frame["score"] = np.linspace(0, 100, len(frame))
    profile = profile_of(frame)
    plan = scaffold.plan(profile, "own", "patient", label, None, STORE)
    text = scaffold.protocol_text(plan, profile)
    raw = yaml.safe_load(text)
    assert raw["task"] == plan.task and raw["split"] == {
        "id_column": "patient",
        "salt": "gauntlet-own-v1",
        "test_fraction": 0.2,
        "dev_fraction": 0.1,
    }
    assert raw["metrics"]["primary"] == primary and raw["metrics"]["report"] == report
    assert raw["baseline"]["kind"] == baseline
    protocol = protocol_from_bytes(text.encode())  # the protocol loader accepts what init writes
    assert protocol.primary_metric == primary and protocol.report_metrics == tuple(report)
    if plan.task == "regression":  # the margin is in the label's units: 2% of its spread
        assert raw["gate"]["margin"] == pytest.approx(0.02 * float(frame["score"].std()), rel=0.05)


# --- writing ---------------------------------------------------------------------------------------


def test_existing_files_are_kept_unless_forced(tmp_path: Path) -> None:
    texts = {"config": "a\n", "suite": "{}\n", "protocol": "b\n"}
    written = scaffold.write("own", texts, force=False, root=tmp_path)
    assert written["config"] == tmp_path / "include/configs/own.yaml" and written["suite"].read_text() == "{}\n"
    with pytest.raises(InitError, match=r"own.yaml, .*own.json, .*own-v1.yaml already exist: .*--force"):
        scaffold.write("own", {**texts, "config": "changed\n"}, force=False, root=tmp_path)
    assert written["config"].read_text() == "a\n"
    scaffold.write("own", {**texts, "config": "changed\n"}, force=True, root=tmp_path)
    assert written["config"].read_text() == "changed\n"


# --- the shipped examples --------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "label"), [("wine", "cultivar"), ("diabetes", "progression")])
def test_the_shipped_example_files_are_what_init_writes_from_the_seeded_table(
    store: str, name: str, label: str
) -> None:
    """include/{configs,expectations,protocols} for wine and diabetes are init's output, unedited:
    after changing init, regenerate them (README, "Your own data") and review the diff."""
    demo.seed(store, f"raw/{name}", dt.date(2026, 11, 1), 7, dataset=name)
    profile = profiling.read_sample(layout.raw_root(store, f"raw/{name}"), "row_id")
    plan = scaffold.plan(profile, name, "row_id", label, None, store)
    texts = scaffold.render(profile, plan)
    for role, path in scaffold.paths(name, REPO).items():
        assert path.read_text() == texts[role], f"{path} differs from what `gauntlet init` writes now"
    assert json.loads(texts["suite"])["name"] == f"{name}_raw"


def test_column_names_yaml_would_misread_are_quoted_in_the_config() -> None:
    frame = own().rename(columns={"region": "yes", "age": "1", "bmi": "a: b", "smoker": "null"})
    profile = profile_of(frame)
    plan = scaffold.plan(profile, "own", "patient", "outcome", None, STORE)
    raw = yaml.safe_load(scaffold.config_text(plan, profile))
    assert raw["dataset"]["features"] == ["yes", "1", "a: b", "null"]
    assert raw["dataset"]["categorical"] == ["yes", "null"]
