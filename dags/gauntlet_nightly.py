"""
### gauntlet nightly retraining

Every night this DAG retrains the model on the data landed so far and lets it challenge the
current champion under the fixed comparison protocol:

1. **validate**: the Great Expectations suite in `include/expectations/` checks the raw partitions
   (the run's data interval holds the new ones); failures are listed with examples and stop the run.
2. **preprocess**: frozen hash split of row ids into train/dev/test, scaler fitted on train,
   committed as a content-addressed dataset version.
3. **train**: `horovodrun` data-parallel PyTorch training; a repeated experiment is a cache hit.
4. **evaluate**: candidate vs. scikit-learn baseline vs. champion on the frozen test set, with
   bootstrap confidence intervals and the protocol's gate.
5. **register**: a new registry version, promoted to `champion` if the gate passed.
6. **approval** (only under a protocol with `gate.approval: required`; skipped otherwise): register
   leaves the version unpromoted and a person approves or rejects it (Browse → Required Actions, or
   the REST API). **promote** then moves `champion`; a rejection skips it and is recorded, with who
   rejected and why, as a registry event.
7. **publish_champion**: emits the `gauntlet.champion.<model>@<bucket>` Asset event, only when the champion
   actually moved, so downstream DAGs scheduled on it run once per new champion.

The run's data interval selects the partitions (`raw/<dataset>/date=YYYY-MM-DD/`): a backfilled
night reads exactly what it read then. A scheduled or backfilled night whose interval holds no new
partition ends at validate with a "no new data" skip (not a failure); a manual run trains on the
snapshot as it is. Trigger it by hand with the form to try other settings;
every such run is recorded as an experiment like any other.

**Deadline**: a run must finish within `GAUNTLET_NIGHTLY_DEADLINE` (default `6h`; or e.g. `90m`, `45s`,
a number of seconds) of its logical (scheduled) time. Airflow's deadline alert then logs it and writes a
`deadline_missed` event to the model's registry (backfilled nights are not alerted).
"""

from __future__ import annotations

import os
from datetime import timedelta

import pendulum
from airflow.sdk import DAG, CronTriggerTimetable

from gauntlet.airflow import approval_task, nightly_params, promote_task, publish_champion_task, step_task
from gauntlet.airflow.deadlines import nightly_deadline

with DAG(
    dag_id="gauntlet_nightly",
    description="Validate, preprocess, train (Horovod), evaluate and register, every night.",
    schedule=CronTriggerTimetable(
        os.environ.get("GAUNTLET_NIGHTLY_CRON", "0 2 * * *"), timezone="UTC", interval=timedelta(days=1)
    ),
    start_date=pendulum.datetime(2026, 11, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    dagrun_timeout=timedelta(hours=6),
    deadline=nightly_deadline(),
    default_args={
        "retries": 2,
        "retry_delay": timedelta(seconds=30),
        "retry_exponential_backoff": True,
        "execution_timeout": timedelta(hours=2),
    },
    params=nightly_params(),
    tags=["gauntlet", "training", "nightly"],
    doc_md=__doc__,
) as dag:
    validate = step_task(
        "validate",
        # A manual run without a logical date has no data interval: it reads the data up to the day it runs.
        start="{{ (dag_run.data_interval_start or dag_run.run_after - macros.timedelta(days=1)) | ds }}",
        end="{{ (dag_run.data_interval_end or dag_run.run_after) | ds }}",
        require_new="{{ dag_run.run_type != 'manual' }}",
    )
    preprocess = step_task("preprocess", validation="{{ ti.xcom_pull(task_ids='validate')['result_uri'] }}")
    train = step_task(
        "train",
        # The sweep's pool too: a nightly, a backfill and a sweep never train at once on one machine.
        task_kwargs={"pool": "training"},
        dataset="{{ ti.xcom_pull(task_ids='preprocess')['dataset_uri'] }}",
    )
    evaluate = step_task("evaluate", experiment="{{ ti.xcom_pull(task_ids='train')['experiment_uri'] }}")
    register = step_task(
        "register",
        report="{{ ti.xcom_pull(task_ids='evaluate')['report_uri'] }}",
        force="{{ params.register_even_if_gate_fails }}",
    )

    # The protocol is chosen per run: register says whether this version awaits a person's approval.
    approval = approval_task(register_task_id="register")
    promote = promote_task(register_task_id="register", approval_task_id="approval")
    publish_champion = publish_champion_task(register_task_id="register", promote_task_id="promote")

    validate >> preprocess >> train >> evaluate >> register >> approval >> promote >> publish_champion
    register >> publish_champion
