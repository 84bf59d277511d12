"""The engines a run trains under: Horovod (the default) and torch's DistributedDataParallel.

training/worker.py runs one recipe for both (data, sampler, learning-rate scaling, resume, epochs,
curve, record); a backend supplies only what differs between the engines: how the ranks meet
(hvd.init, or init_process_group from the environment torchrun sets), how gradients are averaged
(hvd.DistributedOptimizer, or DDP's bucketed allreduce during backward), how rank 0's state reaches
the other ranks, and the collectives the curve and the final weight check use. Both average
gradients over the ranks, so the same seed gives the same model up to the order of floating-point
additions inside the allreduce.

Horovod is imported only by its backend, so a `ddp` run needs no Horovod build.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
from typing import Any, Protocol

import torch
import torch.distributed as dist
from torch import nn

from gauntlet.config import BACKENDS
from gauntlet.training import faults
from gauntlet.training.loop import StepHooks

HOROVOD, DDP = BACKENDS


class Backend(Protocol):
    """What the worker's recipe asks of a training engine; `start()` has made the ranks meet."""

    name: str
    rank: int
    size: int

    def device(self) -> torch.device:
        """This rank's device: one GPU per local rank where there are GPUs, else the CPU."""
        ...

    def distributed_optimizer(self, optimizer: torch.optim.Optimizer, model: nn.Module) -> torch.optim.Optimizer:
        """The optimizer the recipe steps (Horovod's averages gradients itself; DDP's model does)."""
        ...

    def broadcast_state(self, model: nn.Module, optimizer: torch.optim.Optimizer) -> None:
        """Every rank takes rank 0's parameters, buffers and optimizer state."""
        ...

    def trainable(self, model: nn.Module) -> nn.Module:
        """The module whose backward exchanges gradients (DDP's wrapper, or the model itself)."""
        ...

    def broadcast_object(self, obj: Any, name: str) -> Any:
        """Rank 0's `obj` on every rank (`name` tells Horovod's concurrent collectives apart)."""
        ...

    def allreduce_sums(self, values: list[float], name: str) -> list[float]:
        """Element-wise sums over the ranks, in float64."""
        ...

    def allgather_object(self, obj: Any, name: str) -> list[Any]:
        """Every rank's `obj`, in rank order."""
        ...

    def step_hooks(self, epoch: int, on_cpu: bool) -> StepHooks:
        """What the engine adds around each step of `epoch` (fault injection is the same for both)."""
        ...

    def describe(self, device: torch.device) -> str:
        """The engine and transport, for the run's plan line."""
        ...

    def close(self) -> None: ...


def start(name: str) -> Backend:
    """Start this process's rank under the named engine."""
    if name == HOROVOD:
        return HorovodBackend()
    if name == DDP:
        return DdpBackend()
    raise ValueError(f"training.backend {name!r} is unknown (known: {', '.join(BACKENDS)})")


def collective_timeout() -> dt.timedelta | None:
    """How long a collective waits for a silent peer before failing the rank: the train step's
    GAUNTLET_GLOO_TIMEOUT_S (it always sets one), else torch's default."""
    seconds = os.environ.get("GAUNTLET_GLOO_TIMEOUT_S")
    return dt.timedelta(seconds=int(seconds)) if seconds else None


class HorovodBackend:
    """Horovod's recipe (examples/pytorch/pytorch_mnist.py), with the worker's CPU thread scheduling."""

    name = HOROVOD

    def __init__(self) -> None:
        import horovod.torch as hvd

        from gauntlet.training import cpu_tuning

        self.hvd: Any = hvd
        self._cpu_tuning: Any = cpu_tuning
        self.threads = cpu_tuning.HorovodThreads.start()  # hvd.init()
        self.rank, self.size = hvd.rank(), hvd.size()

    def device(self) -> torch.device:
        if torch.cuda.is_available():
            torch.cuda.set_device(self.hvd.local_rank())
            return torch.device("cuda", self.hvd.local_rank())
        self.threads.defer_to_compute()
        return torch.device("cpu")

    def distributed_optimizer(self, optimizer: torch.optim.Optimizer, model: nn.Module) -> torch.optim.Optimizer:
        wrapped: torch.optim.Optimizer = self.hvd.DistributedOptimizer(
            optimizer, named_parameters=model.named_parameters(), op=self.hvd.Average
        )
        return wrapped

    def broadcast_state(self, model: nn.Module, optimizer: torch.optim.Optimizer) -> None:
        # hvd.broadcast_optimizer_state gives a rank with empty state (every rank but 0 on a resume)
        # state by a zero-gradient step, which weight decay turns into a real update and a momentum
        # buffer; the parameter broadcast after it undoes the update there. On a fresh start every
        # rank's state is empty, rank 0's too, and nothing would undo it: then there is no state to
        # send, and the first step stays the plain SGD step.
        if self.broadcast_object(bool(optimizer.state_dict()["state"]), "resumed"):
            self.hvd.broadcast_optimizer_state(optimizer, root_rank=0)
        self.hvd.broadcast_parameters(model.state_dict(), root_rank=0)

    def trainable(self, model: nn.Module) -> nn.Module:
        return model

    def broadcast_object(self, obj: Any, name: str) -> Any:
        return self.hvd.broadcast_object(obj, root_rank=0, name=name)

    def allreduce_sums(self, values: list[float], name: str) -> list[float]:
        tensor = torch.tensor(values, dtype=torch.float64)
        return self.hvd.allreduce(tensor, op=self.hvd.Sum, name=name).tolist()  # type: ignore[no-any-return]

    def allgather_object(self, obj: Any, name: str) -> list[Any]:
        return list(self.hvd.allgather_object(obj, name=name))

    def step_hooks(self, epoch: int, on_cpu: bool) -> StepHooks:
        return StepHooks(
            before_batch=faults.batch_hook(self.rank, epoch),
            around_compute=self.threads.yielding,
            before_step=self._cpu_tuning.wait_for_gradients if on_cpu else None,
        )

    def describe(self, device: torch.device) -> str:
        return "Horovod, " + ("GPU/NCCL" if device.type == "cuda" else "CPU/Gloo")

    def close(self) -> None:
        """Horovod shuts down with the process."""


class DdpBackend:
    """torch.distributed under torchrun: Gloo on CPU, NCCL on GPU, DistributedDataParallel.

    torchrun sets RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT for each process.
    """

    name = DDP

    def __init__(self) -> None:
        self.local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        self._cuda = torch.cuda.is_available()
        if self._cuda:
            torch.cuda.set_device(self.local_rank)  # before NCCL's first collective picks a device
        dist.init_process_group("nccl" if self._cuda else "gloo", timeout=collective_timeout())
        self.rank, self.size = dist.get_rank(), dist.get_world_size()

    def device(self) -> torch.device:
        return torch.device("cuda", self.local_rank) if self._cuda else torch.device("cpu")

    def distributed_optimizer(self, optimizer: torch.optim.Optimizer, model: nn.Module) -> torch.optim.Optimizer:
        return optimizer  # DDP averages the gradients during backward; step() is the plain one

    def broadcast_state(self, model: nn.Module, optimizer: torch.optim.Optimizer) -> None:
        # load_state_dict leaves the parameters alone, so no order matters here (unlike Horovod).
        state = self.broadcast_object(optimizer.state_dict() if self.rank == 0 else None, "optimizer")
        if self.rank != 0:
            optimizer.load_state_dict(state)
        with torch.no_grad():
            for tensor in model.state_dict().values():
                dist.broadcast(tensor, src=0)

    def trainable(self, model: nn.Module) -> nn.Module:
        # The model holds no buffers a step changes, so there is nothing to re-broadcast per forward.
        return nn.parallel.DistributedDataParallel(
            model, device_ids=[self.local_rank] if self._cuda else None, broadcast_buffers=False
        )

    def broadcast_object(self, obj: Any, name: str) -> Any:
        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def allreduce_sums(self, values: list[float], name: str) -> list[float]:
        tensor = torch.tensor(values, dtype=torch.float64, device=self.device())
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        return tensor.cpu().tolist()  # type: ignore[no-any-return]

    def allgather_object(self, obj: Any, name: str) -> list[Any]:
        gathered: list[Any] = [None] * self.size
        dist.all_gather_object(gathered, obj)
        return gathered

    def step_hooks(self, epoch: int, on_cpu: bool) -> StepHooks:
        return StepHooks(before_batch=faults.batch_hook(self.rank, epoch))

    def describe(self, device: torch.device) -> str:
        return "DDP, " + ("GPU/NCCL" if device.type == "cuda" else "CPU/Gloo")

    def close(self) -> None:
        with contextlib.suppress(RuntimeError, ValueError):
            dist.destroy_process_group()
