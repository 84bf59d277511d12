"""The train step's compute preflight: over training.max_hours (or max_cost) it refuses before any
rank starts, leaving nothing under experiments/; within them it trains and the record keeps the
estimate with the actual figures beside it; a cache hit skips the preflight."""

from __future__ import annotations

import math

from pipeline_support import MLP, log_of, shared_dataset, train
from testkit import object_keys

from gauntlet import layout, storage
from gauntlet.contract import EXIT_BAD_INPUT

# Epochs no other test trains with, so the first run here is a cache miss.
EPOCHS = ["--set", "training.epochs=3"]


def test_an_estimate_over_max_hours_is_refused_before_any_rank_starts(s3_endpoint: str) -> None:
    store, dataset = shared_dataset(s3_endpoint)
    before = object_keys(store, "experiments")
    process, _ = train(store, dataset, *MLP, *EPOCHS, "--set", "training.max_hours=0.000001", check=False)
    log = log_of(process)
    assert process.returncode == EXIT_BAD_INPUT, log[-2000:]
    assert "training refused before any rank started" in log and "over training.max_hours 1e-06" in log
    assert "preflight:" in log and "launching:" not in log  # the line run_horovod logs before horovodrun
    assert object_keys(store, "experiments") == before  # no lease, checkpoint, model or record


def test_the_record_keeps_the_estimate_and_the_actual_and_a_cache_hit_skips_it(s3_endpoint: str) -> None:
    store, dataset = shared_dataset(s3_endpoint)
    limits = ["--set", "training.max_hours=1", "--set", "training.max_cost=1"]
    process, outputs = train(store, dataset, *MLP, *EPOCHS, *limits)
    assert "preflight:" in log_of(process) and "preflight estimate vs actual" in log_of(process)
    record = storage.get_json(layout.record_uri(outputs["experiment_uri"]))
    found = record["preflight"]
    assert found["estimate"]["parameters"] > 0 and found["estimate"]["memory_per_rank"]["total_mb"] > 0
    assert found["estimate"]["epochs"] == 3 and found["actual"]["wall_seconds"] == record["wall_seconds"]
    ratio = found["actual_over_estimate"]["wall_seconds"]
    assert math.isclose(ratio, record["wall_seconds"] / found["estimate"]["wall_seconds"], rel_tol=1e-2)
    print(f"preflight actual/estimate: wall {ratio}, cost {found['actual_over_estimate']['cost_usd']}")

    again, hit = train(store, dataset, *MLP, *EPOCHS, *limits)
    assert hit["cache_hit"] and "preflight" not in log_of(again)
