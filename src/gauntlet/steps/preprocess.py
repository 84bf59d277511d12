"""preprocess: turn validated raw partitions into a content-addressed, split dataset.

The split of a row is decided by a stable hash of its id (see protocol.split_of), so test rows
stay test rows as new days arrive. The scaler is fitted on train rows only and stored as JSON
(never a pickle), and the dataset is committed by a MANIFEST.json written last.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from numpy.typing import NDArray

from gauntlet import rawdata, storage
from gauntlet.config import PipelineConfig
from gauntlet.hashing import DATASET_CODE, code_version, content_hash
from gauntlet.logs import get_logger
from gauntlet.protocol import Protocol, assign_splits

log = get_logger("gauntlet.preprocess")
SPLITS = ("train", "dev", "test")


class PreprocessError(RuntimeError):
    """The validated input cannot become a dataset; the message says why."""


def feature_columns(columns: Iterable[Any], config: PipelineConfig) -> list[str]:
    columns = [c for c in columns if str(c).startswith(config.dataset.feature_prefix)]
    if not columns:
        raise PreprocessError(f"no columns start with feature prefix {config.dataset.feature_prefix!r}")
    return columns


def dataset_version(partitions: list[dict[str, Any]], config: PipelineConfig, protocol: Protocol) -> str:
    """Same raw bytes + same dataset config + same split rule + same code = same version."""
    return content_hash(
        {
            # Quarantined rows are part of the input's identity (absent when none, so versions stay put).
            "partitions": sorted(
                (p["uri"], p["etag"], *([p["quarantine"]["rows"]] if p.get("quarantine") else [])) for p in partitions
            ),
            "dataset": config.raw["dataset"],
            "split": protocol.raw["split"],
            "code": code_version(DATASET_CODE),
        }
    )


def _stream_validated(partitions: list[dict[str, Any]]) -> Iterator[tuple[dict[str, Any], pa.RecordBatch]]:
    """Each validated partition's rows as Arrow batches, minus its quarantined rows.

    Streaming keeps memory at one partition's bytes plus one batch: a 10 M-row snapshot is ~5 GB
    as int64 in pandas, and the old concat-then-cast held it two or three times over.
    """
    for part in partitions:
        data, etag = storage.get_object(part["uri"])
        if etag != part["etag"]:
            # The file changed after validation: training on it would bypass the suite.
            raise PreprocessError(f"{part['uri']} changed since it was validated (ETag {etag} != {part['etag']})")
        # validate set these rows aside (see gauntlet.quarantine); they are positions in the file.
        drop = np.asarray(part["quarantine"]["rows"] if part.get("quarantine") else [], dtype=np.int64)
        offset = 0
        for batch in rawdata.iter_batches(part["uri"], data):
            rows = batch.num_rows
            if len(drop):
                batch = batch.filter(pa.array(~np.isin(np.arange(offset, offset + rows), drop)))
            offset += rows
            yield part, batch
        del data


class _Moments:
    """Per-feature count, mean and sum of squared deviations, merged batch by batch (Chan et al.),
    so the scaler is StandardScaler's fit without holding the train rows."""

    def __init__(self) -> None:
        self.n = 0
        self.mean: NDArray[np.float64] | None = None
        self.m2: NDArray[np.float64] | None = None

    def add(self, x: NDArray[np.float32]) -> None:
        if not len(x):
            return
        mean = x.mean(axis=0, dtype=np.float64)
        m2 = ((x - mean) ** 2).sum(axis=0, dtype=np.float64)
        if self.mean is None or self.m2 is None:
            self.n, self.mean, self.m2 = len(x), mean, m2
            return
        total = self.n + len(x)
        delta = mean - self.mean
        self.mean = self.mean + delta * len(x) / total
        self.m2 = self.m2 + m2 + delta**2 * self.n * len(x) / total
        self.n = total

    def scale(self) -> NDArray[np.float64]:
        assert self.m2 is not None
        std = np.sqrt(self.m2 / self.n)
        # Constant pixels have zero variance; like sklearn, their scale is 1, which keeps them at 0.
        return np.where(std < 10 * np.finfo(np.float64).eps, 1.0, std)


def run(config: PipelineConfig, protocol: Protocol, store: str, validation_uri: str) -> dict[str, Any]:
    started = time.perf_counter()
    validation = storage.get_json(validation_uri)
    if validation.get("verdict") != "passed":
        raise PreprocessError(f"{validation_uri} is not a passed validation; refusing to build a dataset")
    partitions = validation["partitions"]
    version = dataset_version(partitions, config, protocol)
    prefix = storage.join(store, "datasets", config.dataset.name, version)
    if storage.is_committed(prefix):
        manifest = storage.read_manifest(prefix)
        log.info("cache hit: dataset %s already committed at %s (%s)", version, prefix, _counts(manifest))
        return _outputs(prefix, version, manifest, cache_hit=True)

    ds = config.dataset
    with storage.temp_dir() as tmp:
        root = Path(tmp)
        features: list[str] = []
        schema: pa.Schema | None = None
        writers: dict[str, pq.ParquetWriter] = {}
        counts = dict.fromkeys(SPLITS, 0)
        class_counts: dict[str, Counter[int]] = {split: Counter() for split in SPLITS}
        moments = _Moments()
        try:
            for part, batch in _stream_validated(partitions):
                if schema is None:
                    features = feature_columns(batch.schema.names, config)
                    schema = pa.schema(
                        [
                            (ds.id_column, pa.string()),
                            ("date", pa.string()),
                            (ds.label_column, pa.int64()),
                            *((f, pa.float32()) for f in features),
                        ]
                    )
                    for split in SPLITS:
                        (root / split).mkdir()
                        writers[split] = pq.ParquetWriter(root / split / "part-00000.parquet", schema)
                ids = pc.cast(batch.column(ds.id_column), pa.string())
                splits = assign_splits(ids.to_pylist(), protocol)
                table = pa.Table.from_arrays(
                    [
                        ids,
                        pa.repeat(pa.scalar(part["date"], pa.string()), batch.num_rows),
                        pc.cast(batch.column(ds.label_column), pa.int64()),
                        *(pc.cast(batch.column(f), pa.float32()) for f in features),
                    ],
                    schema=schema,
                )
                labels = table.column(ds.label_column).to_numpy()
                for split in SPLITS:
                    mask = splits == split
                    if not mask.any():
                        continue
                    chunk = table.filter(pa.array(mask))
                    writers[split].write_table(chunk)
                    counts[split] += chunk.num_rows
                    class_counts[split].update(dict(zip(*np.unique(labels[mask], return_counts=True), strict=True)))
                    if split == "train":
                        moments.add(np.column_stack([chunk.column(f).to_numpy() for f in features]))
        finally:
            for writer in writers.values():
                writer.close()
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
