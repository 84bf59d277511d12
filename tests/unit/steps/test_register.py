"""steps.register: only a passed gate registers and moves the champion."""

from __future__ import annotations

from testkit import synthetic_report

from gauntlet import layout, registry
from gauntlet.steps import register

MODEL = "digits-unit"


def _report(store: str, key: str, passed: bool, champion_version: int | None = None) -> str:
    return synthetic_report(store, key, passed, champion_version)


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
