"""gauntlet.airflow.params: the trigger forms, and how their values become config overrides."""

from __future__ import annotations

import re
from pathlib import Path

from testkit import ROOT

from gauntlet.airflow.params import (
    DEFAULT_GRID,
    OVERRIDES,
    PREFIX_PATTERN,
    cli_options,
    config_choices,
    nightly_params,
    protocol_choices,
    sweep_params,
)
from gauntlet.config import DEFAULT_CONFIG


def test_each_param_maps_to_its_config_key_and_empty_values_keep_the_file_s() -> None:
    params = {"model_kind": "mlp", "lr": 0.1, "batch_size": "", "workers": None, "dataset_prefix": "raw/x"}
    assert cli_options(params) == [
        "--config",
        DEFAULT_CONFIG,
        "--set",
        "model.kind=mlp",
        "--set",
        "training.lr=0.1",
        "--set",
        "dataset.raw_prefix=raw/x",
    ]
    assert cli_options({}) == ["--config", DEFAULT_CONFIG]


def test_a_chosen_protocol_is_passed() -> None:
    options = cli_options({"config": "include/configs/a.yaml", "protocol": "include/protocols/p.yaml"})
    assert options == ["--config", "include/configs/a.yaml", "--protocol", "include/protocols/p.yaml"]


def test_the_forms_offer_the_include_files() -> None:
    configs = {f"include/configs/{p.name}" for p in (ROOT / "include" / "configs").glob("*.yaml")}
    protocols = {f"include/protocols/{p.name}" for p in (ROOT / "include" / "protocols").glob("*.yaml")}
    assert set(config_choices()) == configs | {DEFAULT_CONFIG}
    # Other tests (in parallel workers too) write temporary `test-*` protocols there; they join the
    # form as any new file does, so only the committed ones are compared.
    offered = {p for p in protocol_choices()[1:] if not Path(p).name.startswith("test-")}
    assert protocol_choices()[0] is None and offered == {p for p in protocols if not Path(p).name.startswith("test-")}
    assert nightly_params()["config"].schema["enum"] == config_choices()
    assert sweep_params()["grid"].schema["items"]["properties"]["config"]["enum"] == config_choices()


def test_every_override_param_is_on_the_nightly_form() -> None:
    assert set(OVERRIDES) <= set(nightly_params())
    assert nightly_params()["register_even_if_gate_fails"].value is False


def test_the_default_sweep_grid_compares_two_architectures() -> None:
    assert [entry["name"] for entry in DEFAULT_GRID] == ["cnn", "mlp"]
    assert sweep_params()["grid"].value == DEFAULT_GRID


def test_the_prefix_pattern_takes_relative_prefixes_only() -> None:
    for good in ("raw/digits", "raw/digits/", "a.b/c_d=1"):
        assert re.match(PREFIX_PATTERN, good), good
    for bad in ("/raw", "raw/../x", "raw//x", "..", "./raw", "s3://b/raw"):
        assert not re.match(PREFIX_PATTERN, bad), bad
