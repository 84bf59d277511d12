"""The worker's input path and its CPU thread scheduling, one function at a time."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator

import pytest
import torch
from torch.utils.data import DataLoader, DistributedSampler, TensorDataset

from gauntlet.training import worker
from gauntlet.training.data import batch_loader


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
    threads = worker._HorovodThreads([idle_thread])
    threads.defer_to_compute()
    assert os.sched_getscheduler(idle_thread) == os.SCHED_BATCH
    with threads.yielding():
        inside = os.sched_getscheduler(idle_thread)
    # SCHED_IDLE only where it can be undone (root, CAP_SYS_NICE or RLIMIT_NICE); SCHED_BATCH after.
    assert inside == (os.SCHED_IDLE if threads.can_idle else os.SCHED_BATCH)
    assert os.sched_getscheduler(idle_thread) == os.SCHED_BATCH


def test_thread_scheduling_can_be_turned_off(idle_thread: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GAUNTLET_RANK_THREAD_SCHEDULING", "off")
    threads = worker._HorovodThreads([idle_thread])
    threads.defer_to_compute()
    with threads.yielding():
        assert os.sched_getscheduler(idle_thread) == os.SCHED_OTHER
    assert os.sched_getscheduler(idle_thread) == os.SCHED_OTHER
