"""gauntlet.airflow.docker_runtime: the DockerOperator a step runs in, and its container labels."""

from __future__ import annotations

import pytest

from gauntlet.airflow.docker_runtime import docker_operator, extra_labels
from gauntlet.contract import EXIT_NOTHING_TO_DO


@pytest.fixture(autouse=True)
def _no_gpus(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GAUNTLET_GPUS", "0")
    monkeypatch.delenv("GAUNTLET_DOCKER_LABELS", raising=False)


def test_extra_labels_parse_key_value_pairs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GAUNTLET_DOCKER_LABELS", "ci=run-7, owner = team ,junk,")
    assert extra_labels() == {"ci": "run-7", "owner": "team"}


def test_a_step_container_is_labelled_and_skips_on_nothing_to_do(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GAUNTLET_DOCKER_LABELS", "ci=42")
    operator = docker_operator("validate", "validate", ["validate", "--date", "2026-11-01"])
    assert operator.labels == {"app": "gauntlet", "gauntlet.step": "validate", "ci": "42"}
    assert operator.skip_on_exit_code == [EXIT_NOTHING_TO_DO]
    assert operator.command == ["validate", "--date", "2026-11-01"]


def test_only_train_gets_a_large_shared_memory() -> None:
    assert docker_operator("train", "train", ["train"]).shm_size == 1 << 30
    assert docker_operator("evaluate", "evaluate", ["evaluate"]).shm_size is None
