"""steps.register under `gate.approval: required`, and steps.promote acting on the answer: approve
moves `champion` under the automatic promotion's rules, reject leaves it and records who and why."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from testkit import ROOT, run_cli, synthetic_report

from gauntlet import layout, registry, storage
from gauntlet.errors import ProtocolMismatch, RegistryError
from gauntlet.protocol import REQUIRED, Protocol
from gauntlet.steps import promote, register

MODEL = "approval-unit"
RAW = yaml.safe_load((ROOT / "include" / "protocols" / "digits-v1.yaml").read_text())


def _protocol(approval: str | None) -> Protocol:
    raw = copy.deepcopy(RAW)
    if approval:
        raw["gate"]["approval"] = approval
    return Protocol.from_dict(raw)


REQUIRES = _protocol(REQUIRED)
AUTOMATIC = _protocol(None)


def _report(store: str, key: str, passed: bool = True, champion: int | None = None, **record: Any) -> str:
    """A synthetic report scored under the approval protocol, with its tables; `record` edits RECORD.json."""
    uri = synthetic_report(store, key, passed, champion)
    report = storage.get_json(uri)
    report |= {
        "protocol_id": REQUIRES.id,
        "protocol_name": REQUIRES.name,
        "test_rows": 360,
        "tables": {"metrics": "| model | error_rate |", "intervals": "| comparison | metric | difference | 95% CI |"},
    }
    storage.put_json(uri, report)
    if record:
        record_uri = f"{report['experiment_uri']}/RECORD.json"
        storage.put_json(record_uri, {**storage.get_json(record_uri), **record})
    return uri


def _champion(store: str) -> int | None:
    alias, _ = registry.get_alias(layout.registry_root(store, MODEL))
    return None if alias is None else int(alias["version"])


def _events(store: str, kind: str) -> list[dict[str, Any]]:
    return [e for e in registry.events(layout.registry_root(store, MODEL)) if e["event"] == kind]


def test_a_passed_gate_registers_without_promoting_and_says_it_awaits_approval(store: str) -> None:
    report = _report(store, "first")
    out = register.run(store, MODEL, report, "night-1", protocol=REQUIRES)
    assert (out["registered"], out["version"], out["champion"], out["promoted"]) == (True, 1, False, False)
    assert out["approval"] == REQUIRED and out["awaiting_approval"] is True
    request = out["approval_request"]
    assert request["metrics_table"].startswith("| model |") and "95% CI" in request["intervals_table"]
    assert request["report_html_uri"] == report.rsplit("/", 1)[0] + "/report.html"
    assert (request["test_rows"], request["champion_version"]) == (360, None)
    assert _champion(store) is None and _events(store, "promoted") == []


def test_an_automatic_protocol_promotes_in_register_as_before(store: str) -> None:
    out = register.run(store, MODEL, synthetic_report(store, "auto", True), "night-1", protocol=AUTOMATIC)
    assert (out["promoted"], out["approval"], out["awaiting_approval"]) == (True, "automatic", False)
    assert "approval_request" not in out and _champion(store) == 1


def test_a_failed_gate_awaits_nothing(store: str) -> None:
    out = register.run(store, MODEL, _report(store, "weak", passed=False), "night-1", protocol=REQUIRES)
    assert (out["registered"], out["awaiting_approval"]) == (False, False)


def test_a_version_that_is_champion_already_awaits_nothing(store: str) -> None:
    report = _report(store, "first")
    register.run(store, MODEL, report, "night-1", protocol=REQUIRES)
    promote.run(store, MODEL, report, "night-1", "ada")
    again = register.run(store, MODEL, report, "night-2", protocol=REQUIRES)
    assert (again["champion"], again["awaiting_approval"]) == (True, False)


def test_register_refuses_another_protocol_than_the_report_was_scored_under(store: str) -> None:
    with pytest.raises(ProtocolMismatch, match=r"pass register the --protocol evaluate had"):
        register.run(store, MODEL, _report(store, "first"), "night-1", protocol=AUTOMATIC)
    assert registry.list_versions(layout.registry_root(store, MODEL)) == []


def test_approve_moves_the_champion_and_records_who_approved(store: str) -> None:
    report = _report(store, "first")
    register.run(store, MODEL, report, "night-1", protocol=REQUIRES)
    out = promote.run(store, MODEL, report, "night-1", "ada")
    assert (out["version"], out["champion"], out["promoted"], out["approved_by"]) == (1, True, True, "ada")
    assert _champion(store) == 1
    [event] = _events(store, "promoted")
    assert event["approved_by"] == "ada" and event["reason"].endswith("Approved by ada.")
    # Airflow retries the task: the promotion it made counts, no second event.
    again = promote.run(store, MODEL, report, "night-1", "ada")
    assert again["promoted"] is True and len(_events(store, "promoted")) == 1


def test_reject_leaves_the_version_registered_and_the_champion_where_it_was(store: str) -> None:
    first = _report(store, "first")
    register.run(store, MODEL, first, "night-1", protocol=REQUIRES)
    promote.run(store, MODEL, first, "night-1", "ada")
    second = _report(store, "second", champion=1)
    out = register.run(store, MODEL, second, "night-2", protocol=REQUIRES)
    assert out["approval_request"]["champion_version"] == 1
    reg = layout.registry_root(store, MODEL)
    promote.reject(reg, out["version"], "night-2", "grace", "dev error drifted up", second)
    assert _champion(store) == 1 and [v["version"] for v in registry.list_versions(reg)] == [1, 2]
    [event] = _events(store, promote.REJECTED_EVENT)
    assert (event["version"], event["rejected_by"], event["reason"], event["run_id"]) == (
        2,
        "grace",
        "dev error drifted up",
        "night-2",
    )
    assert event["evaluation_uri"] == second


def test_reject_of_a_version_that_does_not_exist_writes_nothing(store: str) -> None:
    reg = layout.registry_root(store, MODEL)
    with pytest.raises(RegistryError, match="has no version 7"):
        promote.reject(reg, 7, "night-1", "grace", "why not")
    assert registry.events(reg) == []


def test_an_approval_never_promotes_an_off_protocol_version(store: str) -> None:
    report = _report(store, "long", off_protocol_reason="it trained 90 epochs")
    register.run(store, MODEL, report, "night-1", protocol=REQUIRES)
    with pytest.raises(RegistryError, match="off-protocol"):
        promote.run(store, MODEL, report, "night-1", "ada")
    assert _champion(store) is None


def test_an_approval_does_not_leapfrog_a_champion_that_moved_meanwhile(store: str) -> None:
    reg = layout.registry_root(store, MODEL)
    first = _report(store, "first")
    register.run(store, MODEL, first, "night-1", protocol=REQUIRES)
    promote.run(store, MODEL, first, "night-1", "ada")
    waiting = _report(store, "waiting", champion=1)
    register.run(store, MODEL, waiting, "night-2", protocol=REQUIRES)
    other = _report(store, "other", champion=1)
    register.run(store, MODEL, other, "night-3", protocol=REQUIRES)
    promote.run(store, MODEL, other, "night-3", "ada")  # v3 is champion before v2's approval comes
    out = promote.run(store, MODEL, waiting, "night-2", "grace")
    assert (out["champion"], out["promoted"]) == (False, False)
    assert registry.get_alias(reg)[0]["version"] == 3


@pytest.mark.parametrize(
    ("passed", "registered", "message"),
    [(False, False, "the gate failed, so there is nothing to approve"), (True, False, "is not registered")],
)
def test_promote_refuses_what_was_never_awaiting_approval(
    store: str, passed: bool, registered: bool, message: str
) -> None:
    report = _report(store, "nothing", passed=passed)
    with pytest.raises(RegistryError, match=message):
        promote.run(store, MODEL, report, "night-1", "ada")
    assert _champion(store) is None


def test_register_and_promote_through_the_cli(store: str, project_protocol: Callable[[str], Path]) -> None:
    path = project_protocol("approval")
    raw = copy.deepcopy(RAW)
    raw["gate"]["approval"] = REQUIRED
    path.write_text(yaml.safe_dump(raw))
    report = synthetic_report(store, "cli", True)  # no protocol id: register takes the one it is given
    name = ["--protocol", str(path), "--set", f"model.name={MODEL}", "--run-id", "night-1"]
    _, registered = run_cli(store, *name, "register", "--report", report)
    assert (registered["awaiting_approval"], registered["promoted"]) == (True, False)
    refused, _ = run_cli(store, *name, "promote", "--report", report, check=False)
    assert refused.returncode == 2 and "--approved-by" in refused.stderr
    _, promoted = run_cli(store, *name, "promote", "--report", report, "--approved-by", "ada")
    assert (promoted["version"], promoted["promoted"]) == (registered["version"], True)
    assert _champion(store) == registered["version"]
