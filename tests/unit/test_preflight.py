"""gauntlet.preflight: parameters, memory per rank, the time/cost arithmetic, and the limits."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from gauntlet import preflight
from gauntlet.config import load_config, resolve
from gauntlet.errors import BadInput, OverBudget
from gauntlet.training.model import build_model

PREPROCESSOR = {"mean": [0.0] * 4, "scale": [1.0] * 4, "features": ["a", "b", "c", "d"]}
MLP = {"kind": "mlp", "hidden": [8], "channels": [], "image_shape": []}
PARAMS = {"batch_size": 2, "momentum": 0.9, "lr": 0.1, "weight_decay": 0.0, "workers": 2, "epochs": 3, "seed": 0}


def test_activations_are_every_leaf_modules_output_for_one_batch() -> None:
    model = build_model(MLP, PREPROCESSOR, 3)
    # input 2x4, Standardize 2x4, Linear 2x8, ReLU 2x8, Linear 2x3: 46 float32 values.
    assert preflight.activation_bytes(model, batch_size=2) == (8 + 8 + 16 + 16 + 6) * 4
    # The meta-device pass leaves the model itself untouched.
    assert all(p.device.type == "cpu" for p in model.parameters())


def test_activations_of_a_cnn_count_its_feature_maps() -> None:
    spec = {"kind": "cnn", "hidden": [4], "channels": [2], "image_shape": [2, 2]}
    model = build_model(spec, PREPROCESSOR, 3)
    # input 4, Standardize 4, Unflatten 4, Conv 2x2x2=8, ReLU 8, MaxPool 2, Flatten 2, Linear 4, ReLU 4, Linear 3.
    assert preflight.activation_bytes(model, batch_size=1) == (4 + 4 + 4 + 8 + 8 + 2 + 2 + 4 + 4 + 3) * 4


def test_memory_per_rank_counts_parameters_gradients_momentum_and_data() -> None:
    model = build_model(MLP, PREPROCESSOR, 3)
    data = [np.zeros((10, 4), np.float32), np.zeros(10, np.int64)]
    memory = preflight.memory_per_rank(model, PARAMS, data)
    assert memory["parameters"] == 4 * 8 + 8 + 8 * 3 + 3 == 67
    parts = memory["bytes"]
    assert parts["parameters"] == parts["gradients"] == parts["optimizer"] == 67 * 4
    assert parts["data"] == 10 * 4 * 4 + 10 * 8
    assert preflight.memory_per_rank(model, {**PARAMS, "momentum": 0.0}, data)["bytes"]["optimizer"] == 0


def _found(step_seconds: float, rows: int = 1000) -> dict[str, object]:
    memory = {"parameters": 67, "bytes": {"parameters": 268}, "total_mb": 0.0}
    timing = {"device": "cpu", "steps": 10, "step_seconds": step_seconds, "dev_seconds": 0.5, "load_seconds": 1.0}
    return preflight._budget({**PARAMS, "batch_size": 100, "threads_per_worker": 1}, rows, memory, timing)


def test_time_is_steps_per_epoch_times_step_plus_dev_per_epoch_plus_the_start() -> None:
    found = _found(step_seconds=0.1, rows=1001)
    assert found["steps_per_epoch"] == 6  # 501 rows on a rank, batches of 100
    assert found["wall_seconds"] == pytest.approx(1.0 + preflight.LAUNCH_SECONDS + 3 * (6 * 0.1 + 0.5))
    assert found["cost_usd"] > 0 and "6 steps/epoch" in preflight.describe(found)


def test_an_estimate_over_a_limit_is_refused_naming_the_key() -> None:
    found = _found(step_seconds=100.0)
    training = load_config(resolve("include/configs/digits.yaml")).training
    preflight.enforce(found, training)  # no limits: nothing refused
    with pytest.raises(OverBudget, match=r"over training\.max_hours 0\.01") as info:
        preflight.enforce(found, dataclasses.replace(training, max_hours=0.01))
    assert isinstance(info.value, BadInput) and "before any rank started" in str(info.value)
    with pytest.raises(OverBudget, match=r"over training\.max_cost 1e-06"):
        preflight.enforce(found, dataclasses.replace(training, max_cost=1e-6))
    preflight.enforce(found, dataclasses.replace(training, max_hours=10.0, max_cost=100.0))


def test_the_limits_are_optional_config_keys() -> None:
    config = load_config(resolve("include/configs/digits.yaml"), ["training.max_hours=2", "training.max_cost=0.5"])
    assert (config.training.max_hours, config.training.max_cost) == (2.0, 0.5)


def test_actual_figures_sit_beside_the_estimate_as_a_ratio() -> None:
    found = _found(step_seconds=0.1)
    both = preflight.with_actual(found, wall_seconds=found["wall_seconds"] * 2, cost_usd=found["cost_usd"] / 2)
    assert both["estimate"] is found and both["actual_over_estimate"] == {"wall_seconds": 2.0, "cost_usd": 0.5}


def test_calibration_times_real_steps_with_the_ranks_threads() -> None:
    model = build_model(MLP, PREPROCESSOR, 3)
    rng = np.random.default_rng(0)
    train = (rng.normal(size=(64, 4)).astype(np.float32), rng.integers(0, 3, 64), None)
    from gauntlet.training.loop import CROSS_ENTROPY

    threads = torch.get_num_threads()
    timing = preflight.calibrate(
        model, {**PARAMS, "threads_per_worker": 1}, (*train[:2], CROSS_ENTROPY), train[0], torch.device("cpu")
    )
    assert timing["steps"] >= preflight.MIN_STEPS and timing["step_seconds"] > 0 and timing["dev_seconds"] > 0
    assert torch.get_num_threads() == threads
