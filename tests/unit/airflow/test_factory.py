"""gauntlet.airflow.factory: the one task factory, step name and arguments in, Airflow task out."""

from __future__ import annotations

import pytest

from gauntlet.airflow import factory
from gauntlet.airflow.assets import PublishChampionOperator
from gauntlet.airflow.links import DatasetLink, ReportLink
from gauntlet.airflow.operator import GauntletStepOperator


def test_step_task_builds_the_step_operator_with_its_links_and_pool() -> None:
    task = factory.step_task("preprocess", task_kwargs={"pool": "training"}, date="2026-11-07")
    assert isinstance(task, GauntletStepOperator)
    assert task.task_id == "preprocess" and task.step == "preprocess"
    assert task.arguments == {"date": "2026-11-07"}
    assert task.pool == "training"
    assert [type(link) for link in task.operator_extra_links] == [DatasetLink]


def test_step_task_takes_its_own_task_id() -> None:
    task = factory.step_task("evaluate", task_id="evaluate_candidate")
    assert task.task_id == "evaluate_candidate" and task.step == "evaluate"
    assert [type(link) for link in task.operator_extra_links] == [ReportLink]


def test_an_unknown_runtime_is_refused_when_the_dag_is_parsed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GAUNTLET_RUNTIME", "vm")
    with pytest.raises(ValueError, match="vm"):
        factory.step_task("validate")


def test_publish_champion_task_reads_the_named_register_task() -> None:
    task = factory.publish_champion_task(register_task_id="register_model", task_kwargs={"retries": 0})
    assert isinstance(task, PublishChampionOperator)
    assert task.task_id == "publish_champion" and task.register_task_id == "register_model"
    assert task.retries == 0


def test_train_tasks_go_to_the_training_queue_and_the_rest_to_the_default_one() -> None:
    assert factory.step_task("train", task_kwargs={"pool": "training"}).queue == factory.TRAINING_QUEUE == "training"
    assert factory.step_task("evaluate").queue == "default"
    assert factory.step_task("train", task_kwargs={"queue": "gpu"}).queue == "gpu"
