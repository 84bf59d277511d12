"""gauntlet.storage: S3 objects, conditional writes and manifest-committed outputs (real moto server)."""

from __future__ import annotations

from pathlib import Path

import pytest

from gauntlet import storage
from gauntlet.errors import BadInput, IntegrityError, NotCommitted, ObjectNotFound, PreconditionFailed
from gauntlet.hashing import sha256_bytes


def test_uris_parse_and_join() -> None:
    assert storage.S3Uri.parse("s3://bucket/a/b.json") == storage.S3Uri("bucket", "a/b.json")
    assert str(storage.S3Uri.parse("s3://bucket/a")) == "s3://bucket/a"
    assert storage.join("s3://b/", "/x/", "y/") == "s3://b/x/y"
    for bad in ("/local/path", "s3:///key"):
        with pytest.raises(BadInput):
            storage.S3Uri.parse(bad)


def test_objects_round_trip_and_a_missing_one_is_object_not_found(store: str) -> None:
    uri = storage.join(store, "a/b.bin")
    etag = storage.put_bytes(uri, b"\x00payload")
    assert storage.get_object(uri) == (b"\x00payload", etag)
    storage.put_json(storage.join(store, "a/c.json"), {"k": [1, 2]})
    assert storage.get_json(storage.join(store, "a/c.json")) == {"k": [1, 2]}
    assert [o["key"] for o in storage.list_objects(storage.join(store, "a") + "/")] == ["a/b.bin", "a/c.json"]
    assert not storage.exists(storage.join(store, "a/none"))
    with pytest.raises(ObjectNotFound):
        storage.get_bytes(storage.join(store, "a/none"))


def test_conditional_writes_lose_a_race_with_precondition_failed(store: str) -> None:
    uri = storage.join(store, "alias.json")
    first = storage.put_json(uri, {"v": 1}, if_none_match=True)
    with pytest.raises(PreconditionFailed):
        storage.put_json(uri, {"v": 2}, if_none_match=True)  # someone created it first
    second = storage.put_json(uri, {"v": 2}, if_match=first)
    with pytest.raises(PreconditionFailed):
        storage.put_json(uri, {"v": 3}, if_match=first)  # a stale ETag: another writer moved it
    assert storage.get_json_with_etag(uri) == ({"v": 2}, second)


def test_a_committed_output_is_invisible_until_its_manifest_lands(store: str, tmp_path: Path) -> None:
    prefix = storage.join(store, "datasets/abc")
    (tmp_path / "sub").mkdir()
    (tmp_path / "a.txt").write_bytes(b"alpha")
    (tmp_path / "sub" / "b.txt").write_bytes(b"beta")
    storage.put_bytes(storage.join(prefix, "a.txt"), b"alpha")  # a crash after the first upload
    assert not storage.is_committed(prefix)
    with pytest.raises(NotCommitted):
        storage.read_manifest(prefix)
    manifest = storage.commit_directory(tmp_path, prefix, {"kind": "test"})
    assert manifest["kind"] == "test"
    assert manifest["files"]["sub/b.txt"] == {"sha256": sha256_bytes(b"beta"), "size": 4}
    assert storage.is_committed(prefix) and storage.read_manifest(prefix) == manifest
    out = tmp_path / "out"
    storage.fetch_committed(prefix, out, only="sub/")
    assert [p.relative_to(out).as_posix() for p in out.rglob("*.txt")] == ["sub/b.txt"]


def test_committing_a_committed_prefix_again_keeps_the_first_output(store: str, tmp_path: Path) -> None:
    prefix = storage.join(store, "experiments/k")
    (tmp_path / "model.bin").write_bytes(b"first")
    storage.commit_directory(tmp_path, prefix, {"run": 1})
    (tmp_path / "model.bin").write_bytes(b"second")
    assert storage.commit_directory(tmp_path, prefix, {"run": 2})["run"] == 1
    assert storage.read_committed_file(prefix, "model.bin") == b"first"


def test_bytes_that_do_not_match_the_manifest_raise_an_integrity_error(store: str, tmp_path: Path) -> None:
    prefix = storage.join(store, "datasets/x")
    (tmp_path / "rows.bin").write_bytes(b"rows")
    storage.commit_directory(tmp_path, prefix, {})
    storage.put_bytes(storage.join(prefix, "rows.bin"), b"tampered")
    with pytest.raises(IntegrityError, match=r"rows\.bin"):
        storage.read_committed_file(prefix, "rows.bin")
    target = tmp_path / "copy" / "rows.bin"
    with pytest.raises(IntegrityError):
        storage.download_file(storage.join(prefix, "rows.bin"), target, sha256_bytes(b"rows"))
    assert not target.exists()  # no unverified file is left behind for a reader to pick up
