"""gauntlet.anchor: the best model promoted under one protocol version, moved only forward.

End-to-end walks (several nights, real models) are in tests/reliability/test_trust_gate.py; here the rule
itself against a registry in a real S3 bucket.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from testkit import ROOT

from gauntlet import anchor, registry, storage
from gauntlet.protocol import load_protocol

PROTOCOL = load_protocol(ROOT / "include" / "protocols" / "digits-v1.yaml")
PRIMARY = PROTOCOL.primary_metric


def _version(reg: str, key: str, **changes: Any) -> dict[str, Any]:
    lineage = {"protocol_id": PROTOCOL.id, "params": {"epochs": PROTOCOL.epochs}, **changes}
    return registry.register(reg, key, lineage)[0]


@pytest.fixture
def reg(store: str) -> str:
    return storage.join(store, "registry", "digits-classifier")


def test_only_a_version_registered_under_the_protocol_on_its_budget_is_eligible() -> None:
    assert anchor.alias_name(PROTOCOL.id) == f"anchor-{PROTOCOL.id[:16]}"
    on = {"protocol_id": PROTOCOL.id, "params": {"epochs": PROTOCOL.epochs}}
    assert anchor.eligible(on, PROTOCOL)
    assert not anchor.eligible({**on, "protocol_id": "other"}, PROTOCOL)
    assert not anchor.eligible({**on, "params": {"epochs": PROTOCOL.epochs + 1}}, PROTOCOL)


def test_beats_follows_the_primary_metrics_direction_and_a_tie_does_not_beat() -> None:
    assert PRIMARY == "error_rate"
    assert anchor.beats(PROTOCOL, {PRIMARY: 0.10}, {PRIMARY: 0.12})
    assert not anchor.beats(PROTOCOL, {PRIMARY: 0.12}, {PRIMARY: 0.12})
    auc = dataclasses.replace(PROTOCOL, primary_metric="roc_auc")
    assert anchor.beats(auc, {"roc_auc": 0.9}, {"roc_auc": 0.8})
    assert not anchor.beats(auc, {"roc_auc": 0.8}, {"roc_auc": 0.9})


def test_the_first_eligible_champion_becomes_the_anchor_and_a_better_one_moves_it(reg: str) -> None:
    v1, v2, v3 = (_version(reg, key) for key in ("k1", "k2", "k3"))
    held, info = anchor.settle(reg, PROTOCOL, v1, {PRIMARY: 0.2}, None, None)
    assert held is not None and held["version"] == v1["version"] and info["moved"] and info["moved_from"] is None
    assert anchor.current(reg, PROTOCOL)["version"] == v1["version"]  # type: ignore[index]
    held, info = anchor.settle(reg, PROTOCOL, v2, {PRIMARY: 0.25}, v1, {PRIMARY: 0.2})
    assert held == v1 and not info["moved"]  # a worse champion leaves the anchor where it is
    held, info = anchor.settle(reg, PROTOCOL, v3, {PRIMARY: 0.1}, v1, {PRIMARY: 0.2})
    assert held["version"] == v3["version"] and info["moved_from"] == v1["version"]  # type: ignore[index]
    assert "beats anchor" in info["reason"]
    assert anchor.current(reg, PROTOCOL)["version"] == v3["version"]  # type: ignore[index]


def test_an_off_protocol_champion_or_a_stand_ins_scores_never_move_it(reg: str) -> None:
    off = _version(reg, "off", params={"epochs": PROTOCOL.epochs + 5})
    assert anchor.settle(reg, PROTOCOL, off, {PRIMARY: 0.01}, None, None) == (
        None,
        {"alias": anchor.alias_name(PROTOCOL.id), "moved": False, "moved_from": None},
    )
    on = _version(reg, "on")
    assert anchor.settle(reg, PROTOCOL, on, None, None, None)[0] is None  # champion_scores None: a stand-in
    assert anchor.current(reg, PROTOCOL) is None


def test_a_move_raced_by_another_run_keeps_the_other_runs_anchor(reg: str) -> None:
    v1, v2 = _version(reg, "k1"), _version(reg, "k2")
    assert anchor.move(reg, PROTOCOL, v1["version"], None, "first")
    assert not anchor.move(reg, PROTOCOL, v2["version"], None, "stale: expects no anchor yet")
    held, info = anchor.settle(reg, PROTOCOL, v2, {PRIMARY: 0.1}, None, None)  # settle also saw no anchor
    assert held is not None and held["version"] == v1["version"] and not info["moved"]
