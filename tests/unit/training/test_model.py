"""gauntlet.training.model: the networks a spec describes, their bundles and predictions."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from gauntlet.training.model import build_model, bundle_bytes, load_bundle, parameter_digest, predict_proba

FEATURES = 16
PREPROCESSOR: dict[str, Any] = {"features": [f"p{i}" for i in range(FEATURES)], "mean": [1.0] * 16, "scale": [2.0] * 16}
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
