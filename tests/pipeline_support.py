"""Helpers for end-to-end tests that run real pipeline steps through the CLI against moto's server."""

from __future__ import annotations

import functools
import io
import subprocess
import uuid
from typing import Any

from testkit import run_cli

# A small, fast model for tests where model quality does not matter.
MLP = ["--set", "model.kind=mlp", "--set", "model.hidden=[32]"]
SUPERIORITY = "include/protocols/digits-superiority.yaml"


def new_store() -> str:
    """A fresh bucket (for module-scoped fixtures, which cannot use the function-scoped `store`)."""
    from gauntlet import storage

    bucket = f"gauntlet-test-{uuid.uuid4().hex[:10]}"
    storage.ensure_bucket(bucket)
    return f"s3://{bucket}"


def seed(store: str) -> None:
    import datetime as dt

    from gauntlet import demo

    demo.seed(store, "raw/digits", dt.date(2026, 11, 1), 7)


def build_dataset(store: str, *options: str, run_id: str = "r1") -> str:
    """validate + preprocess over the seeded week; returns the committed dataset URI."""
    _, validated = run_cli(
        store, "--run-id", run_id, *options, "validate", "--start", "2026-11-07", "--end", "2026-11-08"
    )
    _, dataset = run_cli(store, *options, "preprocess", "--validation", validated["result_uri"])
    return str(dataset["dataset_uri"])


@functools.cache
def shared_dataset(endpoint: str) -> tuple[str, str]:
    """(store, dataset URI): one seeded, validated, preprocessed store reused by every module.

    Experiments are content-addressed, so tests that train the same thing share the work; tests
    that touch a registry use their own model name (`--set model.name=...`).
    """
    del endpoint  # the argument ties the cache to the session's S3 server
    store = new_store()
    seed(store)
    return store, build_dataset(store)


def train(
    store: str, dataset_uri: str, *options: str, **kwargs: Any
) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    return run_cli(store, *options, "train", "--dataset", dataset_uri, **kwargs)


def evaluate(
    store: str, experiment_uri: str, *options: str, **kwargs: Any
) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    return run_cli(store, *options, "evaluate", "--experiment", experiment_uri, **kwargs)


def register(
    store: str, report_uri: str, *options: str, run_id: str = "r1", force: bool = False, **kwargs: Any
) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    extra = ["--force"] if force else []
    return run_cli(store, "--run-id", run_id, *options, "register", "--report", report_uri, *extra, **kwargs)


def log_of(process: subprocess.CompletedProcess[str]) -> str:
    return process.stdout + process.stderr


def png_pixels(data: bytes) -> Any:
    """Decode PNG bytes to an (h, w, channels) array."""
    import matplotlib.image

    return matplotlib.image.imread(io.BytesIO(data), format="png")
