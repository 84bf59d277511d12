"""training.data: the batch loader matches a DataLoader over the same sampler."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import DataLoader, DistributedSampler, TensorDataset

from gauntlet.training.data import batch_loader


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
