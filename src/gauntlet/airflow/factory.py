"""The one task factory: a step name and its arguments in, an Airflow task out.

Which runtime executes the step is configuration (GAUNTLET_RUNTIME), never an edit of a DAG.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import BaseOperator

from gauntlet.airflow import containers
from gauntlet.airflow.operator import GauntletStepOperator

# Celery queues: training tasks go where the training hosts listen; everything else to the default
# queue. Executors without queues (LocalExecutor) ignore them.
TRAINING_QUEUE = "training"


def runtime() -> str:
    """The runtime GAUNTLET_RUNTIME names (checked at parse time); the Airflow Variable
    `gauntlet_runtime` may override it when the task runs (see containers.runtime_at_execution)."""
    return containers.configured_runtime()


def publish_champion_task(
    task_id: str = "publish_champion",
    register_task_id: str = "register",
    task_kwargs: dict[str, Any] | None = None,
    promote_task_id: str | None = None,
) -> BaseOperator:
    """A task that emits the champion Asset event (for the model the run registered) when
    `register_task_id` promoted a new champion, or `promote_task_id` did after an approval."""
    from gauntlet.airflow.assets import PublishChampionOperator

    kwargs = dict(task_kwargs or {})
    task_ids: str | tuple[str, ...] = register_task_id
    if promote_task_id:
        # After register (automatic) or after promote (approved): whichever ran; a skipped one is fine.
        task_ids = (register_task_id, promote_task_id)
        kwargs.setdefault("trigger_rule", "none_failed_min_one_success")
    return PublishChampionOperator(task_id=task_id, register_task_id=task_ids, **kwargs)


def approval_task(
    task_id: str = "approval", register_task_id: str = "register", task_kwargs: dict[str, Any] | None = None
) -> BaseOperator:
    """Airflow's approval task for a version `register_task_id` left awaiting approval (skipped otherwise)."""
    from gauntlet.airflow.approval import GauntletApprovalOperator

    return GauntletApprovalOperator(task_id=task_id, register_task_id=register_task_id, **(task_kwargs or {}))


def promote_task(
    task_id: str = "promote", register_task_id: str = "register", approval_task_id: str = "approval"
) -> BaseOperator:
    """The `promote` step, run when the approval task was answered Approve (its operator skips it otherwise)."""
    return step_task(
        "promote",
        task_id=task_id,
        report=f"{{{{ ti.xcom_pull(task_ids='{register_task_id}')['report_uri'] }}}}",
        approved_by=f"{{{{ ti.xcom_pull(task_ids='{approval_task_id}')['by'] }}}}",
    )


def step_task(
    step: str, task_id: str | None = None, task_kwargs: dict[str, Any] | None = None, **arguments: Any
) -> BaseOperator:
    """A task that runs `gauntlet <step> --<name> <value> ...` for the configured runtime."""
    runtime()
    kwargs = dict(task_kwargs or {})
    if step == "train":
        kwargs.setdefault("queue", TRAINING_QUEUE)
    return GauntletStepOperator(task_id=task_id or step, step=step, arguments=arguments, **kwargs)
