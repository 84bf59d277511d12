"""gauntlet.training.model: the networks a spec describes, their bundles and predictions."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import pytest
import torch

from gauntlet.training.model import (
    Standardize,
    Unstandardize,
    build_model,
    bundle_bytes,
    bundle_spec,
    load_bundle,
    parameter_digest,
    predict,
    predict_proba,
    read_bundle,
    score_raw_rows,
)

FEATURES = 16
PREPROCESSOR: dict[str, Any] = {"features": [f"p{i}" for i in range(FEATURES)], "mean": [1.0] * 16, "scale": [2.0] * 16}
TARGET = {"mean": 150.0, "scale": 70.0}
REGRESSION = {**PREPROCESSOR, "task": "regression", "target": TARGET}
MLP = {"kind": "mlp", "hidden": [8]}
CNN = {"kind": "cnn", "image_shape": [4, 4], "channels": [3], "hidden": [5]}


@pytest.mark.parametrize("spec", [MLP, CNN])
def test_build_model_maps_features_to_one_logit_per_class(spec: dict[str, Any]) -> None:
    torch.manual_seed(0)
    model = build_model(spec, PREPROCESSOR, n_classes=10)
    assert model(torch.zeros(7, FEATURES)).shape == (7, 10)


def test_the_first_layer_standardizes_with_the_preprocessor() -> None:
    model = build_model(MLP, PREPROCESSOR, 3)
    assert torch.equal(model[0](torch.full((1, FEATURES), 5.0)), torch.full((1, FEATURES), 2.0))


@pytest.mark.parametrize(
    ("spec", "message"),
    [({**CNN, "image_shape": [3, 5]}, "image_shape"), ({"kind": "rnn", "hidden": []}, "unknown model kind")],
)
def test_a_spec_that_does_not_fit_is_refused(spec: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build_model(spec, PREPROCESSOR, 10)


def test_a_bundle_round_trip_gives_the_same_weights_and_predictions() -> None:
    torch.manual_seed(1)
    model = build_model(CNN, PREPROCESSOR, 4)
    spec = {"model": CNN, "preprocessor": PREPROCESSOR, "n_classes": 4}
    loaded = load_bundle(bundle_bytes(model, spec))
    assert parameter_digest(loaded) == parameter_digest(model)
    x = np.random.default_rng(0).normal(size=(9, FEATURES)).astype(np.float32)
    model.eval()
    proba = predict_proba(loaded, x, batch_size=4)
    assert proba.shape == (9, 4) and np.allclose(proba.sum(axis=1), 1.0)
    assert np.array_equal(proba, predict_proba(model, x, batch_size=4))


def test_the_digest_changes_with_any_weight() -> None:
    model = build_model(MLP, PREPROCESSOR, 3)
    before = parameter_digest(model)
    with torch.no_grad():
        model[-1].bias[0] += 1e-6
    assert parameter_digest(model) != before


def test_unstandardize_inverts_standardize() -> None:
    values = torch.tensor([[-20.0], [150.0], [400.0]])
    there = Standardize([TARGET["mean"]], [TARGET["scale"]])(values)
    assert torch.allclose(there, (values - 150.0) / 70.0)
    assert torch.allclose(Unstandardize(TARGET["mean"], TARGET["scale"])(there), values)


@pytest.mark.parametrize("spec", [MLP, CNN])
def test_a_regression_net_predicts_one_value_in_the_labels_units(spec: dict[str, Any]) -> None:
    model = build_model(spec, REGRESSION, 0, task="regression")
    assert isinstance(model[-1], Unstandardize) and isinstance(model[-2], torch.nn.Linear)
    assert model[-2].out_features == 1
    with torch.no_grad():  # a net that outputs 0 in standard units predicts the training mean
        model[-2].weight.zero_()
        model[-2].bias.zero_()
    assert torch.equal(model(torch.randn(5, FEATURES)), torch.full((5, 1), TARGET["mean"]))


def test_a_regression_net_needs_the_target_scaling() -> None:
    with pytest.raises(ValueError, match="'target' mean and scale"):
        build_model(MLP, PREPROCESSOR, 0, task="regression")
    with pytest.raises(ValueError, match="unknown task"):
        build_model(MLP, PREPROCESSOR, 3, task="ranking")


def test_a_regression_bundle_loads_weights_only_and_predicts_raw_values() -> None:
    torch.manual_seed(2)
    model = build_model(MLP, REGRESSION, 0, task="regression")
    data = bundle_bytes(model, bundle_spec(MLP, REGRESSION, "regression", []))
    payload = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    assert (payload["spec"]["task"], payload["spec"]["classes"]) == ("regression", [])
    loaded, spec = read_bundle(data)
    assert spec["task"] == "regression" and parameter_digest(loaded) == parameter_digest(model)
    x = np.random.default_rng(0).normal(size=(6, FEATURES)).astype(np.float32)
    values = predict(loaded, x, "regression", batch_size=4)
    model.eval()
    assert values.shape == (6, 1) and values.dtype == np.float64
    assert np.array_equal(values, model(torch.from_numpy(x)).detach().numpy().astype(np.float64))


def test_a_bundle_keeps_text_class_names_and_an_old_bundle_is_a_classifier() -> None:
    model = build_model(MLP, PREPROCESSOR, 3)
    named = bundle_bytes(model, bundle_spec(MLP, PREPROCESSOR, "classification", ["low", "mid", "high"]))
    _, spec = read_bundle(named)
    assert (spec["task"], spec["classes"], spec["n_classes"]) == ("classification", ["low", "mid", "high"], 3)
    old = bundle_bytes(model, {"model": MLP, "preprocessor": PREPROCESSOR, "n_classes": 3})
    loaded, spec = read_bundle(old)
    assert spec["task"] == "classification"
    x = np.ones((2, FEATURES), dtype=np.float32)
    assert np.array_equal(predict(loaded, x, "classification"), predict_proba(model.eval(), x))


def test_a_saved_model_scores_raw_rows_with_its_preprocessor() -> None:
    """Raw rows in any column order, with a missing value: imputed and scaled as in training."""
    import pandas as pd

    preprocessor = {
        "kind": "tabular",
        "task": "regression",
        "classes": [],
        "inputs": [{"name": "a", "kind": "numeric", "impute": 3.0}, {"name": "b", "kind": "numeric", "impute": 0.5}],
        "features": ["a", "b"],
        "mean": [2.0, 0.0],
        "scale": [4.0, 1.0],
        "target": {"mean": 10.0, "scale": 5.0},
    }
    model = build_model({"kind": "mlp", "hidden": []}, preprocessor, 0, task="regression")
    with torch.no_grad():  # value = 10 + 5 * ((a - 2) / 4 + b)
        model[1].weight.copy_(torch.tensor([[1.0, 1.0]]))
        model[1].bias.zero_()
    bundle = bundle_bytes(model, bundle_spec({"kind": "mlp", "hidden": []}, preprocessor, "regression", []))
    frame = pd.DataFrame({"row_id": ["r1", "r2"], "b": [1.0, None], "a": [6.0, 2.0]})
    values = score_raw_rows(bundle, frame)
    assert values.shape == (2, 1)
    assert np.allclose(values[:, 0], [10 + 5 * (1 + 1), 10 + 5 * (0 + 0.5)])
