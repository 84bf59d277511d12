"""The Horovod worker: data-parallel training of one experiment, one process per rank.

Started by `horovodrun -np N python -m gauntlet.training.worker ...` (see steps/train.py). The
recipe is Horovod's: init, pin a GPU per local rank (NCCL) or stay on CPU (Gloo), shard the data
with a DistributedSampler, scale the learning rate by the world size, wrap the optimizer in
hvd.DistributedOptimizer (gradients averaged by allreduce), broadcast the initial state from rank 0.
Rank 0 writes a checkpoint and a curve line to S3 after every epoch; a restarted run resumes from
the last checkpoint with the epoch counter, optimizer state and RNG state it had.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import os
import threading
import time
from collections.abc import Iterator
from typing import Any

import horovod.torch as hvd
import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DistributedSampler, TensorDataset

from gauntlet import storage
from gauntlet.hashing import sha256_bytes
from gauntlet.logs import get_logger, setup_logging
from gauntlet.protocol import plateaued
from gauntlet.training.data import batch_loader, load_preprocessor, load_split
from gauntlet.training.model import build_model, bundle_bytes, parameter_digest

log = get_logger("gauntlet.worker")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dataset", required=True, help="committed dataset prefix (s3://...)")
    parser.add_argument("--experiment", required=True, help="experiment prefix to write to (s3://...)")
    parser.add_argument("--params", required=True, help="JSON: epochs, batch_size, lr, momentum, ...")
    return parser.parse_args(argv)


def _lr_factor(schedule: str, epochs: int) -> Any:
    if schedule == "constant":
        return lambda epoch: 1.0
    return lambda epoch: 0.5 * (1 + math.cos(math.pi * min(epoch, epochs) / epochs))


def _checkpoint_payload(
    model: torch.nn.Module, optimizer: torch.optim.Optimizer, schedule: Any, epoch: int, curve: list[dict[str, Any]]
) -> bytes:
    buffer = io.BytesIO()
    torch.save(
        {
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "schedule": schedule.state_dict(),
            "epoch": epoch,
            "torch_rng": torch.get_rng_state(),
            "curve": json.dumps(curve),
        },
        buffer,
    )
    return buffer.getvalue()


def _load_latest_checkpoint(experiment: str) -> dict[str, Any] | None:
    pointer_uri = storage.join(experiment, "checkpoints", "latest.json")
    if not storage.exists(pointer_uri):
        return None
    pointer = storage.get_json(pointer_uri)
    data = storage.get_bytes(pointer["uri"], expected_sha256=pointer["sha256"])
    payload: dict[str, Any] = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    return payload


def _save_checkpoint(experiment: str, payload: bytes, epoch: int, curve: list[dict[str, Any]]) -> None:
    uri = storage.join(experiment, "checkpoints", f"epoch-{epoch:04d}.pt")
    storage.put_bytes(uri, payload)
    # The curve and the pointer are written after the checkpoint, so they never name a missing one.
    storage.put_bytes(
        storage.join(experiment, "curve.jsonl"),
        "".join(json.dumps(row) + "\n" for row in curve).encode(),
        content_type="application/x-ndjson",
    )
    storage.put_json(
        storage.join(experiment, "checkpoints", "latest.json"),
        {"epoch": epoch, "uri": uri, "sha256": sha256_bytes(payload)},
    )


def _allreduce_sums(values: list[float], name: str) -> list[float]:
    tensor = torch.tensor(values, dtype=torch.float64)
    return hvd.allreduce(tensor, op=hvd.Sum, name=name).tolist()  # type: ignore[no-any-return]


def _evaluate_shard(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, name: str) -> tuple[float, float]:
    """Loss and error over the whole split: each rank scores rank::size rows, sums are allreduced."""
    model.eval()
    with torch.no_grad():
        rows = slice(hvd.rank(), None, hvd.size())
        logits = model(x[rows])
        loss_sum = F.cross_entropy(logits, y[rows], reduction="sum").item()
        wrong = (logits.argmax(dim=1) != y[rows]).sum().item()
    loss_sum, wrong, count = _allreduce_sums([loss_sum, wrong, len(y[rows])], name)
    return loss_sum / count, wrong / count


def _fault_injection(epoch: int, batch: int) -> None:
    """Test hooks, both 'rank:epoch:batch' and fired once per GAUNTLET_FAULT_MARKER file:

    GAUNTLET_FAULT_KILL makes that rank die there (like an OOM kill); GAUNTLET_FAULT_STOP makes it
    write its pid to GAUNTLET_FAULT_PIDFILE and freeze there, so a test can `kill -9` a real process
    in the middle of an epoch while its peers wait on it.
    """
    marker = os.environ.get("GAUNTLET_FAULT_MARKER")
    for variable in ("GAUNTLET_FAULT_KILL", "GAUNTLET_FAULT_STOP"):
        spec = os.environ.get(variable)
        if not spec:
            continue
        rank, at_epoch, at_batch = (int(v) for v in spec.split(":"))
        if hvd.rank() != rank or epoch != at_epoch or batch != at_batch or (marker and os.path.exists(marker)):
            continue
        if marker:
            open(marker, "w").close()  # fire once, so the retry runs clean
        if variable == "GAUNTLET_FAULT_KILL":
            log.warning("fault injection: rank %d exits abruptly in epoch %d, batch %d", rank, epoch, batch)
            os._exit(137)
        pidfile = os.environ["GAUNTLET_FAULT_PIDFILE"]
        with open(pidfile + ".tmp", "w") as handle:
            handle.write(str(os.getpid()))
        os.replace(pidfile + ".tmp", pidfile)  # the reader never sees a half-written pid
        log.warning("fault injection: rank %d (pid %d) frozen in epoch %d, batch %d", rank, os.getpid(), epoch, batch)
        while True:
            time.sleep(1)


class _HorovodThreads:
    """The threads hvd.init() starts (its background loop and Gloo's transport), kept off a CPU
    rank's core while that rank computes.

    On CPU a rank has about one core for its compute thread, and Horovod's background loop runs a
    coordination round with the other ranks every HOROVOD_CYCLE_TIME ms: at normal priority every
    round preempts the compute thread (forward+backward took 170-250 ms a step instead of the 155-165
    it takes alone, benchmark configuration, 2 ranks on 2 cores). So the threads run under
    SCHED_BATCH, which never preempts on wakeup, and during forward and backward under SCHED_IDLE,
    which runs them only on a core nobody else needs (a rank already waiting). Leaving SCHED_IDLE
    again needs CAP_SYS_NICE or RLIMIT_NICE >= 20; without it they stay SCHED_BATCH throughout, as a
    collective that spins in hvd.synchronize() beside a SCHED_IDLE loop takes 25 times as long.
    """

    def __init__(self, thread_ids: list[int]) -> None:
        self.thread_ids = thread_ids
        self.can_idle = False

    def defer_to_compute(self) -> None:
        """SCHED_BATCH from now on, and SCHED_IDLE inside `yielding()` where that can be undone.

        GAUNTLET_RANK_THREAD_SCHEDULING=off keeps Horovod's threads as they start (the benchmark's
        "plain recipe" variant measures what this buys)."""
        if os.environ.get("GAUNTLET_RANK_THREAD_SCHEDULING", "on") == "off":
            return
        if self.thread_ids:  # found in /proc: Linux
            self._set(os.SCHED_BATCH)
            self.can_idle = _may_leave_sched_idle()

    @classmethod
    def start(cls) -> _HorovodThreads:
        """hvd.init(), and the threads it started."""
        before = _thread_ids()
        hvd.init()
        return cls(sorted(_thread_ids() - before))

    def _set(self, policy: int) -> None:
        for tid in self.thread_ids:
            with contextlib.suppress(OSError):  # an ended thread, or a policy this system refuses
                os.sched_setscheduler(tid, policy, os.sched_param(0))

    @contextlib.contextmanager
    def yielding(self) -> Iterator[None]:
        """Horovod's threads under SCHED_IDLE for the duration, where they can be brought back."""
        if not self.can_idle:
            yield
            return
        self._set(os.SCHED_IDLE)
        try:
            yield
        finally:
            self._set(os.SCHED_BATCH)


def _thread_ids() -> set[int]:
    try:
        return {int(tid) for tid in os.listdir("/proc/self/task")}
    except OSError:  # no /proc: not Linux
        return set()


def _may_leave_sched_idle() -> bool:
    """Whether this process may move a thread out of SCHED_IDLE again, tried on a throwaway thread."""
    release = threading.Event()
    probe = threading.Thread(target=release.wait, daemon=True)
    probe.start()
    try:
        assert probe.native_id is not None
        os.sched_setscheduler(probe.native_id, os.SCHED_IDLE, os.sched_param(0))
        os.sched_setscheduler(probe.native_id, os.SCHED_OTHER, os.sched_param(0))
        return True
    except OSError:
        return False
    finally:
        release.set()
        probe.join()


def _wait_for_gradients(optimizer: torch.optim.Optimizer) -> None:
    """Sleep until this step's gradient allreduces are done, so that step() finds them finished.

    hvd.DistributedOptimizer.step() waits in hvd.synchronize(), which spins on sched_yield: on a
    CPU rank that spinning takes the core from the background thread carrying out the allreduce
    (and from the other rank's). `_handles` is DistributedOptimizer's own table of this step's
    allreduces (Horovod 0.28); without it step() just waits as before.
    """
    pause = 50e-6  # short steps wait for short allreduces: start with short naps
    for handle, _ in list(getattr(optimizer, "_handles", {}).values()):
        if isinstance(handle, int):
            while not hvd.poll(handle):
                time.sleep(pause)
                pause = min(2 * pause, 500e-6)


def _should_stop(curve: list[dict[str, Any]], patience: int, epoch: int) -> bool:
    """The protocol's "until plateau" rule, decided on rank 0 and broadcast so every rank agrees
    (checked before an epoch, so a run resumed after the plateau stops at once)."""
    stop = plateaued([row["dev_error"] for row in curve], patience)
    stop = bool(hvd.broadcast_object(stop, root_rank=0, name=f"plateau.{epoch}"))
    if stop and hvd.rank() == 0:
        best = min(curve, key=lambda row: row["dev_error"])
        log.info(
            "stopping early after epoch %d: dev_error has not improved for %d epochs (best %.4f at epoch %d)",
            len(curve),
            patience,
            best["dev_error"],
            best["epoch"],
        )
    return stop


def train(args: argparse.Namespace) -> None:
    params = json.loads(args.params)
    horovod_threads = _HorovodThreads.start()
    rank, size = hvd.rank(), hvd.size()
    torch.set_num_threads(int(params.get("threads_per_worker", 1)))
    torch.manual_seed(params["seed"])
    np.random.seed(params["seed"])
    device = torch.device("cpu")
    if torch.cuda.is_available():
        torch.cuda.set_device(hvd.local_rank())
        device = torch.device("cuda", hvd.local_rank())
    on_cpu = device.type == "cpu"
    if on_cpu:
        horovod_threads.defer_to_compute()

    scratch = storage.temp_dir()
    train_split, manifest = load_split(args.dataset, "train", scratch.name)
    dev_split, _ = load_split(args.dataset, "dev", scratch.name)
    preprocessor = load_preprocessor(args.dataset)
    n_classes = len(manifest["schema"]["classes"])
    x_train, y_train = torch.from_numpy(train_split.features), torch.from_numpy(train_split.labels)
    x_dev, y_dev = torch.from_numpy(dev_split.features).to(device), torch.from_numpy(dev_split.labels).to(device)

    model = build_model(params["model"], preprocessor, n_classes).to(device)
    # Horovod's recipe: each rank keeps its per-worker batch, so the global batch and the learning
    # rate both grow with the world size.
    optimizer: torch.optim.Optimizer = torch.optim.SGD(
        model.parameters(),
        lr=params["lr"] * size,
        momentum=params["momentum"],
        weight_decay=params["weight_decay"],
    )

    # Wrap before restoring state: DistributedOptimizer is a new optimizer object with its own state.
    optimizer = hvd.DistributedOptimizer(optimizer, named_parameters=model.named_parameters(), op=hvd.Average)
    epochs = params["epochs"]
    # Cosine decay over the fixed epoch budget, stepped per epoch so a resume lands on the same rate.
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, _lr_factor(params["schedule"], epochs))
    start_epoch, curve = 1, []
    if rank == 0:
        checkpoint = _load_latest_checkpoint(args.experiment)
        if checkpoint is not None:
            model.load_state_dict(checkpoint["model"])
            optimizer.load_state_dict(checkpoint["optimizer"])
            schedule.load_state_dict(checkpoint["schedule"])
            torch.set_rng_state(checkpoint["torch_rng"])
            start_epoch, curve = checkpoint["epoch"] + 1, json.loads(checkpoint["curve"])
            log.info("resuming from checkpoint of epoch %d", checkpoint["epoch"])
    start_epoch, curve = hvd.broadcast_object((start_epoch, curve), root_rank=0, name="resume")
    # Optimizer state first: a rank with empty state (every rank but 0 on a resume) initialises it
    # with a zero-gradient step, which weight decay turns into a real update of its parameters; the
    # parameter broadcast after it puts every rank back on rank 0's weights.
    hvd.broadcast_optimizer_state(optimizer, root_rank=0)
    hvd.broadcast_parameters(model.state_dict(), root_rank=0)
    schedule.load_state_dict(hvd.broadcast_object(schedule.state_dict(), root_rank=0, name="schedule"))
    rng = hvd.broadcast_object(torch.get_rng_state(), root_rank=0, name="rng")
    torch.set_rng_state(rng)

    dataset = TensorDataset(x_train, y_train)
    sampler: DistributedSampler[Any] = DistributedSampler(
        dataset, num_replicas=size, rank=rank, shuffle=True, seed=params["seed"]
    )
    loader = batch_loader(dataset, sampler, params["batch_size"], pin_memory=not on_cpu)
    n_global = len(dataset)
    # Equal shards need total_size rows: the sampler repeats rows at the end, and they land on the last ranks.
    repeated = sum(1 for i in range(n_global, sampler.total_size) if i % size == rank)
    if repeated:
        log.warning(
            "rank %d: %d of its %d rows per epoch repeat another row (%d rows do not split evenly over %d ranks)",
            rank,
            repeated,
            sampler.num_samples,
            n_global,
            size,
        )
    if rank == 0:
        log.info(
            "training %d epochs on %d rows (%d ranks x batch %d = global batch %d, lr %.4g), %s",
            epochs,
            n_global,
            size,
            params["batch_size"],
            size * params["batch_size"],
            params["lr"] * size,
            "GPU/NCCL" if device.type == "cuda" else "CPU/Gloo",
        )

    started = time.perf_counter()
    patience = params.get("patience")
    stopped_early = False
    for epoch in range(start_epoch, epochs + 1):
        if patience and _should_stop(curve, patience, epoch):
            stopped_early = True
            break
        model.train()
        sampler.set_epoch(epoch)
        tick = time.perf_counter()
        loss_sum, wrong, seen = 0.0, 0.0, 0
        for batch, (xb, yb) in enumerate(loader):
            _fault_injection(epoch, batch)
            xb, yb = xb.to(device, non_blocking=True), yb.to(device, non_blocking=True)
            optimizer.zero_grad()
            with horovod_threads.yielding():
                logits = model(xb)
                loss = F.cross_entropy(logits, yb)
                loss.backward()
            if on_cpu:
                _wait_for_gradients(optimizer)
            optimizer.step()
            loss_sum += loss.item() * len(yb)
            wrong += (logits.argmax(dim=1) != yb).sum().item()
            seen += len(yb)
        train_time = time.perf_counter() - tick
        schedule.step()
        loss_sum, wrong, seen_all = _allreduce_sums([loss_sum, wrong, seen], f"train.{epoch}")
        dev_loss, dev_error = _evaluate_shard(model, x_dev, y_dev, f"dev.{epoch}")
        epoch_time = time.perf_counter() - tick
        row = {
            "epoch": epoch,
            "step": int(epoch * n_global),  # samples seen: comparable across batch sizes and ranks
            "train_loss": loss_sum / seen_all,
            "train_error": wrong / seen_all,
            "dev_loss": dev_loss,
            "dev_error": dev_error,
            "samples_per_s": seen_all / train_time,
            "epoch_seconds": epoch_time,
        }
        curve.append(row)
        if rank == 0:
            done = epoch - start_epoch + 1
            eta = (time.perf_counter() - started) / done * (epochs - epoch)
            log.info(
                "epoch %d/%d train_loss=%.4f train_error=%.4f dev_loss=%.4f dev_error=%.4f "
                "samples/s=%.0f epoch_time=%.2fs eta=%.0fs",
                epoch,
                epochs,
                row["train_loss"],
                row["train_error"],
                dev_loss,
                dev_error,
                row["samples_per_s"],
                epoch_time,
                eta,
            )
            payload = _checkpoint_payload(model, optimizer, schedule, epoch, curve)
            _save_checkpoint(args.experiment, payload, epoch, curve)

    model = model.cpu()
    digests = hvd.allgather_object(parameter_digest(model), name="digests")
    if rank == 0:
        if len(set(digests)) != 1:
            raise RuntimeError(f"ranks disagree on the final weights: {digests}")
        spec = {"model": params["model"], "preprocessor": preprocessor, "n_classes": n_classes}
        model_bytes = bundle_bytes(model, spec)
        storage.put_bytes(storage.join(args.experiment, "model.pt"), model_bytes)
        storage.put_json(
            storage.join(args.experiment, "worker.json"),
            {
                "curve": curve,
                "rank_parameter_digests": digests,
                "world_size": size,
                "model_sha256": sha256_bytes(model_bytes),
                "device": device.type,
                "resumed_from_epoch": start_epoch - 1 if start_epoch > 1 else None,
                "epochs_run": len(curve),
                "stopped_early": stopped_early,
            },
        )
        log.info("model written: %d ranks hold identical weights (%s)", size, digests[0][:12])
    scratch.cleanup()


def main(argv: list[str] | None = None) -> None:
    setup_logging()
    train(parse_args(argv))


if __name__ == "__main__":
    main()
