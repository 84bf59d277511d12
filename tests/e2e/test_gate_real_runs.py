"""The gate, decided on real training runs under the superiority protocol.

A weak champion (a small MLP trained with a tiny learning rate) is beaten clearly by the CNN, which is promoted. A
second CNN that differs only by a slightly different learning rate lands within the noise of the
bootstrap interval and is not promoted. Every number comes from models trained here.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from pipeline_support import MLP, SUPERIORITY, evaluate, log_of, register, shared_dataset, train
from testkit import ROOT, run_cli

from gauntlet import layout, registry, storage

pytestmark = pytest.mark.slow
CNN: list[str] = []  # the config's CNN, on the protocol's budget


def test_noise_level_candidate_is_not_promoted_and_clearly_better_one_is(
    s3_endpoint: str, project_protocol: Callable[[str], Path]
) -> None:
    # The superiority protocol with an 8-epoch budget: the CNN is strong on digits within it, and
    # cheap. A run off the protocol's budget is never promoted, so the budget is the protocol's own.
    raw = yaml.safe_load((ROOT / SUPERIORITY).read_text())
    raw["training"]["epochs"] = 8
    # A heavily regularised baseline (~30 % error): every candidate must also beat the baseline, and
    # this test is about the champion comparison, so the baseline floor stays out of its way.
    raw["baseline"]["C"] = 0.0001
    protocol_file = project_protocol("superiority-8-epochs")
    protocol_file.write_text(yaml.safe_dump(raw))
    gate = ["--protocol", str(protocol_file), "--set", "model.name=gate-digits"]
    store, dataset = shared_dataset(s3_endpoint)
    reg = layout.registry_root(store, "gate-digits")

    # Champion v1: a weak model, forced in and promoted by hand (it cannot pass the gate itself). It
    # keeps the protocol's budget (an off-protocol version may never be promoted, even by hand) and
    # is weak by its learning rate instead.
    _, weak = train(store, dataset, *gate, *MLP, "--set", "training.lr=0.0002")
    _, weak_eval = evaluate(store, weak["experiment_uri"], *gate)
    assert weak_eval["gate_passed"] is False
    _, forced = register(store, weak_eval["report_uri"], *gate, force=True)
    assert forced["registered"] is True and forced["champion"] is False
    run_cli(store, *gate, "registry", "promote", str(forced["version"]), "--reason", "test champion")
    assert registry.get_alias(reg)[0]["version"] == forced["version"]

    # Clearly better: the CNN against the weak champion.
    _, strong = train(store, dataset, *gate, *CNN)
    _, strong_eval = evaluate(store, strong["experiment_uri"], *gate)
    report = storage.get_json(strong_eval["report_uri"])
    primary = report["gate"]["details"]["primary"]
    assert report["champion_version"] == forced["version"]
    assert primary["diff"] < -0.02 and primary["high"] < 0, primary
    assert strong_eval["gate_passed"] is True, strong_eval["gate_reason"]
    assert strong_eval["gate_reason"].startswith("Passed: error_rate improved by")
    _, promoted = register(store, strong_eval["report_uri"], *gate)
    assert promoted["champion"] is True
    assert registry.get_alias(reg)[0]["version"] == promoted["version"] != forced["version"]

    # Within the noise: the same CNN with a slightly different learning rate, against the CNN.
    _, twin = train(store, dataset, *gate, *CNN, "--set", "training.lr=0.011")
    assert twin["key"] != strong["key"]
    process, twin_eval = evaluate(store, twin["experiment_uri"], *gate)
    twin_report = storage.get_json(twin_eval["report_uri"])
    interval = twin_report["gate"]["details"]["primary"]
    assert twin_report["champion_version"] == promoted["version"]
    # Noise-level: the error rates differ by a few test rows and the interval straddles zero.
    assert abs(interval["diff"]) < 0.015 and interval["low"] <= 0 <= interval["high"], interval
    assert twin_eval["gate_passed"] is False
    assert "does not exclude zero" in twin_eval["gate_reason"], twin_eval["gate_reason"]
    assert twin_eval["gate_reason"] in log_of(process)
    _, rejected = register(store, twin_eval["report_uri"], *gate)
    assert rejected["registered"] is False and rejected["reason"] == twin_eval["gate_reason"]
    assert registry.get_alias(reg)[0]["version"] == promoted["version"]
    assert [v["version"] for v in registry.list_versions(reg)] == [forced["version"], promoted["version"]]
