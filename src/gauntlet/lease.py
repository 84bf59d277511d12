"""Leases in S3: one process at a time works on a content-addressed output.

Two overlapping runs (a backfill and the nightly run) can ask for the same experiment. The first
claims <prefix>/LEASE.json with a conditional create and renews it (If-Match) while it works; when
it stops, done or failed, it marks the lease released. A second run that finds a live lease waits
for the winner's result instead of doing the same work into the same prefix. A lease whose holder
stopped renewing (the process was killed) expires, and a conditional overwrite lets exactly one
claimant take it over. Expiry compares wall clocks, so the TTL is far above any plausible skew.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from gauntlet import storage
from gauntlet.errors import LeaseTimeout, PreconditionFailed, StorageError
from gauntlet.logs import get_logger

log = get_logger("gauntlet.lease")
T = TypeVar("T")


def _settings() -> tuple[float, float, float]:
    """(ttl, wait limit, poll interval) in seconds, from the environment."""
    return (
        float(os.environ.get("GAUNTLET_LEASE_TTL_S", "120")),
        float(os.environ.get("GAUNTLET_LEASE_WAIT_S", "7200")),
        float(os.environ.get("GAUNTLET_LEASE_POLL_S", "5")),
    )


def new_owner(label: str = "") -> str:
    return f"{label + '@' if label else ''}{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


@dataclass
class Lease:
    uri: str
    owner: str
    etag: str
    ttl_s: float
    _stop: threading.Event = field(default_factory=threading.Event, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def _write(self, state: str) -> bool:
        with self._lock:
            for _ in range(2):
                try:
                    self.etag = storage.put_json(self.uri, _body(self.owner, self.ttl_s, state), if_match=self.etag)
                    return True
                except PreconditionFailed:
                    if not self._adopt_own_write():
                        return False
            return False

    def _adopt_own_write(self) -> bool:
        """After a 412, look again: if the lease still names this owner, an earlier write of ours
        landed although its answer never came (the call failed), so its ETag is the one to match.
        Only a takeover writes another owner, and that one is a real loss."""
        try:
            current, etag = storage.get_json_with_etag(self.uri)
        except FileNotFoundError:
            return False
        if current.get("owner") != self.owner or etag == self.etag:
            return False
        self.etag = etag
        return True

    def renew(self) -> bool:
        """Extend the lease; False if someone else took it over (this holder was presumed dead)."""
        return self._write("held")

    def keep_alive(self) -> None:
        """Renew every third of the TTL from a daemon thread until release()."""

        def beat() -> None:
            while not self._stop.wait(self.ttl_s / 3):
                try:
                    if not self.renew():
                        log.warning("lease %s was taken over by another process", self.uri)
                        return
                except StorageError as error:  # one missed beat is fine; the TTL covers it
                    log.warning("could not renew lease %s: %s", self.uri, error)

        threading.Thread(target=beat, name="lease-heartbeat", daemon=True).start()

    def release(self) -> None:
        self._stop.set()
        try:
            if not self._write("released"):
                log.warning("lease %s had been taken over; not releasing it", self.uri)
        except StorageError as error:  # the lease expires by itself
            log.warning("could not release lease %s: %s", self.uri, error)


def _body(owner: str, ttl_s: float, state: str) -> dict[str, Any]:
    return {"owner": owner, "state": state, "expires": time.time() + ttl_s, "ttl_s": ttl_s}


def acquire(uri: str, owner: str, ttl_s: float) -> Lease | None:
    """Claim the lease, or take over a released/expired one; None while someone else holds it."""
    try:
        return Lease(uri, owner, storage.put_json(uri, _body(owner, ttl_s, "held"), if_none_match=True), ttl_s)
    except PreconditionFailed:
        pass
    try:
        current, etag = storage.get_json_with_etag(uri)
    except FileNotFoundError:
        return None  # vanished between the two calls: try again on the next poll
    if current.get("state") == "held" and float(current.get("expires", 0)) > time.time():
        return None
    try:
        return Lease(uri, owner, storage.put_json(uri, _body(owner, ttl_s, "held"), if_match=etag), ttl_s)
    except PreconditionFailed:
        return None  # another claimant took it over first


def claim_or_wait(uri: str, finished: Callable[[], T | None], owner: str) -> tuple[Lease | None, T | None]:
    """Either (lease, None): this process must do the work (the lease is kept alive until released);
    or (None, result): another process finished it while this one waited."""
    ttl_s, wait_s, poll_s = _settings()
    deadline = time.monotonic() + wait_s
    waiting_logged = False
    while True:
        result = finished()
        if result is not None:
            return None, result
        lease = acquire(uri, owner, ttl_s)
        if lease is not None:
            # The previous holder may have finished between our check and its release.
            result = finished()
            if result is not None:
                lease.release()
                return None, result
            lease.keep_alive()
            return lease, None
        if not waiting_logged:
            holder = storage.get_json(uri).get("owner", "?") if storage.exists(uri) else "?"
            log.info("%s is held by %s: waiting for its result (up to %.0fs)", uri, holder, wait_s)
            waiting_logged = True
        if time.monotonic() > deadline:
            raise LeaseTimeout(f"{uri} stayed held by another process for more than {wait_s:.0f}s")
        time.sleep(poll_s)
