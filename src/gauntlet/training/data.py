"""Reading a committed dataset (from S3, sha256-verified) into arrays for training and scoring."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:  # torch is imported where batches are made, not by every reader of a split
    from torch.utils.data import DataLoader, Sampler, TensorDataset

from gauntlet import storage
from gauntlet.encoding import encode_frame


@dataclass
class Split:
    ids: np.ndarray
    features: np.ndarray  # float32, encoded by the dataset's preprocessor (the model standardises internally)
    labels: np.ndarray  # int64 class indices (classification) or float64 values (regression)
    frame: pd.DataFrame  # id, date, label (for slices and ledgers)


def load_split(dataset_uri: str, split: str, local_dir: str | Path) -> tuple[Split, dict[str, Any]]:
    """Download one split of a committed dataset and return it, encoded, with the dataset manifest."""
    manifest = storage.fetch_committed(dataset_uri, local_dir, only=f"{split}/")
    files = sorted(Path(local_dir, split).glob("*.parquet"))
    frame = pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)
    schema = manifest["schema"]
    regression = schema.get("task", "classification") == "regression"
    return Split(
        ids=frame[schema["id"]].astype(str).to_numpy(),
        features=encode_frame(frame, load_preprocessor(dataset_uri)),
        labels=frame[schema["label"]].to_numpy(dtype=np.float64 if regression else np.int64),
        frame=frame[[schema["id"], "date", schema["label"]]],
    ), manifest


def load_preprocessor(dataset_uri: str) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(storage.read_committed_file(dataset_uri, "preprocessor.json"))
    return result


def batch_loader(
    dataset: TensorDataset, sampler: Sampler[int], batch_size: int, pin_memory: bool = False
) -> DataLoader:
    """The sampler's rows in batches of batch_size (the last one may be short), one gather per batch.

    The same batches, in the same order, as DataLoader(dataset, batch_size, sampler=sampler), which
    fetches and collates rows one at a time: a per-row Python cost that starves a small model's step.
    The preflight calibrates with it; the worker takes the same batches from training/device_data.py.
    """
    from torch.utils.data import BatchSampler, DataLoader

    # TensorDataset indexes every tensor with the whole list of a batch's row numbers at once.
    return DataLoader(
        dataset, batch_size=None, sampler=BatchSampler(sampler, batch_size, drop_last=False), pin_memory=pin_memory
    )
