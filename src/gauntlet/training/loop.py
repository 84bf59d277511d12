"""One pass of training over a loader's batches: the step every trainer here shares.

The Horovod worker, the DDP comparison and the GPU benchmark all call `train_epoch`, so what they
measure is the step the pipeline runs. It needs no Horovod: what a trainer adds around a step comes
in as `StepHooks` (the worker's fault injection and CPU thread scheduling), and what the task
minimises comes in as a `TaskLoss` (cross-entropy for classification, MSE on standardised targets
for regression).

On a GPU the step never waits for the device: the loss and error sums stay on it until the pass ends,
and the time its stream spends on (or idle for) each batch's input is read from CUDA events then.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Protocol

import torch
import torch.nn.functional as F


class TaskLoss(Protocol):
    """What a task minimises and what it counts as error, over one batch of model outputs."""

    def mean(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """The loss to backpropagate: the batch mean."""
        ...

    def total(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """The loss summed over the batch (for whole-split averages)."""
        ...

    def wrong(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """The error summed over the batch: misclassified rows, or squared error in raw units."""
        ...


class CrossEntropy:
    """Classification: logits (n, K) against class indices (n,)."""

    def mean(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(outputs, targets)

    def total(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(outputs, targets, reduction="sum")

    def wrong(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return (outputs.argmax(dim=1) != targets).sum()


class StandardisedMSE:
    """Regression: raw-scale predictions (n, 1) against raw targets (n,), compared after both are
    standardised with the training targets' mean and scale, so the loss does not grow with the
    label's units and one learning rate suits any target."""

    def __init__(self, mean: float, scale: float) -> None:
        self.target_mean, self.scale = float(mean), float(scale)

    def _standardise(self, values: torch.Tensor) -> torch.Tensor:
        return (values - self.target_mean) / self.scale

    def mean(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return F.mse_loss(self._standardise(outputs[:, 0]), self._standardise(targets))

    def total(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return F.mse_loss(self._standardise(outputs[:, 0]), self._standardise(targets), reduction="sum")

    def wrong(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return ((outputs[:, 0].float() - targets) ** 2).sum()


CROSS_ENTROPY = CrossEntropy()


def task_loss(task: str, preprocessor: dict[str, Any]) -> TaskLoss:
    """The loss a dataset's task trains with; regression standardises with the preprocessor's target."""
    if task == "classification":
        return CROSS_ENTROPY
    if task == "regression":
        target = preprocessor.get("target")
        if not target:
            raise ValueError("a regression dataset's preprocessor.json has no 'target' mean and scale")
        return StandardisedMSE(target["mean"], target["scale"])
    raise ValueError(f"unknown task {task!r}: expected classification or regression")


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The dtype `training.precision` runs forward and loss in: None for fp32, bfloat16 for bf16."""
    if precision == "fp32":
        return None
    if precision != "bf16":
        raise ValueError(f"unknown precision {precision!r}: expected fp32 or bf16")
    if device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise ValueError(
            f"training.precision bf16: {torch.cuda.get_device_name(device)} has no bfloat16 support; "
            "set training.precision: fp32"
        )
    return torch.bfloat16


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

    loss_sum: float = 0.0  # the task's loss times rows
    wrong: float = 0.0  # classification: rows whose argmax was not the label; regression: squared error
    seen: int = 0  # rows
    steps: int = 0
    seconds: float = 0.0  # wall time of the pass
    input_seconds: float = 0.0  # of which waiting for a batch and its copy to the device


class HostSums:
    """The pass's loss and error sums as Python floats (a CPU step waits for nothing anyway)."""

    def __init__(self) -> None:
        self.loss_sum, self.wrong = 0.0, 0.0

    def add(self, loss: torch.Tensor, wrong: torch.Tensor, rows: int) -> None:
        self.loss_sum += loss.item() * rows
        self.wrong += wrong.item()

    def values(self) -> tuple[float, float]:
        return self.loss_sum, self.wrong


class DeviceSums:
    """The same sums kept as float64 tensors on the device, read once at the end of the pass: the
    same IEEE double arithmetic as HostSums, without a wait for the device on every step."""

    def __init__(self, device: torch.device) -> None:
        self.loss_sum = torch.zeros((), dtype=torch.float64, device=device)
        self.wrong = torch.zeros((), dtype=torch.float64, device=device)

    def add(self, loss: torch.Tensor, wrong: torch.Tensor, rows: int) -> None:
        self.loss_sum += loss.detach().double() * rows
        self.wrong += wrong.double()

    def values(self) -> tuple[float, float]:
        return self.loss_sum.item(), self.wrong.item()


class HostClock:
    """Input time as the host sees it: from asking for a batch until it is on the device."""

    def __init__(self) -> None:
        self.seconds, self._asked = 0.0, 0.0

    def asking(self) -> None:
        self._asked = time.perf_counter()

    def ready(self) -> None:
        self.seconds += time.perf_counter() - self._asked

    def input_seconds(self) -> float:
        return self.seconds


class CudaClock:
    """Input time as the GPU sees it: events on the step's stream before and after each batch is
    fetched; the gap is the stream gathering the batch, waiting for its copy, or idle for want of it.
    Read after the pass, so no step waits for the device to time it."""

    def __init__(self, device: torch.device) -> None:
        self.stream = torch.cuda.current_stream(device)
        self.spans: list[tuple[torch.cuda.Event, torch.cuda.Event]] = []
        self._asked: torch.cuda.Event | None = None

    def _event(self) -> torch.cuda.Event:
        event = torch.cuda.Event(enable_timing=True)
        event.record(self.stream)
        return event

    def asking(self) -> None:
        self._asked = self._event()

    def ready(self) -> None:
        assert self._asked is not None
        self.spans.append((self._asked, self._event()))

    def input_seconds(self) -> float:
        self.stream.synchronize()
        return sum(start.elapsed_time(end) for start, end in self.spans) / 1000.0  # elapsed_time is in ms


def train_epoch(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
    device: torch.device,
    hooks: StepHooks = StepHooks(),
    autocast: torch.dtype | None = None,
    max_steps: int | None = None,
    loss_fn: TaskLoss = CROSS_ENTROPY,
) -> EpochTotals:
    """Train `model` on each (features, labels) batch with `loss_fn`: zero_grad, forward, backward,
    step. `autocast` runs forward and loss in that dtype; `max_steps` ends the pass early."""
    model.train()
    totals = EpochTotals()
    on_cpu = device.type == "cpu"
    sums = HostSums() if on_cpu else DeviceSums(device)
    clock = HostClock() if on_cpu else CudaClock(device)
    started = time.perf_counter()
    clock.asking()
    for batch, (xb, yb) in enumerate(batches):
        if hooks.before_batch is not None:
            hooks.before_batch(batch)
        xb, yb = xb.to(device, non_blocking=True), yb.to(device, non_blocking=True)
        clock.ready()
        optimizer.zero_grad()
        with hooks.around_compute():
            with torch.autocast(device.type, autocast) if autocast else contextlib.nullcontext():
                logits = model(xb)
                loss = loss_fn.mean(logits, yb)
            loss.backward()
        if hooks.before_step is not None:
            hooks.before_step(optimizer)
        optimizer.step()
        sums.add(loss, loss_fn.wrong(logits, yb), len(yb))
        totals.seen += len(yb)
        totals.steps += 1
        clock.asking()
        if max_steps is not None and totals.steps >= max_steps:
            break
    # Reading the sums waits for the device: the pass's time is all of its work.
    totals.loss_sum, totals.wrong = sums.values()
    totals.input_seconds = clock.input_seconds()
    totals.seconds = time.perf_counter() - started
    return totals
