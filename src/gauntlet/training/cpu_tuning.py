"""Keeping Horovod's own threads off a CPU rank's compute core.

On CPU a rank has about one core for its compute thread, and Horovod's background loop runs a
coordination round with the other ranks every HOROVOD_CYCLE_TIME ms: at normal priority each round
preempts forward and backward, and hvd.DistributedOptimizer.step() then spins in hvd.synchronize(),
taking the core from the thread carrying out the allreduce. The measurements behind this module are
in docs/benchmarks.md (Horovod scaling); `GAUNTLET_RANK_THREAD_SCHEDULING=off` turns it off.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Iterator

import horovod.torch as hvd
import torch


class HorovodThreads:
    """The threads hvd.init() starts (its background loop and Gloo's transport), kept off a CPU
    rank's core while that rank computes.

    They run under SCHED_BATCH, which never preempts on wakeup; optionally (`idle`) during forward and
    backward under SCHED_IDLE, which runs them only on a core nobody else needs. Leaving SCHED_IDLE
    again needs CAP_SYS_NICE or RLIMIT_NICE >= 20; without it they stay SCHED_BATCH throughout, as a
    collective that spins in hvd.synchronize() beside a SCHED_IDLE loop is far slower.
    """

    def __init__(self, thread_ids: list[int]) -> None:
        self.thread_ids = thread_ids
        self.can_idle = False

    @classmethod
    def start(cls) -> HorovodThreads:
        """hvd.init(), and the threads it started."""
        before = _thread_ids()
        hvd.init()
        return cls(sorted(_thread_ids() - before))

    def defer_to_compute(self) -> None:
        """SCHED_BATCH from now on, and SCHED_IDLE inside `yielding()` where that can be undone.

        GAUNTLET_RANK_THREAD_SCHEDULING: `batch` (the default) keeps them SCHED_BATCH throughout; `idle`
        adds SCHED_IDLE during forward and backward, which on a machine with other work starves the
        allreduce (a SCHED_IDLE thread runs only when no process anywhere wants the core); `off` keeps
        them as they start (the benchmark's "plain recipe")."""
        mode = os.environ.get("GAUNTLET_RANK_THREAD_SCHEDULING", "batch")
        if mode == "off":
            return
        if self.thread_ids:  # found in /proc: Linux
            self._set(os.SCHED_BATCH)
            self.can_idle = mode == "idle" and _may_leave_sched_idle()

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

    def _set(self, policy: int) -> None:
        for tid in self.thread_ids:
            with contextlib.suppress(OSError):  # an ended thread, or a policy this system refuses
                os.sched_setscheduler(tid, policy, os.sched_param(0))


def wait_for_gradients(optimizer: torch.optim.Optimizer) -> None:
    """Sleep until this step's gradient allreduces are done, so that step() finds them finished.

    hvd.DistributedOptimizer.step() waits in hvd.synchronize(), which spins on sched_yield: on a
    CPU rank that spinning takes the core from the background thread carrying out the allreduce
    (and from the other rank's). `_handles` is DistributedOptimizer's own table of this step's
    allreduces (Horovod 0.28, a private name); without it step() just waits as before.
    """
    pause = 50e-6  # short steps wait for short allreduces: start with short naps
    for handle, _ in list(getattr(optimizer, "_handles", {}).values()):
        if isinstance(handle, int):
            while not hvd.poll(handle):
                time.sleep(pause)
                pause = min(2 * pause, 500e-6)


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
