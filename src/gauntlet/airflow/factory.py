"""The one task factory: a step name and its arguments in, an Airflow task out.

Which runtime executes the step is configuration (GAUNTLET_RUNTIME), never an edit of a DAG.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import BaseOperator

from gauntlet.airflow import containers
from gauntlet.airflow.operator import GauntletStepOperator


def runtime() -> str:
    """The runtime GAUNTLET_RUNTIME names (checked at parse time); the Airflow Variable
    `gauntlet_runtime` may override it when the task runs (see containers.runtime_at_execution)."""
    return containers.configured_runtime()


def publish_champion_task(
    task_id: str = "publish_champion", register_task_id: str = "register", task_kwargs: dict[str, Any] | None = None
) -> BaseOperator:
    """A task that emits the champion Asset event (for the model the run registered) when
    `register_task_id` promoted a new champion."""
    from gauntlet.airflow.assets import PublishChampionOperator

    return PublishChampionOperator(task_id=task_id, register_task_id=register_task_id, **(task_kwargs or {}))


def step_task(
    step: str, task_id: str | None = None, task_kwargs: dict[str, Any] | None = None, **arguments: Any
) -> BaseOperator:
    """A task that runs `gauntlet <step> --<name> <value> ...` for the configured runtime."""
    runtime()
    return GauntletStepOperator(task_id=task_id or step, step=step, arguments=arguments, **(task_kwargs or {}))
