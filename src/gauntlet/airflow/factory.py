"""The one task factory: a step name and its arguments in, an Airflow task out.

Which runtime executes the step is configuration (GAUNTLET_RUNTIME), never an edit of a DAG.
"""

from __future__ import annotations

import os
from typing import Any

from airflow.sdk import BaseOperator

from gauntlet.airflow.operator import GauntletStepOperator

RUNTIMES = ("local",)


def runtime() -> str:
    name = os.environ.get("GAUNTLET_RUNTIME", "local")
    if name not in RUNTIMES:
        raise ValueError(f"GAUNTLET_RUNTIME={name!r} is not one of {RUNTIMES}")
    return name


def step_task(step: str, task_id: str | None = None, task_kwargs: dict[str, Any] | None = None,
              **arguments: Any) -> BaseOperator:
    """A task that runs `gauntlet <step> --<name> <value> ...` for the configured runtime."""
    runtime()
    return GauntletStepOperator(task_id=task_id or step, step=step, arguments=arguments, **(task_kwargs or {}))
