"""preprocess: turn validated raw partitions into a content-addressed, split dataset.

The split of a row is decided by a stable hash of its id's canonical text (see gauntlet.splits), so test rows
stay test rows as new days arrive. Each partition is streamed from a local copy in batches and
written as one file per split, partitions side by side in threads (one per core); the result does
not depend on their number. Features are written as their raw kind (numbers as float32, categories
as text); their encoding (gauntlet.encoding) is fitted on train rows only and stored as JSON (never
a pickle), and the dataset is committed by a MANIFEST.json written last.

A night costs what its new data costs: each partition's output is committed once, content-addressed
by its partition key (its bytes, its quarantined rows, the dataset config, the split and this code),
with its train statistics (moments, category counts, and value counts of numeric columns with gaps
for exact medians) in its own manifest. A dataset's manifest references those files; a later dataset
with the same key references them again, and only the encoding is fitted anew, from the statistics.
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
import threadpoolctl

from gauntlet import encoding, layout, partition_outputs, rawdata, splits, storage
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
VALUES = "values"  # a partition output's value counts of its numeric columns with train gaps


def _writer_options(schema: pa.Schema, id_column: str) -> dict[str, Any]:
    """Parquet options for the split files: dictionaries for every column but the (unique) ids, LZ4,
    no column statistics (no reader prunes by them): a quarter less writing than pyarrow's defaults
    at the same size (docs/benchmarks.md, data path)."""
    return {
        "use_dictionary": [name for name in schema.names if name != id_column],
        "compression": "lz4",
        "write_statistics": False,
    }


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


def lineage(config: PipelineConfig, protocol: Protocol, code: str) -> str:
    """What shapes every partition's output besides its own bytes: dataset config, split rule, code."""
    return content_hash({"dataset": config.raw["dataset"], "split": protocol.raw["split"], "code": code})


def partition_key(part: dict[str, Any], line: str) -> str:
    """Same partition bytes + same quarantined rows + same lineage = the same output, byte for byte."""
    held = [_quarantined_ids(part).to_pylist()] if part.get("quarantine") else []
    return content_hash({"lineage": line, "partition": [part["uri"], part["etag"], *held]})


@dataclass(frozen=True)
class _Job:
    """What one worker needs to turn one validated partition into its output's files and statistics."""

    index: int
    partition: dict[str, Any]
    key: str
    out_dir: str  # local scratch for this partition's files
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

    def stats(self) -> dict[str, Any]:
        """Plain JSON (floats round-trip exactly), so a merge from stored statistics equals one from memory."""
        return {
            "numeric": _moments_json(self.numeric),
            "categories": {"counts": [dict(c) for c in self.categories.counts], "nulls": self.categories.nulls},
            "target": _moments_json(self.target) if self.target is not None else None,
        }

    def merge_stats(self, stats: dict[str, Any]) -> None:
        """Merge in one partition's stored statistics (see `stats`)."""
        self.numeric.merge(*_moments_arrays(stats["numeric"]))
        other = encoding.CategoryCounts(len(self.categories.counts))
        other.counts = [Counter(c) for c in stats["categories"]["counts"]]
        other.nulls = list(stats["categories"]["nulls"])
        self.categories.merge(other)
        if self.target is not None and stats["target"] is not None:
            self.target.merge(*_moments_arrays(stats["target"]))


def _moments_json(moments: encoding.Moments) -> dict[str, list[Any]]:
    n, mean, m2 = moments.state()
    return {"n": n.tolist(), "mean": mean.tolist(), "m2": m2.tolist()}


def _moments_arrays(stats: dict[str, list[Any]]) -> tuple[Any, Any, Any]:
    return np.array(stats["n"], dtype=np.int64), np.array(stats["mean"]), np.array(stats["m2"])


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
    job.out_dir), and return its statistics (plain JSON: counts, class counts and what its train rows
    give the preprocessor), which become its output's manifest, with the seconds it took.

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
    out.mkdir(parents=True)
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
                        writers[split] = pq.ParquetWriter(
                            out / f"{split}.parquet", schema, **_writer_options(schema, ds.id_column)
                        )
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
    gaps = _write_value_counts(out, inputs, fit, counts["train"], ds) if inputs and fit else []
    stats = {
        "key": job.key,
        "partition": {k: part[k] for k in ("uri", "date", "etag")},
        "inputs": inputs,  # None: the partition has no rows
        "rows": counts,
        "class_counts": {s: {str(k): int(v) for k, v in sorted(c.items())} for s, c in class_counts.items()},
        **(fit.stats() if fit is not None else {"numeric": None, "categories": None, "target": None}),
        VALUES: gaps,
    }
    return {"output": json.loads(json.dumps(stats)), "seconds": time.perf_counter() - started}


def _write_value_counts(
    out: Path, inputs: list[tuple[str, str]], fit: _Fit, train_rows: int, ds: DatasetConfig
) -> list[str]:
    """The value counts of each numeric column with gaps among this partition's train rows, as
    values.parquet (column, value, count): what an exact median over many partitions needs, where
    moments cannot give one. Columns without gaps here are read from the train file if another
    partition's gaps need their median. Returns the columns counted."""
    numeric = encoding.numeric_inputs(inputs)
    gaps = [name for j, name in enumerate(numeric) if 0 < fit.numeric.n[j] < train_rows]
    if ds.imputation != "median" or not gaps:
        return []
    train = pq.read_table(out / "train.parquet", columns=gaps)
    names, values, counts = [], [], []
    for name in gaps:
        found, times = np.unique(train.column(name).drop_null().to_numpy(), return_counts=True)
        names += [name] * len(found)
        values.append(found)
        counts.append(times)
    pq.write_table(
        pa.table(
            {
                "column": pa.array(names, pa.string()),
                "value": pa.array(np.concatenate(values), encoding.FEATURE_TYPE),
                "count": pa.array(np.concatenate(counts).astype(np.int64)),
            }
        ),
        out / f"{VALUES}.parquet",
    )
    return gaps


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

    Threads, not processes: two threads beat one thread, two spawned processes (which also pay for
    their start-up) and two forked ones (more system time for the same work) on this step
    (docs/benchmarks.md, data path). NumPy's BLAS runs one thread meanwhile: the moments' dot products
    are a column long, and a threaded one spends more time handing off than computing; one thread also
    keeps their sums, and so the preprocessor's bytes, the same on machines with more or fewer cores
    (a threaded dot product adds its parts in another order).
    """
    workers = worker_count(len(jobs))
    with threadpoolctl.threadpool_limits(1, "blas"):
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
    line = lineage(config, protocol, code_version(DATASET_CODE))
    keys = [partition_key(part, line) for part in partitions]
    outputs = partition_outputs.committed(store, ds.name, line, keys)
    with storage.temp_dir() as tmp:
        root, scratch = Path(tmp) / "dataset", Path(tmp) / "scratch"
        root.mkdir()
        jobs = [
            _Job(i, part, keys[i], str(scratch / str(i)), ds, protocol)
            for i, part in enumerate(partitions)
            if keys[i] not in outputs
        ]
        for result in _process_all(jobs):
            output = result["output"]
            outputs[output["key"]] = output
            log.info(
                "partition date=%s: %s (%.1fs)",
                output["partition"]["date"],
                ", ".join(f"{s} {n}" for s, n in output["rows"].items()),
                result["seconds"],
            )
        log.info(
            "reused %d partition%s, processed %d",
            len(partitions) - len(jobs),
            "" if len(partitions) - len(jobs) == 1 else "s",
            len(jobs),
        )
        ordered = [outputs[key] for key in keys]
        inputs, fit, counts, class_counts = _merge_partitions(ordered, ds)
        if not counts["train"] or inputs is None or fit is None:
            raise PreprocessError("no rows fall in the train split")
        local = {job.key: Path(job.out_dir) for job in jobs}
        medians = _train_medians(ordered, inputs, fit, counts["train"], ds, store, local, scratch / "fetched")
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
        # Only now, every partition good: a bad one leaves no output behind.
        committed = partition_outputs.commit(store, ds.name, [(outputs[job.key], Path(job.out_dir)) for job in jobs])
        ordered = [committed.get(key, outputs[key]) for key in keys]
        referenced = partition_outputs.referenced_files(store, ds.name, ordered)
        for split in SPLITS:
            if not counts[split]:
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
            # What validate saw of the newest partitions against the earlier ones when this version was
            # built; evaluation reports quote it (the dataset, not a night's run folder, is what they cite).
            "drift": validation.get("drift"),
            # By class index (the label column's values); empty for regression.
            "class_counts": {s: {str(k): int(v) for k, v in sorted(c.items())} for s, c in class_counts.items()},
            "code_version": code_version(DATASET_CODE),
        }
        manifest = storage.commit_directory(root, prefix, meta, referenced)
    partition_outputs.remember(store, ds.name, line, prefix, ordered)
    log.info(
        "dataset %s committed at %s: %s (%.1fs)", version, prefix, _counts(manifest), time.perf_counter() - started
    )
    return _outputs(prefix, version, manifest, cache_hit=False)


def _merge_partitions(
    outputs: list[dict[str, Any]], ds: DatasetConfig
) -> tuple[list[tuple[str, str]] | None, _Fit | None, dict[str, int], dict[str, Counter[int]]]:
    """The partitions' statistics merged in partition order (so the sums do not depend on the workers
    or on which partitions were reused); every partition with rows must have the same feature
    columns, each of the same kind."""
    inputs: list[tuple[str, str]] | None = None
    first = ""
    fit: _Fit | None = None
    counts = dict.fromkeys(SPLITS, 0)
    class_counts: dict[str, Counter[int]] = {split: Counter() for split in SPLITS}
    for output in outputs:
        for split in SPLITS:
            counts[split] += output["rows"][split]
            class_counts[split].update({int(k): v for k, v in output["class_counts"][split].items()})
        if output["inputs"] is None:
            continue
        kinds = [(name, kind) for name, kind in output["inputs"]]
        uri = output["partition"]["uri"]
        if inputs is None:
            inputs, first, fit = kinds, uri, _Fit.empty(ds, kinds)
        elif kinds != inputs:
            raise PreprocessError(_inputs_differ(first, inputs, uri, kinds))
        assert fit is not None
        fit.merge_stats(output)
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
    outputs: list[dict[str, Any]],
    inputs: list[tuple[str, str]],
    fit: _Fit,
    train_rows: int,
    ds: DatasetConfig,
    store: str,
    local: dict[str, Path],
    fetched: Path,
) -> dict[str, float]:
    """The exact median of each numeric feature with gaps among all train rows (median imputation),
    from each partition's value counts of it, or (a partition without gaps in it) its train column.
    Files of partitions processed tonight are local; the others' are fetched."""
    numeric = encoding.numeric_inputs(inputs)
    wanted = [name for j, name in enumerate(numeric) if 0 < fit.numeric.n[j] < train_rows]
    if ds.imputation != "median" or not wanted:
        return {}
    reads: list[tuple[dict[str, Any], str, list[str]]] = []  # (output, file, columns) per partition
    for output in outputs:
        present = [name for name in wanted if output["numeric"] and output["numeric"]["n"][numeric.index(name)]]
        counted = [name for name in present if name in output[VALUES]]
        if counted:
            reads.append((output, f"{VALUES}.parquet", counted))
        if len(counted) < len(present):
            reads.append((output, "train.parquet", [name for name in present if name not in counted]))

    def path_of(read: tuple[dict[str, Any], str, list[str]]) -> Path:
        output, name, _ = read
        if output["key"] in local:
            return local[output["key"]] / name
        target = fetched / output["key"] / name
        uri = layout.partition_output_file(store, ds.name, output["key"], name)
        return storage.download_file(uri, target, output["files"][name]["sha256"])

    found: dict[str, list[tuple[Any, Any]]] = {name: [] for name in wanted}
    for (_, name, columns), path in zip(reads, partition_outputs.io_map(path_of, reads), strict=True):
        table = pq.read_table(path)
        for column in columns:
            if name == "train.parquet":
                values = table.column(column).drop_null().to_numpy()
                found[column].append((values, np.ones(len(values), dtype=np.int64)))
                continue
            rows = table.filter(pc.equal(table.column("column"), column))
            found[column].append((rows.column("value").to_numpy(), rows.column("count").to_numpy()))
    return {name: _median_of_counts(found[name]) for name in wanted}


def _median_of_counts(parts: list[tuple[Any, Any]]) -> float:
    """The median of values given with their counts (as numpy's median of the values repeated)."""
    values = np.concatenate([v for v, _ in parts]).astype(np.float64)
    counts = np.concatenate([c for _, c in parts])
    order = np.argsort(values, kind="stable")
    values, ends = values[order], np.cumsum(counts[order])
    total = int(ends[-1])

    def nth(k: int) -> float:  # the k-th smallest value, from 0
        return float(values[np.searchsorted(ends, k, side="right")])

    if total % 2:
        return nth(total // 2)
    return float(np.mean([nth(total // 2 - 1), nth(total // 2)]))


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
