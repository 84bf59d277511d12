"""The registry's promises under lost answers and repeats, against moto's S3 server.

- A PUT the server applied but whose answer was lost is retried by botocore and gets 412: that is
  the writer's own success (the proxy's `lost_put` fault), for the registry, leases and the ledger.
- A claim left without a version by a crashed registration is finished by a later attempt.
- Rollback walks the champion's history back; `registry show` prints it.
- Registering an experiment again says "already registered as vN" with this run's gate verdict.
- The champion Asset event names the model the run registered, not the default config's.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
import subprocess
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from faulty_s3_proxy import FaultPlan, FaultyS3Proxy, Request
from testkit import run_cli, synthetic_report

from gauntlet import errors, layout, lease, ledger, registry, storage
from gauntlet.protocol import load_protocol
from gauntlet.steps import register as register_step

MODEL = "trust"


def _every_first_put(request: Request, seen: Counter[str]) -> bool:
    """Odd-numbered PUTs to each key are lost: every write's first attempt, and its retry gets through."""
    if request.method != "PUT":
        return False
    seen[f"{request.bucket}/{request.key}"] += 1
    return seen[f"{request.bucket}/{request.key}"] % 2 == 1


@pytest.fixture
def proxy_for(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[FaultPlan], FaultyS3Proxy]]:
    """Route this process's S3 client through a proxy with the given plan."""
    started: list[FaultyS3Proxy] = []

    def start(plan: FaultPlan) -> FaultyS3Proxy:
        proxy = FaultyS3Proxy(s3_endpoint, plan).start()
        started.append(proxy)
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
        monkeypatch.setenv("GAUNTLET_S3_RETRY_MODE", "standard")
        storage.client.cache_clear()
        return proxy

    yield start
    for proxy in started:
        proxy.stop()
    storage.client.cache_clear()
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_endpoint)


def _lose_first_puts(proxy_for: Callable[[FaultPlan], FaultyS3Proxy]) -> FaultyS3Proxy:
    seen: Counter[str] = Counter()
    return proxy_for(FaultPlan(rate=1.0, only=lambda r: _every_first_put(r, seen), kinds=("lost_put",)))


def _lost_then_412(proxy: FaultyS3Proxy, key_part: str) -> bool:
    """The scenario happened: a PUT applied without an answer, then its retry answered 412."""
    puts = [r for r in proxy.log if r.method == "PUT" and key_part in r.key]
    lost = [r for r in puts if r.fault == "lost_put" and r.upstream_status == 200]
    return bool(lost) and any(r.status == 412 for r in puts)


# --- item 7: a lost answer is not a conflict ----------------------------------------------------


def test_a_conditional_write_whose_answer_was_lost_is_its_own_success(
    proxy_for: Callable[[FaultPlan], FaultyS3Proxy], store: str
) -> None:
    proxy = _lose_first_puts(proxy_for)
    uri = f"{store}/x/claim.json"
    etag = storage.put_json(uri, {"n": 1}, if_none_match=True)
    assert _lost_then_412(proxy, "x/claim.json"), proxy.log
    assert storage.get_json_with_etag(uri) == ({"n": 1}, etag)
    etag2 = storage.put_json(uri, {"n": 2}, if_match=etag)
    assert storage.get_json_with_etag(uri) == ({"n": 2}, etag2)
    with pytest.raises(errors.PreconditionFailed):  # a real conflict is still one
        storage.put_json(uri, {"n": 3}, if_match=etag)
    with pytest.raises(errors.PreconditionFailed):
        storage.put_json(uri, {"n": 4}, if_none_match=True)
    assert storage.get_json(uri) == {"n": 2}


def _lineage(run_id: str) -> dict[str, Any]:
    return {"model": MODEL, "metrics": {"error_rate": 0.1}, "airflow_run_id": run_id, "dataset_version": "d"}


def test_registry_through_lost_answers_one_version_per_experiment_and_every_promotion_done(
    proxy_for: Callable[[FaultPlan], FaultyS3Proxy], store: str
) -> None:
    proxy = _lose_first_puts(proxy_for)
    reg = layout.registry_root(store, MODEL)
    for i in range(3):
        version, created = registry.register(reg, f"exp{i}", _lineage(f"run-{i}"))
        assert (version["version"], created) == (i + 1, True)
        again, created_again = registry.register(reg, f"exp{i}", _lineage(f"rerun-{i}"))
        assert (again["version"], created_again) == (i + 1, False)
        registry.promote(reg, i + 1, f"v{i + 1} is better")
    assert registry.rollback(reg, "v3 misbehaves") == 2
    assert _lost_then_412(proxy, "by-experiment/") and _lost_then_412(proxy, "aliases/champion.json")

    assert [v["version"] for v in registry.list_versions(reg)] == [1, 2, 3]
    for i in range(3):
        assert storage.get_json(layout.claim_uri(reg, f"exp{i}"))["version"] == i + 1
    kinds = Counter(e["event"] for e in registry.events(reg))
    assert kinds == {"registered": 3, "promoted": 3, "rolled_back": 1}, kinds
    assert [h["version"] for h in registry.alias_history(reg)] == [1, 2, 3, 2]


def test_register_step_end_to_end_through_lost_answers(
    proxy_for: Callable[[FaultPlan], FaultyS3Proxy], store: str
) -> None:
    """`python -m gauntlet register` in its own process, every first PUT's answer lost."""
    report = _synthetic_report(store, "e2e", passed=True)
    proxy = _lose_first_puts(proxy_for)
    env = {"AWS_ENDPOINT_URL": proxy.url, "GAUNTLET_S3_RETRY_MODE": "standard"}
    args = ("--set", f"model.name={MODEL}", "register", "--report", report)
    _, first = run_cli(store, "--run-id", "night-1", *args, env=env)
    assert (first["version"], first["created"], first["promoted"]) == (1, True, True), first
    assert _lost_then_412(proxy, "by-experiment/e2e.json") and _lost_then_412(proxy, "aliases/champion.json")
    _, again = run_cli(store, "--run-id", "night-1", *args, env=env)  # Airflow retries the task
    assert (again["version"], again["created"], again["promoted"]) == (1, False, True), again
    reg = layout.registry_root(store, MODEL)
    assert [v["version"] for v in registry.list_versions(reg)] == [1]
    assert Counter(e["event"] for e in registry.events(reg)) == {"registered": 1, "promoted": 1}


def test_lease_heartbeat_goes_on_through_lost_answers(
    proxy_for: Callable[[FaultPlan], FaultyS3Proxy], store: str
) -> None:
    proxy = _lose_first_puts(proxy_for)
    uri = f"{store}/experiments/k/LEASE.json"
    held = lease.acquire(uri, "me", ttl_s=1.5)
    assert held is not None
    held.keep_alive()  # renews every 0.5 s, each renewal's first answer lost
    time.sleep(3.0)
    beats = [t for t in threading.enumerate() if t.name == "lease-heartbeat"]
    assert beats and any(t.is_alive() for t in beats), "the heartbeat stopped"
    assert storage.get_json(uri)["owner"] == "me" and held.renew()
    renewals = [r for r in proxy.log if r.method == "PUT" and r.key.endswith("LEASE.json") and r.status == 412]
    assert len(renewals) >= 3, proxy.summary()  # the acquire's and at least two renewals' retries
    held.release()
    assert storage.get_json(uri)["state"] == "released"
    assert lease.acquire(uri, "next", ttl_s=60) is not None


def test_a_renewal_that_failed_after_landing_does_not_lose_the_lease(
    proxy_for: Callable[[FaultPlan], FaultyS3Proxy], store: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The write landed but every answer was lost (the call failed): the next renewal still holds."""
    uri = f"{store}/experiments/k2/LEASE.json"
    held = lease.acquire(uri, "me", ttl_s=60)
    assert held is not None
    monkeypatch.setenv("GAUNTLET_S3_MAX_ATTEMPTS", "1")
    proxy = proxy_for(FaultPlan(rate=1.0, only=lambda r: r.method == "PUT", kinds=("lost_put",)))
    with pytest.raises(errors.StorageError):
        held.renew()
    proxy.plan.rate = 0.0
    assert held.renew(), "the lease still names this owner: it is ours"
    assert lease.acquire(uri, "other", ttl_s=60) is None


def test_ledger_records_suspects_through_lost_answers(
    proxy_for: Callable[[FaultPlan], FaultyS3Proxy], store: str
) -> None:
    protocol = load_protocol("include/protocols/digits-v1.yaml")
    suspects = [{"row_id": "a7", "label": 1, "predicted": 7, "confidence": {"m": 0.9}}]
    proxy = _lose_first_puts(proxy_for)
    uri = ledger.record_suspects(store, protocol, "digits", "exp1", suspects)
    ledger.record_suspects(store, protocol, "digits", "exp2", suspects)
    assert _lost_then_412(proxy, "ledger.json")
    assert storage.get_json(uri)["entries"]["a7"]["seen_by"] == ["exp1", "exp2"]


# --- a registration that crashed half-way --------------------------------------------------------


def test_a_claim_left_by_a_crashed_registration_is_finished_by_the_next(
    proxy_for: Callable[[FaultPlan], FaultyS3Proxy], store: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    reg = layout.registry_root(store, MODEL)
    monkeypatch.setenv("GAUNTLET_S3_MAX_ATTEMPTS", "2")
    proxy_for(FaultPlan(rate=1.0, only=lambda r: "/versions/" in r.key and r.method == "PUT", kinds=("5xx",)))
    with pytest.raises(errors.StorageError):  # the claim is written, the version never is
        registry.register(reg, "crashed", _lineage("try-1"))
    claim = storage.get_json(layout.claim_uri(reg, "crashed"))
    assert "version" not in claim and claim["run_id"] == "try-1"

    monkeypatch.setenv("GAUNTLET_S3_MAX_ATTEMPTS", "10")
    monkeypatch.setenv("GAUNTLET_REGISTRY_CLAIM_TTL_S", "1")
    proxy_for(FaultPlan(rate=0.0))
    started = time.monotonic()
    version, created = registry.register(reg, "crashed", _lineage("try-2"))
    assert (version["version"], created) == (1, True)
    assert time.monotonic() - started < 20, "took the abandoned claim over once it was older than the TTL"
    claim = storage.get_json(layout.claim_uri(reg, "crashed"))
    assert claim["version"] == 1 and claim["run_id"] == "try-2" and claim["taken_over_from"]


def test_a_crash_after_the_version_was_written_gives_no_second_version(
    store: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    reg = layout.registry_root(store, MODEL)
    old = (dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)).isoformat()
    storage.put_json(layout.claim_uri(reg, "half"), {"experiment": "half", "claimed_at": old, "owner": "dead"})
    storage.put_json(layout.version_uri(reg, 1), {**_lineage("try-1"), "version": 1, "experiment_key": "half"})
    version, created = registry.register(reg, "half", _lineage("try-2"))
    assert (version["version"], created, version["airflow_run_id"]) == (1, False, "try-1")
    assert [v["version"] for v in registry.list_versions(reg)] == [1]
    assert storage.get_json(layout.claim_uri(reg, "half"))["version"] == 1
    assert [(e["event"], e.get("recovered")) for e in registry.events(reg)] == [("registered", True)]


# --- item 8: rollback is history ------------------------------------------------------------------


def test_rollbacks_walk_back_through_the_history_and_show_prints_it(store: str) -> None:
    reg = layout.registry_root(store, MODEL)
    for i in range(3):
        registry.register(reg, f"exp{i}", _lineage(f"run-{i}"))
        registry.promote(reg, i + 1, f"promote v{i + 1}")
    assert registry.rollback(reg, "v3 is bad") == 2
    assert registry.rollback(reg, "v2 is bad too") == 1, "a second rollback goes further back, not to v3"
    with pytest.raises(errors.RegistryError, match="no earlier version"):
        registry.rollback(reg, "nothing before v1")
    registry.promote(reg, 3, "v3 fixed")
    assert registry.rollback(reg, "still bad") == 1
    history = registry.alias_history(reg)
    assert [(h["version"], h["event"]) for h in history] == [
        (1, "promoted"),
        (2, "promoted"),
        (3, "promoted"),
        (2, "rolled_back"),
        (1, "rolled_back"),
        (3, "promoted"),
        (1, "rolled_back"),
    ]
    assert history[3]["reason"] == "v3 is bad"

    process, shown = run_cli(store, "--set", f"model.name={MODEL}", "registry", "show")
    assert shown["champion_history"] == [1, 2, 3, 2, 1, 3, 1]
    lines = [line for line in process.stdout.splitlines() if " v" in line and "history" not in line]
    assert len(lines) == 7 and "rolled_back" in lines[3] and "v3 is bad" in lines[3], process.stdout


def test_rollback_of_an_alias_written_before_history_was_kept(store: str) -> None:
    """Old aliases hold only `previous`; the history is rebuilt from the event log."""
    reg = layout.registry_root(store, MODEL)
    for i in range(3):
        registry.register(reg, f"exp{i}", _lineage(f"run-{i}"))
    for version, previous in ((1, None), (2, 1), (3, 2)):
        registry.record_event(reg, "promoted", alias="champion", version=version, previous=previous, reason="r")
    alias = {"alias": "champion", "version": 3, "previous": 2, "set_at": "2026-11-01T00:00:00+00:00", "reason": "r"}
    storage.put_json(storage.join(reg, "aliases", "champion.json"), alias)
    assert registry.rollback(reg, "bad") == 2
    assert registry.rollback(reg, "bad") == 1


# --- item 9: re-registering ----------------------------------------------------------------------


def _synthetic_report(store: str, key: str, passed: bool, champion_version: int | None = None) -> str:
    """A report whose gate sentence is unique, so a verdict can be traced to the run that wrote it."""
    reason = f"gate {'passed' if passed else 'failed'} ({uuid.uuid4().hex[:6]})"
    return synthetic_report(store, key, passed, champion_version, reason)


def test_re_registering_says_already_registered_with_this_runs_verdict(
    store: str, caplog: pytest.LogCaptureFixture
) -> None:
    first_report = _synthetic_report(store, "again", passed=True)
    first = register_step.run(store, MODEL, first_report, "night-1")
    assert (first["version"], first["created"], first["promoted"]) == (1, True, True)

    failed_report = _synthetic_report(store, "again", passed=False, champion_version=1)
    with caplog.at_level("INFO", logger="gauntlet.register"):
        second = register_step.run(store, MODEL, failed_report, "night-2")
    assert second["registered"] and second["version"] == 1
    assert (second["created"], second["already_registered_as"], second["promoted"]) == (False, 1, False)
    failed = storage.get_json(failed_report)["gate"]
    assert (second["gate_passed"], second["reason"], second["report_uri"]) == (False, failed["reason"], failed_report)
    assert "experiment again is already registered as v1" in caplog.text
    assert second["champion"], "v1 is still champion; the repeat did not move it"
    repeats = [e for e in registry.events(layout.registry_root(store, MODEL)) if e["event"] == "already_registered"]
    assert [(e["run_id"], e["gate_passed"]) for e in repeats] == [("night-2", False)]
    assert registry.get_version(layout.registry_root(store, MODEL), 1)["airflow_run_id"] == "night-1"


def test_a_manual_promotion_of_an_off_protocol_version_is_refused(store: str) -> None:
    """`register --force` keeps an off-protocol run for the record; `registry promote` must not crown it."""
    reg = layout.registry_root(store, MODEL)
    lineage = {**_lineage("night-1"), "experiment": {"off_protocol_reason": "it ran 3 epochs, the protocol fixes 30"}}
    registry.register(reg, "off", lineage)
    with pytest.raises(errors.RegistryError, match="off-protocol"):
        registry.promote(reg, 1, "by hand")
    assert registry.get_alias(reg) == (None, None)


def test_the_run_summary_says_already_registered() -> None:
    from gauntlet.cli import render_summary

    text = render_summary(
        {
            "run_id": "r",
            "register": {
                "registered": True,
                "already_registered_as": 4,
                "version": 4,
                "champion": False,
                "reason": "Failed: worse than the anchor.",
                "version_uri": "s3://b/registry/m/versions/000004.json",
            },
        }
    )
    assert "already registered as v4" in text and "Failed: worse than the anchor." in text


def test_a_retried_register_task_still_reports_its_promotion(store: str) -> None:
    """The first try promoted and died before its outputs were kept: the retry owes the Asset event."""
    report = _synthetic_report(store, "retry", passed=True)
    register_step.run(store, MODEL, report, "night-1")
    retried = register_step.run(store, MODEL, report, "night-1")
    assert (retried["version"], retried["promoted"], retried["champion"]) == (1, True, True)
    other = register_step.run(store, MODEL, _synthetic_report(store, "retry", passed=True, champion_version=1), "n2")
    assert (other["promoted"], other["champion"]) == (False, True), "another run moved nothing"
    assert Counter(e["event"] for e in registry.events(layout.registry_root(store, MODEL)))["promoted"] == 1


# --- the champion Asset ----------------------------------------------------------------------------


def test_the_champion_asset_event_names_the_model_the_run_registered() -> None:
    from airflow.sdk.execution_time.context import OutletEventAccessors

    from gauntlet.airflow.assets import PublishChampionOperator, champion_asset

    registered = {
        "promoted": True,
        "version": 4,
        "version_uri": "s3://prod/registry/fashion/versions/000004.json",
        "registry_uri": "s3://prod/registry/fashion",
    }

    class TaskInstance:
        def xcom_pull(self, task_ids: str) -> dict[str, Any]:
            assert task_ids == "register"
            return registered

    operator = PublishChampionOperator(task_id="publish_champion")
    events = OutletEventAccessors()
    operator.execute({"ti": TaskInstance(), "outlet_events": events})
    [alias] = operator.outlets
    [event] = events[alias].asset_alias_events
    assert event.dest_asset_key.name == "gauntlet.champion.fashion@prod"
    assert event.dest_asset_key.uri == "s3://prod/registry/fashion/aliases/champion.json"
    assert event.extra["version"] == 4
    assert champion_asset().name.startswith("gauntlet.champion.digits-classifier@"), "the default stays as it was"


_PROBE_DAG = """
import pendulum
from airflow.providers.standard.operators.python import PythonOperator
from airflow.sdk import DAG

from gauntlet.airflow import publish_champion_task

REGISTERED = {registered!r}

with DAG("champion_probe", schedule=None, start_date=pendulum.datetime(2026, 11, 1, tz="UTC")) as dag:
    register = PythonOperator(task_id="register", python_callable=lambda: REGISTERED)
    register >> publish_champion_task(register_task_id="register")
"""


def test_airflow_records_the_champion_event_on_the_registered_models_asset(
    airflow_home: dict[str, str], tmp_path: Path
) -> None:
    """Through Airflow itself: the alias resolves to the run's model's Asset, which gets the event."""
    registered = {
        "promoted": True,
        "version": 2,
        "version_uri": "s3://probe-bucket/registry/fashion/versions/000002.json",
        "registry_uri": "s3://probe-bucket/registry/fashion",
    }
    dags = tmp_path / "dags"
    dags.mkdir()
    (dags / "champion_probe.py").write_text(_PROBE_DAG.format(registered=registered))
    env = {**airflow_home, "AIRFLOW__CORE__DAGS_FOLDER": str(dags)}
    process = subprocess.run(
        ["airflow", "dags", "test", "champion_probe", "2026-11-08T02:00:00+00:00"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert process.returncode == 0, process.stdout[-3000:] + process.stderr[-3000:]
    db = sqlite3.connect(f"file:{Path(airflow_home['AIRFLOW_HOME']) / 'airflow.db'}?mode=ro", uri=True)
    try:
        rows = db.execute(
            "SELECT a.name, a.uri, e.extra FROM asset_event e JOIN asset a ON a.id = e.asset_id "
            "WHERE e.source_dag_id = 'champion_probe'"
        ).fetchall()
    finally:
        db.close()
    assert [(name, uri, json.loads(extra)["version"]) for name, uri, extra in rows] == [
        ("gauntlet.champion.fashion@probe-bucket", "s3://probe-bucket/registry/fashion/aliases/champion.json", 2)
    ]
