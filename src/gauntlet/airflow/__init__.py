"""Airflow glue: turns a gauntlet step into an Airflow task. Only dags/ and plugins/ import this."""

from gauntlet.airflow.factory import approval_task, promote_task, publish_champion_task, step_task
from gauntlet.airflow.params import nightly_params, sweep_params

__all__ = ["approval_task", "nightly_params", "promote_task", "publish_champion_task", "step_task", "sweep_params"]
