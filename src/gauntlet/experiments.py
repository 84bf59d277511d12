"""Experiment keys and records: what makes two training runs "the same", and what was recorded.

An experiment is keyed by (protocol id, dataset version, training params, code version, runtime:
torch and Horovod builds and the device class). A key with a
RECORD.json is done: running it again is a cache hit. A miss is explained against the nearest
recorded neighbour ("only training.lr changed"), so nobody re-runs an experiment by accident.
"""

from __future__ import annotations

import os
import platform
from concurrent.futures import ThreadPoolExecutor
from importlib import metadata
from pathlib import Path
from typing import Any

import yaml

from gauntlet import layout, storage
from gauntlet.config import resolve
from gauntlet.hashing import content_hash
from gauntlet.logs import get_logger

log = get_logger("gauntlet.experiments")


def key_parts(
    protocol_id: str, dataset_version: str, params: dict[str, Any], code: str, runtime: dict[str, Any]
) -> dict[str, Any]:
    return {"protocol": protocol_id, "dataset": dataset_version, "params": params, "code": code, "runtime": runtime}


def runtime() -> dict[str, Any]:
    """What besides code and params changes a trained model's numbers: the torch and Horovod builds
    (kernels, reductions) and the device class the ranks compute on."""
    return {"torch": _version("torch"), "horovod": _version("horovod"), "device": device_class()}


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def device_class() -> str:
    """`cpu`, or `cuda-sm<major><minor>` of the first visible GPU: what the ranks will compute on.

    GAUNTLET_DEVICE_CLASS names it where the step runs apart from its ranks (an MPIJob's launcher
    has no GPU). Without an NVIDIA driver torch cannot see a GPU, so it is not even imported.
    """
    named = os.environ.get("GAUNTLET_DEVICE_CLASS")
    if named:
        return named
    if not (Path("/proc/driver/nvidia").exists() or Path("/dev/nvidiactl").exists()):
        return "cpu"
    import torch

    if not torch.cuda.is_available():
        return "cpu"
    major, minor = torch.cuda.get_device_capability(0)
    return f"cuda-sm{major}{minor}"


def experiment_key(parts: dict[str, Any]) -> str:
    return content_hash(parts)


def find_record(experiment_uri: str) -> dict[str, Any] | None:
    uri = layout.record_uri(experiment_uri)
    if not storage.exists(uri):
        return None
    record: dict[str, Any] = storage.get_json(uri)
    return record


def list_records(store: str, protocol_id: str | None = None) -> list[dict[str, Any]]:
    """Every complete experiment (optionally under one protocol), oldest first."""
    uris = [
        obj["uri"]
        for obj in storage.list_objects(layout.experiments_root(store) + "/")
        if obj["key"].endswith("/" + layout.RECORD_NAME)
    ]
    # Reads overlap: a store with thousands of experiments is thousands of small GETs, each mostly
    # round-trip latency (boto3 clients are thread-safe).
    with ThreadPoolExecutor(max_workers=16) as pool:
        records = [
            record
            for record in pool.map(storage.get_json, uris)
            if protocol_id is None or record["key_parts"]["protocol"] == protocol_id
        ]
    return sorted(records, key=lambda r: r.get("finished", ""))


def _flatten(obj: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(obj, dict):
        out: dict[str, Any] = {}
        for key, value in obj.items():
            out.update(_flatten(value, f"{prefix}{key}."))
        return out
    return {prefix.rstrip("."): obj}


def explain_miss(parts: dict[str, Any], records: list[dict[str, Any]]) -> str | None:
    """Name what differs from the closest recorded experiment, or None if there is none."""
    mine = _flatten(parts)
    best: tuple[int, list[str], str] | None = None
    for record in records:
        theirs = _flatten(record["key_parts"])
        changed = sorted(k for k in set(mine) | set(theirs) if mine.get(k) != theirs.get(k))
        if best is None or len(changed) < best[0]:
            best = (len(changed), changed, record["key"])
    if best is None:
        return None
    return f"nearest recorded experiment {best[2]} differs only in: " + ", ".join(
        f"{k} ({_short(_flatten(parts).get(k))} vs {_short(_theirs(records, best[2]).get(k))})" for k in best[1]
    )


def _theirs(records: list[dict[str, Any]], key: str) -> dict[str, Any]:
    return _flatten(next(r for r in records if r["key"] == key)["key_parts"])


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def hardware() -> dict[str, Any]:
    cpu_model = platform.processor() or ""
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    cpu_model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    info: dict[str, Any] = {
        "cpu_model": cpu_model,
        "cpu_count": os.cpu_count(),
        "machine": platform.machine(),
        "gpu_model": None,
        "gpu_count": 0,
    }
    try:
        import torch

        if torch.cuda.is_available():
            info.update(gpu_model=torch.cuda.get_device_name(0), gpu_count=torch.cuda.device_count())
    except ImportError:
        pass
    return info


def estimate_cost(
    cpu_seconds: float, gpu_seconds: float, gpu_model: str | None, prices_path: str = "include/prices.yaml"
) -> float:
    prices = yaml.safe_load(resolve(prices_path).read_text())
    gpu_prices = prices.get("gpu_hour", {})
    gpu_rate = next(
        (rate for name, rate in gpu_prices.items() if gpu_model and name in gpu_model), gpu_prices.get("default", 0.0)
    )
    # Unrounded: a short CPU run costs fractions of a cent, and rounding to fixed decimals
    # would make the figure disagree with its own inputs by whole percents.
    return cpu_seconds / 3600 * prices["cpu_core_hour"] + gpu_seconds / 3600 * gpu_rate
