"""The nightly deadline fires on the running stack: the scheduler notices a run unfinished at its
deadline, the triggerer runs the callback, and the model's registry gets a `deadline_missed` event.

The run is triggered with a logical date just under the deadline (6 h) ago, so its deadline falls
in under a minute; the DAG is paused meanwhile, so the run waits queued and cannot finish in time.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import time
from typing import Any

import pytest
from stack_support import ROOT, Stack

from gauntlet.airflow.deadlines import DEFAULT_DEADLINE, EVENT, parse_deadline

pytestmark = [pytest.mark.slow, pytest.mark.stack]
NIGHTLY = "gauntlet_nightly"
CONFIG = "include/configs/wine.yaml"  # its own registry: no other stack test writes there
MODEL = "wine-classifier"


def registry_events(stack: Stack, model: str) -> list[dict[str, Any]]:
    script = f"""
import json
from gauntlet import layout, registry
print(json.dumps(registry.events(layout.registry_root({stack.store!r}, {model!r}))))
"""
    python = stack.env["PATH"].split(":")[0] + "/python"
    done = subprocess.run(
        [python, "-c", script], env=stack.env, cwd=ROOT, check=True, capture_output=True, text=True, timeout=120
    )
    return list(json.loads(done.stdout.strip().splitlines()[-1]))


def test_a_nightly_run_past_its_deadline_is_recorded_in_the_registry(local_stack: Stack) -> None:
    stack = local_stack
    stack.wait_for_dag(NIGHTLY)
    was_paused = stack.ok("GET", f"/dags/{NIGHTLY}")["is_paused"]
    stack.ok("PATCH", f"/dags/{NIGHTLY}", json={"is_paused": True})
    lead = dt.timedelta(seconds=30)
    logical = dt.datetime.now(dt.UTC).replace(microsecond=0) - parse_deadline(DEFAULT_DEADLINE) + lead
    run = stack.ok(
        "POST", f"/dags/{NIGHTLY}/dagRuns", json={"logical_date": logical.isoformat(), "conf": {"config": CONFIG}}
    )
    run_id = run["dag_run_id"]
    triggered = time.monotonic()
    try:
        [deadline] = stack.session.get(f"{stack.url}/ui/dags/{NIGHTLY}/dagRuns/{run_id}/deadlines", timeout=30).json()[
            "deadlines"
        ]
        assert deadline["alert_name"] == "nightly_deadline"
        assert dt.datetime.fromisoformat(deadline["deadline_time"]) == logical + parse_deadline(DEFAULT_DEADLINE)

        events: list[dict[str, Any]] = []
        while not (events := [e for e in registry_events(stack, MODEL) if e["run_id"] == run_id]):
            assert time.monotonic() - triggered < lead.total_seconds() + 180, "the deadline callback wrote no event"
            time.sleep(3)
        print(f"deadline event {time.monotonic() - triggered - lead.total_seconds():.1f}s after the deadline")
        [event] = events
        assert event["event"] == EVENT and event["model"] == MODEL and event["allowed"] == DEFAULT_DEADLINE
        assert event["run_type"] == "manual" and event["state"] == "queued"
        missed = stack.session.get(f"{stack.url}/ui/dags/{NIGHTLY}/dagRuns/{run_id}/deadlines", timeout=30).json()
        assert [d["missed"] for d in missed["deadlines"]] == [True]
        triggerer_log = (stack.home / "stack" / "triggerer.log").read_text()
        assert f"{NIGHTLY} run {run_id} has not finished by its deadline" in triggerer_log
    finally:
        stack.api("DELETE", f"/dags/{NIGHTLY}/dagRuns/{run_id}")
        stack.ok("PATCH", f"/dags/{NIGHTLY}", json={"is_paused": was_paused})
