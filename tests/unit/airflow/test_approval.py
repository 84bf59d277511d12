"""gauntlet.airflow.approval: when the approval task asks, what the request shows, how an answer is
taken, and a rejection's registry event; and the nightly DAG's wiring around it."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from testkit import ROOT, synthetic_report

from gauntlet import layout, registry
from gauntlet.airflow import approval
from gauntlet.errors import ConfigError
from gauntlet.steps import promote, register

AWAITING: dict[str, Any] = {
    "registered": True,
    "version": 4,
    "champion": False,
    "promoted": False,
    "registry_uri": "s3://b/registry/digits-classifier",
    "report_uri": "s3://b/evaluations/p/k/a/e/report.json",
    "gate_passed": True,
    "reason": "Passed: error_rate change vs champion is -0.004 (95% CI -0.011 to 0.003).",
    "approval": "required",
    "awaiting_approval": True,
    "approval_request": {
        "champion_version": 3,
        "protocol": "digits",
        "test_rows": 360,
        "metrics_table": "| model | error_rate |\n|---|---|\n| candidate | 0.0250 |",
        "intervals_table": "| comparison | metric | difference | 95% CI |\n|---|---|---|---|\n"
        "| candidate - champion | error_rate | -0.0040 | [-0.0110, +0.0030] |",
        "report_html_uri": "s3://b/evaluations/p/k/a/e/report.html",
    },
}


@pytest.mark.parametrize(
    ("registered", "expected"),
    [
        (AWAITING, None),
        ({**AWAITING, "awaiting_approval": False, "approval": "automatic"}, "promotes automatically"),
        ({**AWAITING, "awaiting_approval": False, "gate_passed": False, "reason": "Failed: worse"}, "Failed: worse"),
        ({**AWAITING, "awaiting_approval": False, "champion": True}, "v4 is champion already"),
        (None, "no outputs"),
    ],
)
def test_only_a_version_awaiting_approval_is_asked_about(registered: dict[str, Any] | None, expected: str) -> None:
    reason = approval.skip_reason(registered)
    assert reason is None if expected is None else expected in str(reason)


def test_the_request_shows_the_gate_sentence_the_intervals_and_a_link_to_the_report(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("GAUNTLET_LINK_BASE_URL", raising=False)
    monkeypatch.setenv("AIRFLOW__API__BASE_URL", "http://airflow.example")
    assert approval.subject(AWAITING) == "Make v4 of digits-classifier champion?"
    text = approval.body(AWAITING, "gauntlet_nightly")
    assert AWAITING["reason"] in text and "on 360 test rows" in text
    assert "| candidate - champion | error_rate | -0.0040 | [-0.0110, +0.0030] |" in text
    assert "| candidate | 0.0250 |" in text
    link = "http://airflow.example/gauntlet/open?uri=s3%3A%2F%2Fb%2Fevaluations%2Fp%2Fk%2Fa%2Fe%2Freport.html"
    assert f"[Evaluation report]({link}&dag_id=gauntlet_nightly)" in text
    assert "Approve makes v4 champion (now: v3)" in text


def test_an_answer_becomes_who_decided_what_and_why() -> None:
    at = dt.datetime(2026, 11, 8, tzinfo=dt.UTC)
    approved = approval.decision(
        {"chosen_options": ["Approve"], "params_input": {"reason": ""}, "responded_by_user": {"id": "7", "name": "ada"}}
    )
    assert approved == {"approved": True, "by": "ada", "by_id": "7", "reason": "", "timed_out": False}
    rejected = approval.decision(
        {
            "chosen_options": ["Reject"],
            "params_input": {"reason": "log loss got worse"},
            "responded_by_user": {"id": "8", "name": "grace"},
            "responded_at": at,
        }
    )
    assert (rejected["approved"], rejected["by"], rejected["reason"]) == (False, "grace", "log loss got worse")
    timed_out = approval.decision(
        {"chosen_options": ["Reject"], "params_input": {"reason": ""}, "responded_by_user": None, "timedout": True}
    )
    assert (timed_out["approved"], timed_out["by"], timed_out["timed_out"]) == (False, None, True)
    assert "timed out" in timed_out["reason"]


def test_the_response_timeout_is_configurable_and_a_bad_value_names_the_setting(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(approval.TIMEOUT_ENV, raising=False)
    assert approval.response_timeout() == dt.timedelta(hours=4)
    monkeypatch.setenv(approval.TIMEOUT_ENV, "90m")
    assert approval.response_timeout() == dt.timedelta(minutes=90)
    monkeypatch.setenv(approval.TIMEOUT_ENV, "soon")
    with pytest.raises(ConfigError, match="GAUNTLET_APPROVAL_TIMEOUT='soon' is no duration"):
        approval.response_timeout()


def _context(registered: dict[str, Any] | None) -> dict[str, Any]:
    return {
        "ti": SimpleNamespace(xcom_pull=lambda task_ids: registered, xcom_push=lambda key, value: None, map_index=-1),
        "dag": SimpleNamespace(dag_id="gauntlet_nightly"),
        "run_id": "manual__1",
    }


def _asking() -> approval.GauntletApprovalOperator:
    """The approval task with a promote task after it, as in the nightly DAG."""
    from airflow.providers.standard.operators.empty import EmptyOperator
    from airflow.sdk import DAG

    with DAG("approval_unit", schedule=None):
        operator = approval.GauntletApprovalOperator(task_id="approval")
        operator >> EmptyOperator(task_id="promote")
    return operator


def test_the_task_skips_without_asking_when_no_approval_is_needed() -> None:
    from airflow.sdk.exceptions import AirflowSkipException

    operator = approval.GauntletApprovalOperator(task_id="approval")
    automatic = {**AWAITING, "awaiting_approval": False, "approval": "automatic"}
    with pytest.raises(AirflowSkipException, match="no approval needed: the protocol promotes automatically"):
        operator.execute(_context(automatic))
    assert operator.subject == "Make the new version champion?"  # nothing was asked


def test_a_rejection_is_recorded_in_the_registry_with_who_and_why(store: str) -> None:
    reg = layout.registry_root(store, "approval-op")
    report = synthetic_report(store, "candidate", True)
    registered = register.run(store, "approval-op", report, "r1")
    waiting = {**registered, "awaiting_approval": True, "report_uri": report}
    event = {
        "chosen_options": ["Reject"],
        "params_input": {"reason": "calibration looks off"},
        "responded_at": dt.datetime.now(dt.UTC),
        "responded_by_user": {"id": "8", "name": "grace"},
    }
    from airflow.providers.common.compat.sdk import DownstreamTasksSkipped

    # The operator skips the promote step by raising, which ends the task: the event is written before.
    with pytest.raises(DownstreamTasksSkipped) as skipped:
        operator = _asking()
        operator.execute_complete({**_context(waiting), "task": operator}, event)
    assert skipped.value.tasks == ["promote"]
    [rejection] = [e for e in registry.events(reg) if e["event"] == promote.REJECTED_EVENT]
    assert (rejection["rejected_by"], rejection["reason"]) == ("grace", "calibration looks off")
    assert rejection["run_id"].endswith("__manual__1")
    assert rejection["evaluation_uri"] == report


def test_an_approval_writes_nothing(store: str) -> None:
    reg = layout.registry_root(store, "approval-op")
    registered = register.run(store, "approval-op", synthetic_report(store, "candidate", True), "r1")
    before = registry.events(reg)
    operator = _asking()
    event = {
        "chosen_options": ["Approve"],
        "params_input": {},
        "responded_at": dt.datetime.now(dt.UTC),
        "responded_by_user": {"id": "7", "name": "ada"},
    }
    outcome = operator.execute_complete(
        {**_context({**registered, "awaiting_approval": True}), "task": operator}, event
    )
    assert (outcome["approved"], outcome["by"]) == (True, "ada")
    assert registry.events(reg) == before


def _nightly(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Any:
    monkeypatch.setenv("AIRFLOW_HOME", str(tmp_path))
    monkeypatch.setenv("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
    monkeypatch.setenv("AIRFLOW__CORE__UNIT_TEST_MODE", "True")
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(ROOT / "dags" / "gauntlet_nightly.py"))
    assert bag.import_errors == {}
    return bag.dags["gauntlet_nightly"]


def test_the_nightly_asks_between_register_and_the_champion_asset(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from airflow.providers.standard.operators.hitl import ApprovalOperator

    dag = _nightly(monkeypatch, tmp_path)
    ask, promoting, publish = (dag.get_task(t) for t in ("approval", "promote", "publish_champion"))
    assert isinstance(ask, ApprovalOperator) and ask.upstream_task_ids == {"register"}
    assert ask.downstream_task_ids == {"promote"}  # the one task a rejection skips
    assert ask.defaults == ["Reject"] and "reason" in ask.params
    assert getattr(promoting, "step", None) == "promote"
    assert publish.upstream_task_ids == {"register", "promote"}
    # Automatic runs skip approval and promote; the asset task still runs after register.
    assert publish.trigger_rule == "none_failed_min_one_success"


def test_the_champion_asset_follows_promote_after_an_approval_and_nothing_after_a_rejection() -> None:
    from airflow.sdk.exceptions import AirflowSkipException

    from gauntlet.airflow.factory import publish_champion_task

    publish = publish_champion_task(register_task_id="register", promote_task_id="promote")
    promoted = {"promoted": True, "version": 4, "version_uri": "s3://b/v", "registry_uri": AWAITING["registry_uri"]}
    events: dict[Any, Any] = {}
    outlet = SimpleNamespace(add=lambda asset, extra: events.update({asset.name: extra}))
    outputs = {"register": AWAITING, "promote": promoted}
    context = {
        "ti": SimpleNamespace(xcom_pull=lambda task_ids: outputs[task_ids]),
        "outlet_events": {publish.alias: outlet},
    }
    assert publish.execute(context)["version"] == 4
    assert events == {
        "gauntlet.champion.digits-classifier@b": {k: promoted[k] for k in ("version", "version_uri", "registry_uri")}
    }
    outputs["promote"] = None  # rejected: promote was skipped
    with pytest.raises(AirflowSkipException, match=r"champion unchanged \(not approved\)"):
        publish.execute(context)
