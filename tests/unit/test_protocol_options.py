"""Unit tests for the protocol's until-plateau budget and slices, and for comparing reports."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from gauntlet.errors import ProtocolError, ProtocolMismatch
from gauntlet.protocol import Protocol, plateaued
from gauntlet.scoring.compare import compare_reports
from gauntlet.scoring.metrics import compute_metrics, slice_metrics

RAW = yaml.safe_load((Path(__file__).resolve().parents[2] / "include/protocols/digits-v1.yaml").read_text())


def with_training(training: dict[str, Any]) -> dict[str, Any]:
    raw = copy.deepcopy(RAW)
    raw["training"] = training
    return raw


def test_until_plateau_sets_cap_and_patience() -> None:
    protocol = Protocol.from_dict(with_training({"seed": 0, "until_plateau": {"patience": 3, "max_epochs": 50}}))
    assert (protocol.epochs, protocol.patience) == (50, 3)
    fixed = Protocol.from_dict(RAW)
    assert (fixed.epochs, fixed.patience) == (30, None) and fixed.id != protocol.id


@pytest.mark.parametrize(
    ("training", "message"),
    [
        ({"seed": 0, "epochs": 5, "until_plateau": {"patience": 3, "max_epochs": 5}}, "not both"),
        ({"seed": 0, "until_plateau": {"patience": 0, "max_epochs": 5}}, "until_plateau.patience must be >= 1"),
        ({"seed": 0, "until_plateau": {"patience": 2}}, "until_plateau.max_epochs must be an integer"),
        ({"seed": 0, "until_plateau": {"patience": 2, "max_epochs": 5, "delta": 0.1}}, "until_plateau.delta"),
        ({"seed": 0, "until_plateau": 5}, "must be a mapping"),
    ],
)
def test_bad_until_plateau_is_refused_naming_the_field(training: dict[str, Any], message: str) -> None:
    with pytest.raises(ProtocolError, match=message):
        Protocol.from_dict(with_training(training))


def test_slices_are_column_names() -> None:
    assert Protocol.from_dict(RAW).slices == ("date",)
    with pytest.raises(ProtocolError, match="slices"):
        Protocol.from_dict({**RAW, "slices": "date"})
    with pytest.raises(ProtocolError, match="slices"):
        Protocol.from_dict({**RAW, "slices": [""]})


@pytest.mark.parametrize(
    ("errors", "patience", "stop"),
    [
        ([], 1, False),
        ([0.5], 1, False),
        ([0.5, 0.4], 1, False),
        ([0.5, 0.4, 0.4], 1, True),  # equal is not an improvement
        ([0.5, 0.4, 0.45, 0.41], 2, True),
        ([0.5, 0.4, 0.45, 0.39], 2, False),
        ([0.3, 0.4, 0.5], 3, False),
    ],
)
def test_plateaued(errors: list[float], patience: int, stop: bool) -> None:
    assert plateaued(errors, patience) is stop


def test_slice_metrics_equal_metrics_on_each_subset() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 4, size=200)
    probas = {name: rng.dirichlet(np.ones(4), size=200) for name in ("a", "b")}
    groups = rng.choice(["mon", "tue", "wed"], size=200)
    names = ["error_rate", "log_loss", "ece"]
    result = slice_metrics(y, probas, groups, names)
    assert sorted(result) == ["mon", "tue", "wed"]
    for value, group in result.items():
        mask = groups == value
        assert group["rows"] == int(mask.sum())
        for name, p in probas.items():
            assert group["metrics"][name] == pytest.approx(compute_metrics(y[mask], p[mask], names))


def report(protocol_id: str, key: str, error: float) -> dict[str, Any]:
    return {
        "protocol_id": protocol_id,
        "experiment_key": key,
        "dataset_version": "d1",
        "test_rows": 100,
        "metrics": {"candidate": {"error_rate": error, "log_loss": 0.2}},
    }


def test_compare_reports_only_within_one_protocol() -> None:
    result = compare_reports(report("p1", "k1", 0.10), report("p1", "k2", 0.07))
    assert result["metrics"]["error_rate"]["diff"] == pytest.approx(0.03)
    with pytest.raises(ProtocolMismatch, match=r"k1 was scored under protocol p1 .* k2 under protocol p2"):
        compare_reports(report("p1", "k1", 0.10), report("p2", "k2", 0.07))
    with pytest.raises(ProtocolMismatch, match="without a protocol_id"):
        compare_reports(report("", "k1", 0.10), report("p1", "k2", 0.07))
