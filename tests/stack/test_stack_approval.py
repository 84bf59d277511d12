"""Approval before promotion on the running stack: a nightly run under a protocol with
`gate.approval: required` waits for a person, who answers through the REST API both ways.

Approve: the promote step moves `champion` and the promotion event names the approver. Reject: the
version stays registered and not champion, and a `promotion_rejected` event records who and why.

The config and protocol are temporary files in include/ (the trigger form offers only those folders'
files, read when the DAG is parsed); the config registers its own model: digits-v1 with approval required, a 2-epoch budget (a run that
overrides the budget is off-protocol and never promoted, so the budget itself is small) and a
generous non-inferiority margin, so both short runs pass the gate and the approval is what decides.
It is written before the stack starts; if another test file started the stack first, the test waits
for the DAG processor to list it.
"""

from __future__ import annotations

import copy
import json
import subprocess
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from stack_support import ROOT, Stack

pytestmark = [pytest.mark.slow, pytest.mark.stack]
NIGHTLY = "gauntlet_nightly"
# Its own model (and so registry): the other stack tests rely on the digits champion staying theirs.
MODEL = "approval-digits"
REJECTED = "promotion_rejected"


@pytest.fixture(scope="session")
def approval_protocol() -> Iterator[str]:
    raw = copy.deepcopy(yaml.safe_load((ROOT / "include/protocols/digits-v1.yaml").read_text()))
    raw["name"] = "digits-approval-stack-test"
    raw["training"]["epochs"] = 2
    raw["gate"] |= {"approval": "required", "margin": 0.5}
    raw["metrics"]["guards"] = {name: 100.0 for name in raw["metrics"]["guards"]}
    path = ROOT / "include" / "protocols" / f"test-approval-{uuid.uuid4().hex[:8]}.yaml"
    path.write_text(yaml.safe_dump(raw))
    yield f"include/protocols/{path.name}"
    path.unlink(missing_ok=True)


@pytest.fixture(scope="session")
def approval_config(approval_protocol: str) -> Iterator[str]:
    """The digits config under the approval protocol, registering as its own model."""
    raw = copy.deepcopy(yaml.safe_load((ROOT / "include/configs/digits.yaml").read_text()))
    raw["model"]["name"] = MODEL
    raw["protocol"] = approval_protocol
    path = ROOT / "include" / "configs" / f"test-approval-{uuid.uuid4().hex[:8]}.yaml"
    path.write_text(yaml.safe_dump(raw))
    yield f"include/configs/{path.name}"
    path.unlink(missing_ok=True)


def wait_until_offered(stack: Stack, param: str, path: str, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while path not in stack.ok("GET", f"/dags/{NIGHTLY}/details")["params"][param]["schema"]["enum"]:
        assert time.monotonic() < deadline, f"the trigger form does not offer {param} {path} after {timeout} s"
        time.sleep(5)


def states(stack: Stack, run_id: str) -> dict[str, str]:
    return {ti["task_id"]: ti["state"] for ti in stack.task_instances(NIGHTLY, run_id)}


def registry_state(stack: Stack) -> dict[str, Any]:
    """Versions, the champion and the events of the model's registry, read with gauntlet itself."""
    script = f"""
import json
from gauntlet import layout, registry
reg = layout.registry_root({stack.store!r}, {MODEL!r})
alias, _ = registry.get_alias(reg)
print(json.dumps({{"versions": [v["version"] for v in registry.list_versions(reg)],
                  "champion": alias and alias["version"], "events": registry.events(reg)}}))
"""
    python = stack.env["PATH"].split(":")[0] + "/python"
    done = subprocess.run(
        [python, "-c", script], env=stack.env, cwd=ROOT, check=True, capture_output=True, text=True, timeout=120
    )
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def trigger_and_await_request(stack: Stack, conf: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """Trigger a run; return its id and the approval request once the task waits for an answer."""
    run_id = stack.ok("POST", f"/dags/{NIGHTLY}/dagRuns", json={"logical_date": None, "conf": conf})["dag_run_id"]
    deadline = time.monotonic() + 600
    while (state := states(stack, run_id).get("approval")) != "awaiting_input":
        run = stack.ok("GET", f"/dags/{NIGHTLY}/dagRuns/{run_id}")
        assert run["state"] not in ("success", "failed"), f"ended without asking: {states(stack, run_id)}"
        assert time.monotonic() < deadline, f"approval still {state}: {states(stack, run_id)}"
        time.sleep(3)
    request = stack.ok("GET", f"/dags/{NIGHTLY}/dagRuns/{run_id}/taskInstances/approval/-1/hitlDetails")
    await_parked(stack, run_id, deadline)
    return run_id, request


def await_parked(stack: Stack, run_id: str, deadline: float) -> None:
    """Wait until the scheduler has taken in the exit of the process that parked the task.

    A person answers after seconds at the least. An answer that lands before the scheduler has seen
    that exit finds the task already resumed; Airflow 3.3 then counts the exit as the resumed try
    killed externally, retries the task and asks again (a scheduler race, not gauntlet's).
    """
    seen = f"TaskInstance Finished: dag_id={NIGHTLY}, task_id=approval, run_id={run_id},"
    log = stack.home / "stack" / "scheduler.log"
    while not any(seen in line and "state=awaiting_input" in line for line in log.read_text().splitlines()):
        assert time.monotonic() < deadline, "the scheduler never saw the approval task park"
        time.sleep(1)


def answer(stack: Stack, run_id: str, option: str, reason: str) -> dict[str, Any]:
    return dict(
        stack.ok(
            "PATCH",
            f"/dags/{NIGHTLY}/dagRuns/{run_id}/taskInstances/approval/-1/hitlDetails",
            json={"chosen_options": [option], "params_input": {"reason": reason}},
        )
    )


def test_a_person_approves_then_rejects_a_new_champion_through_the_rest_api(
    approval_config: str, local_stack: Stack
) -> None:
    stack = local_stack
    started = time.monotonic()
    stack.unpause(NIGHTLY)
    wait_until_offered(stack, "config", approval_config)
    before = registry_state(stack)

    # --- approve: register leaves the version waiting, the answer moves the champion ------------------
    run_a, request = trigger_and_await_request(stack, {"config": approval_config, "workers": 1})
    registered = stack.xcom(NIGHTLY, run_a, "register")
    assert (registered["awaiting_approval"], registered["promoted"], registered["gate_passed"]) == (True, False, True)
    version_a = registered["version"]
    assert registry_state(stack)["champion"] == before["champion"], "nothing moves before the answer"
    assert request["subject"] == f"Make v{version_a} of {MODEL} champion?"
    assert request["options"] == ["Approve", "Reject"] and request["defaults"] == ["Reject"]
    body = request["body"]
    assert registered["reason"] in body and registered["reason"].startswith("Passed:")
    assert "| candidate - baseline | error_rate |" in body and "95% CI" in body  # the intervals
    assert "/gauntlet/open?uri=" in body and "report.html" in body  # the report, behind Airflow's login

    assert answer(stack, run_a, "Approve", "fine for the demo")["responded_by"]["name"] == stack.user
    assert stack.wait_for_run(NIGHTLY, run_a, timeout=300)["state"] == "success"
    done = states(stack, run_a)
    assert {t: done[t] for t in ("approval", "promote", "publish_champion")} == dict.fromkeys(
        ("approval", "promote", "publish_champion"), "success"
    ), done
    after_a = registry_state(stack)
    assert after_a["champion"] == version_a
    [promotion] = [e for e in after_a["events"] if e["event"] == "promoted" and e["version"] == version_a]
    assert promotion["approved_by"] == stack.user and promotion["reason"].endswith(f"Approved by {stack.user}.")

    # --- reject: another experiment passes the gate against it; the champion stays ----------------------
    run_b, request = trigger_and_await_request(stack, {"config": approval_config, "workers": 1, "lr": 0.02})
    version_b = stack.xcom(NIGHTLY, run_b, "register")["version"]
    assert version_b != version_a and request["subject"] == f"Make v{version_b} of {MODEL} champion?"
    assert f"(now: v{version_a})" in request["body"]
    answer(stack, run_b, "Reject", "calibration drifted on the newest day")
    assert stack.wait_for_run(NIGHTLY, run_b, timeout=300)["state"] == "success"
    done = states(stack, run_b)
    assert (done["approval"], done["promote"], done["publish_champion"]) == ("success", "skipped", "skipped"), done
    after_b = registry_state(stack)
    assert after_b["champion"] == version_a and version_b in after_b["versions"]
    [rejection] = [e for e in after_b["events"] if e["event"] == REJECTED]
    assert (rejection["version"], rejection["rejected_by"]) == (version_b, stack.user)
    assert rejection["reason"] == "calibration drifted on the newest day"
    assert rejection["run_id"] == f"{NIGHTLY}__{run_b}"
    print(f"approval stack test: {time.monotonic() - started:.0f} s after the stack was up")
