"""preprocess: turn validated raw partitions into a content-addressed, split dataset.

The split of a row is decided by a stable hash of its id (see protocol.split_of), so test rows
stay test rows as new days arrive. The scaler is fitted on train rows only and stored as JSON
(never a pickle), and the dataset is committed by a MANIFEST.json written last.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.preprocessing import StandardScaler

from gauntlet import rawdata, storage
from gauntlet.config import PipelineConfig
from gauntlet.hashing import DATASET_CODE, code_version, content_hash
from gauntlet.logs import get_logger
from gauntlet.protocol import Protocol, assign_splits

log = get_logger("gauntlet.preprocess")
SPLITS = ("train", "dev", "test")


class PreprocessError(RuntimeError):
    """The validated input cannot become a dataset; the message says why."""


def feature_columns(frame: pd.DataFrame, config: PipelineConfig) -> list[str]:
    columns = [c for c in frame.columns if str(c).startswith(config.dataset.feature_prefix)]
    if not columns:
        raise PreprocessError(f"no columns start with feature prefix {config.dataset.feature_prefix!r}")
    return columns


def dataset_version(partitions: list[dict[str, Any]], config: PipelineConfig, protocol: Protocol) -> str:
    """Same raw bytes + same dataset config + same split rule + same code = same version."""
    return content_hash({
        # Quarantined rows are part of the input's identity (absent when none, so versions stay put).
        "partitions": sorted((p["uri"], p["etag"], *([p["quarantine"]["rows"]] if p.get("quarantine") else []))
                             for p in partitions),
        "dataset": config.raw["dataset"],
        "split": protocol.raw["split"],
        "code": code_version(DATASET_CODE),
    })


def _read_validated(partitions: list[dict[str, Any]]) -> pd.DataFrame:
    frames = []
    for part in partitions:
        data, etag = storage.get_object(part["uri"])
        if etag != part["etag"]:
            # The file changed after validation: training on it would bypass the suite.
            raise PreprocessError(f"{part['uri']} changed since it was validated (ETag {etag} != {part['etag']})")
        frame = rawdata.parse_partition(part["uri"], data)
        if part.get("quarantine"):
            # validate set these rows aside (see gauntlet.quarantine); the rest passed the suite.
            frame = frame.drop(index=part["quarantine"]["rows"]).reset_index(drop=True)
        frame["date"] = part["date"]
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


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

    frame = _read_validated(partitions)
    ds = config.dataset
    features = feature_columns(frame, config)
    frame[ds.id_column] = frame[ds.id_column].astype(str)
    frame["split"] = assign_splits(frame[ds.id_column].tolist(), protocol)
    frame[features] = frame[features].astype(np.float32)
    frame[ds.label_column] = frame[ds.label_column].astype(np.int64)
    train = frame[frame["split"] == "train"]
    if train.empty:
        raise PreprocessError("no rows fall in the train split")
    scaler = StandardScaler().fit(train[features].to_numpy())
    # Constant pixels have zero variance; sklearn sets their scale to 1, which keeps them at 0.
    preprocessor = {"kind": "standard_scaler", "features": features,
                    "mean": scaler.mean_.tolist(), "scale": scaler.scale_.tolist()}

    columns = [ds.id_column, "date", ds.label_column, *features]
    with storage.temp_dir() as tmp:
        root = Path(tmp)
        counts = {}
        for split in SPLITS:
            part = frame.loc[frame["split"] == split, columns].sort_values(ds.id_column)
            (root / split).mkdir()
            part.to_parquet(root / split / "part-00000.parquet", index=False)
            counts[split] = len(part)
        (root / "preprocessor.json").write_text(json.dumps(preprocessor, indent=1))
        class_counts = {s: frame.loc[frame["split"] == s, ds.label_column].value_counts().sort_index().to_dict()
                        for s in SPLITS}
        meta = {
            "version": version,
            "dataset": ds.name,
            "created": dt.datetime.now(dt.UTC).isoformat(),
            "protocol_split": protocol.raw["split"],
            "partitions": [{k: p[k] for k in ("uri", "date", "etag")} for p in partitions],
            "schema": {"id": ds.id_column, "label": ds.label_column, "features": features,
                       "classes": list(ds.classes)},
            "rows": counts,
            "quarantined_rows": sum(p["quarantine"]["count"] for p in partitions if p.get("quarantine")),
            "class_counts": {s: {str(k): int(v) for k, v in c.items()} for s, c in class_counts.items()},
            "code_version": code_version(DATASET_CODE),
        }
        manifest = storage.commit_directory(root, prefix, meta)
    log.info("dataset %s committed at %s: %s (%.1fs)", version, prefix, _counts(manifest), time.perf_counter() - started)
    return _outputs(prefix, version, manifest, cache_hit=False)


def _counts(manifest: dict[str, Any]) -> str:
    return ", ".join(f"{s} {n}" for s, n in manifest["rows"].items())


def _outputs(prefix: str, version: str, manifest: dict[str, Any], cache_hit: bool) -> dict[str, Any]:
    return {"dataset_uri": prefix, "version": version, "rows": manifest["rows"], "cache_hit": cache_hit,
            "quarantined_rows": manifest.get("quarantined_rows", 0)}

