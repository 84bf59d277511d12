"""Airflow glue: turns a gauntlet step into an Airflow task. Only dags/ and plugins/ import this."""

from gauntlet.airflow.factory import step_task
from gauntlet.airflow.params import nightly_params

__all__ = ["nightly_params", "step_task"]
