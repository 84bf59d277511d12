"""gauntlet.lease: one process at a time on a content-addressed output (real moto server).

Exclusivity, takeover of an expired lease and waiting for the winner are covered in
tests/reliability/test_storage.py; here: renewal, release, the owner label and the wait limit.
"""

from __future__ import annotations

import pytest

from gauntlet import lease, storage
from gauntlet.errors import LeaseTimeout


def test_an_owner_names_its_label_host_and_process() -> None:
    owner = lease.new_owner("train")
    assert owner.startswith("train@") and owner.count(":") == 2
    assert lease.new_owner() != lease.new_owner()  # two claimants in one process are still two owners


def test_renew_extends_the_lease_and_release_frees_it_for_the_next_claimant(store: str) -> None:
    uri = storage.join(store, "experiments/k/LEASE.json")
    held = lease.acquire(uri, "a", ttl_s=60)
    assert held is not None
    expires = storage.get_json(uri)["expires"]
    assert held.renew()
    assert storage.get_json(uri)["expires"] >= expires
    assert lease.acquire(uri, "b", ttl_s=60) is None
    held.release()
    assert storage.get_json(uri)["state"] == "released"
    assert lease.acquire(uri, "b", ttl_s=60) is not None


def test_a_holder_that_was_taken_over_cannot_renew_or_release_the_new_lease(store: str) -> None:
    uri = storage.join(store, "experiments/k/LEASE.json")
    old = lease.acquire(uri, "old", ttl_s=0.0)  # expires at once: its holder is presumed dead
    assert old is not None
    new = lease.acquire(uri, "new", ttl_s=60)
    assert new is not None
    assert not old.renew()
    old.release()
    assert storage.get_json(uri) | {"expires": None} == {
        "owner": "new",
        "state": "held",
        "expires": None,
        "ttl_s": 60,
    }


def test_waiting_longer_than_the_limit_raises_a_retryable_timeout(store: str, monkeypatch: pytest.MonkeyPatch) -> None:
    uri = storage.join(store, "experiments/k/LEASE.json")
    assert lease.acquire(uri, "holder", ttl_s=600) is not None
    monkeypatch.setenv("GAUNTLET_LEASE_WAIT_S", "0.2")
    monkeypatch.setenv("GAUNTLET_LEASE_POLL_S", "0.05")
    with pytest.raises(LeaseTimeout, match="held by another process"):
        lease.claim_or_wait(uri, lambda: None, "waiter")
