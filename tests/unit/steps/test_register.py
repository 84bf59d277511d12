"""steps.register: only a passed gate registers and moves the champion."""

from __future__ import annotations

import uuid

from gauntlet import layout, registry, storage
from gauntlet.hashing import sha256_bytes
from gauntlet.steps import register

MODEL = "digits-unit"


def _report(store: str, key: str, passed: bool, champion_version: int | None = None) -> str:
    """A RECORD.json and an evaluation report.json as train and evaluate write them (no training)."""
    experiment = f"{store}/experiments/p/{key}"
    model_uri = f"{experiment}/model.pt"
    storage.put_bytes(model_uri, b"model bytes")
    storage.put_json(
        f"{experiment}/RECORD.json",
        {
            "key": key,
            "uri": experiment,
            "model_uri": model_uri,
            "model_sha256": sha256_bytes(b"model bytes"),
            "dataset_uri": f"{store}/datasets/d/v1",
            "dataset_version": "v1",
            "code_version": "c1",
            "protocol_id": "p",
            "params": {"lr": 0.01},
        },
    )
    uri = f"{store}/evaluations/p/{key}/{uuid.uuid4().hex[:8]}/report.json"
    storage.put_json(
        uri,
        {
            "experiment_uri": experiment,
            "experiment_key": key,
            "gate": {"passed": passed, "reason": f"gate {'passed' if passed else 'failed'}"},
            "metrics": {"candidate": {"error_rate": 0.1}},
            "champion_version": champion_version,
        },
    )
    return uri


def test_a_passed_gate_on_a_fresh_registry_creates_v1_and_promotes_it(store: str) -> None:
    out = register.run(store, MODEL, _report(store, "first", passed=True), "night-1")
    assert (out["registered"], out["created"], out["version"], out["champion"], out["promoted"]) == (
        True,
        True,
        1,
        True,
        True,
    )
    reg = layout.registry_root(store, MODEL)
    champion, _ = registry.get_alias(reg)
    assert champion is not None and champion["version"] == 1
    assert registry.get_version(reg, 1)["airflow_run_id"] == "night-1"


def test_a_failed_gate_registers_nothing(store: str) -> None:
    out = register.run(store, MODEL, _report(store, "weak", passed=False), "night-1")
    assert (out["registered"], out["version"], out["champion"], out["gate_passed"]) == (False, None, False, False)
    reg = layout.registry_root(store, MODEL)
    assert registry.list_versions(reg) == []
    assert registry.get_alias(reg)[0] is None


def test_a_failed_gate_leaves_the_champion_untouched(store: str) -> None:
    register.run(store, MODEL, _report(store, "champ", passed=True), "night-1")
    out = register.run(store, MODEL, _report(store, "worse", passed=False, champion_version=1), "night-2")
    assert not out["registered"] and out["reason"] == "gate failed"
    reg = layout.registry_root(store, MODEL)
    assert [v["version"] for v in registry.list_versions(reg)] == [1]
    champion = registry.champion(reg)
    assert champion is not None and champion["version"] == 1 and champion["experiment_key"] == "champ"
