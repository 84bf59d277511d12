"""The production profile under load and faults: PostgreSQL, Redis, CeleryExecutor with two workers,
task logs in S3 (`PROFILE=production scripts/stack.sh up`, started once for the module).

1. Five backfilled nights and a 2x2 sweep at once: every run succeeds across both workers, each
   experiment trains once (a pair the backfill already trains is a cache hit), registry versions are unique.
2. kill -9 of the worker running a training (with everything under it): the scheduler fails the try
   once its heartbeat stops, the retry runs on the other worker and resumes from the checkpoint.
3. The killed worker's finished tasks still show their logs through the REST API, read from S3.

The figures (wall times, what ran at once, which worker ran what, recovery time) are printed and
written to artifacts/scale/production.json.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from scale.production_support import (
    WORKERS,
    Occupancy,
    ProductionStack,
    kill_worker,
    log_sources,
    production_stack,
    wait_for_file,
)
from stack_support import ROOT

pytestmark = [pytest.mark.scale, pytest.mark.slow]
NIGHTLY, SWEEP = "gauntlet_nightly", "gauntlet_sweep"
QUICK = {"epochs": 2, "workers": 1}
KILL_EPOCH = 2  # the frozen rank waits in epoch 2, batch 5: epoch 1's checkpoint is in S3
FIGURES = ROOT / "artifacts" / "scale" / "production.json"
STATE: dict[str, Any] = {}


@pytest.fixture(scope="module")
def production() -> Iterator[ProductionStack]:
    with production_stack(fault=f"0:{KILL_EPOCH}:5") as running:
        yield running
        FIGURES.parent.mkdir(parents=True, exist_ok=True)
        FIGURES.write_text(json.dumps(running.figures, indent=2) + "\n")
        print(json.dumps(running.figures, indent=2))


def utc(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


@pytest.mark.timeout(2400)
def test_backfill_and_sweep_at_once_across_both_workers(production: ProductionStack) -> None:
    stack = production.stack
    stack.unpause(NIGHTLY)
    stack.unpause(SWEEP)
    started = time.monotonic()
    # Nights 11-04 .. 11-08 read the partitions dated before them; forced registration puts each in the registry.
    conf = json.dumps({**QUICK, "register_even_if_gate_fails": True})
    window = ["--from-date", "2026-11-04T00:00:00+00:00", "--to-date", "2026-11-08T12:00:00+00:00"]
    created = stack.create_backfill(NIGHTLY, *window, "--dag-run-conf", conf, "--max-active-runs", "5")
    assert created.returncode == 0, created.stderr[-2000:]
    # Pair "nightly @ 11-06" reads the partitions up to 11-06, as the backfilled night 11-07 does: the
    # same experiment, which must train once however the two runs interleave.
    sweep_conf = {
        "grid": [{"name": "nightly", "overrides": {}}, {"name": "mlp", "overrides": {"model.kind": "mlp"}}],
        "snapshot_dates": ["2026-11-05", "2026-11-06"],
        **QUICK,
    }
    sweep_run = stack.ok("POST", f"/dags/{SWEEP}/dagRuns", json={"logical_date": None, "conf": sweep_conf})
    occupancy = Occupancy()
    deadline = time.monotonic() + 2100
    while True:
        occupancy.sample(stack)
        backfilled = [r for r in stack.runs(NIGHTLY) if r["run_type"] == "backfill"]
        sweep = stack.ok("GET", f"/dags/{SWEEP}/dagRuns/{sweep_run['dag_run_id']}")
        ended = [r for r in [*backfilled, sweep] if r["state"] in ("success", "failed")]
        if len(backfilled) == 5 and len(ended) == 6:
            break
        assert time.monotonic() < deadline, [(r["dag_run_id"], r["state"]) for r in [*backfilled, sweep]]
        time.sleep(2)
    wall = time.monotonic() - started

    runs = [(NIGHTLY, r["dag_run_id"]) for r in backfilled] + [(SWEEP, sweep["dag_run_id"])]
    assert {r["state"] for r in [*backfilled, sweep]} == {"success"}, [(r["dag_run_id"], r["state"]) for r in runs]
    tis = [(dag_id, run_id, ti) for dag_id, run_id in runs for ti in stack.task_instances(dag_id, run_id)]
    ran = [(d, r, ti) for d, r, ti in tis if ti["state"] == "success" and ti["hostname"]]
    hosts = Counter(ti["hostname"] for _, _, ti in ran)
    assert set(hosts) == set(WORKERS), hosts
    trains = [(d, r, ti) for d, r, ti in ran if ti["task_id"].endswith("train")]
    assert len(trains) == 9 and {ti["queue"] for _, _, ti in trains} == {"training"}
    assert {ti["queue"] for _, _, ti in ran} - {"training"} == {"default"}

    # Nothing trains twice: every experiment key was trained by exactly one task; the rest were cache hits.
    outputs = [stack.xcom(d, r, ti["task_id"], ti["map_index"]) for d, r, ti in trains]
    trained = Counter(o["key"] for o in outputs if not o["cache_hit"])
    assert set(trained.values()) == {1}, trained
    assert set(trained) == {o["key"] for o in outputs}, "a cache hit for a key nobody trained"
    report = stack.xcom(SWEEP, sweep["dag_run_id"], "report")
    assert report["pairs"] == 4 and report["trained"] + report["cache_hits"] == 4
    versions = [stack.xcom(NIGHTLY, r, "register")["version"] for d, r in runs if d == NIGHTLY]
    assert len(set(versions)) == 5, versions

    production.figures["load"] = {
        "wall_s": round(wall, 1),
        "runs": len(runs),
        "task_instances": len(ran),
        "max_running_task_instances": occupancy.max_tasks,
        "max_running_dag_runs": occupancy.max_runs,
        "max_running_trainings": occupancy.max_trainings,
        "samples": occupancy.samples,
        "tasks_per_worker": dict(hosts),
        "trainings_per_worker": dict(Counter(ti["hostname"] for _, _, ti in trains)),
        "experiments_trained": len(trained),
        "cache_hits": sum(1 for o in outputs if o["cache_hit"]),
    }
    STATE["load_runs"] = runs


@pytest.mark.timeout(1800)
def test_killed_worker_s_training_resumes_on_the_other_worker(production: ProductionStack) -> None:
    stack = production.stack
    stack.unpause(NIGHTLY)
    production.fault_marker.unlink()  # arm: the next training freezes its rank in epoch 2
    conf = {"epochs": 3, "workers": 1, "lr": 0.013}
    run_id = stack.ok("POST", f"/dags/{NIGHTLY}/dagRuns", json={"logical_date": None, "conf": conf})["dag_run_id"]
    rank_pid = int(wait_for_file(production.fault_pidfile, timeout=900))
    train = next(t for t in stack.task_instances(NIGHTLY, run_id) if t["task_id"] == "train")
    assert train["state"] == "running" and train["try_number"] == 1, train
    victim = train["hostname"]
    survivor = next(w for w in WORKERS if w != victim)
    killed = kill_worker(production.worker_pid(victim))
    killed_at = dt.datetime.now(dt.UTC)
    assert rank_pid in killed, "the frozen rank runs under the worker that took the training"

    run = stack.wait_for_run(NIGHTLY, run_id, timeout=900)
    assert run["state"] == "success", [(t["task_id"], t["state"]) for t in stack.task_instances(NIGHTLY, run_id)]
    train = next(t for t in stack.task_instances(NIGHTLY, run_id) if t["task_id"] == "train")
    assert train["try_number"] == 2 and train["hostname"] == survivor, train
    tries = stack.ok("GET", f"/dags/{NIGHTLY}/dagRuns/{run_id}/taskInstances/train/tries")["task_instances"]
    assert [(t["try_number"], t["hostname"]) for t in tries][:2] == [(1, victim), (2, survivor)], tries
    log = stack.task_log(NIGHTLY, run_id, "train", 2)
    assert f"resuming from checkpoint of epoch {KILL_EPOCH - 1}" in log, log[-3000:]
    assert "epoch 3/3" in log and "epoch 1/3" not in log, "the retry trains only the epochs after the checkpoint"

    production.figures["kill"] = {
        "killed_worker": victim,
        "retried_on": survivor,
        "processes_killed": len(killed),
        "recovery_s": round((utc(train["end_date"]) - killed_at).total_seconds(), 1),
        "kill_to_retry_start_s": round((utc(train["start_date"]) - killed_at).total_seconds(), 1),
        "retry_duration_s": round(float(train["duration"]), 1),
    }
    STATE["killed_worker"] = victim
    STATE["kill_run"] = run_id


@pytest.mark.timeout(600)
def test_logs_of_a_gone_worker_are_read_from_s3(production: ProductionStack) -> None:
    stack = production.stack
    victim = STATE.get("killed_worker")
    if victim is None:  # run alone: lose a worker here
        victim = WORKERS[0]
        kill_worker(production.worker_pid(victim))
    status = (production.state / f"{victim}.pid").read_text()
    assert not Path(f"/proc/{status.strip()}").exists(), f"{victim} should be gone"
    runs = [*STATE.get("load_runs", []), *([(NIGHTLY, STATE["kill_run"])] if "kill_run" in STATE else [])]
    if not runs:
        runs = [(NIGHTLY, r["dag_run_id"]) for r in stack.runs(NIGHTLY)]
    finished = [
        (dag_id, run_id, ti)
        for dag_id, run_id in runs
        for ti in stack.task_instances(dag_id, run_id)
        if ti["hostname"] == victim and ti["state"] == "success"
    ]
    assert finished, f"no finished task of {victim} to read"
    bucket = production.log_bucket()
    for dag_id, run_id, ti in finished[:3]:
        text = stack.task_log(dag_id, run_id, ti["task_id"], ti["try_number"], ti["map_index"])
        sources = log_sources(text)
        assert sources and all(s.startswith(bucket + "/") for s in sources), (sources, text[:500])
        assert "running: -m gauntlet" in text, text[-2000:]
        local = list((stack.home / "logs" / f"dag_id={dag_id}").rglob(f"task_id={ti['task_id']}/*"))
        assert not [p for p in local if p.is_file()], f"a local copy remains: {local}"
    production.figures["logs_from_s3"] = {"worker": victim, "task_logs_read": min(len(finished), 3)}
