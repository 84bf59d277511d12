"""Operating gauntlet as Airflow users do, against the running local stack (scripts/stack.sh):
REST API v2 triggers with params, params refused before a run exists, task logs read through the
API, extra links a browser can open, the champion Asset, backfills and sweeps.

Runs are kept short with params: 2 epochs and 1 worker; the protocol's 30 epochs and 2 workers
where a champion is needed (the per-worker rate scales with the ranks: 2 x 0.01 for a global batch of 64).
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from typing import Any

import pytest
import requests
from stack_support import ROOT, Stack

pytestmark = [pytest.mark.slow, pytest.mark.stack]
NIGHTLY = "gauntlet_nightly"
SWEEP = "gauntlet_sweep"
QUICK = {"epochs": 2, "workers": 1}
# The protocol's own epoch budget (a run off it is never promoted), enough to pass the gate against the
# baseline; 1256 training rows over 3 ranks leave rank 2 one repeated row, which it warns about.
# Two ranks, as the demo trains: its 30-epoch CNN clears the gate against the baseline with room
# (a 3-rank run sits on the margin: its interval's upper bound lands within 0.001 of it).
CHAMPION = {"workers": 2, "lr": 0.01}


def trigger(stack: Stack, dag_id: str, conf: dict[str, Any], logical_date: str | None = None) -> requests.Response:
    return stack.api("POST", f"/dags/{dag_id}/dagRuns", json={"logical_date": logical_date, "conf": conf})


def states(stack: Stack, dag_id: str, run_id: str) -> dict[str, str]:
    return {
        ti["task_id"] + ("" if ti["map_index"] < 0 else f"[{ti['map_index']}]"): ti["state"]
        for ti in stack.task_instances(dag_id, run_id)
    }


def last_try_log(stack: Stack, dag_id: str, run_id: str, task_id: str, map_index: int = -1) -> str:
    ti = next(
        t for t in stack.task_instances(dag_id, run_id) if t["task_id"] == task_id and t["map_index"] == map_index
    )
    return stack.task_log(dag_id, run_id, task_id, max(ti["try_number"], 1), map_index)


def registry_versions(stack: Stack) -> list[int]:
    return list(stack.gauntlet("registry", "list")["versions"])


def land_bad_partition(stack: Stack, prefix: str) -> None:
    """A day of digits with impossible labels and out-of-range pixels on >10% of its rows, under its own prefix."""
    script = f"""
import datetime as dt
from gauntlet import demo, layout, rawdata
good = rawdata.read_partition(layout.raw_partition_uri({stack.store!r}, "raw/digits", dt.date(2026, 11, 1)))
good.loc[:29, "label"] = 42  # 30 of 257 rows: beyond the share of bad rows quarantine may set aside
good.loc[:19, "pixel_10"] = 999
demo.write_partition(layout.raw_partition_uri({stack.store!r}, {prefix!r}, dt.date(2026, 11, 1)), good)
"""
    python = stack.env["PATH"].split(":")[0] + "/python"
    subprocess.run([python, "-c", script], env=stack.env, cwd=ROOT, check=True, capture_output=True, timeout=120)


# --- trigger form ------------------------------------------------------------------------------


def test_trigger_form_params_are_typed_with_sections(local_stack: Stack) -> None:
    local_stack.wait_for_dag(NIGHTLY)
    params = local_stack.ok("GET", f"/dags/{NIGHTLY}/details")["params"]
    schema = {name: spec["schema"] for name, spec in params.items()}
    assert schema["epochs"]["type"] == ["null", "integer"] and schema["epochs"]["minimum"] == 1
    assert schema["model_kind"]["enum"] == [None, "cnn", "mlp"]
    assert schema["register_even_if_gate_fails"]["type"] == "boolean"
    assert {spec.get("section") for spec in schema.values()} >= {"Experiment", "Model", "Training", "Data", "Registry"}


@pytest.mark.parametrize(
    ("conf", "expected"),
    [
        ({"epochs": 0}, r"epochs: 0 is less than the minimum of 1"),
        ({"model_kind": "transformer"}, r"model_kind: 'transformer' is not one of"),
        ({"lr": "fast"}, r"lr: 'fast' is not of type"),
        ({"workers": 2.5}, r"workers: 2.5 is not of type"),
    ],
)
def test_invalid_params_are_refused_by_the_api(local_stack: Stack, conf: dict[str, Any], expected: str) -> None:
    local_stack.wait_for_dag(NIGHTLY)
    before = len(local_stack.runs(NIGHTLY))
    response = trigger(local_stack, NIGHTLY, conf)
    assert response.status_code == 400, response.text
    assert re.search(expected, response.json()["detail"]), response.json()["detail"]
    assert len(local_stack.runs(NIGHTLY)) == before, "a refused trigger must not create a run"


# --- nightly through the REST API --------------------------------------------------------------


@pytest.mark.timeout(2400)  # under load a run of several DAG runs outlasts the default 900 s
def test_nightly_with_params_through_rest_api(local_stack: Stack) -> None:
    stack = local_stack
    # Unpausing lets the scheduler start tonight's run (catchup off): no partition landed in its
    # interval, so it must end with a "no new data" skip, as a success.
    stack.unpause(NIGHTLY)
    response = trigger(stack, NIGHTLY, CHAMPION)
    assert response.status_code == 200, response.text
    run_id = response.json()["dag_run_id"]
    run = stack.wait_for_run(NIGHTLY, run_id)
    assert run["state"] == "success", states(stack, NIGHTLY, run_id)
    assert run["conf"] == CHAMPION
    assert states(stack, NIGHTLY, run_id) == {
        "validate": "success",
        "preprocess": "success",
        "train": "success",
        "evaluate": "success",
        "register": "success",
        "approval": "skipped",  # the digits protocol promotes without a person
        "promote": "skipped",
        "publish_champion": "success",
    }

    scheduled = [r for r in stack.runs(NIGHTLY) if r["run_type"] == "scheduled"]
    assert scheduled, "unpausing should have started tonight's scheduled run"
    night = stack.wait_for_run(NIGHTLY, scheduled[0]["dag_run_id"])
    assert night["state"] == "success"
    assert states(stack, NIGHTLY, night["dag_run_id"])["validate"] == "skipped"
    assert "no new data" in last_try_log(stack, NIGHTLY, night["dag_run_id"], "validate")

    # The logs answer "what happened" without opening S3.
    train_log = last_try_log(stack, NIGHTLY, run_id, "train")
    for epoch in (1, 30):
        assert re.search(rf"epoch {epoch}/30 train_loss=\S+ .*dev_error=\S+ samples/s=\d+ .*eta=\d+s", train_log), (
            train_log
        )
    assert "2 ranks x batch" in train_log
    # Which rank lines reach the log, and with which prefix: tests/unit/steps/test_train.py.
    evaluate_log = last_try_log(stack, NIGHTLY, run_id, "evaluate")
    assert "| model |" in evaluate_log and "| candidate |" in evaluate_log and "| baseline |" in evaluate_log
    assert re.search(r"gate: .*(pass|PASS|fail|FAIL|champion|baseline)", evaluate_log), evaluate_log
    validate_log = last_try_log(stack, NIGHTLY, run_id, "validate")
    assert "validating 7 partitions" in validate_log and "validation passed" in validate_log

    # The manual run is an experiment like any other: its params are in the record and the registry.
    trained = stack.xcom(NIGHTLY, run_id, "train")
    registered = stack.xcom(NIGHTLY, run_id, "register")
    assert registered["promoted"] and registered["champion"], registered
    shown = subprocess.run(
        [
            stack.env["PATH"].split(":")[0] + "/python",
            "-m",
            "gauntlet",
            "--store",
            stack.store,
            "registry",
            "show",
            str(registered["version"]),
        ],
        env=stack.env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    # The version record is the first JSON document; the champion's history follows it.
    version = json.JSONDecoder().raw_decode(shown.stdout)[0]
    assert version["experiment_key"] == trained["key"]
    assert version["params"]["epochs"] == 30 and version["params"]["workers"] == 2 and version["params"]["lr"] == 0.01

    # Extra links open in a logged-in browser: the API server checks the login, then redirects to a
    # short-lived presigned URL. The stored link itself carries no credentials.
    links = stack.ok("GET", f"/dags/{NIGHTLY}/dagRuns/{run_id}/taskInstances/evaluate/links")["extra_links"]
    assert "X-Amz-" not in links["Evaluation report"] and "/gauntlet/open?uri=" in links["Evaluation report"]
    assert requests.get(links["Evaluation report"], timeout=30, allow_redirects=False).status_code in (401, 403)
    report = stack.session.get(links["Evaluation report"], timeout=30)
    assert report.status_code == 200 and report.headers["Content-Type"].startswith("text/html")
    assert "Evaluation of experiment" in report.text
    docs = stack.ok("GET", f"/dags/{NIGHTLY}/dagRuns/{run_id}/taskInstances/validate/links")["extra_links"]["Data Docs"]
    assert stack.session.get(docs, timeout=30).status_code == 200
    entry = stack.ok("GET", f"/dags/{NIGHTLY}/dagRuns/{run_id}/taskInstances/register/links")["extra_links"][
        "Registry entry"
    ]
    assert stack.session.get(entry, timeout=30).json()["version"] == registered["version"]

    # A promotion is an Asset event downstream DAGs can be scheduled on.
    events = stack.ok("GET", "/assets/events", params={"source_dag_id": NIGHTLY, "source_run_id": run_id})
    assert [e["extra"].get("version") for e in events["asset_events"]] == [registered["version"]]
    assert events["asset_events"][0]["uri"].endswith("/registry/digits-classifier/aliases/champion.json")


@pytest.mark.timeout(2400)  # under load a run of several DAG runs outlasts the default 900 s
def test_failed_validation_lists_expectations_with_examples(local_stack: Stack) -> None:
    local_stack.unpause(NIGHTLY)
    land_bad_partition(local_stack, "raw/bad-digits")
    response = trigger(local_stack, NIGHTLY, {**QUICK, "dataset_prefix": "raw/bad-digits"})
    assert response.status_code == 200, response.text
    run_id = response.json()["dag_run_id"]
    run = local_stack.wait_for_run(NIGHTLY, run_id, timeout=600)
    assert run["state"] == "failed"
    task_states = states(local_stack, NIGHTLY, run_id)
    assert task_states["validate"] == "failed" and task_states["train"] == "upstream_failed"
    text = last_try_log(local_stack, NIGHTLY, run_id, "validate")
    assert re.search(r"expect_column_values_to_be_in_set on column 'label': \d+ bad values, e\.g\. \[42", text), text
    assert re.search(r"column 'pixel_10': \d+ bad values, e\.g\. \[999", text), text


# --- backfill ----------------------------------------------------------------------------------


def backfill_runs(stack: Stack) -> list[dict[str, Any]]:
    return sorted((r for r in stack.runs(NIGHTLY) if r["run_type"] == "backfill"), key=lambda r: r["logical_date"])


def wait_for_backfill(stack: Stack, expected_runs: int, ended_after: str = "") -> list[dict[str, Any]]:
    """The backfill's runs once all have ended (after `ended_after`: a re-run clears them asynchronously)."""
    deadline = time.monotonic() + 1200
    while True:
        runs = backfill_runs(stack)
        done = [r for r in runs if r["state"] in ("success", "failed") and (r["end_date"] or "") > ended_after]
        if len(runs) == expected_runs and len(done) == expected_runs:
            return runs
        assert time.monotonic() < deadline, [(r["logical_date"], r["state"], r["end_date"]) for r in runs]
        time.sleep(5)


@pytest.mark.timeout(2400)  # under load a run of several DAG runs outlasts the default 900 s
def test_backfill_three_nights_then_again_adds_no_versions(local_stack: Stack) -> None:
    stack = local_stack
    stack.unpause(NIGHTLY)
    # Forced registration puts every night in the registry (2 epochs never pass the gate), so a
    # second backfill has versions it could duplicate.
    conf = json.dumps({"epochs": 2, "workers": 1, "register_even_if_gate_fails": True})
    versions_before = registry_versions(stack)
    window = ["--from-date", "2026-11-06T00:00:00+00:00", "--to-date", "2026-11-08T12:00:00+00:00"]
    once = ["--max-active-runs", "1"]
    created = stack.create_backfill(NIGHTLY, *window, "--dag-run-conf", conf, *once)
    assert created.returncode == 0, created.stderr[-2000:]
    runs = wait_for_backfill(stack, 3)
    assert [r["state"] for r in runs] == ["success"] * 3, [(r["logical_date"], r["state"]) for r in runs]
    # Each night reads exactly its own interval: one new partition, and a snapshot one day longer.
    validated = [stack.xcom(NIGHTLY, r["dag_run_id"], "validate") for r in runs]
    assert [v["new_partitions"] for v in validated] == [1, 1, 1]
    assert [v["partitions"] for v in validated] == [5, 6, 7]
    first_keys = [stack.xcom(NIGHTLY, r["dag_run_id"], "train")["key"] for r in runs]
    assert len(set(first_keys)) == 3
    versions = registry_versions(stack)
    assert len(versions) - len(versions_before) == 3, (versions_before, versions)
    # Its runs have ended; the scheduler then closes the backfill itself, and only one may be open per DAG.
    deadline = time.monotonic() + 300
    while stack.open_backfills(NIGHTLY):
        assert time.monotonic() < deadline, "the first backfill was never marked completed"
        time.sleep(3)

    again = stack.create_backfill(
        NIGHTLY,
        *window,
        "--dag-run-conf",
        conf,
        "--reprocess-behavior",
        "completed",
        *once,
    )
    assert again.returncode == 0, again.stderr[-2000:]
    rerun = wait_for_backfill(stack, 3, ended_after=max(r["end_date"] for r in runs))
    assert [r["state"] for r in rerun] == ["success"] * 3
    assert all(r["end_date"] > old["end_date"] for r, old in zip(rerun, runs, strict=True)), "the nights ran again"
    trained = [stack.xcom(NIGHTLY, r["dag_run_id"], "train") for r in rerun]
    assert [t["key"] for t in trained] == first_keys
    assert all(t["cache_hit"] for t in trained)
    assert registry_versions(stack) == versions


# --- sweep -------------------------------------------------------------------------------------


@pytest.mark.timeout(2400)  # under load a run of several DAG runs outlasts the default 900 s
def test_sweep_two_configs_by_two_dates_then_nothing_to_train(local_stack: Stack) -> None:
    stack = local_stack
    stack.unpause(SWEEP)
    conf = {
        "grid": [
            {"name": "cnn-lr02", "overrides": {"training.lr": 0.02}},
            {"name": "mlp", "overrides": {"model.kind": "mlp"}},
        ],
        "snapshot_dates": ["2026-11-02", "2026-11-03"],
        "epochs": 2,
        "workers": 1,
    }
    reports = []
    for _ in range(2):
        response = trigger(stack, SWEEP, conf)
        assert response.status_code == 200, response.text
        run_id = response.json()["dag_run_id"]
        run = stack.wait_for_run(SWEEP, run_id, timeout=1500)
        assert run["state"] == "success", states(stack, SWEEP, run_id)
        task_states = states(stack, SWEEP, run_id)
        assert sum(1 for t in task_states if t.startswith("pair.train[")) == 4
        reports.append((run_id, stack.xcom(SWEEP, run_id, "report")))
    (first_run, first), (_, second) = reports
    assert (first["pairs"], first["experiments"], first["trained"], first["cache_hits"]) == (4, 4, 4, 0)
    assert (second["pairs"], second["experiments"], second["trained"], second["cache_hits"]) == (4, 4, 0, 4)
    table = stack.ok("GET", f"/dags/{SWEEP}/dagRuns/{first_run}/taskInstances/report/links")["extra_links"][
        "Sweep comparison"
    ]
    page = stack.session.get(table, timeout=30)
    assert page.status_code == 200
    for label in ("cnn-lr02 @ 2026-11-02", "cnn-lr02 @ 2026-11-03", "mlp @ 2026-11-02", "mlp @ 2026-11-03"):
        assert label in page.text
    assert "data:image/png;base64,iVBORw0KGgo" in page.text, "the page inlines the stacked learning curves"
    train_log = last_try_log(stack, SWEEP, first_run, "pair.train", map_index=0)
    assert "epoch 2/2" in train_log
    pools = {p["name"]: p for p in stack.ok("GET", "/pools")["pools"]}
    assert pools["training"]["slots"] == 1
    tis = [t for t in stack.task_instances(SWEEP, first_run) if t["task_id"] == "pair.train"]
    assert {t["pool"] for t in tis} == {"training"}
