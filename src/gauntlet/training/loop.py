"""One pass of training over a loader's batches: the step every trainer here shares.

The Horovod worker, the DDP comparison and the GPU benchmark all call `train_epoch`, so what they
measure is the step the pipeline runs. It needs no Horovod: what a trainer adds around a step comes
in as `StepHooks` (the worker's fault injection and CPU thread scheduling).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class StepHooks:
    """What a trainer adds to each step; every hook is optional."""

    # Called with the batch's index before it is moved to the device (fault injection).
    before_batch: Callable[[int], None] | None = None
    # Held around forward and backward (the worker's Horovod threads step aside meanwhile).
    around_compute: Callable[[], AbstractContextManager[None]] = contextlib.nullcontext
    # Called after backward, before optimizer.step() (the worker waits for its allreduces).
    before_step: Callable[[torch.optim.Optimizer], None] | None = None


@dataclass
class EpochTotals:
    """Sums over the batches one process trained on (allreduce them for the whole world)."""

    loss_sum: float = 0.0  # cross-entropy times rows
    wrong: float = 0.0  # rows whose argmax was not the label
    seen: int = 0  # rows
    steps: int = 0
    seconds: float = 0.0  # wall time of the pass
    input_seconds: float = 0.0  # of which waiting for a batch and its copy to the device


def train_epoch(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
    device: torch.device,
    hooks: StepHooks = StepHooks(),
    autocast: torch.dtype | None = None,
    max_steps: int | None = None,
) -> EpochTotals:
    """Train `model` on each (features, labels) batch with cross-entropy: zero_grad, forward,
    backward, step. `autocast` runs forward in that dtype; `max_steps` ends the pass early."""
    model.train()
    totals = EpochTotals()
    started = fetch = time.perf_counter()
    for batch, (xb, yb) in enumerate(batches):
        if hooks.before_batch is not None:
            hooks.before_batch(batch)
        xb, yb = xb.to(device, non_blocking=True), yb.to(device, non_blocking=True)
        totals.input_seconds += time.perf_counter() - fetch
        optimizer.zero_grad()
        with hooks.around_compute():
            with torch.autocast(device.type, autocast) if autocast else contextlib.nullcontext():
                logits = model(xb)
                loss = F.cross_entropy(logits, yb)
            loss.backward()
        if hooks.before_step is not None:
            hooks.before_step(optimizer)
        optimizer.step()
        # .item() waits for the device, so each step's time is its own.
        totals.loss_sum += loss.item() * len(yb)
        totals.wrong += (logits.argmax(dim=1) != yb).sum().item()
        totals.seen += len(yb)
        totals.steps += 1
        fetch = time.perf_counter()
        if max_steps is not None and totals.steps >= max_steps:
            break
    totals.seconds = time.perf_counter() - started
    return totals
