"""preprocess: turn validated raw partitions into a content-addressed, split dataset.

The split of a row is decided by a stable hash of its id's canonical text (see gauntlet.splits), so test rows
stay test rows as new days arrive. Each partition is streamed from a local copy in batches and
written as one file per split, partitions side by side in threads (one per core); the result does
not depend on their number. Features are written as their raw kind (numbers as float32, categories
as text); their encoding (gauntlet.encoding) is fitted on train rows only and stored as JSON (never
a pickle), and the dataset is committed by a MANIFEST.json written last.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from gauntlet import encoding, layout, rawdata, splits, storage
from gauntlet.config import DatasetConfig, PipelineConfig
from gauntlet.errors import PreprocessError
from gauntlet.hashing import DATASET_CODE, code_version, content_hash
from gauntlet.logs import get_logger
from gauntlet.protocol import Protocol

log = get_logger("gauntlet.preprocess")
SPLITS = ("train", "dev", "test")
# Rows per Arrow batch: ~70 MB of int64 pixels; with the float32 copy and the split chunks a
# worker's peak memory is a few times that, whatever the partition's size.
BATCH_ROWS = 131_072


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


@dataclass(frozen=True)
class _Job:
    """What one worker needs to turn one validated partition into its slice of the dataset."""

    index: int
    partition: dict[str, Any]
    out_dir: str  # local; the parent uploads and commits only once every partition succeeded
    dataset: DatasetConfig
    protocol: Protocol


def _output_schema(ds: DatasetConfig, inputs: list[tuple[str, str]]) -> pa.Schema:
    """id, date, the label (class index or value), then each feature as its raw kind: numbers as
    float32, categories as text (nulls stay null: the encoding fitted on train rows decides them)."""
    return pa.schema(
        [
            (ds.id_column, pa.string()),
            ("date", pa.string()),
            (ds.label_column, pa.int64() if ds.task == "classification" else pa.float64()),
            *((name, pa.float32() if kind == encoding.NUMERIC else pa.string()) for name, kind in inputs),
        ]
    )


@dataclass
class _Fit:
    """What one partition's train rows (or all of them, merged in partition order) give the preprocessor."""

    numeric: encoding.Moments
    categories: encoding.CategoryCounts
    target: encoding.Moments | None  # regression: the label's moments

    @classmethod
    def empty(cls, ds: DatasetConfig, inputs: list[tuple[str, str]]) -> _Fit:
        return cls(
            encoding.Moments(len(encoding.numeric_inputs(inputs))),
            encoding.CategoryCounts(len(encoding.categorical_inputs(inputs))),
            encoding.Moments(1) if ds.task == "regression" else None,
        )

    def add(self, chunk: pa.Table, inputs: list[tuple[str, str]], label: str) -> None:
        self.numeric.add([chunk.column(name) for name in encoding.numeric_inputs(inputs)])
        self.categories.add([chunk.column(name) for name in encoding.categorical_inputs(inputs)])
        if self.target is not None:
            self.target.add([chunk.column(label)])

    def merge(self, other: _Fit) -> None:
        self.numeric.merge(*other.numeric.state())
        self.categories.merge(other.categories)
        if self.target is not None and other.target is not None:
            self.target.merge(*other.target.state())


def _encode_label(ds: DatasetConfig, values: pa.Array, where: str) -> pa.Array:
    if ds.task == "classification":
        return pa.array(encoding.label_index(values, ds.classes, where))
    return pa.array(encoding.regression_target(values, where))


def _feature_column(values: pa.Array, kind: str, where: str) -> pa.Array:
    return encoding.numeric_column(values, where) if kind == encoding.NUMERIC else encoding.category_text(values, where)


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
    """Split, encode the label of, cast and write one partition (one Parquet file per split, under
    job.out_dir), and return its counts, class counts and what its train rows give the preprocessor.

    A plain function of its job, so partitions can run side by side: Arrow's Parquet decoding,
    casts, filters and writing release the GIL (the per-row sha256 of ids holds it).
    """
    started = time.perf_counter()
    part, ds = job.partition, job.dataset
    counts = dict.fromkeys(SPLITS, 0)
    class_counts: dict[str, Counter[int]] = {split: Counter() for split in SPLITS}
    inputs: list[tuple[str, str]] | None = None
    fit: _Fit | None = None
    out = Path(job.out_dir)
    with storage.temp_dir("gauntlet-preprocess-") as tmp:
        writers: dict[str, pq.ParquetWriter] = {}
        schema: pa.Schema | None = None
        try:
            for batch, ids in _validated_batches(part, Path(tmp) / "raw", ds.id_column):
                if schema is None:
                    inputs = encoding.input_kinds(batch.schema, ds, part["uri"])
                    schema, fit = _output_schema(ds, inputs), _Fit.empty(ds, inputs)
                assert inputs is not None and fit is not None
                # Per row, Python only calls sha256: the step's costliest loop.
                split_names = splits.splits_of_text(ids, job.protocol)
                where = f"{part['uri']}: column"
                table = pa.Table.from_arrays(
                    [
                        ids,
                        pa.repeat(pa.scalar(part["date"], pa.string()), batch.num_rows),
                        _encode_label(ds, batch.column(ds.label_column), f"{where} '{ds.label_column}'"),
                        *(_feature_column(batch.column(n), k, f"{where} '{n}'") for n, k in inputs),
                    ],
                    schema=schema,
                )
                labels = table.column(ds.label_column).to_numpy()
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
                    if ds.task == "classification":
                        found = np.unique(labels[mask], return_counts=True)
                        class_counts[split].update(dict(zip(*found, strict=True)))
                    if split == "train":
                        fit.add(chunk, inputs, ds.label_column)
        finally:
            for writer in writers.values():
                writer.close()
    return {
        "index": job.index,
        "date": part["date"],
        "uri": part["uri"],
        "inputs": inputs,  # None: the partition has no rows
        "counts": counts,
        "class_counts": {s: dict(c) for s, c in class_counts.items()},
        "fit": fit,
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
        jobs = [_Job(i, part, tmp, ds, protocol) for i, part in enumerate(partitions)]
        inputs, fit, counts, class_counts = _merge_partitions(_process_all(jobs))
        if not counts["train"] or inputs is None or fit is None:
            raise PreprocessError("no rows fall in the train split")
        medians = _train_medians(root / "train", inputs, fit, counts["train"], ds)
        preprocessor = encoding.fit_preprocessor(
            ds, inputs, fit.numeric, fit.categories, counts["train"], medians, fit.target
        )
        log.info(
            "%d features (%d categorical) encoded as %d columns",
            len(inputs),
            len(encoding.categorical_inputs(inputs)),
            len(preprocessor["features"]),
        )
        (root / "preprocessor.json").write_text(json.dumps(preprocessor, indent=1))
        for split in SPLITS:
            if not (root / split).is_dir():
                # Every split has a file, even an empty one, so readers see the schema.
                (root / split).mkdir()
                pq.write_table(_output_schema(ds, inputs).empty_table(), root / split / "part-00000.parquet")
        meta = {
            "version": version,
            "dataset": ds.name,
            "created": dt.datetime.now(dt.UTC).isoformat(),
            "protocol_split": protocol.raw["split"],
            "partitions": [{k: p[k] for k in ("uri", "date", "etag")} for p in partitions],
            "schema": {
                "id": ds.id_column,
                "label": ds.label_column,
                "task": ds.task,
                "classes": list(ds.classes),
                "features": [name for name, _ in inputs],
                "encoded_features": preprocessor["features"],
            },
            "rows": counts,
            "quarantined_rows": sum(p["quarantine"]["count"] for p in partitions if p.get("quarantine")),
            # By class index (the label column's values); empty for regression.
            "class_counts": {s: {str(k): int(v) for k, v in sorted(c.items())} for s, c in class_counts.items()},
            "code_version": code_version(DATASET_CODE),
        }
        manifest = storage.commit_directory(root, prefix, meta)
    log.info(
        "dataset %s committed at %s: %s (%.1fs)", version, prefix, _counts(manifest), time.perf_counter() - started
    )
    return _outputs(prefix, version, manifest, cache_hit=False)


def _merge_partitions(
    results: Iterator[dict[str, Any]],
) -> tuple[list[tuple[str, str]] | None, _Fit | None, dict[str, int], dict[str, Counter[int]]]:
    """The partitions' results merged in partition order (so the sums do not depend on the workers);
    every partition with rows must have the same feature columns, each of the same kind."""
    inputs: list[tuple[str, str]] | None = None
    first = ""
    fit: _Fit | None = None
    counts = dict.fromkeys(SPLITS, 0)
    class_counts: dict[str, Counter[int]] = {split: Counter() for split in SPLITS}
    for result in results:
        log.info(
            "partition date=%s: %s (%.1fs)",
            result["date"],
            ", ".join(f"{s} {n}" for s, n in result["counts"].items()),
            result["seconds"],
        )
        for split in SPLITS:
            counts[split] += result["counts"][split]
            class_counts[split].update(result["class_counts"][split])
        if result["inputs"] is None:
            continue
        if inputs is None:
            inputs, first, fit = result["inputs"], result["uri"], result["fit"]
            continue
        if result["inputs"] != inputs:
            raise PreprocessError(_inputs_differ(first, inputs, result["uri"], result["inputs"]))
        assert fit is not None
        fit.merge(result["fit"])
    return inputs, fit, counts, class_counts


def _inputs_differ(first: str, a: list[tuple[str, str]], uri: str, b: list[tuple[str, str]]) -> str:
    kinds_a, kinds_b = dict(a), dict(b)
    retyped = sorted(n for n in set(kinds_a) & set(kinds_b) if kinds_a[n] != kinds_b[n])
    if retyped and list(kinds_a) == list(kinds_b):
        return (
            f"feature column(s) {retyped} are text in one file and numbers in the other ({first}, {uri}): "
            "fix the values, or list them in dataset.categorical to treat them as categories everywhere"
        )
    return f"{uri} has feature columns {list(kinds_b)}, {first} has {list(kinds_a)}: every partition needs the same"


def _train_medians(
    train_dir: Path, inputs: list[tuple[str, str]], fit: _Fit, train_rows: int, ds: DatasetConfig
) -> dict[str, float]:
    """The exact median of each numeric feature with nulls among the train rows (median imputation),
    read back from the train files just written; columns without nulls are not read."""
    numeric = encoding.numeric_inputs(inputs)
    wanted = [name for j, name in enumerate(numeric) if 0 < fit.numeric.n[j] < train_rows]
    if ds.imputation != "median" or not wanted:
        return {}
    tables = [pq.read_table(path, columns=wanted) for path in sorted(train_dir.glob("*.parquet"))]
    return {
        name: float(
            np.median(pa.chunked_array([t.column(name) for t in tables]).drop_null().to_numpy().astype(np.float64))
        )
        for name in wanted
    }


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
