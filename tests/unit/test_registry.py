"""The S3 model registry end to end: concurrent registrations, promote, rollback, integrity.

Everything runs against moto's S3 server with real conditional writes; the registered models are
real experiments trained by horovodrun.
"""

from __future__ import annotations

import io
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import torch
import yaml
from pipeline_support import MLP, evaluate, log_of, shared_dataset, train
from testkit import ROOT, run_cli

from gauntlet import errors, experiments, layout, registry, storage
from gauntlet.contract import EXIT_BAD_INPUT
from gauntlet.training.model import load_bundle

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def one_epoch() -> Iterator[list[str]]:
    """CLI options for a one-epoch MLP under a protocol whose budget is one epoch: a run off its
    protocol's budget may never be promoted, and these tests promote by hand."""
    raw = yaml.safe_load((ROOT / "include/protocols/digits-v1.yaml").read_text())
    raw["training"]["epochs"] = 1
    path = ROOT / "include" / "protocols" / f"test-one-epoch-{uuid.uuid4().hex[:8]}.yaml"
    path.write_text(yaml.safe_dump(raw))
    yield [*MLP, "--protocol", str(path)]
    path.unlink(missing_ok=True)


@pytest.fixture(scope="module")
def two_reports(s3_endpoint: str, one_epoch: list[str]) -> tuple[str, str, list[dict[str, Any]]]:
    """(store, dataset, [outputs of evaluate]) for two real MLP experiments differing in lr."""
    store, dataset = shared_dataset(s3_endpoint)
    reports = []
    for lr in ("0.01", "0.03"):
        _, trained = train(store, dataset, *one_epoch, "--set", f"training.lr={lr}")
        _, evaluated = evaluate(store, trained["experiment_uri"], *one_epoch, "--set", "model.name=concurrent")
        reports.append(evaluated)
    return store, dataset, reports


def _lineage(record: dict[str, Any]) -> dict[str, Any]:
    return {
        "model_uri": record["model_uri"],
        "model_sha256": record["model_sha256"],
        "experiment": record,
        "dataset_version": record["dataset_version"],
        "protocol_id": record["protocol_id"],
        "metrics": record["final"],
    }


def test_two_concurrent_cli_registrations_get_distinct_versions(
    two_reports: tuple[str, str, list[Any]], one_epoch: list[str]
) -> None:
    store, _, reports = two_reports
    commands = [
        [
            sys.executable,
            "-m",
            "gauntlet",
            "--store",
            store,
            "--run-id",
            f"run-{i}",
            *one_epoch,
            "--set",
            "model.name=concurrent",
            "register",
            "--report",
            r["report_uri"],
            "--force",
        ]
        for i, r in enumerate(reports)
    ]
    processes = [
        subprocess.Popen(c, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for c in commands
    ]
    results = [p.communicate(timeout=300) for p in processes]
    assert [p.returncode for p in processes] == [0, 0], results
    reg = layout.registry_root(store, "concurrent")
    versions = registry.list_versions(reg)
    assert sorted(v["version"] for v in versions) == [1, 2]
    assert {v["experiment_key"] for v in versions} == {r["experiment_key"] for r in reports}
    registered = [e for e in registry.events(reg) if e["event"] == "registered"]
    assert sorted(e["version"] for e in registered) == [1, 2]
    assert {e["run_id"] for e in registered} == {"run-0", "run-1"}


def test_racing_registrations_end_with_distinct_versions_and_one_consistent_champion(
    two_reports: tuple[str, str, list[Any]],
) -> None:
    store, _, reports = two_reports
    reg = layout.registry_root(store, "race")
    records = [experiments.find_record(r["experiment_uri"]) for r in reports]
    barrier = threading.Barrier(len(records))
    outcome: dict[int, tuple[int, bool]] = {}

    def register_and_promote(i: int, record: dict[str, Any]) -> None:
        barrier.wait()
        version, created = registry.register(reg, record["key"], _lineage(record))
        assert created
        # Exactly what the register step does: move champion only if it is still unset.
        outcome[i] = (
            version["version"],
            registry.set_alias(reg, registry.CHAMPION, version["version"], None, f"thread {i}", event="promoted"),
        )

    threads = [threading.Thread(target=register_and_promote, args=(i, r)) for i, r in enumerate(records)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert len(outcome) == 2
    assert sorted(v for v, _ in outcome.values()) == [1, 2]
    winners = [v for v, won in outcome.values() if won]
    assert len(winners) == 1
    alias, _ = registry.get_alias(reg)
    assert alias["version"] == winners[0]
    assert registry.get_version(reg, alias["version"])["experiment_key"] in {r["key"] for r in records}
    kinds = sorted(e["event"] for e in registry.events(reg))
    assert kinds == ["promoted", "registered", "registered"]


def test_promote_rollback_and_missing_version_through_the_cli(
    two_reports: tuple[str, str, list[Any]], one_epoch: list[str]
) -> None:
    store, _, reports = two_reports
    name = [*one_epoch, "--set", "model.name=manual"]
    for i, r in enumerate(reports):
        run_cli(store, "--run-id", f"m{i}", *name, "register", "--report", r["report_uri"], "--force")
    reg = layout.registry_root(store, "manual")
    run_cli(store, *name, "registry", "promote", "1", "--reason", "first")
    run_cli(store, *name, "registry", "promote", "2", "--reason", "second")
    listing, out = run_cli(store, *name, "registry", "list")
    assert out == {"versions": [1, 2], "champion": 2}
    rows = [line.split() for line in listing.stdout.splitlines()[1:3]]
    assert rows[0][0] == "1" and rows[0][1] != "*" and rows[1][:2] == ["2", "*"]

    _, rolled = run_cli(store, *name, "registry", "rollback", "--reason", "v2 misbehaves in production")
    assert rolled == {"champion": 1}
    assert registry.get_alias(reg)[0]["version"] == 1
    rollback_events = [e for e in registry.events(reg) if e["event"] == "rolled_back"]
    assert len(rollback_events) == 1
    assert rollback_events[0]["version"] == 1 and rollback_events[0]["previous"] == 2
    assert rollback_events[0]["reason"] == "v2 misbehaves in production"
    _, shown = run_cli(store, *name, "registry", "show", "1")
    assert shown == {"version": 1, "champion_history": [1, 2, 1]}

    missing, _ = run_cli(store, *name, "registry", "promote", "7", check=False)
    assert missing.returncode == EXIT_BAD_INPUT
    assert "has no version 7" in missing.stderr and "Traceback" not in missing.stderr
    assert registry.get_alias(reg)[0]["version"] == 1
    no_number, _ = run_cli(store, *name, "registry", "promote", check=False)
    assert no_number.returncode == EXIT_BAD_INPUT and "needs a version number" in no_number.stderr


def test_tampered_model_is_refused_by_evaluate_and_registry(s3_endpoint: str, one_epoch: list[str]) -> None:
    store, dataset = shared_dataset(s3_endpoint)
    # An experiment of its own, since this test damages its model.
    _, trained = train(store, dataset, *one_epoch, "--set", "training.lr=0.02")
    record = experiments.find_record(trained["experiment_uri"])
    reg = layout.registry_root(store, "tamper")
    version, _ = registry.register(reg, record["key"], _lineage(record))
    load_bundle(registry.load_model_bytes(version))  # intact: loads

    data = bytearray(storage.get_bytes(record["model_uri"]))
    data[len(data) // 2] ^= 0xFF
    storage.put_bytes(record["model_uri"], bytes(data))

    with pytest.raises(errors.IntegrityError, match="sha256 does not match"):
        registry.load_model_bytes(version)
    process, _ = evaluate(store, trained["experiment_uri"], *one_epoch, "--set", "model.name=tamper", check=False)
    assert process.returncode != 0
    assert f"error: {record['model_uri']}: sha256 does not match" in log_of(process)
    assert "Traceback" not in process.stderr


def test_model_bundles_load_only_plain_tensors() -> None:
    class Payload:
        def __reduce__(self) -> tuple[Any, ...]:
            return (print, ("code ran while loading",))

    buffer = io.BytesIO()
    torch.save({"state_dict": {}, "spec": Payload()}, buffer)
    with pytest.raises(Exception, match=r"[Ww]eights only load failed"):
        load_bundle(buffer.getvalue())
