"""The gate can be trusted: no downhill walk, a fixed protocol, scores only on rows a model never saw.

Decisions use the real `decide()` on synthetic bootstrap results; evaluate-level tests score real
models (a softmax layer fitted here with scikit-learn, copied into the project's model bundle) on a
real dataset in moto's S3, through the evaluate and register steps, without a Horovod run.
"""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml
from pipeline_support import shared_dataset
from testkit import record_handmade_experiment

from gauntlet import anchor, experiments, layout, registry, storage
from gauntlet.errors import BadInput, TestSetMismatch
from gauntlet.protocol import Protocol, off_protocol_reason
from gauntlet.scoring import compare as reports
from gauntlet.scoring.gate import decide
from gauntlet.training.data import load_preprocessor, load_split
from gauntlet.training.model import build_model, bundle_bytes

ROOT = Path(__file__).resolve().parents[2]
DIGITS = yaml.safe_load((ROOT / "include/protocols/digits-v1.yaml").read_text())


def protocol_with(**changes: Any) -> Protocol:
    """The digits protocol with dotted keys changed, e.g. protocol_with(**{"gate.margin": 0.02})."""
    raw = copy.deepcopy(DIGITS)
    for dotted, value in changes.items():
        *parents, leaf = dotted.split(".")
        node = raw
        for key in parents:
            node = node[key]
        node[leaf] = value
    return Protocol.from_dict(raw)


# --------------------------------------------------------------------------------------------
# Handmade experiments: a fitted softmax layer in the project's bundle, recorded as train records it
# --------------------------------------------------------------------------------------------


def fitted_layer(dataset_uri: str, tmp: Path) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """(weights, bias, preprocessor) of a multinomial logistic regression on the train split."""
    from sklearn.linear_model import LogisticRegression

    train, _ = load_split(dataset_uri, "train", tmp)
    pre = load_preprocessor(dataset_uri)
    x = (train.features - np.array(pre["mean"])) / np.array(pre["scale"])
    model = LogisticRegression(C=1.0, max_iter=1000).fit(x, train.labels)
    return model.coef_.astype(np.float32), model.intercept_.astype(np.float32), pre


def handmade_experiment(
    store: str,
    dataset_uri: str,
    protocol: Protocol,
    layer: tuple[np.ndarray, np.ndarray, dict[str, Any]],
    name: str,
    suppressed: tuple[int, ...] = (),
    epochs: int | None = None,
    lr: float = 0.1,
) -> str:
    """Record an experiment whose model is `layer` with the classes in `suppressed` never predicted.

    Suppressing one more class makes a model worse on exactly that class's rows: nested errors.
    """
    weights, bias, pre = layer
    spec = {"kind": "mlp", "hidden": [], "channels": [], "image_shape": []}
    model = build_model(spec, pre, len(bias))
    bias = bias.copy()
    bias[list(suppressed)] = -1e4
    with torch.no_grad():
        model[-1].weight.copy_(torch.from_numpy(weights))
        model[-1].bias.copy_(torch.from_numpy(bias))
    data = bundle_bytes(model, {"model": spec, "preprocessor": pre, "n_classes": len(bias)})
    params = {"model": spec, "epochs": protocol.epochs if epochs is None else epochs, "lr": lr, "name": name}
    off = off_protocol_reason(params, protocol)
    return record_handmade_experiment(
        store,
        protocol,
        dataset_uri,
        params,
        data,
        [{"step": 1, "dev_error": 0.5}],
        final={"dev_error": 0.5},
        wall_seconds=0.0,
        off_protocol=off is not None,
        off_protocol_reason=off,
    )


# The walk's steps: a softmax layer, then the same with class 0, then classes 0 and 1 never predicted.
# On the digits test rows each step costs 7-10 points of error rate, with nested errors.
BEST, WORSE, WORST = (), (0,), (0, 1)
# Non-inferiority with a margin one step spends but two do not; guards out of the way (suppressing
# a class costs ~35 nats of log loss per row); a heavily regularised baseline (~32 % error).
WALK = {
    "gate.mode": "non_inferiority",
    "gate.margin": 0.14,
    "metrics.guards": {"log_loss": 1000.0, "ece": 1.0},
    "baseline.C": 0.0001,
}


@pytest.fixture(scope="module")
def digits(s3_endpoint: str, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str, tuple[Any, ...]]:
    """(store, dataset URI, fitted layer) shared by this module's evaluate-level tests."""
    store, dataset = shared_dataset(s3_endpoint)
    return store, dataset, fitted_layer(dataset, tmp_path_factory.mktemp("layer"))


def evaluate_and_register(
    store: str, protocol: Protocol, uri: str, model: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    from gauntlet.steps import evaluate, register

    outputs = evaluate.run(protocol, store, uri, model)
    report = storage.get_json(outputs["report_uri"])
    return report, register.run(store, model, outputs["report_uri"], "test-run")


# --------------------------------------------------------------------------------------------
# The gate on synthetic bootstrap results
# --------------------------------------------------------------------------------------------


def _result(diff: float, half_width: float = 0.002) -> dict[str, dict[str, float]]:
    """paired_bootstrap's shape for error_rate and the guards, the interval centred on `diff`."""
    row = {"a": 0.0, "b": 0.0, "diff": diff, "low": diff - half_width, "high": diff + half_width}
    flat = {"a": 0.0, "b": 0.0, "diff": 0.0, "low": 0.0, "high": 0.0}
    return {"error_rate": row, "log_loss": flat, "ece": flat}


def _walk(protocol: Protocol, nights: int, with_anchor: bool) -> list[float]:
    """Error rates of the champions after `nights` candidates, each 0.006 worse than the last."""
    errors = [0.05 + 0.006 * night for night in range(nights + 1)]
    baseline = 0.20
    champion = anchor_error = errors[0]
    champions = [champion]
    for candidate in errors[1:]:
        decision = decide(
            protocol,
            _result(candidate - champion),
            _result(candidate - baseline),
            champion_name="champion",
            vs_anchor=_result(candidate - anchor_error) if with_anchor and anchor_error != champion else None,
            anchor_name="anchor",
        )
        if decision.passed:
            champion = candidate
            champions.append(candidate)
            anchor_error = min(anchor_error, champion)  # the anchor moves only to a better champion
    return champions


def test_a_downhill_walk_stops_once_it_is_a_margin_below_the_anchor() -> None:
    protocol = protocol_with(**{"gate.mode": "non_inferiority", "gate.margin": 0.01})
    # Judged only against the champion, every night passes: ten nights spend six margins.
    unanchored = _walk(protocol, 10, with_anchor=False)
    assert len(unanchored) == 11 and unanchored[-1] - unanchored[0] == pytest.approx(0.06)
    # With the anchor, the second step is 0.012 (CI up to 0.014) below it: beyond the margin.
    anchored = _walk(protocol, 10, with_anchor=True)
    assert anchored == pytest.approx([0.05, 0.056])
    assert anchored[-1] - anchored[0] <= protocol.margin

    failed = decide(
        protocol, _result(0.006), _result(-0.1), "champion v2", vs_anchor=_result(0.012), anchor_name="anchor v1"
    )
    assert not failed.passed
    assert failed.reason.startswith("Failed: error_rate change vs anchor v1 is 0.012")
    assert "upper bound is not within the non-inferiority margin of 0.010" in failed.reason
    assert failed.reason.endswith("It passes against baseline and champion v2.")
    assert failed.details["references"]["anchor v1"]["passed"] is False
    assert failed.details["references"]["champion v2"]["passed"] is True


def test_the_baseline_binds_when_a_champion_exists() -> None:
    protocol = protocol_with(**{"gate.mode": "non_inferiority", "gate.margin": 0.01})
    # Within the margin of a weak champion, but far worse than the baseline: not promoted.
    decision = decide(protocol, _result(0.005), _result(0.08), champion_name="champion v4")
    assert not decision.passed
    assert decision.reason.startswith("Failed: error_rate change vs baseline is 0.080")
    assert decision.details["target"] == "champion v4" and decision.details["primary"]["passed"] is True
    # The baseline is a floor for the primary metric; calibration guards compare with the champion.
    calibrated_baseline = _result(-0.05)
    calibrated_baseline["ece"] = {"a": 0.0, "b": 0.0, "diff": 0.2, "low": 0.1, "high": 0.3}
    assert decide(protocol, _result(0.005), calibrated_baseline, champion_name="champion v4").passed


def test_an_off_protocol_run_never_passes_the_gate() -> None:
    protocol = protocol_with()
    assert off_protocol_reason({"epochs": protocol.epochs}, protocol) is None
    why = off_protocol_reason({"epochs": 8}, protocol)
    assert why is not None and "epoch budget of 8" in why and f"fixes {protocol.epochs}" in why
    clear_win = decide(protocol, _result(-0.05), _result(-0.1), off_protocol=why)
    assert not clear_win.passed
    assert clear_win.reason.startswith(f"Failed: {why}; it is kept and reported but never promoted.")
    assert "error_rate change vs champion is -0.050" in clear_win.reason  # the figures are still reported
    assert clear_win.details["off_protocol"] == why


def _report(key: str, **fields: Any) -> dict[str, Any]:
    return {
        "protocol_id": "p1",
        "experiment_key": key,
        "test_rows": 10,
        "metrics": {"candidate": {"error_rate": 0.1}},
        **fields,
    }


def test_reports_compare_only_on_one_test_set() -> None:
    same = reports.compare_reports(_report("k1", dataset_version="d1"), _report("k2", dataset_version="d1"))
    assert same["test_set"] == "dataset version d1"
    with pytest.raises(TestSetMismatch, match=r"k1 was scored on dataset version d1 .* k2 on dataset version d2"):
        reports.compare_reports(_report("k1", dataset_version="d1"), _report("k2", dataset_version="d2"))
    # The test rows' hash decides when both reports have one, whatever the dataset versions.
    with pytest.raises(TestSetMismatch, match=r"test rows aaaa .* test rows bbbb"):
        reports.compare_reports(
            _report("k1", dataset_version="d1", test_set_id="aaaa"),
            _report("k2", dataset_version="d1", test_set_id="bbbb"),
        )
    with pytest.raises(TestSetMismatch, match="do not both name their test set"):
        reports.compare_reports(_report("k1"), _report("k2", dataset_version="d1"))
    assert isinstance(TestSetMismatch("x"), BadInput)
    assert reports.test_set_id(["b", "a"]) == reports.test_set_id(["a", "b"]) != reports.test_set_id(["a"])


def test_split_difference_names_every_field_that_moves_rows() -> None:
    protocol = protocol_with()
    ours = reports.protocol_split(protocol)
    assert reports.split_difference(dict(ours), ours) == []
    assert reports.split_difference({**ours, "salt": "other", "test_fraction": 0.3}, ours) == ["salt", "test_fraction"]
    assert reports.split_difference(None, ours) == list(reports.SPLIT_FIELDS)


# --------------------------------------------------------------------------------------------
# Train and evaluate on a real dataset
# --------------------------------------------------------------------------------------------


def test_train_refuses_a_dataset_split_under_another_protocol(digits: tuple[str, str, Any]) -> None:
    from gauntlet.config import load_config
    from gauntlet.steps import train

    store, dataset, _ = digits
    other = protocol_with(**{"split.salt": "digits-resalted"})
    config = load_config(ROOT / "include/configs/digits.yaml", ["model.kind=mlp", "model.hidden=[8]"])
    before = experiments.list_records(store, other.id)
    with pytest.raises(BadInput) as refused:
        train.run(config, other, store, dataset)
    message = str(refused.value)
    assert "salt 'gauntlet-digits-v1'" in message and "salt 'digits-resalted'" in message
    assert "differs in salt" in message and "Run preprocess under this protocol" in message
    assert experiments.list_records(store, other.id) == before  # nothing trained, nothing written


def test_the_anchor_stops_a_walk_that_each_night_stays_within_the_margin(digits: tuple[str, str, Any]) -> None:
    store, dataset, layer = digits
    protocol = protocol_with(**WALK)
    model = "walk-digits"
    reg = layout.registry_root(store, model)
    best, worse, worst = (
        handmade_experiment(store, dataset, protocol, layer, f"walk-{i}", classes)
        for i, classes in enumerate((BEST, WORSE, WORST))
    )

    first, registered = evaluate_and_register(store, protocol, best, model)
    assert first["gate"]["passed"] and registered["champion"], first["gate"]["reason"]
    assert first["anchor"]["version"] is None  # nothing promoted under this protocol yet

    # One step down, within the margin of champion v1: passes; v1 becomes the anchor as it is compared.
    second, registered = evaluate_and_register(store, protocol, worse, model)
    assert second["gate"]["passed"] and registered["champion"], second["gate"]["reason"]
    assert second["anchor"] == {
        **second["anchor"],
        "version": 1,
        "is_champion": True,
        "moved": True,
        "moved_from": None,
    }
    assert registry.get_alias(reg, anchor.alias_name(protocol.id))[0]["version"] == 1
    # The anchor travels into the registered version's lineage with the gate's details.
    assert registry.get_version(reg, 2)["gate"]["details"]["anchor_record"]["version"] == 1

    # A second step down: within the margin of champion v2, but two steps below anchor v1.
    third, registered = evaluate_and_register(store, protocol, worst, model)
    vs_champion = third["comparisons"]["candidate - champion v2"]["error_rate"]
    vs_anchor = third["comparisons"]["candidate - anchor v1"]["error_rate"]
    assert vs_champion["high"] < protocol.margin < vs_anchor["high"], (vs_champion, vs_anchor)
    assert not third["gate"]["passed"]
    assert third["gate"]["reason"].startswith("Failed: error_rate change vs anchor v1 is ")
    assert third["gate"]["reason"].endswith("It passes against baseline and champion v2.")
    assert registered["registered"] is False and registry.get_alias(reg)[0]["version"] == 2
    # The report shows all three references, each scored on the same rows.
    assert {"candidate", "baseline", "champion v2", "anchor v1"} <= set(third["metrics"])
    assert set(third["gate"]["details"]["references"]) == {"baseline", "champion v2", "anchor v1"}
    markdown = storage.get_bytes(third["outputs"]["report_uri"].replace("report.json", "report.md")).decode()
    assert "- anchor: v1" in markdown and "- champion: v2" in markdown and "- baseline:" in markdown


def test_the_anchor_moves_to_a_champion_that_beats_it(digits: tuple[str, str, Any]) -> None:
    store, dataset, layer = digits
    protocol = protocol_with(**WALK)
    model = "anchor-move-digits"
    reg = layout.registry_root(store, model)
    weak, strong, other = (
        handmade_experiment(store, dataset, protocol, layer, f"move-{i}", classes)
        for i, classes in enumerate(((0,), (), (1,)))
    )
    evaluate_and_register(store, protocol, weak, model)  # v1: the first champion
    report, registered = evaluate_and_register(store, protocol, strong, model)  # anchor := v1; v2 promoted
    assert report["anchor"]["version"] == 1 and registered["champion"] and registered["version"] == 2

    report, _ = evaluate_and_register(store, protocol, other, model)
    assert report["anchor"]["moved"] and report["anchor"]["moved_from"] == 1 and report["anchor"]["version"] == 2
    assert "champion v2 beats anchor v1 on error_rate" in report["anchor"]["reason"]
    assert registry.get_alias(reg, anchor.alias_name(protocol.id))[0]["version"] == 2
    assert "anchor v1" not in report["metrics"]  # judged against the champion, which is now the anchor
    assert [e["event"] for e in registry.events(reg)].count("anchor_moved") == 2


def test_a_champion_trained_under_another_split_is_never_scored_on_these_rows(digits: tuple[str, str, Any]) -> None:
    store, dataset, layer = digits
    protocol = protocol_with(**WALK)
    old = protocol_with(**{**WALK, "split.salt": "digits-before-resalt"})
    model = "resalted-digits"
    reg = layout.registry_root(store, model)
    # The champion's dataset was split with the old salt: its manifest says so.
    manifest = storage.read_manifest(dataset)
    old_dataset = storage.join(store, "datasets-under-old-salt", manifest["version"])
    storage.put_json(
        storage.join(old_dataset, "MANIFEST.json"), {**manifest, "protocol_split": reports.protocol_split(old)}
    )
    # Its own learning rate: no other experiment in the shared store has the champion's config.
    champion_uri = handmade_experiment(store, dataset, old, layer, "resalt-champion", (0,), lr=0.05)
    record = experiments.find_record(champion_uri)
    assert record is not None
    lineage = {
        **{k: record[k] for k in ("model_uri", "model_sha256", "dataset_version", "params")},
        "dataset_uri": old_dataset,
        "protocol_id": old.id,
        "experiment": record,
        "metrics": {},
    }
    version, _ = registry.register(reg, "trained-under-old-salt", lineage)
    registry.promote(reg, version["version"], "champion under the old split")

    candidate = handmade_experiment(store, dataset, protocol, layer, "resalt-candidate", (), lr=0.2)
    from gauntlet.steps import evaluate

    with pytest.raises(BadInput) as refused:
        evaluate.run(protocol, store, candidate, model)
    message = str(refused.value)
    assert "salt 'digits-before-resalt'" in message and "salt 'gauntlet-digits-v1'" in message
    assert "Re-train the champion's config" in message and "train --dataset" in message
    assert "--set training.lr=0.05" in message and f"--dataset {dataset}" in message
    assert not list(
        storage.list_objects(
            layout.experiment_evaluations(store, protocol.id, experiments.find_record(candidate)["key"]) + "/"
        )
    )

    # Once its config is re-trained under this split, that model stands in for the champion.
    stand_in = handmade_experiment(store, dataset, protocol, layer, "resalt-champion-retrained", (0,), lr=0.05)
    outputs = evaluate.run(protocol, store, candidate, model)
    report = storage.get_json(outputs["report_uri"])
    stand_in_key = experiments.find_record(stand_in)["key"]
    assert report["champion_retrained"]["experiment_key"] == stand_in_key
    assert report["champion_version"] == version["version"]
    assert f"champion v1 re-trained ({stand_in_key[:12]})" in report["metrics"]
    assert outputs["gate_passed"], outputs["gate_reason"]


def test_an_off_protocol_candidate_is_reported_and_never_promoted(digits: tuple[str, str, Any]) -> None:
    store, dataset, layer = digits
    protocol = protocol_with(**WALK)
    model = "off-protocol-digits"
    short_budget = handmade_experiment(store, dataset, protocol, layer, "off-protocol", (), epochs=3)
    report, registered = evaluate_and_register(store, protocol, short_budget, model)
    assert report["off_protocol"] and "epoch budget of 3" in report["off_protocol"]
    assert not report["gate"]["passed"]
    assert report["gate"]["reason"].startswith("Failed: the run is off-protocol")
    assert "error_rate change vs baseline is" in report["gate"]["reason"]  # it would have passed on protocol
    assert registered["registered"] is False and registry.get_alias(layout.registry_root(store, model))[0] is None
    html_page = storage.get_bytes(report["outputs"]["report_html_uri"]).decode()
    assert "off-protocol" in html_page


def test_a_changed_evaluate_code_or_scikit_learn_is_a_miss_that_names_it(
    digits: tuple[str, str, Any], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    import logging

    import sklearn

    from gauntlet.steps import evaluate

    store, dataset, layer = digits
    protocol = protocol_with(**WALK)
    model = "eval-key-digits"
    uri = handmade_experiment(store, dataset, protocol, layer, "eval-key", ())
    first = evaluate.run(protocol, store, uri, model)
    assert evaluate.run(protocol, store, uri, model)["cache_hit"] is True

    installed = sklearn_version()
    with caplog.at_level(logging.INFO, logger="gauntlet.evaluate"):
        monkeypatch.setattr(sklearn, "__version__", "0.0.changed")
        other_sklearn = evaluate.run(protocol, store, uri, model)
    assert other_sklearn["cache_hit"] is False and other_sklearn["report_uri"] != first["report_uri"]
    assert f"scikit-learn {installed} -> 0.0.changed" in caplog.text
    monkeypatch.undo()

    # The same evaluation from a copy of the package whose evaluate step differs by one comment.
    package = tmp_path / "src" / "gauntlet"
    import shutil

    shutil.copytree(ROOT / "src" / "gauntlet", package, ignore=shutil.ignore_patterns("__pycache__"))
    with (package / "steps" / "evaluate.py").open("a") as handle:
        handle.write("\n# a change to the evaluate step\n")
    (tmp_path / "protocol.yaml").write_text(yaml.safe_dump(protocol.raw))
    script = (
        "import logging, sys; logging.basicConfig(level=logging.INFO)\n"
        "from gauntlet.protocol import protocol_from_bytes\nfrom gauntlet.steps import evaluate\n"
        f"p = protocol_from_bytes(open({str(tmp_path / 'protocol.yaml')!r}, 'rb').read())\n"
        f"print(evaluate.run(p, {store!r}, {uri!r}, {model!r})['report_uri'])\n"
    )
    changed = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        env={**__import__("os").environ, "PYTHONPATH": str(tmp_path / "src")},
        timeout=300,
    )
    assert changed.returncode == 0, changed.stderr[-3000:]
    assert "an earlier evaluation differs in: evaluate code version " in changed.stderr, changed.stderr[-3000:]
    assert changed.stdout.strip().splitlines()[-1] not in (first["report_uri"], other_sklearn["report_uri"])
    report = storage.get_json(first["report_uri"])
    assert report["evaluation_key_parts"]["scikit-learn"] == sklearn_version()
    test, _ = load_split(dataset, "test", tmp_path / "test")
    assert report["test_set_id"] == reports.test_set_id(test.ids.tolist())


def sklearn_version() -> str:
    import sklearn

    return str(sklearn.__version__)


def test_the_sweep_table_marks_rows_that_are_not_comparable(digits: tuple[str, str, Any]) -> None:
    from gauntlet.steps import evaluate, sweep

    store, dataset, layer = digits
    protocol = protocol_with(**WALK)
    uris = [handmade_experiment(store, dataset, protocol, layer, f"sweep-{i}", c) for i, c in enumerate(((), (0,)))]
    evaluated = [evaluate.run(protocol, store, uri, "sweep-digits") for uri in uris]
    # A third pair scored on another snapshot's test rows (its report says so).
    report = storage.get_json(evaluated[1]["report_uri"])
    other_uri = storage.join(store, "sweep-test", "other-snapshot", "report.json")
    storage.put_json(other_uri, {**report, "test_set_id": "0123456789abcdef", "dataset_version": "another"})
    pairs = [{"label": f"pair {i}", "start": "2026-11-07", "options": {"overrides": {}}} for i in range(3)]
    trained = [{"experiment_uri": uri, "cache_hit": False} for uri in [*uris, uris[1]]]
    outputs = sweep.report(store, "trust-sweep", pairs, trained, [*evaluated, {"report_uri": other_uri}])

    table = storage.get_json(outputs["json_uri"])
    groups = [row["comparable_group"] for row in table["rows"]]
    assert groups == ["T1", "T1", "T2"]
    markdown = storage.get_bytes(outputs["table_uri"]).decode()
    assert "T2: protocol" in markdown and "not comparable with T1" in markdown
    assert "test rows 0123456789abcdef" in markdown and "results on different test rows are never compared" in markdown


@pytest.mark.slow
def test_train_records_a_run_off_the_protocols_budget(s3_endpoint: str) -> None:
    from pipeline_support import MLP, train

    store, dataset = shared_dataset(s3_endpoint)
    _, outputs = train(store, dataset, *MLP, "--set", "training.epochs=1")
    record = experiments.find_record(outputs["experiment_uri"])
    assert record is not None and record["off_protocol"] is True
    assert "epoch budget of 1" in record["off_protocol_reason"]
