"""training.cpu_tuning: Horovod's background threads defer to the compute thread."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator

import pytest

from gauntlet.training.cpu_tuning import HorovodThreads


@pytest.fixture
def idle_thread() -> Iterator[int]:
    release = threading.Event()
    thread = threading.Thread(target=release.wait, daemon=True)
    thread.start()
    assert thread.native_id is not None
    yield thread.native_id
    release.set()
    thread.join()


def test_horovod_threads_can_idle_during_compute(idle_thread: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GAUNTLET_RANK_THREAD_SCHEDULING", "idle")
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


def test_horovod_threads_stay_batch_throughout_by_default(idle_thread: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """SCHED_IDLE would starve the allreduce whenever other processes want the cores."""
    monkeypatch.delenv("GAUNTLET_RANK_THREAD_SCHEDULING", raising=False)
    threads = HorovodThreads([idle_thread])
    threads.defer_to_compute()
    assert not threads.can_idle
    with threads.yielding():
        assert os.sched_getscheduler(idle_thread) == os.SCHED_BATCH
    assert os.sched_getscheduler(idle_thread) == os.SCHED_BATCH
