"""Preprocess with partitions side by side in threads builds the very same dataset as one at a time."""

from __future__ import annotations

import datetime as dt
import io
import os

import pandas as pd
import pytest

from gauntlet import errors, storage
from gauntlet.config import load_config, resolve
from gauntlet.protocol import load_protocol
from gauntlet.splits import split_of
from gauntlet.steps import preprocess, validate


def _build(store: str, validation_uri: str, workers: str, monkeypatch: pytest.MonkeyPatch) -> dict:
    monkeypatch.setenv("GAUNTLET_PREPROCESS_WORKERS", workers)
    config = load_config(resolve("include/configs/digits.yaml"), ["dataset.validation=vectorised"])
    built = preprocess.run(config, load_protocol(resolve(config.protocol)), store, validation_uri)
    assert not built["cache_hit"]
    return built


def test_two_workers_commit_the_same_bytes_as_one(seeded_store: str, monkeypatch: pytest.MonkeyPatch) -> None:
    config = load_config(resolve("include/configs/digits.yaml"), ["dataset.validation=vectorised"])
    outputs = validate.run(config, seeded_store, dt.date(2026, 11, 1), dt.date(2026, 11, 8), "par")
    one = _build(seeded_store, outputs["result_uri"], "1", monkeypatch)
    manifest_one = storage.read_manifest(one["dataset_uri"])
    # Same inputs, same version: remove the first build so the second really rebuilds it.
    bucket = storage.S3Uri.parse(seeded_store).bucket
    for obj in list(storage.list_objects(one["dataset_uri"] + "/")):
        storage.client().delete_object(Bucket=bucket, Key=obj["key"])
    two = _build(seeded_store, outputs["result_uri"], "2", monkeypatch)
    manifest_two = storage.read_manifest(two["dataset_uri"])

    assert two["version"] == one["version"] and two["rows"] == one["rows"]
    assert manifest_two["files"] == manifest_one["files"]  # every object's sha256 and size
    assert manifest_two["class_counts"] == manifest_one["class_counts"]
    # One file per daily partition and split, every row once, each in its frozen split.
    protocol = load_protocol(resolve(config.protocol))
    seen: list[str] = []
    for split in ("train", "dev", "test"):
        rels = sorted(rel for rel in manifest_two["files"] if rel.startswith(f"{split}/"))
        assert len(rels) == 7
        for rel in rels:
            frame = pd.read_parquet(io.BytesIO(storage.read_committed_file(two["dataset_uri"], rel)))
            assert {split_of(r, protocol) for r in frame["row_id"]} <= {split}
            seen += list(frame["row_id"])
    assert len(seen) == len(set(seen)) == 1797


def test_worker_setting_is_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GAUNTLET_PREPROCESS_WORKERS", "many")
    with pytest.raises(errors.PreprocessError, match="GAUNTLET_PREPROCESS_WORKERS"):
        preprocess.worker_count(4)
    monkeypatch.setenv("GAUNTLET_PREPROCESS_WORKERS", "3")
    assert preprocess.worker_count(8) == 3 and preprocess.worker_count(2) == 2  # never more than partitions
    monkeypatch.setenv("GAUNTLET_PREPROCESS_WORKERS", "auto")
    assert preprocess.worker_count(64) == len(os.sched_getaffinity(0))
