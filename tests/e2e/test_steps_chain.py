"""The spine's promises, step by step against the S3 server: frozen split, bad data stops
validate with a message naming the problem, and Horovod really averages gradients over ranks."""

from __future__ import annotations

import io
import json

import numpy as np
import pandas as pd
import pytest
import torch
from testkit import object_keys, run_cli

from gauntlet import demo, layout, storage
from gauntlet.contract import EXIT_BAD_INPUT
from gauntlet.training.model import load_bundle


def _validate_and_preprocess(store: str, end: str, run_id: str) -> dict:
    _, validated = run_cli(store, "--run-id", run_id, "validate", "--start", "2026-11-01", "--end", end)
    _, dataset = run_cli(store, "--run-id", run_id, "preprocess", "--validation", validated["result_uri"])
    return dataset


def _split_ids(dataset_uri: str) -> dict[str, set[str]]:
    manifest = storage.read_manifest(dataset_uri)
    out = {}
    for split in ("train", "dev", "test"):
        # One file per raw partition and split.
        files = sorted(rel for rel in manifest["files"] if rel.startswith(f"{split}/"))
        frames = [pd.read_parquet(io.BytesIO(storage.read_committed_file(dataset_uri, rel))) for rel in files]
        out[split] = set(pd.concat(frames)[manifest["schema"]["id"]])
    return out


def test_split_is_frozen_as_new_days_arrive(seeded_store: str) -> None:
    early = _validate_and_preprocess(seeded_store, "2026-11-04", "early")  # 3 days of data
    late = _validate_and_preprocess(seeded_store, "2026-11-08", "late")  # 7 days of data
    assert early["version"] != late["version"]
    before, after = _split_ids(early["dataset_uri"]), _split_ids(late["dataset_uri"])
    assert sum(map(len, after.values())) > sum(map(len, before.values()))
    assert before["test"], "the early dataset has no test rows"
    for split in ("train", "dev", "test"):
        assert before[split] <= after[split], f"rows left the {split} split when new days arrived"
    # And no row of the grown data sits in two splits.
    assert not (after["train"] & after["test"]) and not (after["dev"] & after["test"])


def test_same_inputs_give_the_same_dataset_version(seeded_store: str) -> None:
    first = _validate_and_preprocess(seeded_store, "2026-11-08", "one")
    second = _validate_and_preprocess(seeded_store, "2026-11-08", "two")
    assert first["version"] == second["version"]
    assert not first["cache_hit"] and second["cache_hit"]


def _land_bad_partition(store: str, breakage: str) -> None:
    frame = demo.digits_frame().iloc[:200].copy()
    if breakage == "null label":
        frame["label"] = frame["label"].astype("float64")
        frame.loc[5, "label"] = np.nan
    elif breakage == "missing column":
        frame = frame.drop(columns=["pixel_10"])
    elif breakage == "wrong dtype":
        frame["pixel_3"] = frame["pixel_3"].astype(str) + "px"
    demo.write_partition(layout.raw_partition_uri(store, "raw/digits", pd.Timestamp("2026-11-08").date()), frame)


@pytest.mark.parametrize(
    ("breakage", "expected"),
    [
        ("null label", ["expect_column_values_to_not_be_null", "'label'"]),
        ("missing column", ["expect_table_columns_to_match_set", "pixel_10"]),
        ("wrong dtype", ["expect_column_values_to_be_in_type_list", "'pixel_3'"]),
    ],
)
def test_bad_data_fails_validate_naming_the_problem_and_leaves_nothing(
    seeded_store: str, breakage: str, expected: list[str]
) -> None:
    _land_bad_partition(seeded_store, breakage)
    before = object_keys(seeded_store)
    process, outputs = run_cli(
        seeded_store, "--run-id", "bad", "validate", "--start", "2026-11-08", "--end", "2026-11-09", check=False
    )
    assert process.returncode == EXIT_BAD_INPUT, process.stderr[-2000:]
    assert outputs == {}
    message = process.stderr[process.stderr.index("error: validation failed") :]
    assert "date=2026-11-08" in message, message
    for text in expected:
        assert text in message, f"{text!r} not in: {message}"
    # Only the validation evidence was written: no dataset, no experiment, no registry change.
    new = object_keys(seeded_store) - before
    assert new and all(key.startswith("runs/bad/validation/") for key in new), sorted(new)[:5]
    result = storage.get_json(f"{seeded_store}/runs/bad/validation/result.json")
    assert result["verdict"] == "failed"
    bad = [p for p in result["partitions"] if not p["success"]]
    assert [p["date"] for p in bad] == ["2026-11-08"]


def _train(store: str, dataset_uri: str, workers: int, batch: int, lr: float) -> dict:
    _, out = run_cli(
        store,
        "--set",
        "model.kind=mlp",
        "--set",
        "model.hidden=[32]",
        "--set",
        "training.epochs=3",
        "--set",
        f"training.batch_size={batch}",
        "--set",
        f"training.lr={lr}",
        "--set",
        "training.schedule=constant",
        "train",
        "--dataset",
        dataset_uri,
        "--workers",
        str(workers),
    )
    return storage.get_json(f"{out['experiment_uri']}/RECORD.json")


def test_horovod_two_ranks_average_gradients_like_one_process(seeded_store: str) -> None:
    dataset = _validate_and_preprocess(seeded_store, "2026-11-08", "hvd")
    # Same global batch (2 x 16 = 1 x 32) and same effective rate (0.05 x 2 ranks = 0.1 x 1 rank).
    two = _train(seeded_store, dataset["dataset_uri"], workers=2, batch=16, lr=0.05)
    one = _train(seeded_store, dataset["dataset_uri"], workers=1, batch=32, lr=0.1)
    assert two["hardware"]["world_size"] == 2 and one["hardware"]["world_size"] == 1
    digests = two["rank_parameter_digests"]
    assert len(digests) == 2 and digests[0] == digests[1], "ranks ended with different weights"
    for a, b in zip(two["curve"], one["curve"], strict=True):
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-3, abs=1e-4), (a, b)
        assert a["dev_loss"] == pytest.approx(b["dev_loss"], rel=1e-3, abs=1e-4), (a, b)
    assert two["curve"][-1]["train_loss"] < two["curve"][0]["train_loss"]
    model_two = load_bundle(storage.get_bytes(two["model_uri"], two["model_sha256"]))
    model_one = load_bundle(storage.get_bytes(one["model_uri"], one["model_sha256"]))
    for (name, p2), (_, p1) in zip(model_two.state_dict().items(), model_one.state_dict().items(), strict=True):
        assert torch.allclose(p2, p1, atol=1e-4), f"{name} differs between 2 ranks and 1 process"
    print(json.dumps({"samples_per_s_2_ranks": two["samples_per_s"], "samples_per_s_1_rank": one["samples_per_s"]}))
