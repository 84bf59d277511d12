"""training.data: a split is loaded encoded by its dataset's preprocessor; the batch loader matches a
DataLoader over the same sampler."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from torch.utils.data import DataLoader, DistributedSampler, TensorDataset

from gauntlet import storage
from gauntlet.training.data import batch_loader, load_split


@pytest.mark.parametrize("rows, batch_size", [(103, 8), (64, 16), (5, 32)])
def test_batch_loader_yields_the_per_row_loaders_batches(rows: int, batch_size: int) -> None:
    dataset = TensorDataset(torch.randn(rows, 4), torch.arange(rows))
    for rank in (0, 1):
        sampler: DistributedSampler[int] = DistributedSampler(dataset, num_replicas=2, rank=rank, seed=3)
        for epoch in (1, 2):
            sampler.set_epoch(epoch)
            expected = list(DataLoader(dataset, batch_size=batch_size, sampler=sampler))
            got = list(batch_loader(dataset, sampler, batch_size))
            assert len(got) == len(expected)
            for (xa, ya), (xb, yb) in zip(got, expected, strict=True):
                assert torch.equal(xa, xb) and torch.equal(ya, yb)


def _commit(store: str, tmp_path: Path, frame: pd.DataFrame, preprocessor: dict, schema: dict) -> str:
    """A committed dataset of one train file, as preprocess lays it out."""
    (tmp_path / "train").mkdir(parents=True)
    frame.to_parquet(tmp_path / "train" / "part-00000.parquet", index=False)
    (tmp_path / "preprocessor.json").write_text(json.dumps(preprocessor))
    prefix = f"{store}/datasets/t/v1"
    storage.commit_directory(tmp_path, prefix, {"schema": schema})
    return prefix


def test_load_split_encodes_the_features_with_the_datasets_preprocessor(store: str, tmp_path: Path) -> None:
    frame = pd.DataFrame(
        {
            "row_id": ["a", "b", "c"],
            "date": ["2026-03-01"] * 3,
            "y": [1.5, -2.0, 10.0],
            "age": pd.array([30.0, None, 50.0], dtype="float32"),
            "region": ["west", None, "north"],
        }
    )
    preprocessor = {
        "kind": "tabular",
        "inputs": [
            {"name": "age", "kind": "numeric", "impute": 40.0},
            {"name": "region", "kind": "categorical", "encoding": "one_hot", "categories": ["east", "west"]},
        ],
        "features": ["age", "region=east", "region=west", "region=<unknown>"],
        "mean": [0.0] * 4,
        "scale": [1.0] * 4,
        "target": {"mean": 3.0, "scale": 5.0},
    }
    schema = {"id": "row_id", "label": "y", "task": "regression", "classes": [], "features": ["age", "region"]}
    split, manifest = load_split(_commit(store, tmp_path / "ds", frame, preprocessor, schema), "train", tmp_path / "x")
    assert manifest["schema"] == schema and split.ids.tolist() == ["a", "b", "c"]
    assert split.features.dtype == np.float32
    assert split.features.tolist() == [[30, 0, 1, 0], [40, 0, 0, 1], [50, 0, 0, 1]]
    assert split.labels.dtype == np.float64 and split.labels.tolist() == [1.5, -2.0, 10.0]
    assert list(split.frame.columns) == ["row_id", "date", "y"]
