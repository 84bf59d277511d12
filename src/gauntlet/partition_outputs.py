"""Each raw partition's preprocessed output, kept once and reused by every dataset version that has it.

A partition output (its train/dev/test files and their statistics, under a key of everything that
shapes it) is committed by its own manifest; a dataset references its partitions' files from its
MANIFEST.json, still the one commit point. An index per dataset lineage makes a night's lookups one
read; a lost index only costs that night a read per partition.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from gauntlet import layout, storage
from gauntlet.errors import NotCommitted, ObjectNotFound

# Object-store requests in flight at once: they wait on the network, not on a core.
IO_THREADS = 8


def io_map(fn: Callable[[Any], Any], items: list[Any]) -> list[Any]:
    if len(items) <= 1:
        return [fn(item) for item in items]
    with ThreadPoolExecutor(min(IO_THREADS, len(items)), thread_name_prefix="preprocess-io") as pool:
        return list(pool.map(fn, items))


def committed(store: str, dataset: str, line: str, keys: list[str]) -> dict[str, dict[str, Any]]:
    """The committed partition outputs among `keys` (key -> its manifest): those of the latest dataset
    of this lineage from its index (one read), the others looked up one by one (a new partition)."""
    try:
        index: dict[str, Any] = storage.get_json(layout.partition_index_uri(store, dataset, line))["outputs"]
    except ObjectNotFound:
        index = {}
    found = {key: index[key] for key in keys if key in index}
    missing = sorted({key for key in keys if key not in found})

    def lookup(key: str) -> dict[str, Any] | None:
        prefix = layout.partition_output_prefix(store, dataset, key)
        try:
            return storage.read_manifest(prefix)
        except NotCommitted:
            return None

    found.update((key, output) for key, output in zip(missing, io_map(lookup, missing), strict=True) if output)
    return found


def commit(store: str, dataset: str, processed: list[tuple[dict[str, Any], Path]]) -> dict[str, dict[str, Any]]:
    """Commit each processed partition's files as its output (statistics in its manifest), side by side."""

    def commit_one(item: tuple[dict[str, Any], Path]) -> dict[str, Any]:
        stats, folder = item
        prefix = layout.partition_output_prefix(store, dataset, stats["key"])
        return dict(json.loads(json.dumps(storage.commit_directory(folder, prefix, stats))))

    return {output["key"]: output for output in io_map(commit_one, processed)}


def remember(store: str, dataset: str, line: str, prefix: str, outputs: list[dict[str, Any]]) -> None:
    """Index this dataset's partition outputs for the next night of the lineage (last writer wins:
    either index is right, and a lost one only costs that night its lookups)."""
    storage.put_json(
        layout.partition_index_uri(store, dataset, line),
        {"dataset": prefix, "outputs": {output["key"]: output for output in outputs}},
    )


def referenced_files(store: str, dataset: str, outputs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The dataset's split files (`<split>/part-<partition index>.parquet`) and each partition's value
    counts, as references to the partition outputs that hold them."""
    files: dict[str, dict[str, Any]] = {}
    for i, output in enumerate(outputs):
        for name, info in output["files"].items():  # train, dev, test and values .parquet
            uri = layout.partition_output_file(store, dataset, output["key"], name)
            rel = f"{name.removesuffix('.parquet')}/part-{i:05d}.parquet"
            files[rel] = {"sha256": info["sha256"], "size": info["size"], "uri": uri}
    return files
