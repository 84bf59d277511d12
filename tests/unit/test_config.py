"""gauntlet.config: the typed pipeline config, its overrides and the project folders it may name."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from testkit import ROOT

from gauntlet import config
from gauntlet.errors import BadInput, ConfigError

DIGITS = yaml.safe_load((ROOT / config.DEFAULT_CONFIG).read_text())


def _raw(**changes: Any) -> dict[str, Any]:
    """The demo's config with `section__key=value` changes (value None deletes the key)."""
    raw = copy.deepcopy(DIGITS)
    for name, value in changes.items():
        section, key = name.split("__")
        if value is None:
            del raw[section][key]
        else:
            raw[section][key] = value
    return raw


def test_the_demo_config_parses_into_typed_sections() -> None:
    cfg = config.config_from_dict(_raw())
    assert cfg.dataset.classes == tuple(range(10)) and cfg.dataset.raw_prefix == "raw/digits"
    assert cfg.model.spec() == {"kind": "cnn", "hidden": [128], "channels": [32, 64], "image_shape": [8, 8]}
    assert cfg.training.epochs is None  # the protocol's budget unless the config says otherwise
    assert cfg.protocol == "include/protocols/digits-v1.yaml"


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"training__lr": None}, "training.lr is missing"),
        ({"dataset__id_column": None}, "dataset.id_column is missing"),
        ({"training__workers": True}, "training.workers must be int"),
        ({"model__kind": "rnn"}, "model.kind 'rnn' is unknown"),
        ({"training__schedule": "step"}, "training.schedule 'step' is unknown"),
        ({"training__precision": "fp16"}, "training.precision 'fp16' is unknown"),
        ({"dataset__classes": [1]}, "at least two classes"),
    ],
)
def test_a_bad_value_is_refused_naming_its_section_and_key(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace(".", r"\.")) as caught:
        config.config_from_dict(_raw(**changes))
    assert isinstance(caught.value, BadInput)  # a retry cannot fix a config: exit 2


@pytest.mark.parametrize("prefix", ["../raw", "raw/../../etc", "/raw/digits", "raw//digits", "", "./raw"])
def test_a_raw_prefix_that_leaves_the_store_root_is_refused(prefix: str) -> None:
    with pytest.raises(ConfigError, match=r"dataset\.raw_prefix"):
        config.config_from_dict(_raw(dataset__raw_prefix=prefix))
    assert config.store_prefix("raw/digits/", "x") == "raw/digits"  # a trailing slash is only dropped


def test_files_a_config_names_must_lie_in_the_projects_folders() -> None:
    with pytest.raises(ConfigError, match="include/expectations/"):
        config.config_from_dict(_raw(dataset__expectation_suite="/etc/passwd"))
    raw = _raw()
    raw["protocol"] = "include/protocols/../configs/digits.yaml"
    with pytest.raises(ConfigError, match=r"config\.protocol"):
        config.config_from_dict(raw)


def test_overrides_are_parsed_as_yaml_and_leave_the_original_untouched() -> None:
    raw = _raw()
    out = config.apply_overrides(raw, ["training.lr=0.1", "model.hidden=[64, 32]", "training.epochs=null"])
    assert out["training"]["lr"] == 0.1 and out["model"]["hidden"] == [64, 32] and out["training"]["epochs"] is None
    assert raw == DIGITS
    with pytest.raises(ConfigError, match="no section 'trainng'"):
        config.apply_overrides(raw, ["trainng.lr=0.1"])
    with pytest.raises(ConfigError, match=r"section\.key=value"):
        config.parse_override("training.lr")


def test_only_files_inside_the_folder_resolve(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GAUNTLET_HOME", str(ROOT))
    assert config.config_file(config.DEFAULT_CONFIG) == (ROOT / config.DEFAULT_CONFIG).resolve()
    outside = tmp_path / "digits.yaml"
    outside.write_text(yaml.safe_dump(DIGITS))
    with pytest.raises(ConfigError, match=r"include/configs/digits\.yaml"):  # the refusal lists the known files
        config.config_file(outside)
    with pytest.raises(ConfigError, match="not found"):
        config.protocol_file("include/protocols/missing.yaml")


def test_a_misspelt_key_is_refused_not_ignored() -> None:
    raw = yaml.safe_load((ROOT / config.DEFAULT_CONFIG).read_text())
    with pytest.raises(ConfigError, match=r"training\.learning_rate"):
        config.config_from_dict(config.apply_overrides(raw, ["training.learning_rate=0.1"]))
    with pytest.raises(ConfigError, match=r"unknown config key\(s\): notes"):
        config.config_from_dict({**raw, "notes": "x"})


def _table(**changes: Any) -> dict[str, Any]:
    """A config for a table without a feature prefix: the demo's, its dataset section changed."""
    raw = _raw(dataset__feature_prefix=None)
    raw["dataset"].update({"label_column": "outcome", "classes": ["benign", "malignant"], **changes})
    raw["dataset"] = {key: value for key, value in raw["dataset"].items() if value is not None}
    return raw


def test_a_table_config_selects_features_by_list_or_exclusion_with_text_classes() -> None:
    ds = config.config_from_dict(_table(features=["age", "region"], categorical=["region"])).dataset
    assert ds.features == ("age", "region") and ds.feature_prefix == "" and ds.classes == ("benign", "malignant")
    assert (ds.task, ds.imputation, ds.categorical_encoding) == ("classification", "median", "one_hot")
    ds = config.config_from_dict(_table(exclude=["visit_day"], imputation="mean")).dataset
    assert ds.features == () and ds.exclude == ("visit_day",) and ds.imputation == "mean"
    ds = config.config_from_dict(_table(task="regression", classes=None)).dataset
    assert ds.task == "regression" and ds.classes == ()
    assert config.config_from_dict(_raw()).dataset.feature_prefix == "pixel_"  # the demo as before


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"features": ["age", "outcome"]}, "dataset.features includes the label column 'outcome'"),
        ({"features": ["row_id", "age"]}, "dataset.features includes the id column 'row_id'"),
        ({"exclude": ["outcome"]}, "dataset.exclude includes the label column 'outcome'"),
        ({"categorical": ["date"]}, "dataset.categorical includes the partition column 'date'"),
        ({"feature_prefix": "ro"}, "dataset.feature_prefix 'ro' matches the id column 'row_id'"),
        ({"features": ["a"], "feature_prefix": "x_"}, "dataset.features and dataset.feature_prefix are both given"),
        ({"features": ["a"], "exclude": ["b"]}, "dataset.exclude applies only without dataset.features"),
        ({"features": []}, "dataset.features is empty"),
        ({"features": ["a", "a"]}, "dataset.features names ['a'] more than once"),
        ({"features": ["a"], "categorical": ["b"]}, "dataset.categorical names ['b'], which dataset.features"),
        ({"task": "ranking"}, "dataset.task 'ranking' is unknown"),
        ({"imputation": "mode"}, "dataset.imputation 'mode' is unknown"),
        ({"categorical_encoding": "hash"}, "dataset.categorical_encoding 'hash' is unknown"),
        ({"task": "regression"}, "dataset.classes is given but dataset.task is regression"),
        ({"classes": ["yes"]}, "dataset.classes must list at least two classes"),
        ({"classes": [0, "0"]}, "dataset.classes lists ['0'] more than once"),
        ({"classes": [True, False]}, "dataset.classes must hold integers or text"),
        ({"classes": [0.5, 1]}, "dataset.classes must hold integers or text"),
    ],
)
def test_a_contradictory_dataset_section_is_refused_naming_the_key(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        config.config_from_dict(_table(**changes))
