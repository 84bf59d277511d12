"""Compute preflight: what one training run will take, stated before horovodrun starts any rank.

- the model's parameter count;
- memory per rank: parameters, gradients, optimizer state (SGD's momentum buffer), the activations
  of one batch (counted by a forward pass on the meta device, with a hook on every leaf module: no
  memory, no arithmetic), and the data every rank holds (the whole train split and the dev split);
- time and cost for the epoch budget, from a short calibration run: a few optimizer steps of the
  real model on the real rows, one rank, in this process (no Horovod), through the same
  `train_epoch` the ranks run, plus one pass over a rank's share of the dev rows. Time is steps per
  epoch x seconds per step, plus the dev pass, per epoch, plus the start (loading the data, which is
  measured, and launching the ranks). Cost prices the ranks' cores (and GPUs) with include/prices.yaml
  as the experiment record does, so the two can be compared.

A run whose estimate exceeds `training.max_hours` or `training.max_cost` is refused (OverBudget)
before any rank starts. The calibration cannot see what the ranks add around the step (an allreduce
per step, a checkpoint written each epoch, start-up beyond LAUNCH_SECONDS), so the estimate is a
floor rather than a forecast: the record keeps the actual figures beside it (`actual_over_estimate`).
"""

from __future__ import annotations

import contextlib
import copy
import math
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from gauntlet import experiments
from gauntlet.errors import OverBudget
from gauntlet.logs import get_logger

if TYPE_CHECKING:
    import torch

    from gauntlet.config import TrainingConfig

log = get_logger("gauntlet.preflight")

# Warm-up steps (first-call allocations, kernel choice) are not timed; the timed steps stop at
# whichever bound comes first.
WARMUP_STEPS = 3
MIN_STEPS, MAX_STEPS, CALIBRATION_SECONDS = 5, 50, 3.0
# What the calibration cannot see: horovodrun starting the ranks, their imports and Gloo's rendezvous.
LAUNCH_SECONDS = 5.0
MB = 1024 * 1024


def estimate(params: dict[str, Any], dataset_uri: str) -> dict[str, Any]:
    """The preflight figures for training `params` on the committed dataset at `dataset_uri`."""
    import numpy as np
    import torch

    from gauntlet import storage
    from gauntlet.training.data import load_preprocessor, load_split
    from gauntlet.training.loop import task_loss
    from gauntlet.training.model import build_model

    started = time.perf_counter()
    with storage.temp_dir(prefix="gauntlet-preflight-") as scratch:
        train, manifest = load_split(dataset_uri, "train", scratch)
        dev, _ = load_split(dataset_uri, "dev", scratch)
        preprocessor = load_preprocessor(dataset_uri)
    load_seconds = time.perf_counter() - started
    task = manifest["schema"].get("task", "classification")  # as the worker reads it
    labels = train.labels.astype(np.float32) if task == "regression" else train.labels
    torch.manual_seed(params["seed"])
    model = build_model(params["model"], preprocessor, len(manifest["schema"]["classes"]), task)
    memory = memory_per_rank(model, params, [train.features, labels, dev.features, dev.labels])
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    loss = task_loss(task, preprocessor)
    timing = calibrate(model.to(device), params, (train.features, labels, loss), dev.features, device)
    return _budget(params, len(train.labels), memory, {**timing, "load_seconds": round(load_seconds, 3)})


def memory_per_rank(model: torch.nn.Module, params: dict[str, Any], data: list[Any]) -> dict[str, Any]:
    """Parameter count and bytes per rank by kind (parameters, gradients, optimizer, activations, data)."""
    weights = sum(p.numel() * p.element_size() for p in model.parameters())
    trainable = sum(p.numel() * p.element_size() for p in model.parameters() if p.requires_grad)
    parts = {
        "parameters": weights,
        "gradients": trainable,
        "optimizer": trainable if params["momentum"] else 0,  # SGD keeps one momentum buffer per parameter
        "activations": activation_bytes(model, params["batch_size"]),
        "data": sum(int(array.nbytes) for array in data),
    }
    return {
        "parameters": sum(p.numel() for p in model.parameters()),
        "bytes": parts,
        "total_mb": round(sum(parts.values()) / MB, 3),
    }


def activation_bytes(model: torch.nn.Module, batch_size: int) -> int:
    """Bytes of every leaf module's output, and the input, for one batch: what autograd keeps for
    the backward pass. A forward pass on the meta device gives the shapes without memory or work."""
    import torch

    meta = copy.deepcopy(model).to("meta")
    first = next(iter(meta.parameters()), None)
    width = _input_width(meta)
    sizes: list[int] = []

    def count(_: torch.nn.Module, __: Any, output: Any) -> None:
        if isinstance(output, torch.Tensor):
            sizes.append(output.numel() * output.element_size())

    leaves = [m for m in meta.modules() if not list(m.children())]
    handles = [m.register_forward_hook(count) for m in leaves]
    try:
        dtype = first.dtype if first is not None else torch.float32
        batch = torch.empty(batch_size, width, device="meta", dtype=dtype)
        meta(batch)
    finally:
        for handle in handles:
            handle.remove()
    return batch.numel() * batch.element_size() + sum(sizes)


def _input_width(model: torch.nn.Module) -> int:
    """The number of input features: the Standardize layer's width, else the first Linear's."""
    for module in model.modules():
        mean = getattr(module, "mean", None)
        if mean is not None and getattr(mean, "ndim", 0) == 1:
            return int(mean.shape[0])
        in_features = getattr(module, "in_features", None)
        if isinstance(in_features, int):
            return in_features
    raise ValueError("cannot tell the model's input width (no Standardize or Linear layer)")


def calibrate(
    model: torch.nn.Module,
    params: dict[str, Any],
    train: tuple[Any, Any, Any],
    dev_features: Any,
    device: torch.device,
) -> dict[str, Any]:
    """Seconds per optimizer step and per dev pass, measured on this process's device (one rank).

    `train` holds the train rows' features, labels (as the worker feeds them) and the task's loss."""
    import numpy as np
    import torch
    from torch.utils.data import RandomSampler, TensorDataset

    from gauntlet.training.data import batch_loader
    from gauntlet.training.loop import train_epoch

    features, labels, loss = train
    batch = int(params["batch_size"])
    # The calibration draws at most this many batches: a random subset of the rows (a copy) is enough.
    subset = np.random.default_rng(0).choice(len(labels), min(len(labels), (WARMUP_STEPS + MAX_STEPS) * batch), False)
    rows = TensorDataset(torch.from_numpy(features[subset]), torch.from_numpy(labels[subset]))
    sampler = RandomSampler(rows, replacement=True, num_samples=10**9, generator=torch.Generator().manual_seed(0))
    loader = batch_loader(rows, sampler, batch, pin_memory=device.type == "cuda")
    sgd = torch.optim.SGD(
        model.parameters(), lr=params["lr"], momentum=params["momentum"], weight_decay=params["weight_decay"]
    )
    with _threads(int(params.get("threads_per_worker", 1))):
        warm = train_epoch(model, sgd, loader, device, max_steps=WARMUP_STEPS, loss_fn=loss)
        guess = warm.seconds / max(warm.steps, 1)
        steps = int(min(MAX_STEPS, max(MIN_STEPS, CALIBRATION_SECONDS / max(guess, 1e-6))))
        timed = train_epoch(model, sgd, loader, device, max_steps=steps, loss_fn=loss)
        dev_seconds = _dev_pass_seconds(model, dev_features, params["workers"], device)
    return {
        "device": device.type,
        "steps": timed.steps,
        "step_seconds": round(timed.seconds / timed.steps, 6),
        "dev_seconds": round(dev_seconds, 6),
    }


def _dev_pass_seconds(model: torch.nn.Module, dev_features: Any, workers: int, device: torch.device) -> float:
    """One forward pass over a rank's share of the dev rows (each epoch ends with one)."""
    import numpy as np
    import torch

    share = torch.from_numpy(np.array(dev_features[::workers])).to(device)  # a copy: writable, contiguous
    model.eval()
    with torch.no_grad():
        started = time.perf_counter()
        model(share).sum().item()  # .item() waits for the device
        return time.perf_counter() - started


@contextlib.contextmanager
def _threads(count: int) -> Iterator[None]:
    """Calibrate with the threads a rank gets (threads_per_worker), then restore this process's."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _budget(params: dict[str, Any], train_rows: int, memory: dict[str, Any], timing: dict[str, Any]) -> dict[str, Any]:
    """Time and cost for the epoch budget on params' ranks, from the calibration's per-step time."""
    workers, epochs = params["workers"], params["epochs"]
    steps_per_epoch = math.ceil(math.ceil(train_rows / workers) / params["batch_size"])
    epoch_seconds = steps_per_epoch * timing["step_seconds"] + timing["dev_seconds"]
    wall = timing["load_seconds"] + LAUNCH_SECONDS + epochs * epoch_seconds
    # Each rank keeps threads_per_worker cores busy (and its GPU, on one): priced as the record prices.
    cpu_seconds = wall * workers * int(params.get("threads_per_worker", 1))
    gpu_seconds = wall * workers if timing["device"] == "cuda" else 0.0
    gpu_model = experiments.hardware()["gpu_model"]
    return {
        "parameters": memory["parameters"],
        "memory_per_rank": memory,
        "calibration": timing,
        "epochs": epochs,
        "workers": workers,
        "steps_per_epoch": steps_per_epoch,
        "launch_seconds": LAUNCH_SECONDS,
        "wall_seconds": round(wall, 3),
        "hours": wall / 3600,
        "cost_usd": experiments.estimate_cost(cpu_seconds, gpu_seconds, gpu_model),
        # With a plateau rule the budget is a cap: the run may stop sooner.
        "upper_bound": params.get("patience") is not None,
    }


def describe(found: dict[str, Any]) -> str:
    """The estimate in one log line."""
    parts = found["memory_per_rank"]["bytes"]
    timing = found["calibration"]
    memory = ", ".join(f"{kind} {value / MB:.2f}" for kind, value in parts.items())
    return (
        f"preflight: {found['parameters']:,} parameters; memory per rank about "
        f"{found['memory_per_rank']['total_mb']:.1f} MB ({memory} MB, activations at batch size); "
        f"about {found['wall_seconds']:.1f}s for {found['epochs']} epochs on {found['workers']} ranks "
        f"({found['steps_per_epoch']} steps/epoch x {timing['step_seconds'] * 1000:.2f} ms per step + dev "
        f"{timing['dev_seconds'] * 1000:.1f} ms per epoch, measured over {timing['steps']} steps on "
        f"{timing['device']}; + {timing['load_seconds']:.1f}s data + {found['launch_seconds']:.0f}s launch), "
        f"cost about ${found['cost_usd']:.6f}"
        + (" (an upper bound: the plateau rule may stop it sooner)" if found["upper_bound"] else "")
    )


def enforce(found: dict[str, Any], limits: TrainingConfig) -> None:
    """Refuse (OverBudget, naming the key) an estimate over training.max_hours or training.max_cost."""
    over = []
    if limits.max_hours is not None and found["hours"] > limits.max_hours:
        over.append(f"about {found['hours']:.3g} h, over training.max_hours {limits.max_hours:g}")
    if limits.max_cost is not None and found["cost_usd"] > limits.max_cost:
        over.append(f"about ${found['cost_usd']:.4g}, over training.max_cost {limits.max_cost:g}")
    if over:
        raise OverBudget(
            f"training refused before any rank started: the preflight estimate is {' and '.join(over)} "
            f"({found['epochs']} epochs x {found['steps_per_epoch']} steps on {found['workers']} ranks, "
            f"{found['calibration']['step_seconds'] * 1000:.2f} ms per step measured). Raise the limit in the config "
            "(or --set training.max_hours=... / training.max_cost=...), or train less (a smaller model, fewer epochs)"
        )


def with_actual(found: dict[str, Any], wall_seconds: float, cost_usd: float) -> dict[str, Any]:
    """The estimate and, once trained, the actual figures beside it (actual / estimate)."""
    return {
        "estimate": found,
        "actual": {"wall_seconds": round(wall_seconds, 3), "cost_usd": cost_usd},
        "actual_over_estimate": {
            "wall_seconds": round(wall_seconds / found["wall_seconds"], 3) if found["wall_seconds"] else None,
            "cost_usd": round(cost_usd / found["cost_usd"], 3) if found["cost_usd"] else None,
        },
    }
