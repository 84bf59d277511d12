"""The nightly deadline: GAUNTLET_NIGHTLY_DEADLINE parsed as a duration (a bad value names the setting),
the alert the DAG carries, and the callback's registry event for the model of the run's config."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path
from typing import Any

import pytest
from testkit import ROOT

from gauntlet import layout, registry
from gauntlet.airflow import deadlines
from gauntlet.errors import ConfigError


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("6h", 21600),
        ("90m", 5400),
        ("45s", 45),
        ("1h30m", 5400),
        ("2h0m30s", 7230),
        ("1.5h", 5400),
        (" 6H ", 21600),
        ("21600", 21600),
        ("0.5", 0.5),
    ],
)
def test_a_deadline_is_a_duration_or_seconds(text: str, seconds: float) -> None:
    assert deadlines.parse_deadline(text) == dt.timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["", "soon", "0", "0h", "-5", "6d", "30m1h", "h", "6 hours"])
def test_a_value_that_is_no_duration_names_the_setting(text: str) -> None:
    with pytest.raises(ConfigError, match=r"GAUNTLET_NIGHTLY_DEADLINE=.*e\.g\. 6h, 90m"):
        deadlines.parse_deadline(text)


def test_the_alert_counts_from_the_logical_date_and_defaults_to_six_hours(monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow.sdk.definitions.deadline import DeadlineReference

    monkeypatch.delenv(deadlines.DEADLINE_ENV, raising=False)
    alert = deadlines.nightly_deadline()
    assert alert.interval == dt.timedelta(hours=6)
    assert alert.reference == DeadlineReference.DAGRUN_LOGICAL_DATE
    assert alert.callback.path == "gauntlet.airflow.deadlines.nightly_deadline_missed"
    monkeypatch.setenv(deadlines.DEADLINE_ENV, "90s")
    assert deadlines.nightly_deadline().interval == dt.timedelta(seconds=90)


def _parse_nightly(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, setting: str) -> Any:
    monkeypatch.setenv("AIRFLOW_HOME", str(tmp_path))
    monkeypatch.setenv("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
    monkeypatch.setenv("AIRFLOW__CORE__UNIT_TEST_MODE", "True")
    monkeypatch.setenv(deadlines.DEADLINE_ENV, setting)
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(ROOT / "dags" / "gauntlet_nightly.py"))


def test_the_nightly_dag_carries_the_configured_deadline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    bag = _parse_nightly(monkeypatch, tmp_path, "2m")
    assert bag.import_errors == {}
    [alert] = bag.dags["gauntlet_nightly"].deadline
    assert alert.interval == dt.timedelta(minutes=2)
    assert alert.callback.kwargs == {"allowed": "2m"}


def test_a_bad_setting_stops_the_dag_with_a_message_that_names_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    bag = _parse_nightly(monkeypatch, tmp_path, "six hours")
    assert "GAUNTLET_NIGHTLY_DEADLINE='six hours' is no duration" in "".join(bag.import_errors.values())


def _context(run_type: str, conf: dict[str, Any]) -> dict[str, Any]:
    """What the scheduler hands the callback (Deadline.handle_miss): the run as the REST API shows it."""
    return {
        "dag_run": {
            "dag_id": "gauntlet_nightly",
            "dag_run_id": f"{run_type}__2026-12-04T02:00:00+00:00",
            "logical_date": "2026-12-04T02:00:00Z",
            "run_type": run_type,
            "state": "running",
            "conf": conf,
        },
        "deadline": {"id": "d1", "deadline_time": "2026-12-04T08:00:00+00:00"},
    }


def test_the_callback_writes_a_registry_event_for_the_model_of_the_runs_config(
    store: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(layout.STORE_ENV, store)  # the triggerer's store setting
    context = _context("manual", {"config": "include/configs/wine.yaml"})
    said = asyncio.run(deadlines.nightly_deadline_missed(context=context, allowed="6h"))
    # Text: the triggerer stores a callback's result in a text column (a dict there stops the triggerer).
    assert said == (
        "deadline_missed recorded for wine-classifier: run manual__2026-12-04T02:00:00+00:00 "
        "(deadline 2026-12-04T08:00:00+00:00)"
    )
    [recorded] = registry.events(layout.registry_root(store, "wine-classifier"))
    assert recorded["event"] == deadlines.EVENT and recorded["model"] == "wine-classifier"
    assert recorded["run_id"] == "manual__2026-12-04T02:00:00+00:00"
    assert recorded["deadline"] == "2026-12-04T08:00:00+00:00" and recorded["allowed"] == "6h"
    assert recorded["logical_date"] == "2026-12-04T02:00:00Z" and recorded["state"] == "running"
    # A run without a config param trains the default config's model.
    asyncio.run(deadlines.nightly_deadline_missed(context=_context("scheduled", {}), allowed="6h"))
    [default] = registry.events(layout.registry_root(store, "digits-classifier"))
    assert default["model"] == "digits-classifier" and default["run_type"] == "scheduled"


def test_a_backfilled_night_is_not_alerted(store: str) -> None:
    assert deadlines.record_missed(_context("backfill", {}), "6h", store=store) is None
    assert registry.events(layout.registry_root(store, "digits-classifier")) == []


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["/venv/bin/airflow", "dags", "test", "gauntlet_nightly", "2026-11-08"], True),
        (["airflow", "dags", "test", "--conf", "{}", "gauntlet_nightly"], True),
        (["airflow", "dag-processor"], False),
        (["airflow", "dags", "list"], False),
    ],
)
def test_only_airflow_dags_test_counts_as_an_in_process_run(argv: list[str], expected: bool) -> None:
    assert deadlines.parsed_by_dags_test(argv) is expected


def test_no_alert_under_dags_test_or_when_switched_off(monkeypatch: pytest.MonkeyPatch) -> None:
    # `airflow dags test` in Airflow 3.3 fails a successful run whose DAG has a deadline alert.
    monkeypatch.setattr(deadlines.sys, "argv", ["airflow", "dags", "test", "gauntlet_nightly"])
    assert deadlines.nightly_deadline() is None
    monkeypatch.setattr(deadlines.sys, "argv", ["airflow", "dag-processor"])
    assert deadlines.nightly_deadline() is not None
    monkeypatch.setenv(deadlines.DEADLINE_ENV, "off")
    assert deadlines.nightly_deadline() is None
