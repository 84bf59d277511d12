"""Storage-level guarantees against the S3 server: multipart uploads survive faults and abort when
they cannot finish; conditional commits never overwrite; leases let exactly one claimant work."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from faulty_s3_proxy import FaultPlan, FaultyS3Proxy, Request

from gauntlet import errors, lease, storage
from gauntlet.hashing import sha256_file

MiB = 1024 * 1024


def _is_part_upload(request: Request) -> bool:
    return request.method == "PUT" and "uploadId=" in request.query


@pytest.fixture
def through_proxy(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[FaultyS3Proxy]:
    """Point this process's S3 client at a proxy that fails only multipart part uploads."""
    proxy = FaultyS3Proxy(s3_endpoint, FaultPlan(rate=0.0, seed=3, only=_is_part_upload, kinds=("5xx", "drop")))
    proxy.start()
    monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
    monkeypatch.setenv("GAUNTLET_S3_MAX_ATTEMPTS", "3")
    monkeypatch.setattr(storage, "_MULTIPART_THRESHOLD", 5 * MiB)
    storage.client.cache_clear()
    yield proxy
    proxy.stop()
    storage.client.cache_clear()
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_endpoint)


def _big_file(path: Path) -> Path:
    path.write_bytes(os.urandom(13 * MiB))  # two 8 MiB parts
    return path


def test_multipart_upload_retries_failed_parts(through_proxy: FaultyS3Proxy, store: str, tmp_path: Path) -> None:
    through_proxy.plan.rate = 0.4
    source = _big_file(tmp_path / "big.bin")
    storage.upload_file(source, f"{store}/experiments/x/big.bin")
    parts = [r for r in through_proxy.log if _is_part_upload(r)]
    assert len(parts) > 2 and through_proxy.summary()["faults"] >= 1, through_proxy.summary()
    copy = storage.download_file(f"{store}/experiments/x/big.bin", tmp_path / "copy.bin")
    assert sha256_file(copy) == sha256_file(source)


def test_multipart_upload_that_cannot_finish_is_aborted(
    through_proxy: FaultyS3Proxy, store: str, tmp_path: Path
) -> None:
    through_proxy.plan.rate = 1.0  # every part fails, every attempt
    with pytest.raises(errors.StorageError):
        storage.upload_file(_big_file(tmp_path / "big.bin"), f"{store}/experiments/x/big.bin")
    bucket = store[5:]
    assert not storage.exists(f"{store}/experiments/x/big.bin")
    assert not storage.client().list_multipart_uploads(Bucket=bucket).get("Uploads"), "parts were left behind"
    assert any(r.method == "DELETE" and "uploadId=" in r.query for r in through_proxy.log), "abort was sent"


def test_concurrent_commits_of_one_key_never_overwrite(store: str, tmp_path: Path) -> None:
    prefix = f"{store}/evaluations/p/k/baseline-only"
    dirs = []
    for name in ("a", "b"):
        out = tmp_path / name
        out.mkdir()
        (out / "report.json").write_text(f'{{"written_by": "{name}"}}')  # differ, as timestamps would
        dirs.append(out)
    storage.put_bytes(f"{prefix}/report.json", (dirs[0] / "report.json").read_bytes())  # a got there first
    manifest = storage.commit_directory(dirs[1], prefix, {"kind": "evaluation"})
    stored = storage.get_bytes(f"{prefix}/report.json")
    assert stored == b'{"written_by": "a"}', "the later commit must not overwrite"
    with storage.temp_dir() as tmp:
        storage.fetch_committed(prefix, tmp)  # the manifest describes the bytes actually stored
    assert storage.commit_directory(dirs[0], prefix, {"kind": "evaluation"}) == manifest


def test_lease_is_exclusive_released_and_taken_over_once_expired(store: str) -> None:
    uri = f"{store}/experiments/k/LEASE.json"
    first = lease.acquire(uri, "first", ttl_s=1.0)
    assert first is not None
    assert lease.acquire(uri, "second", ttl_s=1.0) is None, "a live lease is exclusive"
    first.release()
    second = lease.acquire(uri, "second", ttl_s=0.5)
    assert second is not None, "a released lease can be claimed at once"
    time.sleep(1.0)  # the holder stops renewing: presumed dead
    winners: list[str] = []

    def claim(owner: str) -> None:
        if lease.acquire(uri, owner, ttl_s=60) is not None:
            winners.append(owner)

    threads = [threading.Thread(target=claim, args=(f"claimant-{i}",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(winners) == 1, winners
    assert storage.get_json(uri)["owner"] == winners[0]
    assert not second.renew(), "the presumed-dead holder learns it lost the lease"


def test_claim_or_wait_returns_the_winners_result(store: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GAUNTLET_LEASE_POLL_S", "0.2")
    uri, record = f"{store}/experiments/k/LEASE.json", f"{store}/experiments/k/RECORD.json"
    holder = lease.acquire(uri, "winner", ttl_s=60)
    assert holder is not None

    def finish() -> None:
        time.sleep(1.0)
        storage.put_json(record, {"key": "k"})
        holder.release()

    threading.Thread(target=finish).start()
    claim, result = lease.claim_or_wait(uri, lambda: storage.get_json(record) if storage.exists(record) else None, "me")
    assert claim is None and result == {"key": "k"}
