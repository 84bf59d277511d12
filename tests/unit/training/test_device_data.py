"""training.device_data: the epoch order is the DistributedSampler's own, the batches are the batch
loader's (bit for bit, in order), and rows go on a GPU only when they fit its share of free memory."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import DistributedSampler, RandomSampler, TensorDataset

from gauntlet.errors import ConfigError
from gauntlet.training.data import batch_loader
from gauntlet.training.device_data import (
    HOST,
    PREFETCH,
    RESIDENT,
    RESIDENT_FRACTION_ENV,
    DeviceBatches,
    epoch_order,
    placement,
    resident_fraction,
)

CPU = torch.device("cpu")


@pytest.mark.parametrize(
    ("rows", "ranks", "shuffle", "drop_last"),
    [(103, 2, True, False), (103, 3, True, True), (5, 4, True, False), (2, 5, True, False), (64, 2, False, False)],
)
def test_epoch_order_is_the_distributed_samplers_order(rows: int, ranks: int, shuffle: bool, drop_last: bool) -> None:
    """Including the rows it repeats (more than once when ranks outnumber rows) or drops to split evenly."""
    dataset = TensorDataset(torch.zeros(rows))
    for rank in range(ranks):
        sampler: DistributedSampler[int] = DistributedSampler(
            dataset, num_replicas=ranks, rank=rank, shuffle=shuffle, seed=11, drop_last=drop_last
        )
        for epoch in (1, 2):
            sampler.set_epoch(epoch)
            order = epoch_order(sampler)
            assert order.dtype == torch.int64 and order.tolist() == list(sampler)


def test_epoch_order_of_any_other_sampler_is_what_it_yields() -> None:
    sampler = RandomSampler(range(20), generator=torch.Generator().manual_seed(4))
    expected = list(RandomSampler(range(20), generator=torch.Generator().manual_seed(4)))
    assert epoch_order(sampler).tolist() == expected


@pytest.mark.parametrize("where", [None, RESIDENT])
@pytest.mark.parametrize(("rows", "batch_size"), [(103, 8), (64, 16), (5, 32)])
def test_batches_are_the_batch_loaders_bit_for_bit(rows: int, batch_size: int, where: str | None) -> None:
    """On a CPU, resident placement is the host path: the same tensors, no copies."""
    features, labels = torch.randn(rows, 4), torch.randint(0, 3, (rows,))
    dataset = TensorDataset(features, labels)
    for rank in (0, 1):
        sampler: DistributedSampler[int] = DistributedSampler(dataset, num_replicas=2, rank=rank, seed=3)
        batches = DeviceBatches(features, labels, sampler, batch_size, CPU, where)
        assert batches.features is features and batches.labels is labels
        for epoch in (1, 2):
            sampler.set_epoch(epoch)
            expected = list(batch_loader(dataset, sampler, batch_size))
            got = list(batches)
            assert len(got) == len(expected) == len(batches)
            for (xa, ya), (xb, yb) in zip(got, expected, strict=True):
                assert torch.equal(xa, xb) and torch.equal(ya, yb) and ya.dtype == yb.dtype


def test_a_cpu_keeps_its_rows_on_the_host() -> None:
    assert placement(10**12, CPU) == HOST
    assert DeviceBatches(torch.zeros(4, 2), torch.zeros(4), range(4), 2, CPU).placement == HOST  # type: ignore[arg-type]


def test_rows_go_on_a_gpu_when_they_fit_its_share_of_free_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    gpu = torch.device("cuda", 0)
    monkeypatch.delenv(RESIDENT_FRACTION_ENV, raising=False)
    assert placement(500, gpu, free_bytes=1000) == RESIDENT  # the default share is a half
    assert placement(501, gpu, free_bytes=1000) == PREFETCH
    assert placement(900, gpu, free_bytes=1000, fraction=0.9) == RESIDENT
    monkeypatch.setenv(RESIDENT_FRACTION_ENV, "0")
    assert placement(1, gpu, free_bytes=1000) == PREFETCH
    monkeypatch.setenv(RESIDENT_FRACTION_ENV, "1")
    assert placement(1000, gpu, free_bytes=1000) == RESIDENT


@pytest.mark.parametrize("text", ["half", "1.5", "-0.1"])
def test_a_bad_resident_fraction_names_the_variable_and_its_range(monkeypatch: pytest.MonkeyPatch, text: str) -> None:
    monkeypatch.setenv(RESIDENT_FRACTION_ENV, text)
    with pytest.raises(ConfigError, match=rf"{RESIDENT_FRACTION_ENV}='{text}' must be a number from 0"):
        resident_fraction()
