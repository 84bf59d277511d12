"""Clean-up on the real S3 server: every kind of orphan a failed run leaves is planted beside committed
outputs, and `gauntlet gc --apply` removes exactly the orphans; committed outputs still verify, and a
young uncommitted output (a running task's) and an experiment with a live lease are kept. The
maintenance DAG runs it through Airflow and its task log says what it freed."""

from __future__ import annotations

import datetime as dt
import re
import time
from pathlib import Path

import pytest
from testkit import airflow_dags_test, object_keys

from gauntlet import cleanup, layout, lease, registry, storage

MODEL = "digits-classifier"


def _commit(prefix: str, tmp_path: Path, files: dict[str, bytes]) -> None:
    folder = tmp_path / prefix.rsplit("/", 1)[-1]
    for name, data in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
    storage.commit_directory(folder, prefix, {"kind": "test"})


def _old_claim(reg: str, key: str, **extra: object) -> str:
    uri = layout.claim_uri(reg, key)
    claimed = (dt.datetime.now(dt.UTC) - dt.timedelta(days=3)).isoformat()
    storage.put_json(uri, {"experiment": key, "claimed_at": claimed, "owner": "dead-writer", **extra})
    return uri


def _begin_multipart(uri: str, part: bytes) -> None:
    loc = storage.S3Uri.parse(uri)
    upload = storage.client().create_multipart_upload(Bucket=loc.bucket, Key=loc.key)
    storage.client().upload_part(Bucket=loc.bucket, Key=loc.key, UploadId=upload["UploadId"], PartNumber=1, Body=part)


def _plant(store: str, tmp_path: Path) -> tuple[dict[str, set[str]], dict[str, str]]:
    """What a week of failed runs leaves beside committed outputs: ({kind: orphan URIs}, committed outputs)."""
    committed = {
        "dataset": layout.dataset_prefix(store, "digits", "v-committed"),
        "evaluation": layout.evaluation_prefix(store, "digits-v1", "exp-done", "refs", "eval-done"),
        "experiment": layout.experiment_uri(store, "exp-done"),
    }
    _commit(committed["dataset"], tmp_path, {"train.parquet": b"t" * 300, "test.parquet": b"e" * 100})
    _commit(committed["evaluation"], tmp_path, {"report.json": b"{}", "plots/curve.png": b"p" * 50})
    done = committed["experiment"]
    storage.put_bytes(layout.model_uri(done), b"m" * 400)
    storage.put_bytes(layout.checkpoint_uri(done, 1), b"c" * 200)
    storage.put_json(layout.record_uri(done), {"key": "exp-done"})
    held = lease.acquire(layout.lease_uri(done), "trainer", ttl_s=60)
    assert held is not None
    held.release()  # what every finished training leaves: a released lease beside the record

    # A crashed preprocess, a killed training (its lease expired), a crashed evaluation.
    crashed_dataset = layout.dataset_prefix(store, "digits", "v-crashed")
    storage.put_bytes(storage.join(crashed_dataset, "train.parquet"), b"x" * 700)
    killed = layout.experiment_uri(store, "exp-killed")
    storage.put_bytes(layout.checkpoint_uri(killed, 3), b"k" * 500)
    storage.put_json(layout.lease_uri(killed), {"owner": "gone", "state": "held", "expires": time.time() - 3600})
    crashed_eval = layout.evaluation_prefix(store, "digits-v1", "exp-done", "refs", "eval-crashed")
    storage.put_bytes(layout.report_uri(crashed_eval), b"{}")
    # An upload the manifest of a committed dataset does not list (an earlier attempt's file name).
    stray = storage.join(committed["dataset"], "train-attempt1.parquet")
    storage.put_bytes(stray, b"s" * 90)
    # Registry: a finished registration, a claim whose writer died before the version, and a claim
    # whose writer died after writing the version (the next registration completes it: kept).
    reg = layout.registry_root(store, MODEL)
    registry.register(reg, "exp-done", {"model_uri": layout.model_uri(done)})
    orphan_claim = _old_claim(reg, "exp-never-registered")
    registry.register(reg, "exp-half-registered", {"model_uri": "s3://elsewhere/model.pt"})
    _old_claim(reg, "exp-half-registered")  # the version exists, the claim lost it
    # An upload that never completed, and a training still running (old checkpoints, live lease).
    multipart = storage.join(committed["dataset"], "big.parquet")
    _begin_multipart(multipart, b"b" * 1024)
    running = layout.experiment_uri(store, "exp-running")
    storage.put_bytes(layout.checkpoint_uri(running, 1), b"r" * 100)
    assert lease.acquire(layout.lease_uri(running), "alive", ttl_s=3600) is not None
    orphans = {
        cleanup.UNCOMMITTED: {crashed_dataset, killed, crashed_eval},
        cleanup.EXPIRED_LEASE: {layout.lease_uri(done)},
        cleanup.STRAY: {stray},
        cleanup.ORPHAN_CLAIM: {orphan_claim},
        cleanup.INCOMPLETE_UPLOAD: {multipart},
    }
    return orphans, committed


def test_gc_deletes_only_the_orphans_and_keeps_a_running_tasks_output(
    store: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GAUNTLET_REGISTRY_CLAIM_TTL_S", "0.5")
    orphans, committed = _plant(store, tmp_path)
    time.sleep(1.05)  # S3 times have whole seconds: the young output below is at least one second younger
    young = layout.dataset_prefix(store, "digits", "v-being-written")
    storage.put_bytes(storage.join(young, "train.parquet"), b"y" * 10)
    now = max(dt.datetime.fromisoformat(o["last_modified"]) for o in storage.list_objects(store + "/"))
    grace_hours = 0.5 / 3600  # older than half a second: everything planted before the pause

    before = object_keys(store)
    listed = cleanup.run(store, grace_hours, apply=False, now=now)
    found = {(o["kind"], o["uri"]) for o in listed["orphans"]}
    assert found == {(kind, uri) for kind, uris in orphans.items() for uri in uris}
    assert object_keys(store) == before, "a dry run deletes nothing"
    sizes = {o["uri"]: o["size"] for o in storage.list_objects(store + "/")}
    uncommitted = sum(
        size for uri, size in sizes.items() if any(uri.startswith(p + "/") for p in orphans[cleanup.UNCOMMITTED])
    )
    assert listed["by_kind"][cleanup.UNCOMMITTED] == {"count": 3, "bytes": uncommitted}
    assert listed["by_kind"][cleanup.INCOMPLETE_UPLOAD] == {"count": 1, "bytes": 1024}
    assert listed["by_kind"][cleanup.STRAY] == {"count": 1, "bytes": 90}

    applied = cleanup.run(store, grace_hours, apply=True, now=now)
    assert applied["freed"] == applied["found"] == len(found)
    assert applied["freed_bytes"] == listed["found_bytes"]
    after = object_keys(store)
    for prefix in orphans[cleanup.UNCOMMITTED]:
        assert not object_keys(store, prefix[len(store) + 1 :]), f"{prefix} was not cleared"
    for uri in orphans[cleanup.STRAY] | orphans[cleanup.EXPIRED_LEASE] | orphans[cleanup.ORPHAN_CLAIM]:
        assert storage.S3Uri.parse(uri).key not in after
    assert not list(storage.list_multipart_uploads(store + "/"))
    # Committed outputs are whole and verify; the young output and the running training are untouched.
    for name in ("dataset", "evaluation"):
        manifest = storage.fetch_committed(committed[name], tmp_path / f"check-{name}")
        assert set(manifest["files"]) <= {"train.parquet", "test.parquet", "report.json", "plots/curve.png"}
    done = committed["experiment"]
    for uri in (layout.record_uri(done), layout.model_uri(done), layout.checkpoint_uri(done, 1)):
        assert storage.exists(uri)
    assert storage.exists(storage.join(young, "train.parquet"))
    running = layout.experiment_uri(store, "exp-running")
    assert storage.exists(layout.checkpoint_uri(running, 1)) and storage.exists(layout.lease_uri(running))
    reg = layout.registry_root(store, MODEL)
    assert storage.exists(layout.claim_uri(reg, "exp-half-registered"))
    assert [v["experiment_key"] for v in registry.list_versions(reg)] == ["exp-done", "exp-half-registered"]
    # The registration the kept claim belongs to still finds its version, not a new one.
    again, created = registry.register(reg, "exp-half-registered", {"model_uri": "s3://elsewhere/model.pt"})
    assert (again["version"], created) == (2, False)

    assert cleanup.run(store, grace_hours, apply=True, now=now)["found"] == 0


@pytest.mark.slow
def test_the_maintenance_dag_frees_an_orphan_and_says_so(
    airflow_home: dict[str, str], store: str, tmp_path: Path
) -> None:
    kept = layout.dataset_prefix(store, "digits", "v-committed")
    _commit(kept, tmp_path, {"train.parquet": b"t" * 300})
    crashed = layout.dataset_prefix(store, "digits", "v-crashed")
    storage.put_bytes(storage.join(crashed, "train.parquet"), b"x" * 2048)
    time.sleep(1.05)  # older than the grace period of 0 h below, at the server's one-second resolution

    process = airflow_dags_test(
        airflow_home, "gauntlet_maintenance", "2026-11-08T04:00:00+00:00", store, conf={"grace_hours": 0}
    )
    log = process.stdout + process.stderr
    assert process.returncode == 0, log[-4000:]
    assert re.search(rf"uncommitted output +2\.0 KB +[0-9.]+h +{re.escape(crashed)}\b", log), log[-3000:]
    assert "freed 2.0 KB: 1 uncommitted output" in log
    assert not object_keys(store, crashed[len(store) + 1 :])
    assert storage.fetch_committed(kept, tmp_path / "check")["files"]["train.parquet"]["size"] == 300
