"""
### gauntlet maintenance

Once a week, clears what failed runs leave in the store and nothing commits:

1. **gc**: `gauntlet gc --apply` deletes the outputs of crashed or killed tasks (prefixes without
   their MANIFEST.json or RECORD.json), expired leases of recorded experiments, uploads a manifest
   does not list, registry claims that never got a version, and incomplete multipart uploads; all
   only once older than the grace period (the `grace_hours` param, 24 h by default), so a running
   task's output is never touched, nor anything committed. The task log lists each with its size
   and ends with what was freed.

Run `gauntlet gc` (without `--apply`) to see the list first.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import DAG, CronTriggerTimetable, Param

from gauntlet.airflow import step_task

with DAG(
    dag_id="gauntlet_maintenance",
    description="Weekly clean-up of what no manifest or record commits (gauntlet gc --apply).",
    schedule=CronTriggerTimetable("0 4 * * 0", timezone="UTC"),  # Sundays, after the night's training
    start_date=pendulum.datetime(2026, 11, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    default_args={
        "retries": 2,
        "retry_delay": timedelta(minutes=5),
        "execution_timeout": timedelta(hours=2),
    },
    params={
        "grace_hours": Param(
            24,
            type="number",
            minimum=0,
            title="Grace period (hours)",
            description="Anything written more recently is kept: it may belong to a running task.",
        )
    },
    tags=["gauntlet", "maintenance"],
    doc_md=__doc__,
) as dag:
    step_task("gc", apply="True", grace_hours="{{ params.grace_hours }}")
