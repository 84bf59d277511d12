"""gauntlet.airflow.operator: the step's CLI arguments built from params, options and arguments."""

from __future__ import annotations

import sys
from types import SimpleNamespace
from typing import Any

import pytest

from gauntlet.airflow.operator import GauntletStepOperator


@pytest.fixture(autouse=True)
def _no_store(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GAUNTLET_STORE", raising=False)


def _context(params: dict[str, Any] | None = None, map_index: int = -1) -> dict[str, Any]:
    return {
        "params": params or {},
        "dag": SimpleNamespace(dag_id="gauntlet_nightly"),
        "run_id": "scheduled__2026-11-07",
        "ti": SimpleNamespace(map_index=map_index),
    }


def test_params_become_global_options_before_the_step_and_its_flags() -> None:
    operator = GauntletStepOperator(
        task_id="train", step="train", arguments={"dataset_uri": "s3://b/d/v1", "require_new": "True"}
    )
    assert operator.step_arguments(_context({"epochs": 2})) == [
        "--config",
        "include/configs/digits.yaml",
        "--set",
        "training.epochs=2",
        "--run-id",
        "gauntlet_nightly__scheduled__2026-11-07",
        "train",
        "--dataset-uri",
        "s3://b/d/v1",
        "--require-new",
    ]


@pytest.mark.parametrize("empty", ["None", "False", "false", "", None, False])
def test_false_and_empty_arguments_are_left_out(empty: Any) -> None:
    operator = GauntletStepOperator(task_id="validate", step="validate", arguments={"require_new": empty})
    assert operator.step_arguments(_context())[-1] == "validate"


def test_task_options_win_over_the_run_s_params() -> None:
    operator = GauntletStepOperator(
        task_id="train",
        step="train",
        options={"config": "include/configs/other.yaml", "overrides": {"model.kind": "mlp"}},
    )
    args = operator.step_arguments(_context({"config": "include/configs/digits.yaml"}))
    assert args[:2] == ["--config", "include/configs/other.yaml"]
    assert args[args.index("--set") + 1] == "model.kind=mlp"


def test_mapped_instances_get_their_own_run_id_and_the_store_is_passed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GAUNTLET_STORE", "s3://night")
    operator = GauntletStepOperator(task_id="train", step="train")
    args = operator.step_arguments(_context(map_index=3))
    assert args[args.index("--store") + 1] == "s3://night"
    assert args[args.index("--run-id") + 1] == "gauntlet_nightly__scheduled__2026-11-07__m3"
    assert operator.cli_run_id == "gauntlet_nightly__scheduled__2026-11-07__m3"


def test_the_local_command_runs_this_interpreter_s_cli() -> None:
    operator = GauntletStepOperator(task_id="register", step="register")
    command = operator.command(_context())
    assert command[:3] == [sys.executable, "-m", "gauntlet"] and command[-1] == "register"
