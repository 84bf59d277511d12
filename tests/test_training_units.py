"""The worker's parts one at a time: input path, training step, checkpoints, fault hooks, CPU thread scheduling."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader, DistributedSampler, TensorDataset

from gauntlet import storage
from gauntlet.hashing import TRAINING_CODE
from gauntlet.training import checkpoint, faults, worker
from gauntlet.training.cpu_tuning import HorovodThreads
from gauntlet.training.data import batch_loader
from gauntlet.training.loop import StepHooks, train_epoch


@pytest.mark.parametrize("rows, batch_size", [(103, 8), (64, 16), (5, 32)])
def test_batch_loader_yields_the_per_row_loaders_batches(rows: int, batch_size: int) -> None:
    dataset = TensorDataset(torch.randn(rows, 4), torch.arange(rows))
    for rank in (0, 1):
        sampler: DistributedSampler[int] = DistributedSampler(dataset, num_replicas=2, rank=rank, seed=3)
        for epoch in (1, 2):
            sampler.set_epoch(epoch)
            expected = list(DataLoader(dataset, batch_size=batch_size, sampler=sampler))
            got = list(batch_loader(dataset, sampler, batch_size))
            assert len(got) == len(expected)
            for (xa, ya), (xb, yb) in zip(got, expected, strict=True):
                assert torch.equal(xa, xb) and torch.equal(ya, yb)


@pytest.fixture
def idle_thread() -> Iterator[int]:
    release = threading.Event()
    thread = threading.Thread(target=release.wait, daemon=True)
    thread.start()
    assert thread.native_id is not None
    yield thread.native_id
    release.set()
    thread.join()


def test_horovod_threads_defer_to_the_compute_thread(idle_thread: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GAUNTLET_RANK_THREAD_SCHEDULING", raising=False)
    threads = HorovodThreads([idle_thread])
    threads.defer_to_compute()
    assert os.sched_getscheduler(idle_thread) == os.SCHED_BATCH
    with threads.yielding():
        inside = os.sched_getscheduler(idle_thread)
    # SCHED_IDLE only where it can be undone (root, CAP_SYS_NICE or RLIMIT_NICE); SCHED_BATCH after.
    assert inside == (os.SCHED_IDLE if threads.can_idle else os.SCHED_BATCH)
    assert os.sched_getscheduler(idle_thread) == os.SCHED_BATCH


def test_thread_scheduling_can_be_turned_off(idle_thread: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GAUNTLET_RANK_THREAD_SCHEDULING", "off")
    threads = HorovodThreads([idle_thread])
    threads.defer_to_compute()
    with threads.yielding():
        assert os.sched_getscheduler(idle_thread) == os.SCHED_OTHER
    assert os.sched_getscheduler(idle_thread) == os.SCHED_OTHER


def _tiny_model(seed: int) -> tuple[torch.nn.Module, torch.optim.Optimizer]:
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    return model, torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)


def test_train_epoch_is_the_plain_step_and_sums_what_it_saw() -> None:
    x, y = torch.randn(50, 4), torch.randint(0, 3, (50,))
    batches = [(x[i : i + 16], y[i : i + 16]) for i in range(0, 50, 16)]
    model, optimizer = _tiny_model(0)
    totals = train_epoch(model, optimizer, batches, torch.device("cpu"))
    reference, ref_optimizer = _tiny_model(0)
    loss_sum = wrong = 0.0
    for xb, yb in batches:
        ref_optimizer.zero_grad()
        logits = reference(xb)
        loss = torch.nn.functional.cross_entropy(logits, yb)
        loss.backward()
        ref_optimizer.step()
        loss_sum += loss.item() * len(yb)
        wrong += (logits.argmax(dim=1) != yb).sum().item()
    for ours, theirs in zip(model.state_dict().values(), reference.state_dict().values(), strict=True):
        assert torch.equal(ours, theirs)
    assert (totals.seen, totals.steps, totals.loss_sum, totals.wrong) == (50, 4, loss_sum, wrong)
    assert 0 < totals.input_seconds <= totals.seconds


def test_train_epoch_calls_its_hooks_in_step_order_and_stops_at_max_steps() -> None:
    calls: list[str] = []

    @contextlib.contextmanager
    def around() -> Iterator[None]:
        calls.append("compute")
        yield

    hooks = StepHooks(
        before_batch=lambda batch: calls.append(f"batch {batch}"),
        around_compute=around,
        before_step=lambda optimizer: calls.append("step"),
    )
    model, optimizer = _tiny_model(1)
    batches = [(torch.randn(4, 4), torch.randint(0, 3, (4,)))] * 5
    totals = train_epoch(model, optimizer, batches, torch.device("cpu"), hooks, max_steps=2)
    assert totals.steps == 2 and totals.seen == 8
    assert calls == ["batch 0", "compute", "step", "batch 1", "compute", "step"]


def test_checkpoint_restores_model_optimizer_schedule_rng_and_curve(store: str) -> None:
    experiment = f"{store}/experiments/ckpt"
    model, optimizer = _tiny_model(2)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda epoch: 0.5**epoch)
    assert checkpoint.restore_latest(experiment, model, optimizer, schedule) is None
    train_epoch(model, optimizer, [(torch.randn(6, 4), torch.randint(0, 3, (6,)))], torch.device("cpu"))
    schedule.step()
    curve = [{"epoch": 1, "dev_error": 0.5}]
    checkpoint.save(experiment, model, optimizer, schedule, 1, curve)
    rng = torch.get_rng_state()

    torch.manual_seed(99)
    fresh, fresh_optimizer = _tiny_model(3)
    fresh_schedule = torch.optim.lr_scheduler.LambdaLR(fresh_optimizer, lambda epoch: 0.5**epoch)
    assert checkpoint.restore_latest(experiment, fresh, fresh_optimizer, fresh_schedule) == (1, curve)
    assert torch.equal(torch.get_rng_state(), rng)
    assert fresh_schedule.get_last_lr() == schedule.get_last_lr()
    for ours, theirs in zip(fresh.state_dict().values(), model.state_dict().values(), strict=True):
        assert torch.equal(ours, theirs)
    assert fresh_optimizer.state_dict()["state"][0]["momentum_buffer"].equal(
        optimizer.state_dict()["state"][0]["momentum_buffer"]
    )
    assert storage.get_bytes(f"{experiment}/curve.jsonl").decode().splitlines() == [json.dumps(curve[0])]


def test_fault_hook_fires_only_where_planned_and_once_per_marker(tmp_path: Path) -> None:
    marker = tmp_path / "fired"
    script = "from gauntlet.training import faults\nfor e in (1, 2):\n    h = faults.batch_hook(0, e)\n"
    script += "    for b in range(5):\n        h and h(b)\nprint('finished')\n"
    env = {**os.environ, "GAUNTLET_FAULT_KILL": "0:2:3", "GAUNTLET_FAULT_MARKER": str(marker)}
    first = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=False)
    assert first.returncode == 137 and "finished" not in first.stdout and marker.exists()
    again = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=False)
    assert again.returncode == 0 and "finished" in again.stdout  # the retry runs clean


def test_fault_hook_is_absent_without_a_plan_for_this_rank_and_epoch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GAUNTLET_FAULT_KILL", raising=False)
    monkeypatch.delenv("GAUNTLET_FAULT_STOP", raising=False)
    assert faults.batch_hook(0, 1) is None
    monkeypatch.setenv("GAUNTLET_FAULT_STOP", "1:3:4")
    assert faults.batch_hook(0, 3) is None and faults.batch_hook(1, 2) is None
    assert faults.batch_hook(1, 3) is not None


def test_every_training_module_the_worker_imports_is_in_the_experiment_key() -> None:
    """Editing any module that shapes a trained model must change the experiment key."""
    import ast

    source = Path(worker.__file__).read_text()
    imported = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.module == "gauntlet.training":
            imported |= {f"training/{alias.name}.py" for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("gauntlet.training."):
            imported.add(node.module.replace("gauntlet.", "").replace(".", "/") + ".py")
    assert imported and imported <= set(TRAINING_CODE) - {"training/worker.py"}
    assert "training/worker.py" in TRAINING_CODE
