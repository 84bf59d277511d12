"""Fault injection for the reliability tests: fail one rank at a chosen batch of a chosen epoch.

Both hooks take 'rank:epoch:batch' and fire once per GAUNTLET_FAULT_MARKER file (so a retry runs clean):
GAUNTLET_FAULT_KILL makes that rank die there (like an OOM kill); GAUNTLET_FAULT_STOP makes it write its
pid to GAUNTLET_FAULT_PIDFILE and freeze there, so a test can `kill -9` a real process in the middle of
an epoch while its peers wait on it. Without these variables the hook does nothing.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

from gauntlet.logs import get_logger

log = get_logger("gauntlet.worker")

VARIABLES = ("GAUNTLET_FAULT_KILL", "GAUNTLET_FAULT_STOP")


def batch_hook(rank: int, epoch: int) -> Callable[[int], None] | None:
    """What to call before each batch of `epoch` on `rank` (fails the rank at a planned batch), or
    None when the environment plans no fault there."""
    planned = [(variable, batch) for variable, r, e, batch in _plan() if (r, e) == (rank, epoch)]
    if not planned:
        return None

    def before_batch(batch: int) -> None:
        for variable, at_batch in planned:
            if batch == at_batch:
                _fire(variable, rank, epoch, batch)

    return before_batch


def _plan() -> list[tuple[str, int, int, int]]:
    """(variable, rank, epoch, batch) for each fault the environment asks for."""
    plan = []
    for variable in VARIABLES:
        spec = os.environ.get(variable)
        if spec:
            rank, epoch, batch = (int(v) for v in spec.split(":"))
            plan.append((variable, rank, epoch, batch))
    return plan


def _fire(variable: str, rank: int, epoch: int, batch: int) -> None:
    marker = os.environ.get("GAUNTLET_FAULT_MARKER")
    if marker:
        if os.path.exists(marker):
            return  # fired before: this is the retry
        open(marker, "w").close()
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
