"""preprocess: the same dataset bytes whatever the worker count or however many nights built it (partition
outputs reused by key), and tables of every shape (text ids and labels, categories, nulls, regression)
written raw-typed with their encoding fitted on train rows."""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

from gauntlet import encoding, errors, layout, rawdata, storage
from gauntlet.config import PipelineConfig, config_from_dict, load_config, resolve
from gauntlet.protocol import load_protocol
from gauntlet.splits import split_of
from gauntlet.steps import preprocess, validate
from gauntlet.training.data import load_split


def _build(store: str, validation_uri: str, workers: str, monkeypatch: pytest.MonkeyPatch) -> dict:
    monkeypatch.setenv("GAUNTLET_PREPROCESS_WORKERS", workers)
    config = load_config(resolve("include/configs/digits.yaml"), ["dataset.validation=vectorised"])
    built = preprocess.run(config, load_protocol(resolve(config.protocol)), store, validation_uri)
    assert not built["cache_hit"]
    return built


def wipe_outputs(store: str) -> None:
    """Delete every dataset and partition output, so the next build starts from scratch."""
    uris = [o["uri"] for top in ("datasets/", "dataset-parts/") for o in storage.list_objects(f"{store}/{top}")]
    storage.delete_objects(uris)


def test_two_workers_commit_the_same_bytes_as_one(
    seeded_store: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    config = load_config(resolve("include/configs/digits.yaml"), ["dataset.validation=vectorised"])
    outputs = validate.run(config, seeded_store, dt.date(2026, 11, 1), dt.date(2026, 11, 8), "par")
    one = _build(seeded_store, outputs["result_uri"], "1", monkeypatch)
    manifest_one = storage.read_manifest(one["dataset_uri"])
    # Same inputs, same version: remove the first build so the second really rebuilds it.
    wipe_outputs(seeded_store)
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
    # The demo's preprocessor: 64 numeric pixels, StandardScaler's fit on the train rows.
    from sklearn.preprocessing import StandardScaler

    pre = json.loads(storage.read_committed_file(two["dataset_uri"], "preprocessor.json"))
    assert pre["features"] == manifest_two["schema"]["features"] == [f"pixel_{i}" for i in range(64)]
    assert {s["kind"] for s in pre["inputs"]} == {"numeric"} and manifest_two["schema"]["classes"] == list(range(10))
    train, _ = load_split(two["dataset_uri"], "train", tmp_path)
    scaler = StandardScaler().fit(train.features)
    np.testing.assert_allclose(pre["mean"], scaler.mean_, rtol=1e-9)
    np.testing.assert_allclose(pre["scale"], scaler.scale_, rtol=1e-9)


def test_worker_setting_is_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GAUNTLET_PREPROCESS_WORKERS", "many")
    with pytest.raises(errors.PreprocessError, match="GAUNTLET_PREPROCESS_WORKERS"):
        preprocess.worker_count(4)
    monkeypatch.setenv("GAUNTLET_PREPROCESS_WORKERS", "3")
    assert preprocess.worker_count(8) == 3 and preprocess.worker_count(2) == 2  # never more than partitions
    monkeypatch.setenv("GAUNTLET_PREPROCESS_WORKERS", "auto")
    assert preprocess.worker_count(64) == len(os.sched_getaffinity(0))


# --- a table as real ones are: string ids and labels, categories, nulls, no common feature prefix ---

CLASSES = ["benign", "malignant", "unclear"]
DAYS = [dt.date(2026, 3, 1), dt.date(2026, 3, 2), dt.date(2026, 3, 3)]


def clinic_frame(day: int, rows: int = 120) -> pd.DataFrame:
    rng = np.random.default_rng(day)
    age = rng.normal(50, 12, rows).round(1)
    age[rng.random(rows) < 0.2] = np.nan
    region = rng.choice(np.array(["north", "south", "east"], dtype=object), rows)
    region[rng.random(rows) < 0.1] = None
    return pd.DataFrame(
        {
            "row_id": [f"P{day}{i:04d}" for i in range(rows)],
            "visit_day": [f"2026-03-0{day + 1}"] * rows,
            "age": age,
            "outcome": rng.choice(CLASSES, rows),
            "region": region,
            "ward": rng.integers(1, 4, rows),  # numbers that name wards: dataset.categorical
            "bmi": rng.normal(25, 4, rows).astype(np.float32),
            "smoker": rng.random(rows) < 0.3,
        }
    )


def land(store: str, prefix: str, frames: list[pd.DataFrame], csv_last: bool = False) -> str:
    """The frames as daily partitions (the last as CSV if asked) and a passed validation naming them."""
    for i, frame in enumerate(frames):
        fmt = "csv" if csv_last and i == len(frames) - 1 else "parquet"
        body = frame.to_csv(index=False).encode() if fmt == "csv" else frame.to_parquet(index=False)
        storage.put_bytes(layout.raw_partition_uri(store, prefix, DAYS[i], fmt), body)
    partitions = rawdata.list_partitions(store, prefix)
    uri = layout.validation_result_uri(store, f"test-{prefix.replace('/', '-')}")
    storage.put_json(uri, {"verdict": "passed", "partitions": [p.as_dict() for p in partitions]})
    return uri


def table_config(**dataset: Any) -> PipelineConfig:
    raw = yaml.safe_load(resolve("include/configs/digits.yaml").read_text())
    raw["dataset"] = {"name": "clinic", "expectation_suite": "include/expectations/digits.json", **dataset}
    return config_from_dict(raw)


CLINIC = {
    "raw_prefix": "raw/clinic",
    "id_column": "row_id",
    "label_column": "outcome",
    "classes": CLASSES,
    "exclude": ["visit_day"],
    "categorical": ["ward"],
}


def test_a_table_with_text_labels_categories_and_nulls(
    store: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    frames = [clinic_frame(day) for day in range(3)]
    validation = land(store, "raw/clinic", frames, csv_last=True)
    config = table_config(**CLINIC)
    protocol = load_protocol(resolve(config.protocol))
    monkeypatch.setenv("GAUNTLET_PREPROCESS_WORKERS", "2")
    built = preprocess.run(config, protocol, store, validation)
    manifest = storage.read_manifest(built["dataset_uri"])
    pre = json.loads(storage.read_committed_file(built["dataset_uri"], "preprocessor.json"))

    raw = pd.concat(frames, ignore_index=True).set_index("row_id")
    train = raw[[split_of(r, protocol) == "train" for r in raw.index]]
    features = ["age", "region", "ward", "bmi", "smoker"]  # file order; not the id, label or visit_day
    assert manifest["schema"] == {
        "id": "row_id",
        "label": "outcome",
        "task": "classification",
        "classes": CLASSES,
        "features": features,
        "encoded_features": pre["features"],
    }
    assert [(s["name"], s["kind"]) for s in pre["inputs"]] == [
        ("age", "numeric"),
        ("region", "categorical"),
        ("ward", "categorical"),
        ("bmi", "numeric"),
        ("smoker", "categorical"),
    ]
    # Fitted on train rows only: categories as text, sorted; the exact median of age's present values.
    assert pre["inputs"][1]["categories"] == ["east", "north", "south"]
    assert pre["inputs"][2]["categories"] == ["1", "2", "3"] and pre["inputs"][4]["categories"] == ["false", "true"]
    ages = train["age"].dropna().to_numpy(np.float32).astype(np.float64)
    assert pre["inputs"][0]["impute"] == float(np.median(ages))
    np.testing.assert_allclose(pre["mean"][0], ages.mean(), rtol=1e-9)
    np.testing.assert_allclose(pre["scale"][0], ages.std(), rtol=1e-9)
    assert pre["inputs"][3]["impute"] == pytest.approx(train["bmi"].mean(), rel=1e-6)  # no nulls: its mean
    assert len(pre["features"]) == 1 + 4 + 4 + 1 + 3 and pre["features"][4] == "region=<unknown>"
    assert manifest["class_counts"]["train"] == {
        str(i): int((train["outcome"] == name).sum()) for i, name in enumerate(CLASSES)
    }

    # Raw-typed features and the class index in the dataset files; encoded on load, the same as raw rows.
    test, _ = load_split(built["dataset_uri"], "test", tmp_path)
    rows = raw.loc[test.ids]
    assert test.labels.tolist() == [CLASSES.index(v) for v in rows["outcome"]]
    assert test.features.dtype == np.float32 and test.features.shape == (len(rows), len(pre["features"]))
    np.testing.assert_array_equal(test.features, encoding.encode_frame(rows, pre))
    stored = pd.read_parquet(tmp_path / "test")
    assert stored["age"].dtype == np.float32 and stored["age"].isna().sum() == rows["age"].isna().sum()
    assert stored["region"].isna().sum() == rows["region"].isna().sum() and stored["outcome"].dtype == np.int64

    # A raw row with a missing number and a category train never saw.
    odd = pd.DataFrame({"age": [None], "region": ["atlantis"], "ward": [7], "bmi": [30.0], "smoker": [False]})
    row = encoding.encode_frame(odd, pre)[0]
    assert row[0] == np.float32(pre["inputs"][0]["impute"])
    assert row[1:5].tolist() == [0, 0, 0, 1] and row[5:9].tolist() == [0, 0, 0, 1] and row[10:].tolist() == [1, 0, 0]

    # One worker builds the very same bytes.
    wipe_outputs(store)
    monkeypatch.setenv("GAUNTLET_PREPROCESS_WORKERS", "1")
    again = preprocess.run(config, protocol, store, validation)
    assert storage.read_manifest(again["dataset_uri"])["files"] == manifest["files"]


def test_a_regression_table_stores_float_labels_and_the_target_moments(store: str, tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    frames = [
        pd.DataFrame({"row_id": [f"r{d}-{i}" for i in range(80)], "x1": rng.normal(size=80), "x2": rng.normal(size=80)})
        for d in range(2)
    ]
    for frame in frames:
        frame["y"] = 3 * frame["x1"] + rng.normal(100, 5, len(frame))
    validation = land(store, "raw/reg", frames)
    config = table_config(raw_prefix="raw/reg", id_column="row_id", label_column="y", task="regression")
    protocol = load_protocol(resolve(config.protocol))
    built = preprocess.run(config, protocol, store, validation)
    manifest = storage.read_manifest(built["dataset_uri"])
    assert manifest["schema"]["task"] == "regression" and manifest["schema"]["classes"] == []
    assert manifest["class_counts"]["train"] == {}
    pre = json.loads(storage.read_committed_file(built["dataset_uri"], "preprocessor.json"))
    raw = pd.concat(frames, ignore_index=True)
    y = raw.loc[[split_of(r, protocol) == "train" for r in raw["row_id"]], "y"].to_numpy()
    np.testing.assert_allclose([pre["target"]["mean"], pre["target"]["scale"]], [y.mean(), y.std()], rtol=1e-9)
    train, _ = load_split(built["dataset_uri"], "train", tmp_path)
    assert train.labels.dtype == np.float64 and sorted(train.labels) == sorted(y)


def test_the_preprocessor_bytes_do_not_depend_on_the_blas_threads(store: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A threaded BLAS dot product (more than 10,000 values) adds its parts in another order than one
    thread: the moments, so the preprocessor, would differ with the machine's core count."""
    import threadpoolctl

    rng = np.random.default_rng(11)
    frame = pd.DataFrame(rng.integers(0, 17, size=(30_000, 4)), columns=[f"x{j}" for j in range(4)])
    frame.insert(0, "row_id", [f"b{i}" for i in range(len(frame))])
    frame["y"] = frame["x1"] * 3 + rng.normal(100, 5, len(frame))
    validation = land(store, "raw/blas", [frame])
    config = table_config(raw_prefix="raw/blas", id_column="row_id", label_column="y", task="regression")
    protocol = load_protocol(resolve(config.protocol))
    monkeypatch.setenv("GAUNTLET_PREPROCESS_WORKERS", "1")
    built = []
    for threads in (1, 2):
        wipe_outputs(store)
        with threadpoolctl.threadpool_limits(threads, "blas"):
            uri = preprocess.run(config, protocol, store, validation)["dataset_uri"]
        part = storage.read_manifest(
            storage.read_manifest(uri)["files"]["train/part-00000.parquet"]["uri"].rsplit("/", 1)[0]
        )
        built.append((storage.read_committed_file(uri, "preprocessor.json"), part["numeric"], part["target"]))
    assert built[0] == built[1]


# --- a night costs its new data: partition outputs reused by key ------------------------------------


def night(store: str, prefix: str, days: int, name: str) -> str:
    """A passed validation naming the first `days` landed partitions (one nightly snapshot)."""
    partitions = rawdata.list_partitions(store, prefix)[:days]
    uri = layout.validation_result_uri(store, name)
    storage.put_json(uri, {"verdict": "passed", "partitions": [p.as_dict() for p in partitions]})
    return uri


def snapshot(dataset_uri: str, tmp_path: Path) -> tuple[dict, dict[str, str]]:
    """The manifest without its timestamp, and the sha256 of every file as a reader downloads it."""
    manifest = storage.fetch_committed(dataset_uri, tmp_path)
    digests = {rel: hashlib.sha256((tmp_path / rel).read_bytes()).hexdigest() for rel in manifest["files"]}
    return {k: v for k, v in manifest.items() if k != "created"}, digests


def reuse_line(caplog: pytest.LogCaptureFixture) -> str:
    return next(r.getMessage() for r in reversed(caplog.records) if r.getMessage().startswith("reused "))


def test_three_incremental_nights_build_the_bytes_of_one_from_scratch(
    store: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    frames = [clinic_frame(day, rows=90) for day in range(4)]
    frames[2]["age"] = frames[2]["age"].fillna(41.5)  # no gaps here: its ages come from its train file
    frames[3].loc[::7, "bmi"] = np.nan  # gaps in one partition only: the others' values are needed too
    for day, frame in enumerate(frames):
        storage.put_bytes(layout.raw_partition_uri(store, "raw/clinic", dt.date(2026, 3, 1 + day)), frame.to_parquet())
    config = table_config(**CLINIC)
    protocol = load_protocol(resolve(config.protocol))
    monkeypatch.setenv("GAUNTLET_PREPROCESS_WORKERS", "2")
    caplog.set_level(logging.INFO, logger="gauntlet.preprocess")

    lines = []
    for days in (2, 3, 4):
        built = preprocess.run(config, protocol, store, night(store, "raw/clinic", days, f"night-{days}"))
        lines.append(reuse_line(caplog))
    assert lines == [
        "reused 0 partitions, processed 2",
        "reused 2 partitions, processed 1",
        "reused 3 partitions, processed 1",
    ]
    incremental = snapshot(built["dataset_uri"], tmp_path / "incremental")
    files = incremental[0]["files"]
    assert {rel for rel in files if rel.startswith("values/")} == {
        "values/part-00000.parquet",
        "values/part-00001.parquet",
        "values/part-00003.parquet",
    }
    assert all("/dataset-parts/clinic/" in info["uri"] for rel, info in files.items() if rel != "preprocessor.json")

    wipe_outputs(store)
    scratch = preprocess.run(config, protocol, store, night(store, "raw/clinic", 4, "scratch"))
    assert reuse_line(caplog) == "reused 0 partitions, processed 4"
    assert scratch["dataset_uri"] == built["dataset_uri"]
    assert snapshot(scratch["dataset_uri"], tmp_path / "scratch") == incremental

    # The exact medians of all train rows, though no partition holds them all.
    raw = pd.concat(frames, ignore_index=True)
    train = raw[[split_of(r, protocol) == "train" for r in raw["row_id"]]]
    pre = json.loads(storage.read_committed_file(scratch["dataset_uri"], "preprocessor.json"))
    for j, column in ((0, "age"), (3, "bmi")):
        values = train[column].dropna().to_numpy(np.float32).astype(np.float64)
        assert pre["inputs"][j]["impute"] == float(np.median(values)), column
    loaded, _ = load_split(scratch["dataset_uri"], "train", tmp_path / "load")
    assert sorted(loaded.ids) == sorted(train["row_id"])


def test_a_changed_partition_or_config_is_processed_anew(
    store: str, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    frames = [clinic_frame(day, rows=60) for day in range(3)]
    validation = land(store, "raw/clinic", frames)
    config = table_config(**CLINIC)
    protocol = load_protocol(resolve(config.protocol))
    monkeypatch.setenv("GAUNTLET_PREPROCESS_WORKERS", "1")
    caplog.set_level(logging.INFO, logger="gauntlet.preprocess")
    first = preprocess.run(config, protocol, store, validation)

    # New bytes in one partition (another ETag): that one only. The lineage's index is gone, so the
    # unchanged partitions are found one by one.
    storage.delete_objects([o["uri"] for o in storage.list_objects(f"{store}/dataset-parts/clinic/index/")])
    frames[1].loc[0, "bmi"] = 99.0
    changed = preprocess.run(config, protocol, store, land(store, "raw/clinic", frames))
    assert reuse_line(caplog) == "reused 2 partitions, processed 1" and changed["version"] != first["version"]

    # Another dataset config shapes every partition differently.
    mean = table_config(**CLINIC, imputation="mean")
    preprocess.run(mean, protocol, store, land(store, "raw/clinic", frames))
    assert reuse_line(caplog) == "reused 0 partitions, processed 3"


def test_a_bad_partition_leaves_no_partition_output(store: str, monkeypatch: pytest.MonkeyPatch) -> None:
    frames = [clinic_frame(day, rows=60) for day in range(3)]
    frames[2].loc[5, "outcome"] = "unheard-of"
    validation = land(store, "raw/clinic", frames)
    config = table_config(**CLINIC)
    monkeypatch.setenv("GAUNTLET_PREPROCESS_WORKERS", "1")  # the good partitions are done first
    with pytest.raises(errors.DataConfigMismatch, match="unheard-of"):
        preprocess.run(config, load_protocol(resolve(config.protocol)), store, validation)
    assert not [o["key"] for top in ("datasets/", "dataset-parts/") for o in storage.list_objects(f"{store}/{top}")]
