"""
### gauntlet experiment sweep

Runs a grid of configs against a list of past snapshot dates, every pair under the same fixed
comparison protocol, and compares them in one table.

1. **plan**: expands the grid (the `grid` param: name, config file, config overrides) times the
   `snapshot_dates` into pairs; every config is loaded here, so a typo fails before anything trains.
2. **pair** (one mapped task group per pair): validate the snapshot of partitions dated up to
   the pair's date, preprocess it (a content-addressed dataset, shared with nightly runs of that
   date), train (in the `training` pool, so one training at a time) and evaluate under the protocol.
   A pair already recorded is a cache hit: train reports it and trains nothing.
3. **report**: one comparison table (Markdown, JSON, HTML) and the stacked learning curves, under
   `sweeps/<run id>/` in the store.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import DAG, task_group

from gauntlet.airflow import step_task, sweep_params

MAPPED = "ti.xcom_pull(task_ids='pair.{task}', map_indexes=ti.map_index)['{key}']"
ALL_PAIRS = "ti.xcom_pull(task_ids='pair.{task}', map_indexes=range(ti.xcom_pull(task_ids='plan') | length))"

with DAG(
    dag_id="gauntlet_sweep",
    description="A grid of configs x past snapshot dates under the fixed protocol, compared in one table.",
    schedule=None,
    start_date=pendulum.datetime(2026, 11, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    max_active_tasks=3,  # pairs validate and evaluate side by side; the training pool runs one training at a time
    default_args={
        "retries": 1,
        "retry_delay": timedelta(seconds=30),
        "execution_timeout": timedelta(hours=2),
    },
    params=sweep_params(),
    tags=["gauntlet", "training", "sweep"],
    doc_md=__doc__,
) as dag:
    plan = step_task(
        "sweep-plan",
        task_id="plan",
        task_kwargs={"returns": "pairs"},
        grid="{{ params.grid | tojson }}",
        dates="{{ params.snapshot_dates | join(',') }}",
    )

    @task_group(group_id="pair")
    def pair(label: str, options: dict[str, object], start: str, end: str) -> None:
        validate = step_task("validate", task_kwargs={"options": options}, start=start, end=end)
        preprocess = step_task(
            "preprocess",
            task_kwargs={"options": options},
            validation="{{ " + MAPPED.format(task="validate", key="result_uri") + " }}",
        )
        train = step_task(
            "train",
            task_kwargs={"options": options, "pool": "training"},
            dataset="{{ " + MAPPED.format(task="preprocess", key="dataset_uri") + " }}",
        )
        evaluate = step_task(
            "evaluate",
            task_kwargs={"options": options},
            experiment="{{ " + MAPPED.format(task="train", key="experiment_uri") + " }}",
        )
        validate >> preprocess >> train >> evaluate

    pairs = pair.expand_kwargs(plan.output)

    report = step_task(
        "sweep-report",
        task_id="report",
        pairs="{{ ti.xcom_pull(task_ids='plan') | tojson }}",
        trained="{{ " + ALL_PAIRS.format(task="train") + " | tojson }}",
        evaluated="{{ " + ALL_PAIRS.format(task="evaluate") + " | tojson }}",
    )

    plan >> pairs >> report
