"""The training worker: data-parallel training of one experiment, one process per rank.

Started by `horovodrun -np N python -m gauntlet.training.worker ...`, or for `training.backend: ddp`
by `torchrun --nproc-per-node N -m gauntlet.training.worker ...` (see steps/train.py). `train()` is
Horovod's recipe (examples/pytorch/pytorch_mnist.py) for either engine (training/backends.py):
init, pin a GPU per local rank (NCCL) or stay on CPU (Gloo), shard the data with a
DistributedSampler (its batches on the device when the rows fit there, else prefetched from pinned
memory: training/device_data.py), scale the learning rate by the world size, average gradients by allreduce
(hvd.DistributedOptimizer, or DistributedDataParallel), broadcast rank 0's state, train epochs, and
rank 0 saves. Around it: checkpoints (training/checkpoint.py; a restarted run resumes with the epoch
counter, optimizer and RNG state it had), the step itself (training/loop.py, in fp32 or under bf16
autocast as `precision` says) and test faults (training/faults.py). Each epoch's curve row keeps the
share of step time spent waiting for input.

The dataset manifest's task picks the net's output (one logit per class, or one value) and the loss
(cross-entropy, or MSE on standardised targets). Every curve row's `train_error`/`dev_error` is the
task's curve metric, lower is better: the error rate for classification, the RMSE in the label's
units for regression (whose rows also name it `train_rmse`/`dev_rmse`); `curve_metric` says which.
"""

from __future__ import annotations

import argparse
import json
import math
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.utils.data import DistributedSampler, TensorDataset

from gauntlet import layout, storage
from gauntlet.config import PRECISIONS
from gauntlet.hashing import sha256_bytes
from gauntlet.logs import get_logger, setup_logging
from gauntlet.protocol import plateaued
from gauntlet.training import backends, checkpoint, topology
from gauntlet.training.backends import Backend
from gauntlet.training.data import load_preprocessor, load_split
from gauntlet.training.device_data import DeviceBatches
from gauntlet.training.loop import EpochTotals, TaskLoss, autocast_dtype, task_loss, train_epoch
from gauntlet.training.model import build_model, bundle_bytes, bundle_spec, parameter_digest

log = get_logger("gauntlet.worker")
PRECISION_DEFAULT = PRECISIONS[0]


def train(args: argparse.Namespace) -> None:
    params = json.loads(args.params)
    epochs, seed = params["epochs"], params["seed"]
    # 1. The engine up (Horovod unless the params name another); this rank's device.
    backend = backends.start(params.get("backend", backends.HOROVOD))
    rank, size = backend.rank, backend.size
    torch.set_num_threads(int(params.get("threads_per_worker", 1)))
    torch.manual_seed(seed)
    np.random.seed(seed)
    device = backend.device()
    on_cpu = device.type == "cpu"

    # 2. Data: the committed dataset's train split (sharded below) and its dev split.
    scratch = storage.temp_dir()
    data = _Data.load(args.dataset, scratch.name, device)

    # 3. Model; each rank keeps its per-worker batch, so the global batch and the learning rate both
    # grow with the world size. Wrap before restoring state: DistributedOptimizer has its own state.
    model = build_model(params["model"], data.preprocessor, len(data.classes), data.task).to(device)
    sgd = torch.optim.SGD(
        model.parameters(), lr=params["lr"] * size, momentum=params["momentum"], weight_decay=params["weight_decay"]
    )
    optimizer = backend.distributed_optimizer(sgd, model)
    # Cosine decay over the fixed epoch budget, stepped per epoch so a resume lands on the same rate.
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, _lr_factor(params["schedule"], epochs))

    # 4. Resume on rank 0, then every rank starts from rank 0's state; `trained` is the module whose
    # backward averages gradients (the model itself under Horovod, its DDP wrapper under ddp).
    start_epoch, curve = _resume(backend, args.experiment, model, optimizer, schedule)
    backend.broadcast_state(model, optimizer)
    schedule.load_state_dict(backend.broadcast_object(schedule.state_dict(), "schedule"))
    torch.set_rng_state(backend.broadcast_object(torch.get_rng_state(), "rng"))
    trained = backend.trainable(model)

    # 5. Each rank trains on its shard of the rows, reshuffled every epoch.
    sampler: DistributedSampler[Any] = DistributedSampler(
        data.train, num_replicas=size, rank=rank, shuffle=True, seed=seed
    )
    batches = train_batches(data.train, sampler, params["batch_size"], device)
    autocast = autocast_dtype(params.get("precision", PRECISION_DEFAULT), device)
    _log_plan(backend, sampler, len(data.train), params, device, batches.placement)

    # 6. Epochs, until the budget or the protocol's plateau; rank 0 checkpoints each one.
    started, stopped_early = time.perf_counter(), False
    for epoch in range(start_epoch, epochs + 1):
        if params.get("patience") and _should_stop(backend, curve, params["patience"], epoch):
            stopped_early = True
            break
        sampler.set_epoch(epoch)
        tick = time.perf_counter()
        hooks = backend.step_hooks(epoch, on_cpu)
        totals = train_epoch(trained, optimizer, batches, device, hooks, autocast=autocast, loss_fn=data.loss)
        schedule.step()
        curve.append(_curve_row(backend, epoch, totals, model, data, tick))
        if rank == 0:
            _log_epoch(curve[-1], epochs, (time.perf_counter() - started) / (epoch - start_epoch + 1))
            checkpoint.save(args.experiment, model, optimizer, schedule, epoch, curve)

    # 7. Every rank must hold the same weights; rank 0 writes the model and the run's record.
    record = {
        "device": device.type,
        "resumed_from_epoch": start_epoch - 1 if start_epoch > 1 else None,
        "precision": params.get("precision", PRECISION_DEFAULT),
        "input": {"placement": batches.placement, "wait_fraction": _input_wait(curve[start_epoch - 1 :])},
    }
    _save_model(backend, args.experiment, model.cpu(), params, data, curve, {**record, "stopped_early": stopped_early})
    scratch.cleanup()
    backend.close()


def train_batches(
    train: TensorDataset, sampler: DistributedSampler[Any], batch_size: int, device: torch.device
) -> DeviceBatches:
    """The worker's input path for a rank's shard (the GPU benchmark drives the same one)."""
    features, labels = train.tensors
    return DeviceBatches(features, labels, sampler, batch_size, device)


def _input_wait(rows: list[dict[str, Any]]) -> float | None:
    """The run's share of training-pass time spent waiting for input, over the epochs it trained."""
    timed = [row for row in rows if "step_seconds" in row]
    stepped = sum(row["step_seconds"] for row in timed)
    return sum(row["input_seconds"] for row in timed) / stepped if stepped > 0 else None


@dataclass
class _Data:
    train: TensorDataset  # on the CPU; DeviceBatches places its rows
    x_dev: torch.Tensor  # on the device
    y_dev: torch.Tensor
    preprocessor: dict[str, Any]
    task: str  # classification | regression
    classes: list[Any]  # label values in class-index order; [] for regression
    loss: TaskLoss

    @classmethod
    def load(cls, dataset: str, scratch: str, device: torch.device) -> _Data:
        train_split, manifest = load_split(dataset, "train", scratch)
        dev_split, _ = load_split(dataset, "dev", scratch)
        schema = manifest["schema"]
        task = schema.get("task", "classification")  # datasets written before regression have no task
        preprocessor = load_preprocessor(dataset)
        return cls(
            train=TensorDataset(torch.from_numpy(train_split.features), _labels(train_split.labels, task)),
            x_dev=torch.from_numpy(dev_split.features).to(device),
            y_dev=_labels(dev_split.labels, task).to(device),
            preprocessor=preprocessor,
            task=task,
            classes=list(schema["classes"]),
            loss=task_loss(task, preprocessor),
        )


def _labels(labels: np.ndarray, task: str) -> torch.Tensor:
    """Class indices as they are (int64), regression targets as float32 like the net's outputs."""
    if task == "regression":
        return torch.from_numpy(labels.astype(np.float32))
    return torch.from_numpy(labels)


def _lr_factor(schedule: str, epochs: int) -> Callable[[int], float]:
    if schedule == "constant":
        return lambda epoch: 1.0
    return lambda epoch: 0.5 * (1 + math.cos(math.pi * min(epoch, epochs) / epochs))


def _resume(
    backend: Backend,
    experiment: str,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    schedule: torch.optim.lr_scheduler.LRScheduler,
) -> tuple[int, list[dict[str, Any]]]:
    """The first epoch to train and the curve so far, from rank 0's latest checkpoint (if any)."""
    start_epoch, curve = 1, list[dict[str, Any]]()
    if backend.rank == 0:
        restored = checkpoint.restore_latest(experiment, model, optimizer, schedule)
        if restored is not None:
            last, curve = restored
            start_epoch = last + 1
            log.info("resuming from checkpoint of epoch %d", last)
    start_epoch, curve = backend.broadcast_object((start_epoch, curve), "resume")
    return start_epoch, curve


def _should_stop(backend: Backend, curve: list[dict[str, Any]], patience: int, epoch: int) -> bool:
    """The protocol's "until plateau" rule, decided on rank 0 and broadcast so every rank agrees
    (checked before an epoch, so a run resumed after the plateau stops at once)."""
    stop = plateaued([row["dev_error"] for row in curve], patience)
    stop = bool(backend.broadcast_object(stop, f"plateau.{epoch}"))
    if stop and backend.rank == 0:
        best = min(curve, key=lambda row: row["dev_error"])
        log.info(
            "stopping early after epoch %d: dev_%s has not improved for %d epochs (best %.4f at epoch %d)",
            len(curve),
            "rmse" if "dev_rmse" in best else "error",
            patience,
            best["dev_error"],
            best["epoch"],
        )
    return stop


def curve_metric(task: str) -> str:
    """What a curve row's train_error/dev_error hold for a task."""
    return "rmse" if task == "regression" else "error_rate"


def _curve_row(
    backend: Backend, epoch: int, totals: EpochTotals, model: torch.nn.Module, data: _Data, tick: float
) -> dict[str, Any]:
    """The epoch's line of the learning curve, over all ranks."""
    loss_sum, wrong, seen, waited, stepped = backend.allreduce_sums(
        [totals.loss_sum, totals.wrong, totals.seen, totals.input_seconds, totals.seconds], f"train.{epoch}"
    )
    dev_loss, dev_wrong = _evaluate_shard(backend, model, data, f"dev.{epoch}")
    row = {
        "epoch": epoch,
        "step": int(epoch * len(data.train)),  # samples seen: comparable across batch sizes and ranks
        "train_loss": loss_sum / seen,
        "train_error": _error(wrong / seen, data.task),
        "dev_loss": dev_loss,
        "dev_error": _error(dev_wrong, data.task),
        "samples_per_s": seen / totals.seconds,
        "epoch_seconds": time.perf_counter() - tick,
        # Over all ranks: the share of the training passes spent waiting for a batch, and the mean
        # rank's seconds of each.
        "input_wait_fraction": waited / stepped if stepped > 0 else 0.0,
        "input_seconds": waited / backend.size,
        "step_seconds": stepped / backend.size,
    }
    if data.task == "regression":
        row.update(train_rmse=row["train_error"], dev_rmse=row["dev_error"])
    return row


def _error(mean_wrong: float, task: str) -> float:
    """The curve metric from the mean of the loss's `wrong`: an error rate, or the root of a mean squared error."""
    return math.sqrt(mean_wrong) if task == "regression" else mean_wrong


def _evaluate_shard(backend: Backend, model: torch.nn.Module, data: _Data, name: str) -> tuple[float, float]:
    """Mean loss and mean `wrong` over the dev split: each rank scores rank::size rows, sums are allreduced."""
    model.eval()
    with torch.no_grad():
        rows = slice(backend.rank, None, backend.size)
        outputs, y = model(data.x_dev[rows]), data.y_dev[rows]
        loss_sum = data.loss.total(outputs, y).item()
        wrong = data.loss.wrong(outputs, y).item()
    loss_sum, wrong, count = backend.allreduce_sums([loss_sum, wrong, len(y)], name)
    return loss_sum / count, wrong / count


def _save_model(
    backend: Backend,
    experiment: str,
    model: torch.nn.Module,
    params: dict[str, Any],
    data: _Data,
    curve: list[dict[str, Any]],
    record: dict[str, Any],
) -> None:
    """Check that all ranks hold bit-identical weights, then (rank 0) write model.pt and worker.json."""
    digests = backend.allgather_object(parameter_digest(model), "digests")
    if backend.rank != 0:
        return
    if len(set(digests)) != 1:
        raise RuntimeError(f"ranks disagree on the final weights: {digests}")
    model_bytes = bundle_bytes(model, bundle_spec(params["model"], data.preprocessor, data.task, data.classes))
    storage.put_bytes(layout.model_uri(experiment), model_bytes)
    storage.put_json(
        layout.worker_report_uri(experiment),
        {
            "curve": curve,
            "rank_parameter_digests": digests,
            "world_size": backend.size,
            "backend": backend.name,
            "model_sha256": sha256_bytes(model_bytes),
            "device": record["device"],
            "resumed_from_epoch": record["resumed_from_epoch"],
            "epochs_run": len(curve),
            "precision": record["precision"],
            "input": record["input"],
            "stopped_early": record["stopped_early"],
            "task": data.task,
            "curve_metric": curve_metric(data.task),
        },
    )
    log.info("model written: %d ranks hold identical weights (%s)", backend.size, digests[0][:12])


def _log_plan(
    backend: Backend,
    sampler: DistributedSampler[Any],
    rows: int,
    params: dict[str, Any],
    device: torch.device,
    placement: str,
) -> None:
    rank, size = backend.rank, backend.size
    log.info(topology.RANK_LINE, rank, size, socket.gethostname())  # where each rank really runs
    # Equal shards need total_size rows: the sampler repeats rows at the end, and they land on the last ranks.
    repeated = sum(1 for i in range(rows, sampler.total_size) if i % size == rank)
    if repeated:
        log.warning(
            "rank %d: %d of its %d rows per epoch repeat another row (%d rows do not split evenly over %d ranks)",
            rank,
            repeated,
            sampler.num_samples,
            rows,
            size,
        )
    if rank == 0:
        log.info(
            "training %d epochs on %d rows (%d ranks x batch %d = global batch %d, lr %.4g, %s, rows %s), %s",
            params["epochs"],
            rows,
            size,
            params["batch_size"],
            size * params["batch_size"],
            params["lr"] * size,
            params.get("precision", PRECISION_DEFAULT),
            placement,
            backend.describe(device),
        )


def _log_epoch(row: dict[str, Any], epochs: int, seconds_per_epoch: float) -> None:
    name = "rmse" if "dev_rmse" in row else "error"  # the curve metric, by its name
    log.info(
        "epoch %d/%d train_loss=%.4f train_%s=%.4f dev_loss=%.4f dev_%s=%.4f samples/s=%.0f input_wait=%.1f%% "
        "epoch_time=%.2fs eta=%.0fs",
        row["epoch"],
        epochs,
        row["train_loss"],
        name,
        row["train_error"],
        row["dev_loss"],
        name,
        row["dev_error"],
        row["samples_per_s"],
        100 * row["input_wait_fraction"],
        row["epoch_seconds"],
        seconds_per_epoch * (epochs - row["epoch"]),
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dataset", required=True, help="committed dataset prefix (s3://...)")
    parser.add_argument("--experiment", required=True, help="experiment prefix to write to (s3://...)")
    parser.add_argument("--params", required=True, help="JSON: epochs, batch_size, lr, momentum, ...")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    setup_logging()
    train(parse_args(argv))


if __name__ == "__main__":
    main()
