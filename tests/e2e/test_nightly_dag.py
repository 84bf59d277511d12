"""The spine through Airflow: the nightly DAG runs all five tasks against the S3 server, and the
registry then holds a champion whose lineage points at objects that exist. Bad data stops it."""

from __future__ import annotations

import json
import subprocess

import numpy as np
import pandas as pd
from testkit import airflow_dags_test, object_keys

from gauntlet import demo, layout, registry, storage

DAG_ID = "gauntlet_nightly"
STEPS = ["validate", "preprocess", "train", "evaluate", "register"]


def _airflow_json(env: dict[str, str], *args: str) -> list[dict]:
    """Run an `airflow ... -o json` command; its stdout may start with log lines before the JSON."""
    out = subprocess.run(["airflow", *args, "-o", "json"], env=env, capture_output=True, text=True, check=True).stdout
    value, _ = json.JSONDecoder().raw_decode(out[out.index("[{") :])
    return list(value)


def _task_states(env: dict[str, str]) -> dict[str, str]:
    runs = _airflow_json(env, "dags", "list-runs", DAG_ID)
    latest = max(runs, key=lambda r: r["start_date"] or "")
    states = _airflow_json(env, "tasks", "states-for-dag-run", DAG_ID, latest["run_id"])
    return {s["task_id"]: s["state"] for s in states}


def test_nightly_dag_runs_all_steps_and_registers_a_champion(airflow_home: dict[str, str], seeded_store: str) -> None:
    process = airflow_dags_test(airflow_home, DAG_ID, "2026-11-08T02:00:00+00:00", seeded_store)
    assert process.returncode == 0, process.stdout[-4000:] + process.stderr[-4000:]
    states = _task_states(airflow_home)
    assert {step: states.get(step) for step in STEPS} == dict.fromkeys(STEPS, "success"), states
    # The task log shows what happened: per-epoch lines, the comparison table and the verdict.
    log = process.stdout + process.stderr
    assert "epoch 30/30 train_loss=" in log and "samples/s=" in log
    assert "| candidate |" in log and "| baseline |" in log and "gate: " in log

    reg = layout.registry_root(seeded_store, "digits-classifier")
    champion = registry.champion(reg)
    assert champion is not None and champion["version"] == 1
    # Lineage points at objects that exist, and the model matches its recorded sha256.
    assert storage.get_bytes(champion["model_uri"], expected_sha256=champion["model_sha256"])
    assert storage.is_committed(champion["dataset_uri"])
    assert storage.read_manifest(champion["dataset_uri"])["version"] == champion["dataset_version"]
    assert storage.exists(f"{champion['experiment_uri']}/RECORD.json")
    report = storage.get_json(champion["evaluation_uri"])
    assert report["experiment_key"] == champion["experiment_key"] and report["gate"]["passed"]
    assert champion["airflow_run_id"].startswith(f"{DAG_ID}__")
    assert champion["experiment"]["hardware"]["world_size"] == 2
    assert champion["protocol_id"] == report["protocol_id"]


def test_bad_data_stops_the_dag_at_validate(airflow_home: dict[str, str], seeded_store: str) -> None:
    frame = demo.digits_frame().iloc[:100].copy()
    frame["label"] = frame["label"].astype("float64")
    frame.loc[[3, 7], "label"] = np.nan
    demo.write_partition(layout.raw_partition_uri(seeded_store, "raw/digits", pd.Timestamp("2026-11-08").date()), frame)
    before = object_keys(seeded_store)
    process = airflow_dags_test(airflow_home, DAG_ID, "2026-11-09T02:00:00+00:00", seeded_store)
    states = _task_states(airflow_home)
    assert states["validate"] == "failed", states
    assert all(states[s] == "upstream_failed" for s in STEPS[1:]), states
    log = process.stdout + process.stderr
    assert "expect_column_values_to_not_be_null on column 'label': 2 bad values" in log
    new = object_keys(seeded_store) - before
    assert not [k for k in new if k.split("/")[0] in ("datasets", "experiments", "evaluations", "registry")], new
