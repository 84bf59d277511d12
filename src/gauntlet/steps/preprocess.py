"""preprocess: turn validated raw partitions into a content-addressed, split dataset.

The split of a row is decided by a stable hash of its id's canonical text (see gauntlet.splits), so test rows
stay test rows as new days arrive. Each partition is streamed from a local copy in batches and
written as one file per split, partitions side by side in threads (one per core); the result does
not depend on their number. The scaler is fitted on train rows only and stored as JSON
(never a pickle), and the dataset is committed by a MANIFEST.json written last.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from numpy.typing import NDArray

from gauntlet import layout, rawdata, splits, storage
from gauntlet.config import PipelineConfig
from gauntlet.errors import PreprocessError
from gauntlet.hashing import DATASET_CODE, code_version, content_hash
from gauntlet.logs import get_logger
from gauntlet.protocol import Protocol

log = get_logger("gauntlet.preprocess")
SPLITS = ("train", "dev", "test")
# Rows per Arrow batch: ~70 MB of int64 pixels; with the float32 copy and the split chunks a
# worker's peak memory is a few times that, whatever the partition's size.
BATCH_ROWS = 131_072


def feature_columns(columns: Iterable[Any], prefix: str) -> list[str]:
    features = [str(c) for c in columns if str(c).startswith(prefix)]
    if not features:
        raise PreprocessError(f"no columns start with feature prefix {prefix!r}")
    return features


def dataset_version(partitions: list[dict[str, Any]], config: PipelineConfig, protocol: Protocol) -> str:
    """Same raw bytes + same dataset config + same split rule + same code = same version."""
    return content_hash(
        {
            # Quarantined rows are part of the input's identity (absent when none, so versions stay put).
            "partitions": sorted(
                (p["uri"], p["etag"], *([_quarantined_ids(p).to_pylist()] if p.get("quarantine") else []))
                for p in partitions
            ),
            "dataset": config.raw["dataset"],
            "split": protocol.raw["split"],
            "code": code_version(DATASET_CODE),
        }
    )


class _Moments:
    """Per-feature count, mean and sum of squared deviations, merged batch by batch (Chan et al.),
    so the scaler is StandardScaler's fit without holding the train rows."""

    def __init__(self) -> None:
        self.n = 0
        self.mean: NDArray[np.float64] | None = None
        self.m2: NDArray[np.float64] | None = None

    def add(self, columns: Sequence[NDArray[np.floating[Any]]]) -> None:
        """Merge in one batch, given feature by feature (the columns of an Arrow table, no copy).

        Per column, a two-pass mean and a dot product of its deviations: one float64 temporary the
        size of a column, where stacking the batch into a matrix first was far slower (docs/benchmarks.md).
        """
        if not columns or not len(columns[0]):
            return
        mean, m2 = np.empty(len(columns)), np.empty(len(columns))
        for j, column in enumerate(columns):
            mean[j] = column.mean(dtype=np.float64)
            deviations = np.subtract(column, mean[j], dtype=np.float64)
            m2[j] = deviations @ deviations
        self.merge(len(columns[0]), mean, m2)

    def merge(self, n: int, mean: NDArray[np.float64], m2: NDArray[np.float64]) -> None:
        if not n:
            return
        if self.mean is None or self.m2 is None:
            self.n, self.mean, self.m2 = n, mean, m2
            return
        total = self.n + n
        delta = mean - self.mean
        self.mean = self.mean + delta * n / total
        self.m2 = self.m2 + m2 + delta**2 * self.n * n / total
        self.n = total

    def scale(self) -> NDArray[np.float64]:
        assert self.m2 is not None
        std = np.sqrt(self.m2 / self.n)
        # Constant pixels have zero variance; like sklearn, their scale is 1, which keeps them at 0.
        return np.where(std < 10 * np.finfo(np.float64).eps, 1.0, std)


@dataclass(frozen=True)
class _Job:
    """What one worker needs to turn one validated partition into its slice of the dataset."""

    index: int
    partition: dict[str, Any]
    out_dir: str  # local; the parent uploads and commits only once every partition succeeded
    id_column: str
    label_column: str
    feature_prefix: str
    protocol: Protocol


def _output_schema(job: _Job, features: list[str]) -> pa.Schema:
    return pa.schema(
        [
            (job.id_column, pa.string()),
            ("date", pa.string()),
            (job.label_column, pa.int64()),
            *((f, pa.float32()) for f in features),
        ]
    )


def _quarantined_ids(part: dict[str, Any]) -> pa.Array:
    """The row ids validate set aside in this partition (see gauntlet.quarantine)."""
    held = part.get("quarantine")
    if not held:
        return pa.array([], pa.string())
    if "row_ids" not in held:
        raise PreprocessError(
            f"{part['uri']}: the validation result names quarantined rows by position only; "
            "re-run validate so it records them by row id"
        )
    return pa.array(held["row_ids"], pa.string())


def _validated_batches(part: dict[str, Any], local: Path, id_column: str) -> Iterator[tuple[pa.RecordBatch, pa.Array]]:
    """The partition's rows as Arrow batches with their canonical ids, minus its quarantined rows,
    read from a local copy."""
    etag = storage.download_object(part["uri"], local)
    if etag != part["etag"]:
        # The file changed after validation: training on it would bypass the suite.
        raise PreprocessError(
            f"{part['uri']} changed since it was validated (ETag {etag} != {part['etag']}): "
            "run the pipeline again so validate checks the new bytes"
        )
    # Dropped by id, the key the split uses too: a row's position depends on how the file was read.
    drop = _quarantined_ids(part)
    dropped = 0
    for batch in rawdata.iter_batches(part["uri"], local, batch_rows=BATCH_ROWS, id_column=id_column):
        if id_column not in batch.schema.names:
            raise PreprocessError(f"{part['uri']}: no id column {id_column!r} (dataset.id_column)")
        ids = splits.canonical_id_array(batch.column(id_column), f"{part['uri']}: column '{id_column}'")
        if len(drop):
            keep = pc.invert(pc.is_in(ids, value_set=drop))
            dropped += batch.num_rows - pc.sum(keep.cast(pa.int64())).as_py()
            batch, ids = batch.filter(keep), ids.filter(keep)
        yield batch, ids
    if dropped != len(drop):
        raise PreprocessError(
            f"{part['uri']}: validate quarantined {len(drop)} rows by id, {dropped} were found; "
            "run the pipeline again so validate checks these bytes"
        )


def _process_partition(job: _Job) -> dict[str, Any]:
    """Split, cast and write one partition (one Parquet file per split, under job.out_dir), and
    return its counts, class counts and train moments.

    A plain function of its job, so partitions can run side by side: Arrow's Parquet decoding,
    casts, filters and writing release the GIL (the per-row sha256 of ids holds it).
    """
    started = time.perf_counter()
    part = job.partition
    moments = _Moments()
    counts = dict.fromkeys(SPLITS, 0)
    class_counts: dict[str, Counter[int]] = {split: Counter() for split in SPLITS}
    features: list[str] = []
    out = Path(job.out_dir)
    with storage.temp_dir("gauntlet-preprocess-") as tmp:
        writers: dict[str, pq.ParquetWriter] = {}
        schema: pa.Schema | None = None
        try:
            for batch, ids in _validated_batches(part, Path(tmp) / "raw", job.id_column):
                if schema is None:
                    features = feature_columns(batch.schema.names, job.feature_prefix)
                    schema = _output_schema(job, features)
                # Per row, Python only calls sha256: the step's costliest loop.
                split_names = splits.splits_of_text(ids, job.protocol)
                table = pa.Table.from_arrays(
                    [
                        ids,
                        pa.repeat(pa.scalar(part["date"], pa.string()), batch.num_rows),
                        pc.cast(batch.column(job.label_column), pa.int64()),
                        *(pc.cast(batch.column(f), pa.float32()) for f in features),
                    ],
                    schema=schema,
                )
                labels = table.column(job.label_column).to_numpy()
                for split in SPLITS:
                    mask = split_names == split
                    if not mask.any():
                        continue
                    chunk = table.filter(pa.array(mask))
                    if split not in writers:
                        (out / split).mkdir(exist_ok=True)
                        writers[split] = pq.ParquetWriter(out / split / f"part-{job.index:05d}.parquet", schema)
                    writers[split].write_table(chunk)
                    counts[split] += chunk.num_rows
                    class_counts[split].update(dict(zip(*np.unique(labels[mask], return_counts=True), strict=True)))
                    if split == "train":
                        moments.add([chunk.column(f).to_numpy() for f in features])
        finally:
            for writer in writers.values():
                writer.close()
    return {
        "index": job.index,
        "date": part["date"],
        "features": features,
        "counts": counts,
        "class_counts": {s: dict(c) for s, c in class_counts.items()},
        "moments": (moments.n, moments.mean, moments.m2),
        "seconds": time.perf_counter() - started,
    }


def worker_count(partitions: int) -> int:
    """Partitions preprocessed at once (threads): GAUNTLET_PREPROCESS_WORKERS, else one per usable core.

    The dataset is the same bytes whatever the count (one file per partition and split, moments
    merged in partition order), so this is a speed setting, not part of the dataset's identity.
    """
    setting = os.environ.get("GAUNTLET_PREPROCESS_WORKERS", "auto")
    if setting == "auto":
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    elif setting.isdigit() and int(setting) >= 1:
        cores = int(setting)
    else:
        raise PreprocessError(f"GAUNTLET_PREPROCESS_WORKERS must be 'auto' or a whole number >= 1, not {setting!r}")
    return max(1, min(cores, partitions))


def _process_all(jobs: list[_Job]) -> Iterator[dict[str, Any]]:
    """Each partition's result, in partition order, from `worker_count` threads.

    Threads, not processes: two threads beat both one thread and two spawned processes, which also
    pay for their start-up (docs/benchmarks.md, data path).
    """
    workers = worker_count(len(jobs))
    if workers == 1:
        yield from map(_process_partition, jobs)
        return
    log.info("preprocessing %d partitions, %d at a time", len(jobs), workers)
    with ThreadPoolExecutor(workers, thread_name_prefix="preprocess") as pool:
        futures = [pool.submit(_process_partition, job) for job in jobs]
        try:
            for future in futures:
                yield future.result()
        except BaseException:
            for future in futures:  # a bad partition stops the rest: nothing will be committed
                future.cancel()
            raise


def run(config: PipelineConfig, protocol: Protocol, store: str, validation_uri: str) -> dict[str, Any]:
    started = time.perf_counter()
    if config.dataset.id_column != protocol.id_column:
        # The protocol fixes which column keys the split; hashing another one would be another split.
        raise PreprocessError(
            f"dataset.id_column is {config.dataset.id_column!r} but the protocol {protocol.name} keys its split "
            f"by split.id_column {protocol.id_column!r}: make them name the same column"
        )
    validation = storage.get_json(validation_uri)
    if validation.get("verdict") != "passed":
        raise PreprocessError(f"{validation_uri} is not a passed validation; refusing to build a dataset")
    partitions = validation["partitions"]
    if not partitions:
        raise PreprocessError(f"{validation_uri} lists no partitions")
    version = dataset_version(partitions, config, protocol)
    prefix = layout.dataset_prefix(store, config.dataset.name, version)
    if storage.is_committed(prefix):
        manifest = storage.read_manifest(prefix)
        log.info("cache hit: dataset %s already committed at %s (%s)", version, prefix, _counts(manifest))
        return _outputs(prefix, version, manifest, cache_hit=True)

    ds = config.dataset
    with storage.temp_dir() as tmp:
        root = Path(tmp)
        jobs = [
            _Job(i, part, tmp, ds.id_column, ds.label_column, ds.feature_prefix, protocol)
            for i, part in enumerate(partitions)
        ]
        features: list[str] = []
        counts = dict.fromkeys(SPLITS, 0)
        class_counts: dict[str, Counter[int]] = {split: Counter() for split in SPLITS}
        moments = _Moments()
        for result in _process_all(jobs):
            if features and result["features"] != features:
                raise PreprocessError(
                    f"partition date={result['date']} has feature columns {result['features']}, "
                    f"the earlier partitions {features}"
                )
            features = result["features"]
            for split in SPLITS:
                counts[split] += result["counts"][split]
                class_counts[split].update(result["class_counts"][split])
            moments.merge(*result["moments"])
            log.info(
                "partition date=%s: %s (%.1fs)",
                result["date"],
                ", ".join(f"{s} {n}" for s, n in result["counts"].items()),
                result["seconds"],
            )
        if not counts["train"]:
            raise PreprocessError("no rows fall in the train split")
        assert moments.mean is not None
        preprocessor = {
            "kind": "standard_scaler",
            "features": features,
            "mean": moments.mean.tolist(),
            "scale": moments.scale().tolist(),
        }
        (root / "preprocessor.json").write_text(json.dumps(preprocessor, indent=1))
        for split in SPLITS:
            if not (root / split).is_dir():
                # Every split has a file, even an empty one, so readers see the schema.
                (root / split).mkdir()
                pq.write_table(_output_schema(jobs[0], features).empty_table(), root / split / "part-00000.parquet")
        meta = {
            "version": version,
            "dataset": ds.name,
            "created": dt.datetime.now(dt.UTC).isoformat(),
            "protocol_split": protocol.raw["split"],
            "partitions": [{k: p[k] for k in ("uri", "date", "etag")} for p in partitions],
            "schema": {"id": ds.id_column, "label": ds.label_column, "features": features, "classes": list(ds.classes)},
            "rows": counts,
            "quarantined_rows": sum(p["quarantine"]["count"] for p in partitions if p.get("quarantine")),
            "class_counts": {s: {str(k): int(v) for k, v in sorted(c.items())} for s, c in class_counts.items()},
            "code_version": code_version(DATASET_CODE),
        }
        manifest = storage.commit_directory(root, prefix, meta)
    log.info(
        "dataset %s committed at %s: %s (%.1fs)", version, prefix, _counts(manifest), time.perf_counter() - started
    )
    return _outputs(prefix, version, manifest, cache_hit=False)


def _counts(manifest: dict[str, Any]) -> str:
    return ", ".join(f"{s} {n}" for s, n in manifest["rows"].items())


def _outputs(prefix: str, version: str, manifest: dict[str, Any], cache_hit: bool) -> dict[str, Any]:
    return {
        "dataset_uri": prefix,
        "version": version,
        "rows": manifest["rows"],
        "cache_hit": cache_hit,
        "quarantined_rows": manifest.get("quarantined_rows", 0),
    }
