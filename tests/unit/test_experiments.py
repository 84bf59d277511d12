"""Experiment records and dedup, end to end: real Horovod runs through the CLI against moto's S3.

The same experiment run twice is a cache hit that starts no training; a changed learning rate is
a miss that names `params.lr`; the record holds the lineage, resources and cost the protocol asks for.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from pipeline_support import MLP, log_of, shared_dataset, train

from gauntlet import layout, storage
from gauntlet.hashing import sha256_bytes
from gauntlet.protocol import load_protocol, plateaued

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
# weight_decay makes this experiment unique to this test in the shared store, so its first run is a miss.
TWO_EPOCHS = [*MLP, "--set", "training.epochs=2", "--set", "training.weight_decay=0.001"]


def test_second_run_is_a_cache_hit_and_a_changed_lr_is_a_miss_naming_it(s3_endpoint: str) -> None:
    seeded_store, dataset = shared_dataset(s3_endpoint)
    first, out1 = train(seeded_store, dataset, *TWO_EPOCHS, env={"GAUNTLET_IMAGE_DIGEST": "sha256:" + "ab" * 32})
    log1 = log_of(first)
    assert out1["cache_hit"] is False
    assert "cache miss" in log1 and "launching: " in log1
    assert "epoch 1/2" in log1 and "epoch 2/2" in log1

    second, out2 = train(seeded_store, dataset, *TWO_EPOCHS)
    log2 = log_of(second)
    assert out2["cache_hit"] is True, log2
    assert out2["key"] == out1["key"] and out2["experiment_uri"] == out1["experiment_uri"]
    record_location = layout.record_uri(out1["experiment_uri"])
    hit = [line for line in log2.splitlines() if "cache hit" in line]
    assert hit and record_location in hit[0], log2
    # No training happened: horovodrun was never launched and no epoch was logged.
    assert "launching: " not in log2
    assert not re.search(r"epoch \d+/", log2)
    assert [
        o["key"]
        for o in storage.list_objects(layout.checkpoints_prefix(out1["experiment_uri"]) + "/")
        if o["key"].endswith(".pt")
    ] == [storage.S3Uri.parse(layout.checkpoint_uri(out1["experiment_uri"], e)).key for e in (1, 2)]

    third, out3 = train(seeded_store, dataset, *TWO_EPOCHS, "--set", "training.lr=0.05")
    log3 = log_of(third)
    assert out3["cache_hit"] is False and out3["key"] != out1["key"]
    miss = [line for line in log3.splitlines() if "cache miss" in line]
    assert miss, log3
    assert f"nearest recorded experiment {out1['key']} differs only in: params.lr (0.05 vs 0.01)" in miss[0]

    # The record: params, data and code version, image digest, hardware, resources, cost, curve.
    record = storage.get_json(record_location)
    manifest = storage.read_manifest(dataset)
    assert record["params"]["lr"] == 0.01 and record["params"]["epochs"] == 2
    assert record["params"]["model"]["kind"] == "mlp" and record["params"]["workers"] == 2
    assert record["dataset_version"] == manifest["version"] and record["dataset_uri"] == dataset
    assert record["code_version"] == record["key_parts"]["code"] and re.fullmatch(
        r"[0-9a-f]{16}", record["code_version"]
    )
    assert record["protocol_id"] == load_protocol(ROOT / "include/protocols/digits-v1.yaml").id
    assert record["image_digest"] == "sha256:" + "ab" * 32
    hardware = record["hardware"]
    assert hardware["cpu_model"] and hardware["cpu_count"] >= 1
    assert hardware["gpu_count"] == 0 and hardware["gpu_model"] is None and hardware["world_size"] == 2
    assert record["wall_seconds"] > 0 and record["cpu_seconds"] > 0 and record["gpu_seconds"] == 0
    assert record["peak_rss_mb"] > 50  # a worker process holding torch
    prices = yaml.safe_load((ROOT / "include/prices.yaml").read_text())
    assert record["cost_usd"] == pytest.approx(record["cpu_seconds"] / 3600 * prices["cpu_core_hour"], rel=1e-3)
    assert [row["epoch"] for row in record["curve"]] == [1, 2]
    assert record["final"]["dev_error"] == record["curve"][-1]["dev_error"]
    assert set(record["final"]) == {"train_loss", "train_error", "dev_loss", "dev_error"}
    assert record["epochs_run"] == 2 and record["stopped_early"] is False
    assert len(set(record["rank_parameter_digests"])) == 1
    assert record["model_sha256"] == sha256_bytes(storage.get_bytes(record["model_uri"]))


def test_until_plateau_stops_every_rank_at_the_same_epoch(
    s3_endpoint: str, project_protocol: Callable[[str], Path]
) -> None:
    seeded_store, dataset = shared_dataset(s3_endpoint)
    raw = yaml.safe_load((ROOT / "include/protocols/digits-v1.yaml").read_text())
    del raw["training"]["epochs"]
    raw["training"]["until_plateau"] = {"patience": 1, "max_epochs": 40}
    protocol_file = project_protocol("plateau")
    protocol_file.write_text(yaml.safe_dump(raw, sort_keys=False))
    # The split is unchanged, so the shared dataset is valid under this protocol too.
    options = ["--protocol", str(protocol_file), *MLP, "--set", "training.schedule=constant"]

    process, out = train(seeded_store, dataset, *options)
    record = storage.get_json(layout.record_uri(out["experiment_uri"]))
    errors = [row["dev_error"] for row in record["curve"]]
    assert record["params"]["patience"] == 1 and record["params"]["epochs"] == 40
    assert record["stopped_early"] is True and record["epochs_run"] == len(errors) < 40
    # Stopped at the first epoch after which the rule held, not later and not earlier.
    assert plateaued(errors, 1) and not plateaued(errors[:-1], 1)
    assert "stopping early after epoch" in log_of(process)
    # Both ranks left the loop together: their final weights are bit-identical.
    assert len(record["rank_parameter_digests"]) == 2 and len(set(record["rank_parameter_digests"])) == 1
