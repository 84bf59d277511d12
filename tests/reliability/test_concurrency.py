"""Two runs over the same snapshot overlap (a backfill started beside the nightly run): the dataset,
the experiment, the evaluation and the registry version are each made once, every committed object
verifies against its manifest, and the champion is consistent.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from testkit import ROOT, object_keys, run_cli

from gauntlet import storage
from gauntlet.hashing import sha256_bytes

STEPS = ("validate", "preprocess", "train", "evaluate", "register")


def _lenient_protocol(path: Path) -> Path:
    """The digits protocol with a gate a 3-epoch MLP passes, so both runs reach the registry."""
    protocol = yaml.safe_load((ROOT / "include/protocols/digits-v1.yaml").read_text())
    protocol["gate"]["margin"] = 1.0
    protocol["training"]["epochs"] = 3  # the runs' budget: a run off the protocol's budget is never promoted
    protocol["metrics"]["guards"] = {name: 100.0 for name in protocol["metrics"].get("guards", {})}
    path.write_text(yaml.safe_dump(protocol))
    return path


def _pipeline(store: str, run_id: str, settings: list[str], results: dict[str, Any]) -> None:
    """One nightly run, step by step through the CLI, as Airflow's tasks run it."""
    outputs: dict[str, dict[str, Any]] = {}
    try:
        for step in STEPS:
            args = {
                "validate": ["--start", "2026-11-07", "--end", "2026-11-08"],
                "preprocess": ["--validation", outputs.get("validate", {}).get("result_uri", "")],
                "train": ["--dataset", outputs.get("preprocess", {}).get("dataset_uri", "")],
                "evaluate": ["--experiment", outputs.get("train", {}).get("experiment_uri", "")],
                "register": ["--report", outputs.get("evaluate", {}).get("report_uri", "")],
            }[step]
            _, outputs[step] = run_cli(
                store, *settings, "--run-id", run_id, step, *args, env={"GAUNTLET_LEASE_POLL_S": "1"}
            )
    except BaseException as error:  # reported by the test thread
        results[run_id] = error
        return
    results[run_id] = outputs


def test_overlapping_runs_of_the_same_night_do_each_piece_of_work_once(
    seeded_store: str, project_protocol: Callable[[str], Path]
) -> None:
    store = seeded_store
    settings = [
        "--set",
        "model.kind=mlp",
        "--set",
        "training.epochs=3",
        "--protocol",
        str(_lenient_protocol(project_protocol("lenient"))),
    ]
    results: dict[str, Any] = {}
    runs = ["gauntlet_nightly__backfill_2026-11-08", "gauntlet_nightly__scheduled_2026-11-08"]
    threads = [threading.Thread(target=_pipeline, args=(store, run_id, settings, results)) for run_id in runs]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=900)
    errors = {run: r for run, r in results.items() if isinstance(r, BaseException)}
    assert not errors, errors
    a, b = (results[run] for run in runs)

    # Same content keys: one dataset, one experiment, one evaluation, one registry version.
    assert a["preprocess"]["dataset_uri"] == b["preprocess"]["dataset_uri"]
    assert a["train"]["key"] == b["train"]["key"]
    assert sorted([a["train"]["cache_hit"], b["train"]["cache_hit"]]) == [False, True], "exactly one trained"
    assert a["evaluate"]["report_uri"] == b["evaluate"]["report_uri"]
    assert a["register"]["version"] == b["register"]["version"] == 1
    assert a["register"]["champion"] and b["register"]["champion"]

    keys = object_keys(store)
    manifests = sorted(k for k in keys if k.endswith("/MANIFEST.json"))
    assert len([k for k in manifests if k.startswith("datasets/")]) == 1
    assert len([k for k in manifests if k.startswith("evaluations/")]) == 1
    assert len([k for k in keys if k.endswith("/RECORD.json")]) == 1
    # Every committed output verifies file by file against its manifest (no loser overwrote a winner).
    for manifest in manifests:
        with storage.temp_dir() as tmp:
            storage.fetch_committed(f"{store}/{manifest.rsplit('/', 1)[0]}", tmp)

    experiment_uri = a["train"]["experiment_uri"]
    record = storage.get_json(f"{experiment_uri}/RECORD.json")
    assert sha256_bytes(storage.get_bytes(record["model_uri"])) == record["model_sha256"]
    assert [row["epoch"] for row in record["curve"]] == [1, 2, 3], "one training, not two interleaved"
    assert storage.get_json(f"{experiment_uri}/LEASE.json")["state"] == "released"
    versions = sorted(k for k in keys if k.startswith("registry/digits-classifier/versions/"))
    assert len(versions) == 1
    champion = storage.get_json(f"{store}/registry/digits-classifier/aliases/champion.json")
    assert champion["version"] == 1
    print(
        f"RELIABILITY overlapping runs: both succeeded in {time.monotonic() - started:.0f}s; one dataset, "
        f"one training (the other run waited: cache_hit), one evaluation, registry v1 = champion"
    )
